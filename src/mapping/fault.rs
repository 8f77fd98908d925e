//! Faults, readahead and buffered IO: the paths that add pages and use them.

use core::future::Future;
use core::ops::RangeBounds;
use std::sync::Arc;

use super::error::MappingError;
use super::page::{Page, PageLock};
use super::{Mapping, DIRTY};
use crate::lock::FillError;
use crate::xarray::{span, EntryRef};

/// Pages [`Mapping::read_pages`] looks up together: enough for the memory system to
/// overlap their misses, few enough that a short read clones few pages it then skips.
pub const READ_BATCH: usize = 16;

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// The page at `index`, filling a missing one: the page-fault path (see the
    /// [module docs](super)).
    ///
    /// A hit is lock-free. A locked page is waited for. A missing page (or a shadow
    /// entry) is locked for this index alone and `fill(index)` runs with no internal lock
    /// held; its page is published and every waiter finds it. Errors:
    /// [`MappingError::BeyondEof`] for a page wholly past the end of file (checked again
    /// once the index is locked, so a concurrent truncate is never missed),
    /// [`MappingError::Lock`] with `WouldDeadlock` if this thread holds the page under
    /// its own direct IO or edit, [`MappingError::Io`] if `fill` failed (nothing was
    /// cached; waiters retry).
    ///
    /// The page returned may be evicted right after (a direct IO or an edit): a caller
    /// that keeps it should check [`Page::is_evicted`] under the page lock, as
    /// [`read`](Self::read) and [`write`](Self::write) do. `fill` runs under the index's
    /// lock: it must not fault other pages of this mapping (an edit waiting on this
    /// index while holding those would deadlock with it).
    ///
    /// ```
    /// use rangelock::mapping::{Mapping, MappingError};
    ///
    /// let file: Mapping<String> = Mapping::new();
    /// file.set_size(10_000); // three pages
    /// let page = file.fault(2, |i| Ok::<_, ()>(format!("page {i}"))).unwrap();
    /// assert_eq!(page.read(|s| s.clone()), "page 2");
    /// let past_eof = file.fault(3, |_| Ok::<_, ()>(String::new()));
    /// assert!(matches!(past_eof, Err(MappingError::BeyondEof { index: 3, .. })));
    /// ```
    pub fn fault<E>(
        &self,
        index: u64,
        fill: impl FnOnce(u64) -> Result<P, E>,
    ) -> Result<Arc<Page<P>>, MappingError<E>> {
        if let Some(page) = self.pages.load(index) {
            return Ok(page);
        }
        self.check_eof(index)?;
        let filled = self.pages.get_or_fill(index, |index| {
            // Under the one-index lock: ordered with a truncate that shrinks the file.
            self.check_eof(index)?;
            match fill(index) {
                Ok(data) => Ok(Arc::new(Page::new(data))),
                Err(error) => Err(MappingError::Io(error)),
            }
        });
        match filled {
            Ok(page) => Ok(page),
            Err(FillError::Lock(error)) => Err(MappingError::Lock(error)),
            Err(FillError::Fill(error)) => Err(error),
        }
    }

    /// The page at `index`, filling a missing one by awaiting `fill`: the asynchronous
    /// page fault ([`fault`](Self::fault) with a device read that is a future), on
    /// [`XArray::get_or_fill_async`](crate::XArray::get_or_fill_async).
    ///
    /// A hit is lock-free and `fill` is dropped unpolled. A locked page is waited for
    /// as a future, in one queue with the blocking waiters. A missing page (or a shadow
    /// entry) is locked for this index alone, the end of file is checked again under
    /// that lock, and `fill` is awaited with no internal lock held; its page is
    /// published and every waiter finds it. Dropping the returned future at any await
    /// point (or `fill` failing or panicking) caches nothing and puts back the shadow
    /// entry it was to replace; waiters retry. Errors as for `fault`, except that a task
    /// is never told [`LockError::WouldDeadlock`](crate::LockError::WouldDeadlock): a
    /// task that faults a page under its own direct IO waits for ever (see
    /// [`XArray::lock_range_async`](crate::XArray::lock_range_async)).
    ///
    /// ```
    /// use rangelock::mapping::{Mapping, MappingError};
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let file: Mapping<String> = Mapping::new();
    /// file.set_size(10_000); // three pages
    /// let read = async { Ok::<_, ()>("page 2".to_string()) }; // the device read
    /// let page = block_on(file.fault_async(2, read)).unwrap();
    /// assert_eq!(page.read(|s| s.clone()), "page 2");
    /// let past_eof = block_on(file.fault_async(3, async { Ok::<_, ()>(String::new()) }));
    /// assert!(matches!(past_eof, Err(MappingError::BeyondEof { index: 3, .. })));
    /// ```
    pub async fn fault_async<E>(
        &self,
        index: u64,
        fill: impl Future<Output = Result<P, E>>,
    ) -> Result<Arc<Page<P>>, MappingError<E>> {
        if let Some(page) = self.pages.load(index) {
            return Ok(page);
        }
        self.check_eof(index)?;
        let filled = self
            .pages
            .get_or_fill_async(index, async {
                // Under the one-index lock: ordered with a truncate that shrinks the file.
                self.check_eof(index)?;
                match fill.await {
                    Ok(data) => Ok(Arc::new(Page::new(data))),
                    Err(error) => Err(MappingError::Io(error)),
                }
            })
            .await;
        match filled {
            Ok(page) => Ok(page),
            Err(FillError::Lock(error)) => Err(MappingError::Lock(error)),
            Err(FillError::Fill(error)) => Err(error),
        }
    }

    /// Reads ahead: fills the missing pages of `pages` (page indices, clipped to the end
    /// of file) in one batch, and returns how many it added.
    ///
    /// Only indices that hold nothing (or a shadow entry) and that nobody has locked are
    /// claimed, each with a one-index Exclusive lock, without waiting; cached pages and
    /// pages being filled or locked are skipped. `fill` gets the claimed indices in
    /// ascending order and returns their data in the same order; indices it returns no
    /// data for are released unfilled. If it fails, every claim is released (shadow
    /// entries put back) and the error is returned. It takes one claim per missing
    /// index before calling `fill`: keep the window to what one batch should read.
    ///
    /// ```
    /// use rangelock::mapping::Mapping;
    ///
    /// let file: Mapping<u64> = Mapping::new();
    /// file.set_size(8 * 4096);
    /// file.fault(2, |i| Ok::<_, ()>(i)).unwrap();
    /// let added = file
    ///     .readahead(0..100, |indices| {
    ///         assert_eq!(indices, &[0, 1, 3, 4, 5, 6, 7]); // page 2 is cached; 8.. is past EOF
    ///         Ok::<_, ()>(indices.to_vec())
    ///     })
    ///     .unwrap();
    /// assert_eq!(added, 7);
    /// ```
    pub fn readahead<E>(
        &self,
        pages: impl RangeBounds<u64>,
        fill: impl FnOnce(&[u64]) -> Result<Vec<P>, E>,
    ) -> Result<usize, MappingError<E>> {
        let Some(range) = span::inclusive(&pages) else {
            return Err(MappingError::InvalidRange {
                start: pages.start_bound().cloned(),
                end: pages.end_bound().cloned(),
            });
        };
        let end = self.geometry.pages_in(self.size());
        if range.first >= end {
            return Ok(0);
        }
        let last = range.last.min(end - 1);
        let mut claims = Vec::new();
        let mut indices = Vec::new();
        for index in self.uncached(range.first, last) {
            if let Some(claim) = self.pages.try_fill_lock(index) {
                // Under the lock: a truncate since the first check is seen here.
                if self.check_eof::<E>(index).is_err() {
                    break;
                }
                claims.push(claim);
                indices.push(index);
            }
        }
        if indices.is_empty() {
            return Ok(0);
        }
        // Claims end last-claimed first, so that each leaves this thread's held list
        // from its end (O(1) each): released unfilled, then published.
        let mut data = match fill(&indices) {
            Ok(data) => data,
            Err(error) => {
                while claims.pop().is_some() {}
                return Err(MappingError::Io(error));
            }
        };
        while claims.len() > data.len() {
            claims.pop();
        }
        data.truncate(claims.len());
        let added = claims.len();
        while let (Some(claim), Some(data)) = (claims.pop(), data.pop()) {
            if claim.publish(Arc::new(Page::new(data))).is_err() {
                unreachable!("a one-index Exclusive claim publishes");
            }
        }
        Ok(added)
    }

    /// The indices of `first..=last` that hold no page, in ascending order: one pinned
    /// walk over the window (iteration's leaf-local fast path), not a lookup per index.
    /// A snapshot only: each index found is claimed (or skipped) by its own
    /// `try_fill_lock`, which looks again.
    fn uncached(&self, first: u64, last: u64) -> Vec<u64> {
        let mut holes = Vec::new();
        let guard = self.pages.read();
        // The first index not yet known to hold a page; `None` once past `last`.
        let mut next = Some(first);
        for (span, entry) in guard.iter(first..=last) {
            if let (Some(from), EntryRef::Item(_)) = (next, entry) {
                holes.extend(from..*span.start());
                next = span.end().checked_add(1);
            }
        }
        if let Some(from) = next {
            holes.extend(from..=last);
        }
        holes
    }

    /// Buffered reads of the pages of `pages`, in ascending order: `read(index, &data)`
    /// for each under its page lock, as many [`read`](Self::read) calls would, but with
    /// the cached pages looked up [`READ_BATCH`] at a time (one pin and one walk in
    /// lockstep per batch, [`ReadGuard::load_many`](crate::ReadGuard::load_many)).
    /// Missing pages are faulted in with `fill`, one index at a time, as by
    /// [`fault`](Self::fault).
    ///
    /// Returns how many pages were read: the read stops, short, at the first page wholly
    /// past the end of file (a range that starts there reads nothing), as a file read
    /// does. Errors: [`MappingError::InvalidRange`] for an empty or inverted range;
    /// [`MappingError::Io`] if `fill` failed and [`MappingError::Lock`] with
    /// `WouldDeadlock` if this thread holds a missing page under its own direct IO or
    /// edit; the pages before that one were read. A page evicted under the reader is
    /// looked up again, as by `read`. `fill` and `read` run with no internal lock held
    /// but the page lock (for `read`): the same rules as for `read` apply.
    ///
    /// ```
    /// use rangelock::mapping::Mapping;
    ///
    /// let file: Mapping<u64> = Mapping::with_page_size(8).unwrap();
    /// file.set_size(8 * 5); // pages 0..5
    /// file.fault(1, |i| Ok::<_, ()>(i * 100)).unwrap(); // cached
    /// let mut seen = Vec::new();
    /// let read = file.read_pages(0..10, |i| Ok::<_, ()>(i), |i, page| seen.push((i, *page)));
    /// assert_eq!(read, Ok(5)); // short: page 5 is past the end of file
    /// assert_eq!(seen, [(0, 0), (1, 100), (2, 2), (3, 3), (4, 4)]);
    /// ```
    pub fn read_pages<E>(
        &self,
        pages: impl RangeBounds<u64>,
        mut fill: impl FnMut(u64) -> Result<P, E>,
        mut read: impl FnMut(u64, &P),
    ) -> Result<u64, MappingError<E>> {
        let Some(range) = span::inclusive(&pages) else {
            return Err(MappingError::InvalidRange {
                start: pages.start_bound().cloned(),
                end: pages.end_bound().cloned(),
            });
        };
        let mut done = 0;
        let mut first = range.first;
        loop {
            // A short last batch repeats `range.last`; the repeats are not read.
            let batch: [u64; READ_BATCH] =
                core::array::from_fn(|k| first.saturating_add(k as u64).min(range.last));
            let cached = self.pages.read().load_many(batch);
            for (&index, page) in batch.iter().zip(cached) {
                match self.read_found(index, page, &mut fill, |data| read(index, data)) {
                    Ok(()) => {}
                    Err(MappingError::BeyondEof { .. }) => return Ok(done),
                    Err(error) => return Err(error),
                }
                done += 1;
                if index == range.last {
                    return Ok(done);
                }
            }
            first = batch[READ_BATCH - 1] + 1;
        }
    }

    /// A buffered read: runs `read` on page `index` (faulted in with `fill` if missing)
    /// under its page lock. A page evicted under the reader is looked up again, so the
    /// data read is never older than a direct write that completed before the call.
    pub fn read<E, R>(
        &self,
        index: u64,
        fill: impl FnMut(u64) -> Result<P, E>,
        read: impl FnOnce(&P) -> R,
    ) -> Result<R, MappingError<E>> {
        self.read_found(index, None, fill, read)
    }

    /// [`read`](Self::read) of page `index`, starting from `found` if a lookup already
    /// found it (`read_pages`' batches): an evicted page is looked up again by `fault`.
    fn read_found<E, R>(
        &self,
        index: u64,
        mut found: Option<Arc<Page<P>>>,
        mut fill: impl FnMut(u64) -> Result<P, E>,
        read: impl FnOnce(&P) -> R,
    ) -> Result<R, MappingError<E>> {
        loop {
            let page = match found.take() {
                Some(page) => page,
                None => self.fault(index, &mut fill)?,
            };
            let lock = page.lock();
            if !lock.is_evicted() {
                return Ok(read(&lock));
            }
        }
    }

    /// A buffered write: faults page `index` in (with `fill`), locks it, checks it is
    /// still in the mapping, runs `write` on its data, and marks it dirty. A write that
    /// races with an eviction either lands first (and the evicting direct IO or edit
    /// takes its dirty data) or finds the page evicted and starts again, waiting for the
    /// lock entry that replaced it: a completed write is never lost. The page is marked
    /// dirty before `write` runs (a panicking `write` leaves it dirty).
    ///
    /// `fill`'s page is cached even if `write` then panics. `read` and `write` run under
    /// the page lock: they must not fault, lock or write pages of this mapping.
    ///
    /// ```
    /// use rangelock::mapping::Mapping;
    ///
    /// let file: Mapping<[u8; 4]> = Mapping::with_page_size(4).unwrap();
    /// file.set_size(8);
    /// let disk = |_: u64| Ok::<_, ()>([0; 4]);
    /// file.write(1, disk, |page| page[2] = 9).unwrap();
    /// assert_eq!(file.read(1, disk, |page| *page).unwrap(), [0, 0, 9, 0]);
    /// assert_eq!(file.dirty_pages(..), vec![1]);
    /// ```
    pub fn write<E, R>(
        &self,
        index: u64,
        mut fill: impl FnMut(u64) -> Result<P, E>,
        write: impl FnOnce(&mut P) -> R,
    ) -> Result<R, MappingError<E>> {
        loop {
            let page = self.fault(index, &mut fill)?;
            let mut lock = page.lock();
            if lock.is_evicted() {
                continue;
            }
            // Dirty before the caller's code runs: a `write` that panics half-way leaves
            // a change that readers can see, and write-back must see it too.
            self.mark_dirty(index, &mut lock);
            return Ok(write(lock.data_mut()));
        }
    }

    /// Sets the dirty flag and the tree mark of the locked page at `index`. If an
    /// eviction has already replaced the page in the tree (it waits for this page lock),
    /// the mark is refused, and the flag alone makes the evicting thread hand the data on.
    fn mark_dirty(&self, index: u64, lock: &mut PageLock<'_, P>) {
        lock.set_dirty(true);
        self.pages.set_mark(index, DIRTY);
    }
}
