//! [`LockedMapping`]: the page cache of the comparison under a [`FileLock`].
//!
//! Every operation asks its lock for an [`Access`] over the pages it touches, then works
//! on the page index exactly as [`Mapping`](rangelock::mapping::Mapping) does below its lock
//! entries: the same [`Page`] with its page lock and flags, the same dirty mark, the same
//! evicted re-check for readers and writers holding a page, the same hand-off of dirty
//! pages before a direct IO or an edit. See the [module docs](super) for what each lock
//! takes where.
//!
//! * **Fault:** a lock-free lookup under [`Access::Read`]; on a miss, under
//!   [`Access::Create`], the end-of-file check, then a new page inserted locked into the
//!   empty slot and filled from the device under its page lock (a fault that finds it
//!   waits on that lock).
//! * **Write-back:** no file lock; each dirty page is marked writeback, written under
//!   its page lock, unmarked; then the pages still marked writeback in the range (another
//!   fsync's writes) are waited for.
//! * **Direct IO, truncate, hole punch:** [`Access::Block`] (direct IO) or
//!   [`Access::Edit`] (truncate, hole punch) over the affected pages; each
//!   cached page is erased from the index, then locked (waiting out a buffered write or
//!   a write-back), marked evicted, and its dirty data written to the device where it
//!   survives; then the caller's IO or edit runs.

use core::fmt;
use core::ops::{Bound, Range, RangeInclusive};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rangelock::mapping::{DirectIoKind, MappingError, PageGeometry, DIRTY};
use rangelock::xarray::{Entry, XArray};

use crate::file_lock::{Access, FileLock};
use crate::page::Page;
use crate::page_index;
use crate::{Device, PageCache};

/// The page cache of the comparison, its direct IO and edits kept from racing with page
/// creation by the whole-file (or range) lock `L`. `P: Default` is the placeholder a new
/// page holds while the device fills it under its page lock.
///
/// ```
/// use rangelock_compare::{Device, PageCache, RwLockMapping};
/// use rangelock::mapping::DirectIoKind;
///
/// struct Zeroes;
/// impl Device<u64> for Zeroes {
///     fn read_page(&self, _: u64) -> u64 { 0 }
///     fn write_page(&self, _: u64, _: &u64) {}
/// }
///
/// let file: RwLockMapping<u64> = RwLockMapping::new();
/// file.set_size(4 * 4096);
/// file.write(1, &Zeroes, &mut |page| *page = 7).unwrap();
/// let mut transfers = 0;
/// file.direct_io(0..8192, DirectIoKind::Write, &Zeroes, &mut || transfers += 1).unwrap();
/// assert_eq!(transfers, 1);
/// assert!(file.pages().get(1).is_empty()); // evicted by the direct IO
/// ```
pub struct LockedMapping<P: Send + Sync + 'static, L: FileLock> {
    pages: XArray<Page<P>>,
    geometry: PageGeometry,
    size: AtomicU64,
    lock: L,
}

impl<P: Send + Sync + 'static, L: FileLock> Default for LockedMapping<P, L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Send + Sync + 'static, L: FileLock> fmt::Debug for LockedMapping<P, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedMapping")
            .field("strategy", &L::NAME)
            .field("size", &self.size.load(Ordering::Relaxed))
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}

impl<P: Send + Sync + 'static, L: FileLock> LockedMapping<P, L> {
    /// An empty file (size 0) with 4096-byte pages.
    pub fn new() -> Self {
        LockedMapping {
            pages: XArray::new(),
            geometry: PageGeometry::default(),
            size: AtomicU64::new(0),
            lock: L::default(),
        }
    }

    /// An empty file with `page_size`-byte pages (a power of two up to 2^32).
    pub fn with_page_size(page_size: u64) -> Result<Self, MappingError> {
        Ok(LockedMapping {
            geometry: PageGeometry::new(page_size)?,
            ..Self::new()
        })
    }

    /// The page index, for inspection.
    pub fn pages(&self) -> &XArray<Page<P>> {
        &self.pages
    }

    /// The lock.
    pub fn lock(&self) -> &L {
        &self.lock
    }

    fn check_eof(&self, index: u64) -> Result<(), MappingError> {
        let size = self.size.load(Ordering::Acquire);
        if index >= self.geometry.pages_in(size) {
            return Err(MappingError::BeyondEof { index, size });
        }
        Ok(())
    }

    /// The page at `index`; the caller holds [`Access::Read`] or [`Access::Write`] over
    /// it. A miss takes [`Access::Create`] and [`create`](Self::create)s the page.
    fn fault_held(&self, index: u64, device: &dyn Device<P>) -> Result<Arc<Page<P>>, MappingError>
    where
        P: Default,
    {
        if let Some(page) = self.pages.load(index) {
            return Ok(page);
        }
        let _create = self.lock.acquire(index..=index, Access::Create);
        Ok(self.create(index, device)?.0)
    }

    /// The page at `index`, and whether this call created it; the caller holds
    /// [`Access::Create`]. As Linux does: a new page, not up to date, is inserted into the
    /// empty slot *locked*, then read from the device under its page lock and marked up
    /// to date. Whoever finds it meanwhile waits on the page lock. (Reading first and
    /// inserting after would let a reclaim of a newer page slip in between and leave
    /// the older data cached.) A device read that panics takes the page out again.
    fn create(
        &self,
        index: u64,
        device: &dyn Device<P>,
    ) -> Result<(Arc<Page<P>>, bool), MappingError>
    where
        P: Default,
    {
        loop {
            if let Some(page) = self.pages.load(index) {
                return Ok((page, false));
            }
            self.check_eof(index)?;
            let page = Arc::new(Page::unfilled(P::default()));
            let mut lock = page.lock();
            let new = Entry::Item(Arc::clone(&page));
            if self
                .pages
                .compare_exchange(index, &Entry::Empty, new)
                .is_err()
            {
                continue;
            }
            match panic::catch_unwind(AssertUnwindSafe(|| device.read_page(index))) {
                Ok(data) => {
                    *lock.data_mut() = data;
                    lock.set_uptodate();
                }
                Err(payload) => {
                    lock.set_evicted(true);
                    let _ = self.pages.compare_exchange(
                        index,
                        &Entry::Item(Arc::clone(&page)),
                        Entry::Empty,
                    );
                    drop(lock);
                    panic::resume_unwind(payload);
                }
            }
            drop(lock);
            return Ok((page, true));
        }
    }

    /// Hands the cached pages of `pages` over and drops them, as Linux's write-and-wait
    /// then invalidate does: each page is locked (waiting out a buffered write, a
    /// write-back or another eviction's hand-off), its dirty data written to `device`
    /// where `keep(index)` (otherwise discarded: the edit removes it), and only then
    /// erased from the index and marked evicted. A page is never missing from the index
    /// while its data is on its way to the device, so a concurrent direct IO over it
    /// (the block state is shared among direct IO in `two-state`) either finds it and
    /// waits on its lock or finds the device already written. The caller holds
    /// [`Access::Block`] or [`Access::Edit`] over `pages`.
    fn evict(
        &self,
        pages: RangeInclusive<u64>,
        device: &dyn Device<P>,
        keep: impl Fn(u64) -> bool,
    ) {
        for (span, entry) in self.pages.iter(pages) {
            let (index, Entry::Item(page)) = (*span.start(), entry) else {
                continue;
            };
            let mut lock = page.lock();
            if lock.is_evicted() {
                continue; // reclaimed or handed over meanwhile
            }
            if lock.is_dirty() {
                if keep(index) {
                    device.write_page(index, &lock);
                }
                lock.set_dirty(false);
            }
            let current = Entry::Item(Arc::clone(&page));
            if self
                .pages
                .compare_exchange(index, &current, Entry::Empty)
                .is_ok()
            {
                lock.set_evicted(true);
            }
        }
    }
}

impl<P: Default + Send + Sync + 'static, L: FileLock> PageCache<P> for LockedMapping<P, L> {
    fn strategy(&self) -> &'static str {
        L::NAME
    }

    fn page_size(&self) -> u64 {
        self.geometry.page_size()
    }

    fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn set_size(&self, size: u64) -> u64 {
        self.size.fetch_max(size, Ordering::AcqRel).max(size)
    }

    fn fault(
        &self,
        index: u64,
        device: &dyn Device<P>,
        read: &mut dyn FnMut(&P),
    ) -> Result<(), MappingError> {
        // A mapped read and a buffered read are the same walk in this page cache.
        self.read(index, device, read)
    }

    fn read(
        &self,
        index: u64,
        device: &dyn Device<P>,
        read: &mut dyn FnMut(&P),
    ) -> Result<(), MappingError> {
        let _read = self.lock.acquire(index..=index, Access::Read);
        loop {
            let page = self.fault_held(index, device)?;
            let lock = page.lock();
            if !lock.is_evicted() {
                read(&lock);
                return Ok(());
            }
        }
    }

    fn write(
        &self,
        index: u64,
        device: &dyn Device<P>,
        write: &mut dyn FnMut(&mut P),
    ) -> Result<(), MappingError> {
        let _write = self.lock.acquire(index..=index, Access::Write);
        loop {
            let page = self.fault_held(index, device)?;
            let mut lock = page.lock();
            if lock.is_evicted() {
                continue;
            }
            // Dirty before the change, so a panicking `write` leaves nothing unwritten.
            lock.set_dirty(true);
            self.pages.set_mark(index, DIRTY);
            write(lock.data_mut());
            return Ok(());
        }
    }

    fn readahead(
        &self,
        pages: RangeInclusive<u64>,
        device: &dyn Device<P>,
    ) -> Result<usize, MappingError> {
        let (first, last) = (*pages.start(), *pages.end());
        if first > last {
            return Err(MappingError::InvalidRange {
                start: Bound::Included(first),
                end: Bound::Included(last),
            });
        }
        let end = self.geometry.pages_in(self.size());
        if first >= end {
            return Ok(0);
        }
        let last = last.min(end - 1);
        // Only the span from the first to the last missing page is locked, and nothing
        // when every page is cached (as `Mapping::readahead` claims only missing pages).
        let missing = page_index::missing(&self.pages, first, last);
        let (Some(&first), Some(&last)) = (missing.first(), missing.last()) else {
            return Ok(0);
        };
        let _read = self.lock.acquire(first..=last, Access::Read);
        let _create = self.lock.acquire(first..=last, Access::Create);
        let mut added = 0;
        for index in first..=last {
            match self.create(index, device) {
                Ok((_, created)) => added += usize::from(created),
                Err(MappingError::BeyondEof { .. }) => break,
                Err(error) => return Err(error),
            }
        }
        Ok(added)
    }

    fn writeback(
        &self,
        pages: RangeInclusive<u64>,
        device: &dyn Device<P>,
    ) -> Result<usize, MappingError> {
        Ok(page_index::writeback(&self.pages, pages, device))
    }

    fn reclaim(&self, index: u64) -> bool {
        page_index::reclaim(&self.pages, index)
    }

    fn direct_io(
        &self,
        bytes: Range<u64>,
        _kind: DirectIoKind,
        device: &dyn Device<P>,
        io: &mut dyn FnMut(),
    ) -> Result<(), MappingError> {
        let pages = self.geometry.pages(&bytes)?;
        let _block = self.lock.acquire(pages.clone(), Access::Block);
        self.evict(pages, device, |_| true);
        io();
        Ok(())
    }

    fn truncate(
        &self,
        size: u64,
        device: &dyn Device<P>,
        edit: &mut dyn FnMut(),
    ) -> Result<(), MappingError> {
        let first = self.geometry.page_of(size);
        let partial = !self.geometry.is_aligned(size);
        let _edit = self.lock.acquire(first..=u64::MAX, Access::Edit);
        self.size.store(size, Ordering::Release);
        self.evict(first..=u64::MAX, device, |index| partial && index == first);
        edit();
        Ok(())
    }

    fn punch_hole(
        &self,
        bytes: Range<u64>,
        device: &dyn Device<P>,
        edit: &mut dyn FnMut(),
    ) -> Result<(), MappingError> {
        let (first, last) = self.geometry.bytes(&bytes)?;
        let (p, q) = (self.geometry.page_of(first), self.geometry.page_of(last));
        let head = !self.geometry.is_aligned(first);
        let tail = last != u64::MAX && !self.geometry.is_aligned(last + 1);
        let _edit = self.lock.acquire(p..=q, Access::Edit);
        self.evict(p..=q, device, |i| (head && i == p) || (tail && i == q));
        edit();
        Ok(())
    }

    fn check_quiescent(&self) -> Result<(), String> {
        page_index::check(&self.pages, |page| page.is_writeback() || page.is_evicted())
    }
}
