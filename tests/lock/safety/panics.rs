//! Panic safety: a holder or a fill that panics (on another thread, or caught on its
//! own) releases its range on unwinding and leaves the thread's held list.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rangelock::{Entry, FillError, LockError, LockMode, XArray};

use crate::support::tree_checks::check;

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
