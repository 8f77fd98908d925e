//! Deadlock detection: `WouldDeadlock` in every entry point, detached guards, recursive
//! Shared acquisitions, and forgotten guards that must not haunt a new tree or mapping.

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rangelock::{FillError, LockError, LockMode, XArray};

use crate::support::lock_harness::until_queued;
use crate::support::tree_checks::{at, Seen};

/// A thread that would wait for itself gets WouldDeadlock (naming the index), in every
/// entry point, and the failed call leaves no trace (its claimed prefix released, its
/// evicted entries put back).
#[test]
fn self_deadlock_is_detected() {
    let xa: XArray<u64> = XArray::new();
    let page = Arc::new(10);
    xa.store(10, Arc::clone(&page)).unwrap();

    let shared = xa.lock_range(40..100, LockMode::Shared).unwrap();
    for (first, last) in [(50, 59), (40, 40), (99, 200)] {
        assert_eq!(
            xa.lock_range(first..=last, LockMode::Exclusive)
                .unwrap_err(),
            LockError::WouldDeadlock { index: first }
        );
        assert_eq!(
            xa.try_lock_range(first..=last, LockMode::Exclusive)
                .unwrap_err(),
            LockError::WouldDeadlock { index: first }
        );
    }
    // Refused before it claims anything: the page at 10 is never evicted.
    assert_eq!(
        xa.lock_range(0..60, LockMode::Exclusive).unwrap_err(),
        LockError::WouldDeadlock { index: 40 }
    );
    assert!(
        Arc::ptr_eq(&xa.load(10).unwrap(), &page),
        "the page came back"
    );
    assert!(xa.get(0).is_empty() && xa.get(39).is_empty());
    // Waiting for a held index to unlock would wait forever too.
    assert_eq!(
        xa.load_wait(50).unwrap_err(),
        LockError::WouldDeadlock { index: 50 }
    );
    // Shared again is fine (recursive read). Below the held range, so lockdep would
    // report the order (30..39 is not held yet): this test is about the lock alone.
    let again = rangelock::lockdep::unchecked(|| xa.lock_range(30..50, LockMode::Shared)).unwrap();
    assert_eq!(at(&xa, 45), Seen::Locked(false, 2));
    drop((again, shared));
    assert_eq!(xa.len(), 1);
    assert!(xa.erase(10).unwrap().item().is_some());
    assert!(xa.is_empty());

    let exclusive = xa.lock_range(0..100, LockMode::Exclusive).unwrap();
    assert_eq!(
        xa.load_wait(50).unwrap_err(),
        LockError::WouldDeadlock { index: 50 }
    );
    let mut ran = false;
    let fault = xa.get_or_fill(50, |i| {
        ran = true;
        Ok::<_, ()>(Arc::new(i))
    });
    assert!(matches!(
        fault,
        Err(FillError::Lock(LockError::WouldDeadlock { index: 50 }))
    ));
    assert!(!ran, "the fill must not run");
    assert_eq!(
        xa.lock_range(60..70, LockMode::Shared).unwrap_err(),
        LockError::WouldDeadlock { index: 60 }
    );
    // Whole-range requests meet the lock at its first index.
    assert_eq!(
        xa.lock_range(.., LockMode::Shared).unwrap_err(),
        LockError::WouldDeadlock { index: 0 }
    );
    drop(exclusive);
    assert!(xa.is_empty());

    // The fast path's whole-range lock counts too.
    let all = xa.lock_range(.., LockMode::Exclusive).unwrap();
    assert_eq!(
        xa.lock_range(1 << 50..1 << 51, LockMode::Shared)
            .unwrap_err(),
        LockError::WouldDeadlock { index: 1 << 50 }
    );
    assert_eq!(
        xa.load_wait(u64::MAX).unwrap_err(),
        LockError::WouldDeadlock { index: u64::MAX }
    );
    drop(all);
    assert!(xa.is_empty());
}

/// A detached guard leaves the thread's held list: the same thread's conflicting
/// request then blocks like anybody else's (WouldBlock, TimedOut), and the guard can be
/// released on another thread.
#[test]
fn a_detached_guard_no_longer_counts() {
    let xa: XArray<u64> = XArray::new();
    let detached = xa.lock_range(0..100, LockMode::Exclusive).unwrap().detach();
    assert_eq!(
        xa.try_lock_range(50..60, LockMode::Exclusive).unwrap_err(),
        LockError::WouldBlock
    );
    assert_eq!(
        xa.try_lock_range(50..60, LockMode::Shared).unwrap_err(),
        LockError::WouldBlock
    );
    assert_eq!(
        xa.lock_range_timeout(50..60, LockMode::Shared, Duration::from_millis(5))
            .unwrap_err(),
        LockError::TimedOut
    );
    assert_eq!(at(&xa, 50), Seen::Locked(true, 1));
    thread::scope(|s| {
        s.spawn(move || drop(detached));
    });
    assert!(xa.is_empty());
    // A blocking request on this thread is released by a completion elsewhere.
    let detached = xa.lock_range(0..100, LockMode::Exclusive).unwrap().detach();
    thread::scope(|s| {
        s.spawn(move || {
            thread::sleep(Duration::from_millis(10));
            drop(detached);
        });
        let g = xa.lock_range(50..60, LockMode::Exclusive).unwrap();
        assert_eq!(g.range(), 50..=59);
    });
    assert!(xa.is_empty());
}

/// Recursive read: a thread that holds an index Shared takes it Shared again although an
/// Exclusive request is queued there (queueing behind it would wait for itself), while
/// another thread's Shared request does queue behind it.
#[test]
fn recursive_shared_passes_a_queued_exclusive() {
    const I: u64 = 100;
    let xa: XArray<u64> = XArray::new();
    let xa = &xa;
    thread::scope(|s| {
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let reader = s.spawn(move || {
            let outer = xa.lock_range(I..I + 10, LockMode::Shared).unwrap();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            // Over the queued writer's index (joins as a recursive reader), and beyond
            // the held range (empty indices).
            let inner = xa.lock_range(I..I + 20, LockMode::Shared);
            let inner = inner.expect("a recursive Shared acquisition must not wait");
            assert_eq!(at(xa, I + 5), Seen::Locked(false, 2));
            drop(inner);
            drop(outer);
        });
        held_rx.recv().unwrap();
        let writer = s.spawn(move || {
            let g = xa.lock_range(I..I + 10, LockMode::Exclusive).unwrap();
            assert_eq!(at(xa, I + 5), Seen::Locked(true, 1));
            drop(g);
        });
        // This thread holds nothing: its Shared probe of the writer's first index (where
        // the writer waits) would queue behind it once it is queued: WouldBlock.
        until_queued(xa, I, I);
        go_tx.send(()).unwrap();
        reader.join().unwrap();
        writer.join().unwrap();
    });
    assert!(xa.is_empty());
}

/// Issue 11: `mem::forget` of a guard is safe Rust. The forgotten lock stays in its tree
/// (leaked, as a forgotten `MutexGuard` is), and nothing else: a tree created later at
/// the very same address (the same `Option` slot) is not held by this thread. The
/// version before keyed the held list by address: locking what the forgotten guard had
/// held failed with `WouldDeadlock`, a wait on another thread's range failed at once
/// with `WouldDeadlock`, and a Shared request joined Shared holders ahead of a queued
/// Exclusive waiter, as if it were a recursive read.
#[test]
fn a_forgotten_guard_does_not_haunt_a_new_tree_at_the_same_address() {
    let mut slot = Some(XArray::<u64>::new());
    let old = slot.as_ref().unwrap();
    let address = old as *const XArray<u64> as usize;
    std::mem::forget(old.lock_range(0..10, LockMode::Exclusive).unwrap());
    std::mem::forget(old.lock_range(100..110, LockMode::Shared).unwrap());
    // The forgotten locks are still held in the old tree, by this thread.
    assert_eq!(
        old.try_lock_range(5..6, LockMode::Shared).unwrap_err(),
        LockError::WouldDeadlock { index: 5 }
    );
    slot = Some(XArray::new());
    let xa = slot.as_ref().unwrap();
    assert_eq!(
        xa as *const XArray<u64> as usize, address,
        "the same address"
    );

    // What the forgotten guard held is free in the new tree.
    drop(xa.lock_range(0..10, LockMode::Exclusive).unwrap());
    let xa = &xa;
    thread::scope(|s| {
        // A wait on another thread's range times out; it is no self-deadlock.
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = s.spawn(move || {
            let g = xa.lock_range(0..10, LockMode::Exclusive).unwrap();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(g);
        });
        held_rx.recv().unwrap();
        assert_eq!(
            xa.lock_range_timeout(5..6, LockMode::Shared, Duration::from_millis(20))
                .unwrap_err(),
            LockError::TimedOut
        );
        go_tx.send(()).unwrap();
        holder.join().unwrap();

        // A Shared request queues behind a queued Exclusive waiter like anybody's.
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let reader = s.spawn(move || {
            let g = xa.lock_range(100..110, LockMode::Shared).unwrap();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(g);
        });
        held_rx.recv().unwrap();
        let writer = s.spawn(move || drop(xa.lock_range(100..110, LockMode::Exclusive).unwrap()));
        until_queued(xa, 100, 100);
        assert_eq!(
            xa.try_lock_range(100..101, LockMode::Shared).unwrap_err(),
            LockError::WouldBlock,
            "joined ahead of the queued writer, as a recursive read of a range it never took"
        );
        go_tx.send(()).unwrap();
        reader.join().unwrap();
        writer.join().unwrap();
    });
    assert!(xa.is_empty());
}

/// Issue 11, as reported on the page cache: a forgotten direct IO of a mapping, then a
/// fresh mapping at the same address: truncating it must not fail with `WouldDeadlock`.
#[test]
fn a_forgotten_direct_io_does_not_haunt_a_new_mapping() {
    use rangelock::mapping::{DirectIoKind, Mapping};
    let mut slot = Some(Mapping::<u64>::new());
    let address = slot.as_ref().unwrap() as *const Mapping<u64> as usize;
    {
        let m = slot.as_ref().unwrap();
        m.set_size(16384);
        let dio = m.direct_io(0..4096, DirectIoKind::Write, |_, _| Ok::<_, ()>(()));
        std::mem::forget(dio.unwrap());
    }
    slot = Some(Mapping::new());
    let m = slot.as_ref().unwrap();
    assert_eq!(
        m as *const Mapping<u64> as usize, address,
        "the same address"
    );
    m.set_size(16384);
    let edit = m.truncate(0).expect("a fresh, empty mapping truncates");
    drop(edit);
    assert_eq!(m.size(), 0);
}
