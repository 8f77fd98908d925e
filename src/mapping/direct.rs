//! Direct IO: a sealed Shared lock over the covering pages, and the hand-off of evicted
//! dirty pages (see the [module docs](super)).

use core::fmt;
use core::ops::{RangeBounds, RangeInclusive};

use super::error::MappingError;
use super::evict::Eviction;
use super::page::Page;
use super::Mapping;
use crate::lock::{DetachedGuard, LockMode, RangeGuard};

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

impl<'a, P: Send + Sync + 'static, const SLOTS: usize> DirectIo<'a, P, SLOTS> {
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

    /// The same IO, releasable on another thread (an asynchronous completion). It leaves
    /// this thread's held-lock list: a later fault on these pages by this thread waits
    /// for the completion instead of failing with `WouldDeadlock`.
    pub fn detach(self) -> DetachedDirectIo<'a, P, SLOTS> {
        DetachedDirectIo {
            pages: self.guard.range(),
            _guard: self.guard.detach(),
            bytes: self.bytes,
            kind: self.kind,
        }
    }
}

/// A [`DirectIo`] detached from the thread that started it ([`DirectIo::detach`]): it is
/// `Send`, and dropping it on any thread ends the IO.
#[must_use = "the pages are unlocked as soon as the guard is dropped"]
pub struct DetachedDirectIo<'a, P: Send + Sync + 'static, const SLOTS: usize = 64> {
    _guard: DetachedGuard<'a, Page<P>, SLOTS>,
    pages: RangeInclusive<u64>,
    bytes: RangeInclusive<u64>,
    kind: DirectIoKind,
}

impl<P: Send + Sync + 'static, const SLOTS: usize> DetachedDirectIo<'_, P, SLOTS> {
    /// The bytes of the IO.
    pub fn bytes(&self) -> RangeInclusive<u64> {
        self.bytes.clone()
    }

    /// The pages locked for it.
    pub fn pages(&self) -> RangeInclusive<u64> {
        self.pages.clone()
    }

    /// Read or write.
    pub fn kind(&self) -> DirectIoKind {
        self.kind
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> fmt::Debug for DetachedDirectIo<'_, P, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetachedDirectIo")
            .field("bytes", &self.bytes)
            .field("kind", &self.kind)
            .finish()
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
    /// The size is not checked (a direct write may extend the file: call
    /// [`set_size`](Self::set_size) after the device write, while still holding the
    /// guard, so that a truncate cannot come in between). `flush` runs under the page
    /// lock and with the range held: it must not fault, lock or write pages of this
    /// mapping (a fault there fails with `WouldDeadlock`). If `flush` fails, every evicted page is
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
        let guard = self.lock_evicting(pages, LockMode::Shared)?;
        // Dropped on an error or a panic before `commit`: the pages go back.
        let eviction = Eviction::new(self, guard);
        for (index, page) in eviction.pages() {
            let mut lock = page.lock();
            lock.set_evicted(true);
            if lock.is_dirty() {
                flush(index, &lock).map_err(MappingError::Io)?;
                lock.set_dirty(false);
            }
        }
        let mut guard = eviction.commit();
        guard.unseal();
        Ok(DirectIo {
            guard,
            bytes: first..=last,
            kind,
        })
    }
}
