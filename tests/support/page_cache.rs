//! The page caches that `tests/mapping/oracle.rs` drives, and the disk under them.
//!
//! * [`Disk`]: an in-memory device of 512-byte sectors, 8 to a 4096-byte page. A sector
//!   holds no bytes, only the *version* of the write that last wrote it (0: never
//!   written), so a reader can tell which write it sees. Page reads (the fills of faults
//!   and readahead) are slow on purpose, `delay` yields before each sector, to open race
//!   windows.
//! * [`PageCache`]: a file over that disk as a file system would drive it: faults,
//!   buffered reads and writes, readahead, write-back, direct IO, size changes and the
//!   truncate family, each doing its own device IO at the point a file system does it.
//! * The implementation for [`Mapping`] (any slot count): direct IO holds its
//!   [`DirectIo`](rangelock::mapping::DirectIo) guard over the device IO, after writing
//!   the dirty pages that `flush` hands over; the truncate family applies its disk edit
//!   while it holds the [`EditGuard`](rangelock::mapping::EditGuard), after writing the
//!   surviving dirty pages it lists.
//! * [`NaiveMapping`], the negative control: the same page index, page lock, dirty flag
//!   and mark, evicted flag and disk IO, but no lock entries, modelled on page caches
//!   before `invalidate_lock`: a fault looks up and, on a miss, reads the device and
//!   inserts the page with nothing held; a direct IO writes back and invalidates the
//!   cached pages of its range, then does its device IO; an edit changes the size,
//!   invalidates, then edits the disk. A fault that reads the device just before a
//!   direct write lands and inserts its page after the invalidation leaves stale data
//!   cached; the oracle must catch it.
//!
//! Disk edits: truncate and hole punch write the edit's own version (its "zeroes") to
//! every sector they clear; collapse and insert move data, which the oracle models as
//! the edit writing its version to every sector from the range's start to the end of the
//! disk. Writes past the end of file grow the size: a buffered write before it writes
//! (its fault would fail past the end), a direct write after its IO.
#![allow(dead_code)]

use std::convert::Infallible;
use std::ops::{Range, RangeInclusive};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use rangelock::mapping::{DirectIoKind, Mapping, MappingError, Page, DIRTY};
use rangelock::{Entry, XArray};

/// Bytes per sector.
pub const SECTOR: u64 = 512;
/// Sectors per page.
pub const SECTORS: usize = 8;
/// Bytes per page.
pub const PAGE: u64 = SECTOR * SECTORS as u64;

/// A page's data: the version of each of its sectors.
pub type PageData = [u64; SECTORS];

/// The sectors of page `index`.
pub fn page_sectors(index: u64) -> Range<u64> {
    index * SECTORS as u64..(index + 1) * SECTORS as u64
}

/// How many pages a file of `size` bytes covers.
pub fn pages_in(size: u64) -> u64 {
    size.div_ceil(PAGE)
}

/// The in-memory device: one version per sector.
pub struct Disk {
    sectors: Box<[AtomicU64]>,
    delay: u32,
    page_reads: AtomicU64,
    page_writes: AtomicU64,
}

impl Disk {
    /// A disk of `pages` pages, all sectors at version 0, whose page reads yield `delay`
    /// times before each sector.
    pub fn new(pages: u64, delay: u32) -> Disk {
        Disk {
            sectors: (0..pages * SECTORS as u64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            delay,
            page_reads: AtomicU64::new(0),
            page_writes: AtomicU64::new(0),
        }
    }

    /// The number of sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors.len() as u64
    }

    fn slot(&self, sector: u64) -> &AtomicU64 {
        let len = self.sectors.len();
        usize::try_from(sector)
            .ok()
            .and_then(|s| self.sectors.get(s))
            .unwrap_or_else(|| panic!("sector {sector} is past the disk's {len} sectors"))
    }

    /// The version sector `sector` holds.
    pub fn sector(&self, sector: u64) -> u64 {
        self.slot(sector).load(SeqCst)
    }

    fn stall(&self) {
        for _ in 0..self.delay {
            thread::yield_now();
        }
    }

    /// Reads page `index` (a fill): slow, sector by sector.
    pub fn read_page(&self, index: u64) -> PageData {
        self.page_reads.fetch_add(1, SeqCst);
        let mut data = [0; SECTORS];
        for (d, s) in data.iter_mut().zip(page_sectors(index)) {
            self.stall();
            *d = self.sector(s);
        }
        data
    }

    /// Writes page `index` (write-back, or a dirty page handed over).
    pub fn write_page(&self, index: u64, data: &PageData) {
        self.page_writes.fetch_add(1, SeqCst);
        thread::yield_now();
        for (d, s) in data.iter().zip(page_sectors(index)) {
            self.slot(s).store(*d, SeqCst);
        }
    }

    /// A direct read of `sectors`, a yield between sectors.
    pub fn read_sectors(&self, sectors: Range<u64>) -> Vec<u64> {
        sectors
            .map(|s| {
                thread::yield_now();
                self.sector(s)
            })
            .collect()
    }

    /// A direct write of `version` to `sectors`, a yield between sectors.
    pub fn write_sectors(&self, sectors: Range<u64>, version: u64) {
        for s in sectors {
            thread::yield_now();
            self.slot(s).store(version, SeqCst);
        }
    }

    /// An edit: `version` to every sector of `sectors` (clipped to the disk), a yield
    /// before each page.
    pub fn edit(&self, sectors: Range<u64>, version: u64) {
        thread::yield_now();
        for s in sectors.start..sectors.end.min(self.sectors()) {
            if s % SECTORS as u64 == 0 {
                thread::yield_now();
            }
            self.slot(s).store(version, SeqCst);
        }
    }

    /// (page reads, page writes) so far.
    pub fn page_io(&self) -> (u64, u64) {
        (self.page_reads.load(SeqCst), self.page_writes.load(SeqCst))
    }
}

/// A file's page cache over a [`Disk`], as the oracle drives it (see the module docs).
/// Byte ranges are sector-aligned; page ranges and sizes are the caller's choice.
pub trait PageCache: Send + Sync {
    /// The file size in bytes.
    fn size(&self) -> u64;
    /// Grows the file to `size` bytes (no-op if it is larger).
    fn grow(&self, size: u64);
    /// Faults page `index` in and returns its data; `None` past the end of file.
    fn fault_page(&self, disk: &Disk, index: u64) -> Option<PageData>;
    /// A buffered read of page `index`; `None` past the end of file.
    fn buffered_read(&self, disk: &Disk, index: u64) -> Option<PageData>;
    /// Buffered reads of `pages` in order: the pages read with their data, stopping
    /// short at the end of file (or at a failure the cache injected).
    fn buffered_read_pages(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Vec<(u64, PageData)> {
        pages
            .map_while(|index| Some((index, self.buffered_read(disk, index)?)))
            .collect()
    }
    /// Reads ahead `pages`; returns how many pages it added.
    fn read_ahead(&self, disk: &Disk, pages: RangeInclusive<u64>) -> usize;
    /// A buffered write of `version` to `sectors` of page `index`, growing the file to
    /// cover them; `false` if a concurrent truncate left the page past the end of file.
    fn buffered_write(&self, disk: &Disk, index: u64, sectors: Range<usize>, version: u64) -> bool;
    /// Writes back the dirty pages of `pages` (an fsync's page-cache half); returns how
    /// many it wrote, or `None` if it was refused (a lock error).
    fn write_back(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Option<usize>;
    /// A direct read of `bytes`: the versions of its sectors; `None` if it failed.
    fn direct_read(&self, disk: &Disk, bytes: Range<u64>) -> Option<Vec<u64>>;
    /// A direct write of `version` to `bytes`, growing the file to cover them; `false`
    /// if it failed (then nothing of it reached the disk).
    fn direct_write(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool;
    /// Sets the size to `size`; the cleared sectors get `version`.
    fn truncate_to(&self, disk: &Disk, size: u64, version: u64);
    /// Punches a hole over `bytes`; its sectors get `version`.
    fn punch(&self, disk: &Disk, bytes: Range<u64>, version: u64);
    /// Collapses `bytes` (page-aligned, before the end of file); every sector from its
    /// start on gets `version`. `false` if refused (outside the file).
    fn collapse(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool;
    /// Inserts a hole of `bytes` (page-aligned, starting inside the file); every sector
    /// from its start on gets `version`. `false` if refused (outside the file).
    fn insert(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool;
    /// The cached pages and their data, once the threads have stopped.
    fn cached(&self) -> Vec<(u64, PageData)>;
    /// Once the threads have stopped: `Err` if anything is still locked (or the tree is
    /// broken).
    fn quiescent(&self) -> Result<(), String>;
    /// The threads have stopped: the final checks follow (a cache that injects failures
    /// stops here).
    fn end_of_run(&self) {}
}

// ---------------------------------------------------------------------------------------
// The rangelock mapping
// ---------------------------------------------------------------------------------------

/// The result of a mapping call that only fails past the end of file.
pub fn in_file<T>(result: Result<T, MappingError<Infallible>>, what: &str) -> Option<T> {
    match result {
        Ok(t) => Some(t),
        Err(MappingError::BeyondEof { .. }) => None,
        Err(error) => panic!("{what}: {error}"),
    }
}

/// What a file system does under an edit's guard: writes the edit's handed-over dirty
/// pages to the disk, then applies the disk edit (`sectors` get `version`).
pub fn finish_edit(
    disk: &Disk,
    dirty: &[(u64, Arc<Page<PageData>>)],
    sectors: Range<u64>,
    version: u64,
) {
    for (index, page) in dirty {
        page.read(|data| disk.write_page(*index, data));
    }
    disk.edit(sectors, version);
}

/// A direct IO's `flush`: writes the handed-over dirty page to the disk.
fn flush_to(disk: &Disk) -> impl FnMut(u64, &PageData) -> Result<(), Infallible> + '_ {
    move |index, data| {
        disk.write_page(index, data);
        Ok(())
    }
}

impl<const S: usize> PageCache for Mapping<PageData, S> {
    fn size(&self) -> u64 {
        Mapping::size(self)
    }

    fn grow(&self, size: u64) {
        self.set_size(size);
    }

    fn fault_page(&self, disk: &Disk, index: u64) -> Option<PageData> {
        let page = in_file(self.fault(index, |i| Ok(disk.read_page(i))), "fault")?;
        Some(page.read(|data| *data))
    }

    fn buffered_read(&self, disk: &Disk, index: u64) -> Option<PageData> {
        in_file(self.read(index, |i| Ok(disk.read_page(i)), |d| *d), "read")
    }

    fn buffered_read_pages(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Vec<(u64, PageData)> {
        let mut read = Vec::new();
        let n = self.read_pages(pages, |i| Ok(disk.read_page(i)), |i, d| read.push((i, *d)));
        assert_eq!(in_file(n, "read_pages"), Some(read.len() as u64));
        read
    }

    fn read_ahead(&self, disk: &Disk, pages: RangeInclusive<u64>) -> usize {
        let fill = |indices: &[u64]| Ok(indices.iter().map(|&i| disk.read_page(i)).collect());
        in_file(self.readahead(pages, fill), "readahead").unwrap_or(0)
    }

    fn buffered_write(&self, disk: &Disk, index: u64, sectors: Range<usize>, version: u64) -> bool {
        self.set_size(index * PAGE + sectors.end as u64 * SECTOR);
        let write = |data: &mut PageData| data[sectors].fill(version);
        in_file(self.write(index, |i| Ok(disk.read_page(i)), write), "write").is_some()
    }

    fn write_back(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Option<usize> {
        match self.writeback(pages, flush_to(disk)) {
            Ok(written) => Some(written),
            Err(MappingError::Lock(_)) => None,
            Err(error) => panic!("writeback: {error}"),
        }
    }

    fn direct_read(&self, disk: &Disk, bytes: Range<u64>) -> Option<Vec<u64>> {
        let io = self
            .direct_io(bytes.clone(), DirectIoKind::Read, flush_to(disk))
            .expect("direct read");
        let data = disk.read_sectors(bytes.start / SECTOR..bytes.end / SECTOR);
        drop(io);
        Some(data)
    }

    fn direct_write(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let io = self
            .direct_io(bytes.clone(), DirectIoKind::Write, flush_to(disk))
            .expect("direct write");
        disk.write_sectors(bytes.start / SECTOR..bytes.end / SECTOR, version);
        drop(io);
        self.set_size(bytes.end);
        true
    }

    fn truncate_to(&self, disk: &Disk, size: u64, version: u64) {
        let edit = self.truncate(size).expect("truncate");
        finish_edit(disk, edit.dirty(), size.div_ceil(SECTOR)..u64::MAX, version);
    }

    fn punch(&self, disk: &Disk, bytes: Range<u64>, version: u64) {
        let edit = self.punch_hole(bytes.clone()).expect("punch_hole");
        finish_edit(
            disk,
            edit.dirty(),
            bytes.start / SECTOR..bytes.end / SECTOR,
            version,
        );
    }

    fn collapse(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let edit = match self.collapse_range(bytes.clone()) {
            Ok(edit) => edit,
            Err(MappingError::OutsideFile { .. }) => return false,
            Err(error) => panic!("collapse_range: {error}"),
        };
        finish_edit(disk, edit.dirty(), bytes.start / SECTOR..u64::MAX, version);
        true
    }

    fn insert(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let edit = match self.insert_range(bytes.clone()) {
            Ok(edit) => edit,
            Err(MappingError::OutsideFile { .. }) => return false,
            Err(error) => panic!("insert_range: {error}"),
        };
        finish_edit(disk, edit.dirty(), bytes.start / SECTOR..u64::MAX, version);
        true
    }

    fn cached(&self) -> Vec<(u64, PageData)> {
        self.pages()
            .iter(..)
            .filter_map(|(span, entry)| Some((*span.start(), entry.item()?.read(|d| *d))))
            .collect()
    }

    fn quiescent(&self) -> Result<(), String> {
        self.pages().check_invariants()?;
        for (span, entry) in self.pages().iter(..) {
            match entry {
                Entry::Item(page) if page.is_writeback() || page.is_evicted() => {
                    return Err(format!("page {span:?} left as {page:?}"));
                }
                Entry::Item(_) => {}
                _ => return Err(format!("{span:?} left as {:?}", Seen(&entry))),
            }
        }
        Ok(())
    }
}

/// An entry without its item, for messages.
struct Seen<'a, T>(&'a Entry<T>);

impl<T> std::fmt::Debug for Seen<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Entry::Empty => write!(f, "empty"),
            Entry::Item(_) => write!(f, "a page"),
            Entry::Value(v) => write!(f, "value {v}"),
            Entry::Locked { mode, holders } => write!(f, "locked {mode:?} x{holders}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The negative control
// ---------------------------------------------------------------------------------------

/// A naive page's state, all under its page lock.
struct NaiveState {
    data: PageData,
    dirty: bool,
    evicted: bool,
}

/// A naive cached page: the data and flags behind the page lock.
pub struct NaivePage(Mutex<NaiveState>);

impl NaivePage {
    fn lock(&self) -> MutexGuard<'_, NaiveState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A page cache without lock entries (see the module docs): what the oracle must catch.
pub struct NaiveMapping {
    pages: XArray<NaivePage>,
    size: AtomicU64,
}

impl Default for NaiveMapping {
    fn default() -> Self {
        NaiveMapping {
            pages: XArray::new(),
            size: AtomicU64::new(0),
        }
    }
}

impl NaiveMapping {
    /// The page at `index`: a lookup, and on a miss a fill with nothing held, inserted
    /// unless another fault got there first. `None` past the end of file.
    fn fault(&self, disk: &Disk, index: u64) -> Option<Arc<NaivePage>> {
        loop {
            if let Some(page) = self.pages.load(index) {
                return Some(page);
            }
            if index >= pages_in(self.size()) {
                return None;
            }
            let page = Arc::new(NaivePage(Mutex::new(NaiveState {
                data: disk.read_page(index),
                dirty: false,
                evicted: false,
            })));
            let new = Entry::Item(Arc::clone(&page));
            if self
                .pages
                .compare_exchange(index, &Entry::Empty, new)
                .is_ok()
            {
                return Some(page);
            }
        }
    }

    /// Removes the pages of `pages` from the index, marks them evicted under their page
    /// lock, and writes the dirty ones for which `keeps(index)` holds to the disk (the
    /// others' data is discarded).
    fn invalidate(&self, disk: &Disk, pages: RangeInclusive<u64>, keeps: impl Fn(u64) -> bool) {
        for (span, _) in self.pages.iter(pages) {
            let index = *span.start();
            let Ok(Entry::Item(page)) = self.pages.erase(index) else {
                continue;
            };
            let mut state = page.lock();
            state.evicted = true;
            if std::mem::take(&mut state.dirty) && keeps(index) {
                disk.write_page(index, &state.data);
            }
        }
    }

    /// Writes back, then invalidates the pages under a direct IO of `bytes`.
    fn before_direct_io(&self, disk: &Disk, bytes: &Range<u64>) {
        let pages = bytes.start / PAGE..=(bytes.end - 1) / PAGE;
        self.write_back(disk, pages.clone());
        self.invalidate(disk, pages, |_| true);
    }
}

impl PageCache for NaiveMapping {
    fn size(&self) -> u64 {
        self.size.load(SeqCst)
    }

    fn grow(&self, size: u64) {
        self.size.fetch_max(size, SeqCst);
    }

    fn fault_page(&self, disk: &Disk, index: u64) -> Option<PageData> {
        Some(self.fault(disk, index)?.lock().data)
    }

    fn buffered_read(&self, disk: &Disk, index: u64) -> Option<PageData> {
        loop {
            let page = self.fault(disk, index)?;
            let state = page.lock();
            if !state.evicted {
                return Some(state.data);
            }
        }
    }

    fn read_ahead(&self, disk: &Disk, pages: RangeInclusive<u64>) -> usize {
        let end = pages_in(self.size()).min(pages.end().saturating_add(1));
        let mut added = 0;
        for index in *pages.start()..end {
            if self.pages.load(index).is_some() {
                continue;
            }
            let page = Arc::new(NaivePage(Mutex::new(NaiveState {
                data: disk.read_page(index),
                dirty: false,
                evicted: false,
            })));
            if (self.pages)
                .compare_exchange(index, &Entry::Empty, Entry::Item(page))
                .is_ok()
            {
                added += 1;
            }
        }
        added
    }

    fn buffered_write(&self, disk: &Disk, index: u64, sectors: Range<usize>, version: u64) -> bool {
        self.grow(index * PAGE + sectors.end as u64 * SECTOR);
        loop {
            let Some(page) = self.fault(disk, index) else {
                return false;
            };
            let mut state = page.lock();
            if state.evicted {
                continue;
            }
            state.data[sectors].fill(version);
            state.dirty = true;
            self.pages.set_mark(index, DIRTY);
            return true;
        }
    }

    fn write_back(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Option<usize> {
        let mut written = 0;
        for (span, entry) in self.pages.iter_marked(pages, DIRTY) {
            let (Some(page), index) = (entry.item(), *span.start()) else {
                continue;
            };
            let mut state = page.lock();
            if state.evicted {
                continue;
            }
            self.pages.clear_mark(index, DIRTY);
            if std::mem::take(&mut state.dirty) {
                disk.write_page(index, &state.data);
                written += 1;
            }
        }
        Some(written)
    }

    fn direct_read(&self, disk: &Disk, bytes: Range<u64>) -> Option<Vec<u64>> {
        self.before_direct_io(disk, &bytes);
        Some(disk.read_sectors(bytes.start / SECTOR..bytes.end / SECTOR))
    }

    fn direct_write(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        self.before_direct_io(disk, &bytes);
        disk.write_sectors(bytes.start / SECTOR..bytes.end / SECTOR, version);
        self.grow(bytes.end);
        true
    }

    fn truncate_to(&self, disk: &Disk, size: u64, version: u64) {
        self.size.store(size, SeqCst);
        let first = size / PAGE;
        let partial = size % PAGE != 0;
        self.invalidate(disk, first..=u64::MAX, |i| partial && i == first);
        disk.edit(size.div_ceil(SECTOR)..u64::MAX, version);
    }

    fn punch(&self, disk: &Disk, bytes: Range<u64>, version: u64) {
        let (p, q) = (bytes.start / PAGE, (bytes.end - 1) / PAGE);
        let (head, tail) = (bytes.start % PAGE != 0, bytes.end % PAGE != 0);
        self.invalidate(disk, p..=q, |i| (head && i == p) || (tail && i == q));
        disk.edit(bytes.start / SECTOR..bytes.end / SECTOR, version);
    }

    fn collapse(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let len = bytes.end - bytes.start;
        let shrink = |size: u64| (bytes.end < size).then(|| size - len);
        if self.size.fetch_update(SeqCst, SeqCst, shrink).is_err() {
            return false;
        }
        let after = bytes.end / PAGE;
        self.invalidate(disk, bytes.start / PAGE..=u64::MAX, |i| i >= after);
        disk.edit(bytes.start / SECTOR..u64::MAX, version);
        true
    }

    fn insert(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let len = bytes.end - bytes.start;
        let grow = |size: u64| (bytes.start < size).then(|| size + len);
        if self.size.fetch_update(SeqCst, SeqCst, grow).is_err() {
            return false;
        }
        self.invalidate(disk, bytes.start / PAGE..=u64::MAX, |_| true);
        disk.edit(bytes.start / SECTOR..u64::MAX, version);
        true
    }

    fn cached(&self) -> Vec<(u64, PageData)> {
        self.pages
            .iter(..)
            .filter_map(|(span, entry)| Some((*span.start(), entry.item()?.lock().data)))
            .collect()
    }

    fn quiescent(&self) -> Result<(), String> {
        self.pages.check_invariants()
    }
}
