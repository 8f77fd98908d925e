//! Asynchronous lookups that wait for lock entries: `load_wait_async` and the fill
//! protocol `get_or_fill_async`, the futures of `fill.rs`'s `load_wait` and
//! `get_or_fill`.
//!
//! Both are built from the pieces of the blocking versions, with a task's [`Waker`] in
//! the wait-table record instead of a sleeping thread (see `future.rs`):
//!
//! * [`LoadWaitFuture`] queues a *watcher* on the lock entry over its index (the record
//!   a blocking `load_wait` sleeps on, registered under the entry's owner lock: no lost
//!   wake-up), returns `Pending`, and looks again when the record is woken. Dropping it
//!   removes its record; a watcher never blocks anybody, so nothing else is owed.
//! * [`XArray::get_or_fill_async`] is the fill claim (`index` Exclusive, stopping at an
//!   item) as a [`LockRangeFuture`], then the caller's `fill` future awaited with no
//!   internal lock held, then the publication. Each await point gives back what it
//!   holds when the future is dropped there: during the claim, the claim future
//!   withdraws and rolls back (as a timeout does); during the fill, the guard is
//!   released *restoring*, putting back the value entry the fill was to replace, marks
//!   included (as a failing or panicking fill does in the blocking path).
//!
//! | await point | dropped there | fill fails / panics there |
//! |---|---|---|
//! | the claim (queued behind a holder) | record withdrawn, queue handed on, evicted value put back | - |
//! | the fill | index released, evicted value put back, waiters woken | the same |

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::error::{FillError, LockError};
use super::future::{Claimed, LockRangeFuture};
use crate::sync::ItemArc as Arc;
use crate::xarray::{Entry, XArray};

/// The future of [`XArray::load_wait_async`]: resolves to the entry at its index once
/// that is not a lock entry.
#[must_use = "futures do nothing unless polled"]
pub struct LoadWaitFuture<'a, T: Send + Sync + 'static, const SLOTS: usize = 64> {
    xa: &'a XArray<T, SLOTS>,
    index: u64,
    /// The watcher record `(base, seq)` queued for this future, while there is one.
    watching: Option<(u64, u64)>,
}

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// The entry at `index`, waiting while it is locked, as
    /// [`load_wait`](Self::load_wait) does, but as a future: never [`Entry::Locked`].
    ///
    /// The lookup is lock-free when the index is not locked; a locked index is waited
    /// for alone (a lock on another index never delays it). A task has no held-lock list
    /// (see [`lock_range_async`](Self::lock_range_async)), so this never fails with
    /// [`LockError::WouldDeadlock`]: a task that waits on an index it holds itself waits
    /// until the future is dropped. Dropping the future leaves the wait queue.
    ///
    /// ```
    /// use rangelock::{Entry, LockMode, XArray};
    /// use std::sync::Arc;
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let pages: XArray<&str> = XArray::new();
    /// let fill = pages.lock_range(3..=3, LockMode::Exclusive).unwrap();
    /// std::thread::scope(|s| {
    ///     let reader = s.spawn(|| block_on(pages.load_wait_async(3)).unwrap());
    ///     fill.publish(Arc::new("read")).unwrap();
    ///     assert!(matches!(reader.join().unwrap(), Entry::Item(page) if *page == "read"));
    /// });
    /// ```
    pub fn load_wait_async(&self, index: u64) -> LoadWaitFuture<'_, T, SLOTS> {
        LoadWaitFuture {
            xa: self,
            index,
            watching: None,
        }
    }

    /// The item at `index`, filling a missing one by awaiting `fill`: the page-fault
    /// protocol of [`get_or_fill`](Self::get_or_fill) with an asynchronous device read.
    ///
    /// * An item is returned at once (a lock-free lookup); `fill` is dropped unpolled.
    /// * A locked index is waited for, in the one queue order of threads and tasks.
    /// * An empty index, or one holding a value (shadow) entry, is locked Exclusive for
    ///   this index alone; `fill` is awaited with no internal lock held, and its item is
    ///   published in the lock entry's place, waking every waiter. If `fill` fails or
    ///   panics, or the returned future is dropped while it runs, the index is released
    ///   (a value that was there is put back, marks included) and the waiters try again.
    ///
    /// The future is `Send` when `fill` is. As for every asynchronous acquisition, a
    /// task gets no [`LockError::WouldDeadlock`] (see
    /// [`lock_range_async`](Self::lock_range_async)).
    ///
    /// ```
    /// use rangelock::XArray;
    /// use std::sync::Arc;
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let cache: XArray<String> = XArray::new();
    /// let read = async { Ok::<_, std::io::Error>(Arc::new("page 3".to_string())) };
    /// let page = block_on(cache.get_or_fill_async(3, read)).unwrap();
    /// assert_eq!(*page, "page 3");
    /// // A second fault hits the cache; this fill is never polled.
    /// let again = block_on(cache.get_or_fill_async(3, async { Err("unreachable") })).unwrap();
    /// assert!(Arc::ptr_eq(&page, &again));
    /// ```
    pub async fn get_or_fill_async<E>(
        &self,
        index: u64,
        fill: impl Future<Output = Result<Arc<T>, E>>,
    ) -> Result<Arc<T>, FillError<E>> {
        if let Some(item) = self.load(index) {
            return Ok(item);
        }
        // Dropped at this await, the claim future withdraws and rolls back.
        let mut claim = LockRangeFuture::fill_claim(self, index);
        let claimed = core::future::poll_fn(|cx| claim.poll_claim(cx))
            .await
            .map_err(FillError::Lock)?;
        drop(claim);
        let guard = match claimed {
            Claimed::Hit(item) => return Ok(item),
            // Dropped at the fill's await, or unwound from it, the guard puts back the
            // value entry it would have replaced.
            Claimed::Granted(guard) => guard.restore_on_release(),
        };
        let item = fill.await.map_err(FillError::Fill)?;
        if guard.publish(Arc::clone(&item)).is_err() {
            unreachable!("a one-index Exclusive guard publishes");
        }
        Ok(item)
    }
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> Future for LoadWaitFuture<'a, T, SLOTS> {
    type Output = Result<Entry<T>, LockError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (xa, index) = (this.xa, this.index);
        if let Some((base, seq)) = this.watching {
            let table = xa.wait_table();
            if !table.poll_woken(xa.id, base, seq, cx.waker()) {
                return Poll::Pending;
            }
            this.watching = None;
            table.remove(xa.id, base, seq);
        }
        loop {
            let entry = xa.get(index);
            if !matches!(entry, Entry::Locked { .. }) {
                return Poll::Ready(Ok(entry));
            }
            if let Some(watching) = xa.watch_index(index, Some(cx.waker()))? {
                this.watching = Some(watching);
                return Poll::Pending;
            }
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> Drop for LoadWaitFuture<'_, T, SLOTS> {
    /// A future dropped while it watches leaves the queue (a watcher is owed nothing).
    fn drop(&mut self) {
        if let Some((base, seq)) = self.watching.take() {
            self.xa.wait_table().remove(self.xa.id, base, seq);
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> fmt::Debug for LoadWaitFuture<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadWaitFuture")
            .field("index", &self.index)
            .field("waiting", &self.watching.is_some())
            .finish_non_exhaustive()
    }
}
