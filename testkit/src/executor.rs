//! The smallest executor: polls a future on this thread with a no-op waker, yielding
//! the thread between polls, until it resolves. For uncontended futures (which resolve
//! on their first poll) and for tests whose wakers are beside the point; a test of
//! wake-ups needs a waker that counts or parks (see `tests/lock/async_acquire/`).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

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
