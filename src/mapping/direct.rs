//! Direct IO: a sealed Shared lock over the covering pages, and the hand-off of evicted
//! dirty pages (see the [module docs](super)).

use core::fmt;
use core::future::Future;
use core::ops::{RangeBounds, RangeInclusive};
use std::sync::Arc;

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

    /// [`direct_io`](Self::direct_io) for a task: the lock is awaited as a future (in
    /// one queue with the blocking waiters), each evicted dirty page is handed to
    /// `flush(index, page)` and its future awaited, and the guard returned is `Send`
    /// (hold it across the device IO's `.await`, drop it on any worker).
    ///
    /// `flush` gets the page itself rather than a borrow of its data under the page lock
    /// (no lock is held across an `.await`): the page is marked evicted before `flush`
    /// is called, so no buffered write changes its data any more, and `flush` reads it
    /// with [`Page::read`]. Marking a page takes its page lock, which waits out a
    /// buffered write or a write-back in progress on that page (a short blocking wait,
    /// as in the blocking path). Only dirty pages are handed over, in index order, one
    /// at a time; each is marked clean once its `flush` succeeds. If a `flush` fails, or the
    /// returned future is dropped at any await point (a timeout around it), every
    /// evicted page is put back, dirty where its data had not been flushed, the range is
    /// unlocked, and nothing is lost. A task is never told `WouldDeadlock`: a task that
    /// starts a direct IO over pages of its own direct IO or edit waits until the future
    /// is dropped (see [`XArray::lock_range_async`](crate::XArray::lock_range_async)).
    ///
    /// ```
    /// use rangelock::mapping::{DirectIoKind, Mapping};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let file: Mapping<u64> = Mapping::new();
    /// file.set_size(4 * 4096);
    /// file.write(1, |_| Ok::<_, ()>(0), |data| *data = 11).unwrap(); // a dirty page
    /// let device = AtomicU64::new(0);
    /// let flush = |index, page: std::sync::Arc<rangelock::mapping::Page<u64>>| {
    ///     let device = &device;
    ///     async move {
    ///         assert_eq!(index, 1);
    ///         device.store(page.read(|data| *data), Ordering::Relaxed); // the device write
    ///         Ok::<_, ()>(())
    ///     }
    /// };
    /// let io = block_on(file.direct_io_async(0..2 * 4096, DirectIoKind::Write, flush)).unwrap();
    /// assert_eq!(device.load(Ordering::Relaxed), 11); // handed over before the IO
    /// assert_eq!(io.pages(), 0..=1);
    /// std::thread::scope(|s| s.spawn(move || drop(io)).join().unwrap()); // completed elsewhere
    /// assert!(file.pages().is_empty());
    /// ```
    pub async fn direct_io_async<E, F, Fut>(
        &self,
        bytes: impl RangeBounds<u64>,
        kind: DirectIoKind,
        mut flush: F,
    ) -> Result<DetachedDirectIo<'_, P, SLOTS>, MappingError<E>>
    where
        F: FnMut(u64, Arc<Page<P>>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let (first, last) = self.geometry.bytes(&bytes)?;
        let pages = self.geometry.page_of(first)..=self.geometry.page_of(last);
        let guard = self.lock_evicting_async(pages, LockMode::Shared).await?;
        // Dropped on an error, a panic or a cancellation before `commit`: the pages go
        // back.
        let eviction = Eviction::new(self, guard);
        for (index, page) in eviction.pages() {
            let dirty = {
                let mut lock = page.lock();
                lock.set_evicted(true);
                lock.is_dirty()
            };
            if dirty {
                flush(index, Arc::clone(page))
                    .await
                    .map_err(MappingError::Io)?;
                page.lock().set_dirty(false);
            }
        }
        let mut guard = eviction.commit();
        guard.unseal();
        Ok(DetachedDirectIo {
            pages: guard.range(),
            _guard: guard,
            bytes: first..=last,
            kind,
        })
    }
}
