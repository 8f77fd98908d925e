//! Range locks under concurrency: failure paths leave no trace.
//!
//! * **Panic safety**: a holder or a fill that panics (on another thread, or caught on
//!   its own) releases its range on unwinding and leaves the thread's held list, so
//!   waiters, watchers and later faults proceed and the tree ends empty.
//! * **Timeouts roll back**: `lock_range_timeout` that evicted entries before meeting a
//!   holder puts them all back, marks included, when it times out; while such an
//!   acquisition waits, the entries it evicted are `pending` and refuse joiners.
//! * **Deadlock detection**: a thread that would wait for itself gets `WouldDeadlock`
//!   (naming the index) in every entry point, and the failed call leaves no trace; a
//!   detached guard no longer counts as held by its thread; a recursive Shared
//!   acquisition passes a queued Exclusive request instead of waiting for itself.

#![cfg(not(loom))]

#[path = "support/tree_checks.rs"]
mod common;
#[path = "support/lock_harness.rs"]
mod lock_harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rangelock::{Entry, FillError, LockError, LockMode, Mark, XArray};

use common::{at, check, spans, Seen};
use lock_harness::{until_queued, wait_for};

// ---------------------------------------------------------------------------------------
// 1c. Panic safety
// ---------------------------------------------------------------------------------------

/// A holder that panics releases its range on unwinding: a queued waiter and a watcher
/// (`load_wait`) proceed, and the tree ends empty.
#[test]
fn a_panicking_holder_releases() {
    let xa: XArray<u64> = XArray::new();
    xa.store(5, Arc::new(5)).unwrap();
    let xa = &xa;
    thread::scope(|s| {
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = s.spawn(move || {
            let _g = xa.lock_range(0..100, LockMode::Exclusive).unwrap();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            panic!("intentional panic while holding 0..100 (test)");
        });
        held_rx.recv().unwrap();
        let shared = s.spawn(move || {
            let g = xa.lock_range(50..60, LockMode::Shared).unwrap();
            assert!(g.evicted().is_empty());
        });
        let exclusive = s.spawn(move || drop(xa.lock_range(90..200, LockMode::Exclusive).unwrap()));
        let watcher = s.spawn(move || xa.load_wait(5).unwrap());
        // Give the waiters a moment to queue (not needed for correctness).
        thread::sleep(Duration::from_millis(20));
        go_tx.send(()).unwrap();
        assert!(holder.join().is_err(), "the holder panicked");
        shared.join().unwrap();
        exclusive.join().unwrap();
        // The holder evicted the page and dropped it with its guard.
        assert!(matches!(watcher.join().unwrap(), Entry::Empty));
    });
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
}

/// A panic caught on the holder's own thread releases the range and forgets it in the
/// thread's held list (a later conflict is WouldBlock, not a false WouldDeadlock); so does
/// a panic while holding two ranges.
#[test]
fn a_caught_panic_releases_and_forgets() {
    let xa: XArray<u64> = XArray::new();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _a = xa.lock_range(0..10, LockMode::Exclusive).unwrap();
        let _b = xa.lock_range(20..30, LockMode::Shared).unwrap();
        panic!("intentional panic while holding two ranges (test)");
    }));
    assert!(caught.is_err());
    assert!(xa.is_empty());
    let xa = &xa;
    thread::scope(|s| {
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        s.spawn(move || {
            let _g = xa.lock_range(0..30, LockMode::Shared).unwrap();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        });
        held_rx.recv().unwrap();
        assert_eq!(
            xa.try_lock_range(5..6, LockMode::Exclusive).unwrap_err(),
            LockError::WouldBlock
        );
        assert_eq!(
            xa.try_lock_range(25..26, LockMode::Exclusive).unwrap_err(),
            LockError::WouldBlock
        );
        go_tx.send(()).unwrap();
    });
    assert!(xa.is_empty());
}

/// A fill that panics releases the index; a fault queued behind it then fills the page
/// itself, and a watcher sees the end (the page, or the empty index if it looked
/// before the second fault locked it).
#[test]
fn a_panicking_fill_releases_the_index() {
    let xa: XArray<u64> = XArray::new();
    let xa = &xa;
    thread::scope(|s| {
        let (in_fill_tx, in_fill_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let first = s.spawn(move || {
            xa.get_or_fill(7, |_| -> Result<Arc<u64>, ()> {
                in_fill_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                panic!("intentional panic in a fill (test)");
            })
        });
        in_fill_rx.recv().unwrap();
        assert!(matches!(
            xa.get(7),
            Entry::Locked {
                mode: LockMode::Exclusive,
                holders: 1
            }
        ));
        let second = s.spawn(move || xa.get_or_fill(7, |i| Ok::<_, ()>(Arc::new(i * 100))));
        let watcher = s.spawn(move || xa.load_wait(7).unwrap());
        let range = s.spawn(move || {
            let g = xa.lock_range(0..16, LockMode::Shared).unwrap();
            g.evicted().len()
        });
        thread::sleep(Duration::from_millis(20));
        go_tx.send(()).unwrap();
        assert!(first.join().is_err(), "the first fill panicked");
        let page = second.join().unwrap().expect("the second fault fills");
        assert_eq!(*page, 700);
        match watcher.join().unwrap() {
            Entry::Empty => {}
            Entry::Item(item) => assert_eq!(*item, 700),
            other => panic!("load_wait returned {other:?}"),
        }
        // The DIO range ran before or after the second fill (evicting its page).
        assert!(range.join().unwrap() <= 1);
    });
    // Whatever is left is the second fill's page.
    match xa.get(7) {
        Entry::Empty => {}
        Entry::Item(item) => assert_eq!(*item, 700),
        other => panic!("index 7 holds {other:?}"),
    }
    check(xa);

    // A fill that fails (or panics on this thread) releases the index too; the next
    // fault fills it.
    let failed = xa.get_or_fill(9, |_| Err::<Arc<u64>, _>("io error"));
    assert!(matches!(failed, Err(FillError::Fill("io error"))));
    assert!(xa.get(9).is_empty());
    let caught = catch_unwind(AssertUnwindSafe(|| {
        xa.get_or_fill(9, |_| -> Result<Arc<u64>, ()> {
            panic!("intentional (test)")
        })
    }));
    assert!(caught.is_err());
    assert!(xa.get(9).is_empty());
    assert_eq!(*xa.get_or_fill(9, |i| Ok::<_, ()>(Arc::new(i))).unwrap(), 9);
}

// ---------------------------------------------------------------------------------------
// 1d. Timeouts leave the tree as they found it
// ---------------------------------------------------------------------------------------

/// The spans of a range and the marks of each of its indices.
type Snapshot = (Vec<(u64, u64, Seen)>, Vec<[bool; 3]>);

/// Every entry of `0..=20` and its marks.
fn snapshot(xa: &XArray<u64>) -> Snapshot {
    let marks = (0..=20)
        .map(|i| Mark::ALL.map(|m| xa.get_mark(i, m)))
        .collect();
    (spans(xa, 0..=20), marks)
}

/// A tree with a marked page at 5 and marked values over 6..=10.
fn populated() -> (XArray<u64>, Arc<u64>) {
    let xa: XArray<u64> = XArray::new();
    let page = Arc::new(5);
    xa.store(5, Arc::clone(&page)).unwrap();
    xa.set_mark(5, Mark::M0);
    xa.set_mark(5, Mark::M2);
    xa.store_range(6..=10, 42).unwrap();
    xa.set_mark(7, Mark::M1);
    (xa, page)
}

/// `lock_range_timeout` over a range whose page and values it evicted before meeting a
/// holder puts them all back, marks included, when it times out (also a zero timeout);
/// a watcher waiting on the evicted page sees it come back; the holder's release then
/// works and a later lock evicts the same entries.
#[test]
fn timeout_puts_evicted_entries_back() {
    let (xa, page) = populated();
    let before = snapshot(&xa);
    assert_eq!(before.1[5], [true, false, true]);
    assert_eq!(before.1[7], [false, true, false]);
    let xa = &xa;
    let done = &AtomicBool::new(false);
    thread::scope(|s| {
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = s.spawn(move || {
            let g = xa.lock_range(15..=15, LockMode::Exclusive).unwrap();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(g);
        });
        held_rx.recv().unwrap();
        let with_holder = snapshot(xa);

        for mode in [LockMode::Shared, LockMode::Exclusive] {
            assert_eq!(
                xa.lock_range_timeout(0..=20, mode, Duration::ZERO)
                    .unwrap_err(),
                LockError::TimedOut
            );
            assert_eq!(snapshot(xa), with_holder);
        }

        // A real wait: the call evicts 5..=10, sleeps at 15, times out.
        let timed = s.spawn(move || {
            let r = xa
                .lock_range_timeout(0..=20, LockMode::Shared, Duration::from_millis(100))
                .map(|g| g.evicted().len());
            done.store(true, Ordering::SeqCst);
            r
        });
        wait_for("the timed call to evict index 5 (or finish)", || {
            matches!(xa.get(5), Entry::Locked { .. }) || done.load(Ordering::SeqCst)
        });
        // Waits while the page is locked; gets the very page back after the rollback.
        match xa.load_wait(5).unwrap() {
            Entry::Item(item) => assert!(Arc::ptr_eq(&item, &page)),
            other => panic!("index 5 after the timeout: {other:?}"),
        }
        assert_eq!(timed.join().unwrap(), Err(LockError::TimedOut));
        assert_eq!(
            snapshot(xa),
            with_holder,
            "the timed-out call changed the tree"
        );
        // The tree's and ours (once the epoch has dropped the reference the eviction
        // retired; other tests may hold the global epoch back for a while).
        for _ in 0..100_000 {
            if Arc::strong_count(&page) == 2 {
                break;
            }
            crossbeam_epoch::pin().flush();
            thread::yield_now();
        }
        assert_eq!(Arc::strong_count(&page), 2, "references to the page");
        check(xa);
        go_tx.send(()).unwrap();
        holder.join().unwrap();
    });
    assert_eq!(snapshot(xa), before);
    check(xa);

    let g = xa.lock_range(0..=20, LockMode::Exclusive).unwrap();
    let first = &g.evicted()[0];
    assert_eq!(first.range(), 5..=5);
    assert!(first.is_marked(Mark::M0) && !first.is_marked(Mark::M1) && first.is_marked(Mark::M2));
    let covered: u64 = g.evicted()[1..]
        .iter()
        .map(|e| {
            assert_eq!(e.entry().value(), Some(42));
            assert_eq!(e.is_marked(Mark::M1), e.range().contains(&7));
            e.range().end() - e.range().start() + 1
        })
        .sum();
    assert_eq!(covered, 5);
    drop(g);
    assert!(xa.is_empty());
}

/// While an acquisition that evicted entries waits further on, those entries are
/// `pending`: nobody may join them (a joiner could not be undone by a rollback), while
/// the fresh entries it made over empty indices may be joined.
#[test]
fn pending_entries_refuse_joiners() {
    let (xa, _page) = populated();
    let xa = &xa;
    thread::scope(|s| {
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = s.spawn(move || {
            let g = xa.lock_range(15..=15, LockMode::Exclusive).unwrap();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            drop(g);
        });
        held_rx.recv().unwrap();
        let waiter = s.spawn(move || {
            let g = xa.lock_range(0..=20, LockMode::Shared).unwrap();
            g.evicted().iter().map(|e| e.range()).collect::<Vec<_>>()
        });
        wait_for("the waiter to evict index 5", || {
            matches!(xa.get(5), Entry::Locked { .. })
        });
        // `try_lock_range` takes the write lock, so it sees the waiter's whole step.
        assert_eq!(
            xa.try_lock_range(5..=5, LockMode::Shared).unwrap_err(),
            LockError::WouldBlock
        );
        assert_eq!(
            xa.try_lock_range(8..=9, LockMode::Shared).unwrap_err(),
            LockError::WouldBlock
        );
        let joined = xa.try_lock_range(0..=4, LockMode::Shared).unwrap();
        assert_eq!(at(xa, 2), Seen::Locked(false, 2));
        drop(joined);
        go_tx.send(()).unwrap();
        holder.join().unwrap();
        let evicted = waiter.join().unwrap();
        assert_eq!(evicted[0], 5..=5);
        let covered: u64 = evicted[1..].iter().map(|r| r.end() - r.start() + 1).sum();
        assert_eq!(covered, 5, "the values over 6..=10: {evicted:?}");
    });
    assert!(xa.is_empty());
}

// ---------------------------------------------------------------------------------------
// 1e. Deadlock detection
// ---------------------------------------------------------------------------------------

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
