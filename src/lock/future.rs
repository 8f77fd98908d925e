//! Asynchronous acquisition: the claim-wait loop as a future.
//!
//! [`XArray::lock_range_async`] runs the same walk as [`XArray::lock_range`]
//! ([`LockCursor::walk`], `acquire.rs`); where the blocking loop sleeps on a wait-table
//! bucket, the future stores its task's [`Waker`] in its record and returns `Pending`.
//! It depends on no runtime: only `std::task`.
//!
//! # One queue
//!
//! A task's record is an ordinary acquiring record with a waker beside it: it takes its
//! `seq` from the same counter, so threads and tasks are granted a contended entry in one
//! queue order, with the same reservations. A wake that chooses a task's record marks it
//! woken under the bucket mutex and *takes* its waker; the lock cursor that woke it calls
//! the waker only after it has let go of every lock (`LockCursor::wake_deferred`, or its
//! drop), and a thread that is about to sleep wakes the tasks it owes first.
//!
//! # No lost wake-up
//!
//! The record (with the waker of the poll that queued it) is registered while the
//! entry's owner is locked, as a thread's is. A later poll checks `woken` and, if it is
//! not set, replaces the waker, both under the bucket mutex that a wake holds while it
//! marks and takes: either the wake saw the new waker, or the poll saw the mark.
//!
//! # States
//!
//! | state | meaning | on poll | on drop |
//! |---|---|---|---|
//! | `Start` | not polled yet | fast path (one compare-exchange of an empty head), else walk | nothing |
//! | `Waiting` | record queued under `base` | not woken: store the waker, `Pending`; woken: walk again | withdraw, hand on, roll back |
//! | `Finished` | output returned | panics | nothing |
//!
//! A walk ends in `Done` (the guard is returned), or `Waiting` again. The claim (cursor
//! position, queue position, evicted entries) lives on the stack of the poll that walks
//! and moves into a box only if the walk ends queued: the future itself holds the tree,
//! the range, the mode and the state (48 bytes), so an executor moves it cheaply and
//! the uncontended acquisition allocates nothing. Dropping a
//! `Waiting` future is exactly a timeout ([`LockCursor::abandon`]): its record leaves the
//! queue, the waiters that deferred to it are woken, an entry reserved for it passes to
//! the next in its queue (or is removed when nobody else waits), and the prefix it had
//! claimed is released with what it evicted put back, so cancellation at any await
//! point leaves the tree as the future found it.
//!
//! # Self-deadlock and the guard
//!
//! A task moves between threads, so the per-thread held list (`held.rs`) cannot say
//! what a task holds. The future therefore returns a [`DetachedGuard`] (`Send`, in no
//! thread's list) and does not consult the list: an asynchronous acquisition never
//! fails with [`LockError::WouldDeadlock`], and gets no recursive-read exception. A task
//! that awaits a range conflicting with one it holds itself waits for ever (as with
//! `tokio::sync::RwLock`); dropping the future (a timeout around it) undoes the wait.
//! What is detected: a *thread's* blocking acquisitions still see the thread's own
//! `RangeGuard`s, and a blocking acquisition never counts a task's detached guards.
//! The `lockdep` order checks cover the blocking path only.
//!
//! [`XArray::lock_range`]: crate::XArray::lock_range
//! [`LockError::WouldDeadlock`]: super::LockError::WouldDeadlock

use core::fmt;
use core::future::Future;
use core::ops::RangeBounds;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use super::acquire::{lock_span, Patience, Queued, Walked};
use super::claim::Claim;
use super::error::LockError;
use super::evicted::Evicted;
use super::guard::DetachedGuard;
use super::lock_cursor::LockCursor;
use super::LockMode;
use crate::sync::ItemArc as Arc;
use crate::xarray::span::Inclusive;
use crate::xarray::XArray;

/// Where a [`LockRangeFuture`] stands.
enum State<T> {
    /// Not polled yet, or the range was invalid (the error boxed: it is rare, and the
    /// future is moved whole into its executor, so its size is paid on every call).
    Start(Option<Box<LockError>>),
    /// Its record is queued: the claim, with queue position `claim.seq`, under the key
    /// `queued.registered`.
    Waiting(Box<Queue<T>>),
    /// Walking (between two states; a panic there leaves it so) or done.
    Finished,
}

/// The claim of an acquisition that walks, and where its record is queued.
struct Queue<T> {
    claim: Claim<T>,
    queued: Queued,
}

/// What a claim gave: the range, or (a fill claim only) the item it found.
pub(crate) enum Claimed<'a, T: Send + Sync + 'static, const SLOTS: usize> {
    Granted(DetachedGuard<'a, T, SLOTS>),
    Hit(Arc<T>),
}

/// The future of [`XArray::lock_range_async`]: resolves to a [`DetachedGuard`] of the
/// range. Dropping it before it resolves withdraws it from the queue and gives back what
/// it had claimed, as a timeout does.
#[must_use = "futures do nothing unless polled"]
pub struct LockRangeFuture<'a, T: Send + Sync + 'static, const SLOTS: usize = 64> {
    xa: &'a XArray<T, SLOTS>,
    range: Inclusive,
    request: Request,
    state: State<T>,
}

/// The mode and the two options of a request, in one word: a future is built and then
/// moved into its executor at once, and byte fields written one by one and copied as
/// one word make the copy wait for the stores (a failed store forwarding; see the
/// guard's `Flags`).
#[derive(Clone, Copy)]
struct Request(usize);

impl Request {
    /// Leave the entries made by evicting sealed (`lock_range_sealed_async`). Bit 0 is
    /// the mode's ([`LockMode::BIT`]).
    const SEAL: usize = 2;
    /// A fill claim (`get_or_fill_async`): stop at an item instead of evicting it.
    const KEEP_ITEMS: usize = 4;

    #[inline(always)]
    fn new(mode: LockMode) -> Self {
        Request(mode.bit())
    }

    #[inline(always)]
    fn with(self, flag: usize) -> Self {
        Request(self.0 | flag)
    }

    #[inline(always)]
    fn mode(self) -> LockMode {
        LockMode::from_bit(self.0)
    }

    #[inline(always)]
    fn seal(self) -> bool {
        self.0 & Self::SEAL != 0
    }

    #[inline(always)]
    fn keep_items(self) -> bool {
        self.0 & Self::KEEP_ITEMS != 0
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// Locks every index of `range` in `mode`, as [`lock_range`](Self::lock_range) does,
    /// but waits as a future instead of parking the thread.
    ///
    /// The future uses nothing but [`Waker`]s, so it runs on any executor. Async and
    /// blocking acquirers queue in one order. It resolves to a [`DetachedGuard`] (`Send`:
    /// hold it across `.await`, drop it on any worker). Dropping the future before it
    /// resolves leaves the tree as it found it (evicted entries are put back). A task
    /// gets no [`LockError::WouldDeadlock`]: awaiting a range that conflicts with one it
    /// holds itself waits until the future is dropped (see `lock/future.rs`).
    ///
    /// ```
    /// use rangelock::{LockMode, XArray};
    /// use std::sync::Arc;
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let pages: XArray<&str> = XArray::new();
    /// pages.store(3, Arc::new("cached")).unwrap();
    /// let guard = block_on(pages.lock_range_async(0..8, LockMode::Exclusive)).unwrap();
    /// assert_eq!(guard.evicted().len(), 1);
    /// std::thread::scope(|s| s.spawn(move || drop(guard)).join().unwrap()); // released elsewhere
    /// assert!(pages.get(3).is_empty());
    /// ```
    #[inline]
    pub fn lock_range_async(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
    ) -> LockRangeFuture<'_, T, SLOTS> {
        let (range, error) = match lock_span(&range) {
            Ok(span) => (span, None),
            Err(error) => (Inclusive { first: 0, last: 0 }, Some(Box::new(error))),
        };
        LockRangeFuture {
            xa: self,
            range,
            request: Request::new(mode),
            state: State::Start(error),
        }
    }

    /// Like [`lock_range_async`](Self::lock_range_async), but the entries made by
    /// evicting stay *sealed* until [`DetachedGuard::unseal`] or the guard's release, as
    /// with [`lock_range_sealed`](Self::lock_range_sealed): an asynchronous direct-IO
    /// writer hands the evicted dirty pages over (writes them back) before a second
    /// sub-page direct IO may share their indices. Indices that held nothing are shared
    /// at once. A task that awaits a range over its own sealed entries waits until the
    /// future is dropped.
    ///
    /// ```
    /// use rangelock::{LockError, LockMode, XArray};
    /// use std::sync::Arc;
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let pages: XArray<&str> = XArray::new();
    /// pages.store(1, Arc::new("dirty")).unwrap();
    /// let mut io = block_on(pages.lock_range_sealed_async(0..4, LockMode::Shared)).unwrap();
    /// assert!(io.is_sealed());
    /// assert!(pages.try_lock_range(0..1, LockMode::Shared).is_ok()); // held nothing
    /// assert_eq!(pages.try_lock_range(1..2, LockMode::Shared).unwrap_err(), LockError::WouldBlock);
    /// let dirty = io.take_evicted(); // write it back, then:
    /// assert_eq!(dirty.len(), 1);
    /// io.unseal();
    /// assert!(pages.try_lock_range(1..2, LockMode::Shared).is_ok());
    /// drop(io);
    /// assert!(pages.is_empty());
    /// ```
    pub fn lock_range_sealed_async(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
    ) -> LockRangeFuture<'_, T, SLOTS> {
        let mut future = self.lock_range_async(range, mode);
        future.request = future.request.with(Request::SEAL);
        future
    }
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> LockRangeFuture<'a, T, SLOTS> {
    /// The claim of [`XArray::get_or_fill_async`]: `index` Exclusive, stopping at an
    /// item instead of evicting it (`keep_items`), with no fast path (the sync fill has
    /// none either).
    pub(crate) fn fill_claim(xa: &'a XArray<T, SLOTS>, index: u64) -> Self {
        LockRangeFuture {
            xa,
            range: Inclusive {
                first: index,
                last: index,
            },
            request: Request::new(LockMode::Exclusive).with(Request::KEEP_ITEMS),
            state: State::Start(None),
        }
    }

    /// The guard of a completed claim, holding what it evicted. It never enters the
    /// polling thread's held list: the task, not the thread, holds it.
    #[inline]
    fn granted(&self, evicted: Vec<Evicted<T>>) -> DetachedGuard<'a, T, SLOTS> {
        let (first, last) = (self.range.first, self.range.last);
        let guard = DetachedGuard::new(self.xa, first, last, self.request.mode(), evicted);
        if !self.request.seal() || guard.evicted().is_empty() {
            return guard; // nothing sealed: the common case, and every fast path
        }
        let sealed = guard.evicted().iter().map(|e| e.block).collect();
        guard.with_sealed(sealed)
    }

    /// One walk of `q`'s claim, the tasks it woke woken once it holds no lock.
    fn walk(&self, q: &mut Queue<T>, waker: &Waker) -> Walked<T> {
        let mut lc = LockCursor::new(self.xa);
        let walked = lc.walk(&mut q.claim, &mut q.queued, Patience::Forever, Some(waker));
        drop(lc);
        walked
    }

    /// The outcome of a walk that did not end queued.
    fn outcome(
        &self,
        walked: Walked<T>,
        q: &mut Queue<T>,
    ) -> Result<Claimed<'a, T, SLOTS>, LockError> {
        match walked {
            Walked::Done => Ok(Claimed::Granted(
                self.granted(core::mem::take(&mut q.claim.evicted)),
            )),
            Walked::Hit(item) => Ok(Claimed::Hit(item)),
            Walked::Failed(error) => Err(error),
            Walked::Waiting { .. } => unreachable!("a queued walk has no outcome yet"),
        }
    }

    /// The first walk (the fast path failed), its claim on this stack: boxed into the
    /// state only if the walk ends queued.
    #[inline(never)]
    fn first_walk(&mut self, waker: &Waker) -> Poll<Result<Claimed<'a, T, SLOTS>, LockError>> {
        let mut claim = Claim::new(self.range, self.request.mode(), self.request.keep_items());
        claim.task = true;
        claim.seal = self.request.seal();
        let mut q = Queue {
            claim,
            queued: Queued::default(),
        };
        match self.walk(&mut q, waker) {
            Walked::Waiting { .. } => {
                self.state = State::Waiting(Box::new(q));
                Poll::Pending
            }
            walked => Poll::Ready(self.outcome(walked, &mut q)),
        }
    }

    /// Polls the claim: the state machine of the table above, from its first walk (the
    /// fast path is [`Future::poll`]'s).
    #[inline]
    pub(crate) fn poll_claim(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Claimed<'a, T, SLOTS>, LockError>> {
        match core::mem::replace(&mut self.state, State::Finished) {
            State::Start(Some(error)) => Poll::Ready(Err(*error)),
            // The fast path was tried by `Future::poll` (a fill claim has none).
            State::Start(None) => self.first_walk(cx.waker()),
            State::Waiting(mut q) => {
                let (Some(base), Some(seq)) = (q.queued.registered, q.claim.seq) else {
                    unreachable!("a waiting future's record is registered")
                };
                let table = self.xa.wait_table();
                if !table.poll_woken(self.xa.id, base, seq, cx.waker()) {
                    self.state = State::Waiting(q);
                    return Poll::Pending;
                }
                match self.walk(&mut q, cx.waker()) {
                    Walked::Waiting { .. } => {
                        self.state = State::Waiting(q);
                        Poll::Pending
                    }
                    walked => Poll::Ready(self.outcome(walked, &mut q)),
                }
            }
            State::Finished => panic!("LockRangeFuture polled after it resolved"),
        }
    }
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> Future for LockRangeFuture<'a, T, SLOTS> {
    type Output = Result<DetachedGuard<'a, T, SLOTS>, LockError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The fast path (one compare-exchange of an empty head, or of empty slots of one
        // node), straight to the guard: no claim is built, nothing is wrapped. The guard
        // is built here, not by `granted` (nothing was evicted, so nothing is sealed):
        // three alternating bench runs had `granted` 1 to 4 ns slower on every row.
        if let State::Start(None) = this.state {
            if !this.request.keep_items() && this.xa.try_lock_fast(this.range, this.request.mode())
            {
                this.state = State::Finished;
                let Inclusive { first, last } = this.range;
                return Poll::Ready(Ok(DetachedGuard::new(
                    this.xa,
                    first,
                    last,
                    this.request.mode(),
                    Vec::new(),
                )));
            }
        }
        match this.poll_claim(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Claimed::Granted(guard))) => Poll::Ready(Ok(guard)),
            Poll::Ready(Ok(Claimed::Hit(_))) => unreachable!("only a fill keeps items"),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> Drop for LockRangeFuture<'_, T, SLOTS> {
    /// A future dropped while queued gives up as a timeout does.
    fn drop(&mut self) {
        if let State::Waiting(q) = &mut self.state {
            let mut lc = LockCursor::new(self.xa);
            lc.abandon(&mut q.claim, &mut q.queued);
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> fmt::Debug for LockRangeFuture<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start(_) => "start",
            State::Waiting(_) => "waiting",
            State::Finished => "finished",
        };
        f.debug_struct("LockRangeFuture")
            .field("range", &(self.range.first..=self.range.last))
            .field("mode", &self.request.mode())
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
