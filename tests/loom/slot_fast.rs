//! The range-lock fast paths inside a node (`src/xarray/slot_fast.rs`): a claim of empty
//! slots and the release of one-holder entries under the node's lock alone, with no
//! write cursor. Each race runs as built (it must pass) and, where a protection of the
//! fast path can be switched off, with it off (it must fail; see `mutations.rs`):
//!
//! | model | race | mutation | how it fails |
//! |---|---|---|---|
//! | [`two_fast_claims_in_one_leaf`] | two one-index locks into one leaf | `NodeLockSkipped` | causality violation on the leaf's `count` |
//! | [`fast_claims_of_one_index_exclude_each_other`] | two Exclusive `try_lock`s of one empty index | `SlotNotReread` | both claim the slot: two holders at once |
//! | [`fast_release_vs_queued_waiter`] | a release against a task queueing on the entry | `SlotNotReread` | the release empties the slot without waking the task: a lost wake-up |
//! | [`fast_release_vs_erase_of_the_other_page`] | a release against the erase that would empty the leaf | (none) | |
//!
//! The fast claim against a node being freed is `mutations::claim_vs_node_being_freed`
//! (its lock of index 6 takes this path).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::mutations::{contents, lock_check_release, passes_and_catches, Tree};
use crate::support::loom_harness;
use rangelock::mutation::Mutation;
use rangelock::{Entry, LockMode};

/// A tree whose root leaf (`0..4`) holds a page at 0.
fn leaf_with_page(xa: &Tree) {
    xa.store(0, Arc::new(0)).unwrap();
}

/// Asserts that the page at 0 is all the tree holds, and that the tree is sound.
#[track_caller]
fn only_the_page(xa: &Tree) {
    xa.check_invariants().unwrap();
    let firsts: Vec<u64> = contents(xa).into_iter().map(|(i, _)| i).collect();
    assert_eq!(firsts, [0], "{:?}", contents(xa));
}

/// Two threads lock different empty indices of the root leaf: both take the fast path,
/// serialised by the leaf's lock, so the leaf's count and slots stay right.
#[test]
fn two_fast_claims_in_one_leaf() {
    passes_and_catches(
        Mutation::NodeLockSkipped,
        &["Causality violation", "count"],
        |xa| {
            leaf_with_page(&xa);
            let other = {
                let xa = xa.clone();
                loom::thread::spawn(move || lock_check_release(&xa, 1))
            };
            lock_check_release(&xa, 2);
            other.join().unwrap();
            only_the_page(&xa);
        },
    );
}

/// Two threads try to lock the same empty index Exclusive: both may see the slot empty
/// on their walk, but only the first to lock the leaf finds it so; the other is refused
/// (`try_lock_range`, so that no waiter is involved) or comes after the first's release.
/// The main thread keeps its lock until the other thread is done, so that the other's
/// claim can meet it without a second preemption.
#[test]
fn fast_claims_of_one_index_exclude_each_other() {
    passes_and_catches(Mutation::SlotNotReread, &["two holders of index 1"], |xa| {
        leaf_with_page(&xa);
        let inside = loom::sync::Arc::new(AtomicUsize::new(0));
        let done = loom::sync::Arc::new(AtomicBool::new(false));
        let other = {
            let (xa, inside, done) = (xa.clone(), inside.clone(), done.clone());
            loom::thread::spawn(move || {
                if let Ok(guard) = xa.try_lock_range(1..=1, LockMode::Exclusive) {
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two holders of index 1"
                    );
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        if let Ok(guard) = xa.try_lock_range(1..=1, LockMode::Exclusive) {
            assert_eq!(
                inside.fetch_add(1, Ordering::SeqCst),
                0,
                "two holders of index 1"
            );
            while !done.load(Ordering::SeqCst) {
                loom::thread::yield_now();
            }
            inside.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
        }
        other.join().unwrap();
        only_the_page(&xa);
    });
}

/// One thread holds index 1 (a fast claim) and releases it while a task queues on it
/// (the slow path sets the entry's `waiters` flag and registers the task's waker under
/// the leaf's lock). The release must read the entry under that lock: with the flag set
/// it is not a one-holder entry without waiters, and the general path wakes the task.
/// The task polls once, waits until the release has returned, and then asserts that it
/// was woken (a lost wake-up would leave a blocking waiter asleep for ever; a flag
/// waker makes the failure an assertion that loom can report and the control catch).
#[test]
fn fast_release_vs_queued_waiter() {
    passes_and_catches(Mutation::SlotNotReread, &["lost wake-up"], |xa| {
        leaf_with_page(&xa);
        let released = loom::sync::Arc::new(AtomicBool::new(false));
        let held = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
        let task = {
            let (xa, released) = (xa.clone(), released.clone());
            loom::thread::spawn(move || {
                let woken = Arc::new(Flag(AtomicBool::new(false)));
                let waker = Waker::from(Arc::clone(&woken));
                let mut cx = Context::from_waker(&waker);
                let mut acquire = Box::pin(xa.lock_range_async(1..=1, LockMode::Shared));
                let guard = match acquire.as_mut().poll(&mut cx) {
                    Poll::Ready(guard) => guard.unwrap(),
                    Poll::Pending => {
                        while !released.load(Ordering::SeqCst) {
                            loom::thread::yield_now();
                        }
                        assert!(
                            woken.0.load(Ordering::SeqCst),
                            "lost wake-up: the release left a queued task asleep"
                        );
                        match acquire.as_mut().poll(&mut cx) {
                            Poll::Ready(guard) => guard.unwrap(),
                            Poll::Pending => panic!("woken, but the range is not free"),
                        }
                    }
                };
                assert!(matches!(
                    xa.get(1),
                    Entry::Locked {
                        mode: LockMode::Shared,
                        holders: 1
                    }
                ));
                drop(guard);
            })
        };
        drop(held);
        released.store(true, Ordering::SeqCst);
        task.join().unwrap();
        only_the_page(&xa);
    });
}

/// A waker that raises a flag.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A thread releases its lock of index 1 while another erases the page at 0, the leaf's
/// only other entry. Whichever comes second empties the leaf and must unlink it: the
/// release takes the fast path only while the leaf keeps another entry.
#[test]
fn fast_release_vs_erase_of_the_other_page() {
    loom_harness::model(None, || {
        let xa = loom::sync::Arc::new(Tree::with_slots());
        leaf_with_page(&xa);
        let held = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
        let eraser = {
            let xa = xa.clone();
            loom::thread::spawn(move || {
                assert!(xa.erase(0).unwrap().item().is_some());
            })
        };
        drop(held);
        eraser.join().unwrap();
        xa.check_invariants().unwrap();
        assert!(xa.is_empty(), "left behind: {:?}", contents(&xa));
        assert_eq!(xa.node_count(), 0);
    });
}
