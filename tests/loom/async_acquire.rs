//! Loom models of asynchronous acquisition (`lock_range_async`, `lock/future.rs`):
//!
//! * `release_wakes_a_polled_future`: a task's waker registration (its record, queued
//!   under the entry's owner lock) against the holder's release (which takes the waker
//!   under the bucket mutex and wakes it after letting go of the owner). A lost wake-up
//!   leaves `block_on` parked for ever: loom reports the deadlock.
//! * `a_grant_to_a_cancelled_future_is_handed_on`: a future that queued is dropped while
//!   the holder releases, which may have reserved the entry for it already; the entry
//!   must then be handed on (here: removed, nobody else queued), so that the range can be
//!   taken at once afterwards and the tree ends empty. Two threads only: with a third
//!   (a blocking acquirer queued beside the future) the model did not finish in 100 s
//!   even at one preemption; the tokio test `a_grant_to_a_dropped_future_is_handed_on`
//!   covers the hand-on to a queued thread.
//! * `a_publish_wakes_an_async_fault`: `get_or_fill_async` queued on an index being
//!   filled (its record registered under the entry's owner lock) against the filler's
//!   publish (which wakes every waiter); the fault must end with the published item and
//!   never run its own fill. A lost wake-up parks it for ever.
//! * `a_release_wakes_an_async_lookup`: `load_wait_async`'s watcher record against a
//!   release that removes the entry; the lookup must end with the empty index.
//! * `a_cancelled_sealed_claim_puts_back_its_prefix`: a sealed asynchronous claim (the
//!   lock of `Mapping::direct_io_async`) over an item and a locked index evicts the item,
//!   queues, and is dropped while the holder releases (maybe reserving the entry for
//!   it): the item must be back, unmarked pending, and the range free.
//! * `a_fill_cancelled_while_queued_is_handed_on`: `get_or_fill_async` queued on an
//!   index being filled is dropped while the filler publishes: the published item
//!   stays, its fill never runs, and nothing is left locked or reserved.
//!
//! Run by `ci/loom.sh`.

#![cfg(loom)]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use rangelock::{Entry, LockMode, WaitTable, XArray};

use crate::support::loom_harness::model_reaching_capped;

/// A tree of 4-slot nodes (indices below 4 live in one root leaf).
type Tree = XArray<u64, 4>;

fn tree() -> (loom::sync::Arc<Tree>, Arc<WaitTable>) {
    let table = Arc::new(WaitTable::new(4));
    let xa = Tree::with_slots().with_wait_table(Arc::clone(&table));
    (loom::sync::Arc::new(xa), table)
}

/// Wakes the loom thread that polls.
struct Unpark(loom::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor on loom's park and unpark: a lost wake-up parks it for ever,
/// which loom reports as a deadlock.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(loom::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        loom::thread::park();
    }
}

#[track_caller]
fn assert_released(xa: &Tree) {
    assert!(xa.is_empty(), "locks left behind: {:?}", xa.get(1));
    assert_eq!(xa.node_count(), 0);
    xa.check_invariants().unwrap();
}

#[test]
fn release_wakes_a_polled_future() {
    model_reaching_capped(
        Some(1),
        &["task queued", "task found it free"],
        |outcomes| {
            let (xa, table) = tree();
            let a = xa.lock_range(1..=2, LockMode::Exclusive).unwrap();
            let task = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let g = block_on(xa.lock_range_async(0..=1, LockMode::Exclusive)).unwrap();
                    assert!(matches!(
                        xa.get(1),
                        Entry::Locked {
                            mode: LockMode::Exclusive,
                            holders: 1
                        }
                    ));
                    drop(g);
                })
            };
            drop(a);
            task.join().unwrap();
            outcomes.saw(if table.visits() > 0 {
                "task queued"
            } else {
                "task found it free"
            });
            assert_released(&xa);
        },
    );
}

#[test]
fn a_grant_to_a_cancelled_future_is_handed_on() {
    model_reaching_capped(
        Some(1),
        &["cancelled while queued", "granted at first poll"],
        |outcomes| {
            let (xa, _table) = tree();
            let a = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
            let canceller = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let mut future = Box::pin(xa.lock_range_async(1..=1, LockMode::Exclusive));
                    let polled = future
                        .as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()));
                    loom::thread::yield_now();
                    drop(future); // may hold a reservation made for it meanwhile
                    polled.is_pending()
                })
            };
            drop(a);
            let queued = canceller.join().unwrap();
            // A reservation left to the dropped future would strand the entry here.
            drop(xa.try_lock_range(1..=1, LockMode::Exclusive).unwrap());
            outcomes.saw(if queued {
                "cancelled while queued"
            } else {
                "granted at first poll"
            });
            assert_released(&xa);
        },
    );
}

#[test]
fn a_publish_wakes_an_async_fault() {
    model_reaching_capped(
        Some(1),
        &["fault queued", "fault hit the item"],
        |outcomes| {
            let (xa, table) = tree();
            let filling = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
            let task = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let fill = async { Ok::<_, ()>(Arc::new(0)) }; // never runs
                    *block_on(xa.get_or_fill_async(1, fill)).unwrap()
                })
            };
            filling.publish(Arc::new(7)).unwrap();
            assert_eq!(task.join().unwrap(), 7);
            outcomes.saw(if table.visits() > 0 {
                "fault queued"
            } else {
                "fault hit the item"
            });
            assert!(matches!(xa.get(1), Entry::Item(_)));
            xa.check_invariants().unwrap();
        },
    );
}

#[test]
fn a_release_wakes_an_async_lookup() {
    model_reaching_capped(
        Some(1),
        &["lookup queued", "lookup found it unlocked"],
        |outcomes| {
            let (xa, table) = tree();
            let held = xa.lock_range(1..=2, LockMode::Exclusive).unwrap();
            let task = {
                let xa = xa.clone();
                loom::thread::spawn(move || block_on(xa.load_wait_async(1)).unwrap().is_empty())
            };
            drop(held);
            assert!(task.join().unwrap());
            outcomes.saw(if table.visits() > 0 {
                "lookup queued"
            } else {
                "lookup found it unlocked"
            });
            assert_released(&xa);
        },
    );
}

#[test]
fn a_cancelled_sealed_claim_puts_back_its_prefix() {
    model_reaching_capped(
        Some(1),
        &["cancelled while queued", "granted at first poll"],
        |outcomes| {
            let (xa, _table) = tree();
            xa.store(0, Arc::new(10)).unwrap();
            let held = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
            let canceller = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let mut future = Box::pin(xa.lock_range_sealed_async(0..=1, LockMode::Shared));
                    let polled = future
                        .as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()));
                    loom::thread::yield_now();
                    match polled {
                        // Granted: the guard took the item; give it back as an undo would.
                        Poll::Ready(guard) => {
                            let mut guard = guard.unwrap();
                            assert_eq!(guard.take_evicted().len(), 1);
                            false
                        }
                        Poll::Pending => {
                            drop(future); // holds the evicted item, maybe a reservation
                            true
                        }
                    }
                })
            };
            drop(held);
            let queued = canceller.join().unwrap();
            if queued {
                outcomes.saw("cancelled while queued");
                assert_eq!(xa.load(0).as_deref(), Some(&10), "the evicted item is lost");
            } else {
                outcomes.saw("granted at first poll");
                assert!(xa.get(0).is_empty());
            }
            drop(xa.try_lock_range(0..=1, LockMode::Exclusive).unwrap());
            assert!(matches!(xa.get(1), Entry::Empty));
            xa.check_invariants().unwrap();
        },
    );
}

#[test]
fn a_fill_cancelled_while_queued_is_handed_on() {
    model_reaching_capped(
        Some(1),
        &["cancelled while queued", "hit the item at first poll"],
        |outcomes| {
            let (xa, _table) = tree();
            let filling = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
            let canceller = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    // Its fill must never run: it would end the fault with an error.
                    let fill = async { Err::<Arc<u64>, _>("filled") };
                    let mut future = Box::pin(xa.get_or_fill_async(1, fill));
                    let polled = future
                        .as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()));
                    loom::thread::yield_now();
                    drop(future);
                    match polled {
                        Poll::Ready(item) => {
                            assert_eq!(*item.unwrap(), 7);
                            false
                        }
                        Poll::Pending => true,
                    }
                })
            };
            filling.publish(Arc::new(7)).unwrap();
            outcomes.saw(if canceller.join().unwrap() {
                "cancelled while queued"
            } else {
                "hit the item at first poll"
            });
            assert_eq!(xa.load(1).as_deref(), Some(&7));
            // A reservation stranded on the dropped fault would refuse this.
            drop(xa.try_lock_range(0..=3, LockMode::Exclusive).unwrap());
            xa.check_invariants().unwrap();
        },
    );
}
