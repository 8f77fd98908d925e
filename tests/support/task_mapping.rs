//! [`TaskMapping`]: the rangelock page cache driven through the oracle's [`PageCache`]
//! as an asynchronous file server would drive it: every operation that has an
//! asynchronous variant runs it (`fault_async`, `direct_io_async`, `truncate_async`,
//! `punch_hole_async`, `collapse_range_async`, `insert_range_async`), each on its
//! thread's own parking executor ([`park_on`]: a future that is never woken hangs the
//! run), so tasks and threads queue on the same pages; buffered IO, readahead and
//! write-back, which have none, run as the blocking mapping does.
//!
//! A direct IO's `flush` future yields once (it wakes itself) before it writes the
//! handed-over page to the disk, so the hand-off crosses an await point with no lock
//! held, as a device write would.

use std::convert::Infallible;
use std::future::Future;
use std::ops::{Range, RangeInclusive};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rangelock::mapping::{DirectIoKind, Mapping, MappingError, Page};
use rangelock_testkit::executor::park_on;

use super::page_cache::{finish_edit, in_file, Disk, PageCache, PageData, SECTOR};

/// The mapping, driven by tasks (see the module docs).
pub struct TaskMapping<const S: usize = 64>(pub Mapping<PageData, S>);

/// A future that is pending once (having woken itself), then ready: an await point
/// that waits for nothing.
pub struct YieldOnce(bool);

impl YieldOnce {
    pub fn new() -> Self {
        YieldOnce(false)
    }
}

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The future of [`flush_to`].
type Flush<'d> = Pin<Box<dyn Future<Output = Result<(), Infallible>> + Send + 'd>>;

/// A direct IO's asynchronous `flush`: yields once, then writes the page to the disk.
fn flush_to<'d>(disk: &'d Disk) -> impl FnMut(u64, Arc<Page<PageData>>) -> Flush<'d> + 'd {
    move |index, page| {
        Box::pin(async move {
            YieldOnce::new().await;
            page.read(|data| disk.write_page(index, data));
            Ok(())
        })
    }
}

impl<const S: usize> PageCache for TaskMapping<S> {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn grow(&self, size: u64) {
        self.0.set_size(size);
    }

    fn fault_page(&self, disk: &Disk, index: u64) -> Option<PageData> {
        let read = async { Ok(disk.read_page(index)) };
        let page = in_file(park_on(self.0.fault_async(index, read)), "fault_async")?;
        Some(page.read(|data| *data))
    }

    fn buffered_read(&self, disk: &Disk, index: u64) -> Option<PageData> {
        self.0.buffered_read(disk, index)
    }

    fn buffered_read_pages(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Vec<(u64, PageData)> {
        self.0.buffered_read_pages(disk, pages)
    }

    fn read_ahead(&self, disk: &Disk, pages: RangeInclusive<u64>) -> usize {
        self.0.read_ahead(disk, pages)
    }

    fn buffered_write(&self, disk: &Disk, index: u64, sectors: Range<usize>, version: u64) -> bool {
        self.0.buffered_write(disk, index, sectors, version)
    }

    fn write_back(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Option<usize> {
        self.0.write_back(disk, pages)
    }

    fn direct_read(&self, disk: &Disk, bytes: Range<u64>) -> Option<Vec<u64>> {
        let io = park_on(
            self.0
                .direct_io_async(bytes.clone(), DirectIoKind::Read, flush_to(disk)),
        )
        .expect("direct read");
        let data = disk.read_sectors(bytes.start / SECTOR..bytes.end / SECTOR);
        drop(io);
        Some(data)
    }

    fn direct_write(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let io = park_on(self.0.direct_io_async(
            bytes.clone(),
            DirectIoKind::Write,
            flush_to(disk),
        ))
        .expect("direct write");
        disk.write_sectors(bytes.start / SECTOR..bytes.end / SECTOR, version);
        drop(io);
        self.0.set_size(bytes.end);
        true
    }

    fn truncate_to(&self, disk: &Disk, size: u64, version: u64) {
        let edit = park_on(self.0.truncate_async(size)).expect("truncate_async");
        finish_edit(disk, edit.dirty(), size.div_ceil(SECTOR)..u64::MAX, version);
    }

    fn punch(&self, disk: &Disk, bytes: Range<u64>, version: u64) {
        let edit = park_on(self.0.punch_hole_async(bytes.clone())).expect("punch_hole_async");
        finish_edit(
            disk,
            edit.dirty(),
            bytes.start / SECTOR..bytes.end / SECTOR,
            version,
        );
    }

    fn collapse(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let edit = match park_on(self.0.collapse_range_async(bytes.clone())) {
            Ok(edit) => edit,
            Err(MappingError::OutsideFile { .. }) => return false,
            Err(error) => panic!("collapse_range_async: {error}"),
        };
        finish_edit(disk, edit.dirty(), bytes.start / SECTOR..u64::MAX, version);
        true
    }

    fn insert(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let edit = match park_on(self.0.insert_range_async(bytes.clone())) {
            Ok(edit) => edit,
            Err(MappingError::OutsideFile { .. }) => return false,
            Err(error) => panic!("insert_range_async: {error}"),
        };
        finish_edit(disk, edit.dirty(), bytes.start / SECTOR..u64::MAX, version);
        true
    }

    fn cached(&self) -> Vec<(u64, PageData)> {
        self.0.cached()
    }

    fn quiescent(&self) -> Result<(), String> {
        self.0.quiescent()
    }
}
