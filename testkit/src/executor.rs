//! The smallest executors, both on the calling thread:
//!
//! - [`block_on`] polls with a no-op waker, yielding the thread between polls: for
//!   uncontended futures (which resolve on their first poll) and for tests whose wakers
//!   are beside the point;
//! - [`park_on`] parks the thread between polls and its waker unparks it (and counts its
//!   wakes, [`park_on_counting`]): a future that is never woken hangs it, so it tests
//!   wake-ups.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

/// Polls `future` until it resolves, yielding the thread between polls.
///
/// ```
/// assert_eq!(rangelock_testkit::executor::block_on(async { 7 }), 7);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// The waker of [`park_on`]: unparks the thread that made it, and counts its wakes.
///
/// ```
/// use rangelock_testkit::executor::Unpark;
///
/// let unpark = Unpark::for_current_thread();
/// std::task::Waker::from(unpark.clone()).wake_by_ref();
/// assert_eq!(unpark.wakes(), 1);
/// std::thread::park(); // the wake left the token: returns at once
/// ```
pub struct Unpark {
    thread: thread::Thread,
    wakes: AtomicUsize,
}

impl Unpark {
    /// A waker source that unparks the calling thread.
    pub fn for_current_thread() -> Arc<Self> {
        Arc::new(Unpark {
            thread: thread::current(),
            wakes: AtomicUsize::new(0),
        })
    }

    /// How many times it was woken.
    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Polls `future` until it resolves, parking the thread between polls; returns the
/// output and how many times the future's waker was woken.
///
/// ```
/// let (out, wakes) = rangelock_testkit::executor::park_on_counting(async { 7 });
/// assert_eq!((out, wakes), (7, 0));
/// ```
pub fn park_on_counting<F: Future>(future: F) -> (F::Output, usize) {
    let unpark = Unpark::for_current_thread();
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return (out, unpark.wakes());
        }
        // A wake between the poll and here leaves the token: `park` returns at once.
        thread::park();
    }
}

/// Polls `future` until it resolves, parking the thread between polls (see
/// [`park_on_counting`]).
pub fn park_on<F: Future>(future: F) -> F::Output {
    park_on_counting(future).0
}
