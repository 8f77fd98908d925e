//! [`DioCountMapping`]: the page cache under a per-file count of direct IOs in flight
//! ([`DioCount`]), the `dio-count` strategy.
//!
//! * **Page-in** (a fault, buffered read or write, or readahead that misses): a new page,
//!   not up to date, is locked, then inserted during a [`DioCount::page_in`] turn (which
//!   waits until no direct IO is in flight), then filled from the device under its page
//!   lock after the turn. The end-of-file check is made inside the turn, so a truncate
//!   (which counts itself as a direct IO) cannot be overtaken.
//! * **Cache hits** take nothing but the page lock.
//! * **Direct IO** takes the inode lock shared (as Linux's `i_rwsem` for direct IO) and
//!   counts itself in flight ([`DioCount::begin_dio`]); no page can appear in the file
//!   until it ends. Over a range with no cached pages that is all: the IO runs. Over
//!   cached pages it becomes what the proposal asks for, a buffered IO through those
//!   pages: each is locked (waiting out a fill, a buffered write or a write-back), its
//!   dirty data written back and waited for, and the pages stay locked across the IO. A
//!   direct read leaves them cached. A direct write's data does not pass through the
//!   cache here ([`PageCache::direct_io`] hands over an opaque transfer, not the bytes),
//!   so instead of copying it into the pages, they are dropped after the IO under their
//!   page locks: the same device traffic as a buffered write plus its write-back, and a
//!   later read misses and pages in the written data.
//! * **Truncate and hole punch** take the inode lock exclusive (waiting out direct IO,
//!   as `inode_dio_wait` does), count themselves in flight (holding page-ins off), drop
//!   the pages (writing the dirty data the edit keeps), and run the edit.
//! * **Write-back and reclaim** are the shared walks of `page_index.rs`: no file lock.

use core::fmt;
use core::ops::{Bound, Range, RangeInclusive};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rangelock::mapping::{DirectIoKind, MappingError, PageGeometry, DIRTY};
use rangelock::xarray::{Entry, XArray};

use crate::dio_count::DioCount;
use crate::page::{Page, PageLock};
use crate::page_index;
use crate::{Device, PageCache};

/// The page cache of the comparison with direct IO kept from page creation by a count of
/// direct IOs in flight (the `dio-count` strategy: see the [crate docs](crate)).
pub struct DioCountMapping<P: Send + Sync + 'static> {
    pages: XArray<Page<P>>,
    geometry: PageGeometry,
    size: AtomicU64,
    count: DioCount,
    /// `i_rwsem`: direct IO shared, edits exclusive.
    inode: RwLock<()>,
}

impl<P: Send + Sync + 'static> Default for DioCountMapping<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Send + Sync + 'static> fmt::Debug for DioCountMapping<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DioCountMapping")
            .field("size", &self.size.load(Ordering::Relaxed))
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<P: Send + Sync + 'static> DioCountMapping<P> {
    /// An empty file (size 0) with 4096-byte pages.
    pub fn new() -> Self {
        DioCountMapping {
            pages: XArray::new(),
            geometry: PageGeometry::default(),
            size: AtomicU64::new(0),
            count: DioCount::new(),
            inode: RwLock::new(()),
        }
    }

    /// The page index, for inspection.
    pub fn pages(&self) -> &XArray<Page<P>> {
        &self.pages
    }

    fn check_eof(&self, index: u64) -> Result<(), MappingError> {
        let size = self.size.load(Ordering::Acquire);
        if index >= self.geometry.pages_in(size) {
            return Err(MappingError::BeyondEof { index, size });
        }
        Ok(())
    }

    /// Fills `lock`'s page (inserted at `index` unfilled) from the device; a device read
    /// that panics takes the page out again.
    fn fill(
        &self,
        index: u64,
        page: &Arc<Page<P>>,
        mut lock: PageLock<'_, P>,
        device: &dyn Device<P>,
    ) {
        match panic::catch_unwind(AssertUnwindSafe(|| device.read_page(index))) {
            Ok(data) => {
                *lock.data_mut() = data;
                lock.set_uptodate();
            }
            Err(payload) => {
                lock.set_evicted(true);
                let current = Entry::Item(Arc::clone(page));
                let _ = self.pages.compare_exchange(index, &current, Entry::Empty);
                drop(lock);
                panic::resume_unwind(payload);
            }
        }
    }

    /// The page at `index`, paged in on a miss.
    fn get(&self, index: u64, device: &dyn Device<P>) -> Result<Arc<Page<P>>, MappingError>
    where
        P: Default,
    {
        loop {
            if let Some(page) = self.pages.load(index) {
                return Ok(page);
            }
            let page = Arc::new(Page::unfilled(P::default()));
            let lock = page.lock();
            let inserted = {
                let _turn = self.count.page_in();
                self.check_eof(index)?;
                let new = Entry::Item(Arc::clone(&page));
                self.pages
                    .compare_exchange(index, &Entry::Empty, new)
                    .is_ok()
            };
            if inserted {
                self.fill(index, &page, lock, device);
                return Ok(page);
            }
        }
    }

    /// Drops the cached pages of `pages` for an edit, writing the dirty data of those
    /// where `keep(index)`. The caller holds the inode lock exclusive and the count.
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
                continue;
            }
            if lock.is_dirty() {
                if keep(index) {
                    device.write_page(index, &lock);
                }
                lock.set_dirty(false);
                self.pages.clear_mark(index, DIRTY);
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

impl<P: Default + Send + Sync + 'static> PageCache<P> for DioCountMapping<P> {
    fn strategy(&self) -> &'static str {
        "dio-count"
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
        self.read(index, device, read)
    }

    fn read(
        &self,
        index: u64,
        device: &dyn Device<P>,
        read: &mut dyn FnMut(&P),
    ) -> Result<(), MappingError> {
        loop {
            let page = self.get(index, device)?;
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
        loop {
            let page = self.get(index, device)?;
            let mut lock = page.lock();
            if lock.is_evicted() {
                continue;
            }
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
        let missing = page_index::missing(&self.pages, first, last.min(end - 1));
        if missing.is_empty() {
            return Ok(0);
        }
        let new: Vec<(u64, Arc<Page<P>>)> = missing
            .into_iter()
            .map(|i| (i, Arc::new(Page::unfilled(P::default()))))
            .collect();
        let mut locks: Vec<Option<PageLock<'_, P>>> =
            new.iter().map(|(_, p)| Some(p.lock())).collect();
        {
            let _turn = self.count.page_in();
            let end = self.geometry.pages_in(self.size());
            for ((index, page), lock) in new.iter().zip(&mut locks) {
                let entry = Entry::Item(Arc::clone(page));
                if *index >= end
                    || self
                        .pages
                        .compare_exchange(*index, &Entry::Empty, entry)
                        .is_err()
                {
                    *lock = None;
                }
            }
        }
        let mut added = 0;
        for ((index, page), lock) in new.iter().zip(locks) {
            if let Some(lock) = lock {
                self.fill(*index, page, lock, device);
                added += 1;
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
        kind: DirectIoKind,
        device: &dyn Device<P>,
        io: &mut dyn FnMut(),
    ) -> Result<(), MappingError> {
        let range = self.geometry.pages(&bytes)?;
        let _inode = self.inode.read().unwrap_or_else(|p| p.into_inner());
        let _dio = self.count.begin_dio();
        // No page can appear in the file now; those already there are all we must mind.
        let cached: Vec<(u64, Arc<Page<P>>)> = self
            .pages
            .iter(range)
            .filter_map(|(span, entry)| entry.item().map(|page| (*span.start(), Arc::clone(page))))
            .collect();
        if cached.is_empty() {
            io();
            return Ok(());
        }
        let mut locks = Vec::with_capacity(cached.len());
        for (index, page) in &cached {
            let mut lock = page.lock();
            if lock.is_evicted() {
                continue;
            }
            if lock.is_dirty() {
                device.write_page(*index, &lock);
                lock.set_dirty(false);
                self.pages.clear_mark(*index, DIRTY);
            }
            locks.push((*index, page, lock));
        }
        io();
        if kind == DirectIoKind::Write {
            for (index, page, mut lock) in locks {
                let current = Entry::Item(Arc::clone(page));
                if self
                    .pages
                    .compare_exchange(index, &current, Entry::Empty)
                    .is_ok()
                {
                    lock.set_evicted(true);
                }
            }
        }
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
        let _inode = self.inode.write().unwrap_or_else(|p| p.into_inner());
        let _dio = self.count.begin_dio();
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
        let _inode = self.inode.write().unwrap_or_else(|p| p.into_inner());
        let _dio = self.count.begin_dio();
        self.evict(p..=q, device, |i| (head && i == p) || (tail && i == q));
        edit();
        Ok(())
    }

    fn check_quiescent(&self) -> Result<(), String> {
        if self.count.in_flight() != 0 {
            return Err(format!("{:?} left in flight", self.count));
        }
        page_index::check(&self.pages, |page| page.is_writeback() || page.is_evicted())
    }
}
