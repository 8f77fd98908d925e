//! Direct IO: a sealed Shared lock over the covering pages, and the hand-off of evicted
//! dirty pages (see the [module docs](super)).

use core::fmt;
use core::ops::{RangeBounds, RangeInclusive};

use super::error::MappingError;
use super::page::{Page, PageLock};
use super::{Mapping, DIRTY};
use crate::lock::{Evicted, LockMode, RangeGuard};

/// Which way a direct IO goes. Both take the same lock today (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirectIoKind {
    /// Device to user memory.
    Read,
    /// User memory to device.
    Write,
}

/// A direct IO in progress: its pages are locked Shared (faults and buffered IO on them
/// wait; other direct IO shares them). Dropping it ends the IO and wakes the waiters.
#[must_use = "the pages are unlocked as soon as the guard is dropped"]
pub struct DirectIo<'a, P: Send + Sync + 'static, const SLOTS: usize = 64> {
    guard: RangeGuard<'a, Page<P>, SLOTS>,
    bytes: RangeInclusive<u64>,
    kind: DirectIoKind,
}

impl<P: Send + Sync + 'static, const SLOTS: usize> DirectIo<'_, P, SLOTS> {
    /// The bytes of the IO.
    pub fn bytes(&self) -> RangeInclusive<u64> {
        self.bytes.clone()
    }

    /// The pages locked for it.
    pub fn pages(&self) -> RangeInclusive<u64> {
        self.guard.range()
    }

    /// Read or write.
    pub fn kind(&self) -> DirectIoKind {
        self.kind
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> fmt::Debug for DirectIo<'_, P, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectIo")
            .field("bytes", &self.bytes)
            .field("pages", &self.pages())
            .field("kind", &self.kind)
            .finish()
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// Starts a direct IO over `bytes`: locks the covering pages Shared, evicts the
    /// cached ones, and passes each evicted dirty page to `flush(index, data)`, which
    /// must write it to the device, before any other direct IO may use those pages.
    /// Returns the guard to hold while the IO runs.
    ///
    /// Sub-page direct IOs to one page share its lock entry (the holder count is the
    /// number of IOs); a fault or buffered IO on a locked page waits for all of them.
    /// The size is not checked (a direct write may extend the file; call
    /// [`set_size`](Self::set_size) after it). If `flush` fails, every evicted page is
    /// put back, still dirty where it was, the range is unlocked and the error returned.
    /// A thread that faults on a page of its own direct IO gets
    /// [`MappingError::Lock`]`(WouldDeadlock)`; see
    /// [`direct_write_from`](Self::direct_write_from).
    ///
    /// ```
    /// use rangelock::mapping::{DirectIoKind, Mapping};
    /// use rangelock::Entry;
    ///
    /// let file: Mapping<[u8; 512]> = Mapping::with_page_size(512).unwrap();
    /// let never = |_: u64, _: &[u8; 512]| -> Result<(), ()> { unreachable!("nothing cached") };
    /// // Two sub-page writes into page 0 run at once.
    /// let a = file.direct_io(0..100, DirectIoKind::Write, never).unwrap();
    /// let b = file.direct_io(200..300, DirectIoKind::Write, never).unwrap();
    /// assert!(matches!(file.pages().get(0), Entry::Locked { holders: 2, .. }));
    /// drop((a, b));
    /// assert!(file.pages().is_empty());
    /// ```
    pub fn direct_io<E>(
        &self,
        bytes: impl RangeBounds<u64>,
        kind: DirectIoKind,
        mut flush: impl FnMut(u64, &P) -> Result<(), E>,
    ) -> Result<DirectIo<'_, P, SLOTS>, MappingError<E>> {
        let (first, last) = self.geometry.bytes(&bytes)?;
        let pages = self.geometry.page_of(first)..=self.geometry.page_of(last);
        let mut guard = self.pages.lock_range_sealed(pages, LockMode::Shared)?;
        let evicted = guard.take_evicted();
        let mut failure = None;
        for (done, e) in evicted.iter().enumerate() {
            let Some(page) = e.entry().item() else {
                continue; // a shadow entry: the IO makes it meaningless
            };
            let index = *e.range().start();
            let mut lock = page.lock();
            lock.set_evicted(true);
            if lock.is_dirty() {
                if let Err(error) = flush(index, &lock) {
                    failure = Some((done, error));
                    break;
                }
                lock.set_dirty(false);
            }
        }
        if let Some((done, error)) = failure {
            self.undo_eviction(guard, evicted, done);
            return Err(MappingError::Io(error));
        }
        guard.unseal();
        Ok(DirectIo {
            guard,
            bytes: first..=last,
            kind,
        })
    }

    /// A failed direct IO: puts every evicted entry back (the first `touched + 1` pages
    /// were marked evicted; those flushed before the failure are clean now), releases
    /// the range, and makes the pages usable again.
    fn undo_eviction(
        &self,
        guard: RangeGuard<'_, Page<P>, SLOTS>,
        evicted: Vec<Evicted<Page<P>>>,
        touched: usize,
    ) {
        let pages: Vec<_> = evicted
            .iter()
            .take(touched + 1)
            .filter_map(|e| Some((*e.range().start(), e.entry().item()?.clone())))
            .collect();
        guard.release_restoring(evicted);
        for (index, page) in pages {
            let mut lock: PageLock<'_, P> = page.lock();
            lock.set_evicted(false);
            // The restored marks are those at eviction: a page flushed since is clean, a
            // write that landed before the evicted flag made one dirty.
            if lock.is_dirty() {
                self.pages.set_mark(index, DIRTY);
            } else {
                self.pages.clear_mark(index, DIRTY);
            }
        }
    }
}
