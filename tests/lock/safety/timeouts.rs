//! Timeouts leave the tree as they found it: evicted entries are put back, marks
//! included, and while the acquisition waits they are `pending` and refuse joiners.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rangelock::{Entry, LockError, LockMode, Mark, XArray};

use crate::support::lock_harness::wait_for;
use crate::support::tree_checks::{at, check, spans, Seen};

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
