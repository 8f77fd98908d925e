//! The undo of an eviction (a direct IO whose `flush` failed or panicked, a refused
//! collapse) and the callbacks that panic: pages dirtied meanwhile come back with their
//! marks, no stale WRITEBACK mark stays, nothing is lost.
//!
//! Regressions from the review of the page cache (this was `tests/mapping/eviction_undo.rs`): each test failed on the first version
//! of `src/mapping/` (the comment on each says how) and passes since the undo of an
//! eviction locks every evicted page, rebuilds its marks from its flags and puts it back
//! before the range is released (`src/mapping/evict.rs`), and a buffered write marks the
//! page dirty before its callback runs. Two more findings are covered elsewhere: write-back
//! waiting for a sealed hand-off (`tests/mapping/scenarios/`) and an undo that ran after
//! the release (impossible now: the release is the undo's last step).
#![cfg(not(loom))]

use std::sync::mpsc;
use std::thread;

use rangelock::mapping::{DirectIoKind, Mapping, WRITEBACK};
use rangelock::Entry;

use crate::support::mapping_waits::{locked, wait_until};

/// Review finding 1a: `direct_io`'s undo (a `flush` failed) restores every evicted page with the
/// tree marks it had *at eviction*, and re-derives the DIRTY mark from the dirty flag only
/// for the pages it page-locked (`touched + 1`). A buffered write that was already inside
/// its page lock on a later page when the eviction happened completes during the flush:
/// its `set_mark` is refused (the index holds a lock entry), the undo then restores the
/// page clean-marked. Result: a page with `is_dirty()` and no DIRTY mark, which
/// `dirty_pages` and `writeback` (fsync) never see: the completed write never reaches
/// the device.
#[test]
fn a_failed_direct_io_restores_a_page_dirtied_meanwhile_with_its_mark() {
    let owned: Mapping<u32> = Mapping::new();
    let file = &owned;
    file.set_size(2 * 4096);
    file.write(0, |_| Ok::<_, ()>(0), |d| *d = 1).unwrap(); // dirty: flush runs (and fails)
    file.fault(1, |_| Ok::<_, ()>(0)).unwrap(); // clean
    let (in_write_tx, in_write_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(move || {
            file.write(
                1,
                |_| Ok::<_, ()>(0),
                |d| {
                    in_write_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    *d = 42;
                },
            )
            .unwrap();
            done_tx.send(()).unwrap();
        });
        in_write_rx.recv().unwrap(); // the writer holds page 1's lock
        let result = file.direct_io(0..8192, DirectIoKind::Write, |index, _| {
            assert_eq!(index, 0);
            // Both pages are evicted now; let the writer on page 1 finish.
            go_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            Err("device error")
        });
        assert!(result.is_err());
    });
    let page1 = file.get(1).expect("page 1 is back in the cache");
    assert_eq!(page1.read(|d| *d), 42);
    assert!(page1.is_dirty(), "the completed buffered write is dirty");
    assert_eq!(
        file.dirty_pages(..),
        vec![0, 1],
        "page 1 is dirty but carries no DIRTY mark"
    );
}

/// Review finding 1b: the same snapshot-restore in `edit` when the edit is refused
/// (`collapse_range` past EOF). The Exclusive lock evicts page 1 while a buffered writer
/// is inside page 1's lock; the lock then waits at page 2 (held by a direct IO), the
/// writer completes (mark refused), the collapse is refused and `release_restoring` puts
/// page 1 back with its eviction-time (clean) marks.
#[test]
fn a_refused_collapse_restores_a_page_dirtied_meanwhile_with_its_mark() {
    let owned: Mapping<u32> = Mapping::new();
    let file = &owned;
    file.set_size(2 * 4096);
    file.fault(1, |_| Ok::<_, ()>(0)).unwrap();
    let (in_write_tx, in_write_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let writer = s.spawn(move || {
            file.write(
                1,
                |_| Ok::<_, ()>(0),
                |d| {
                    in_write_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    *d = 42;
                },
            )
            .unwrap();
        });
        in_write_rx.recv().unwrap();
        // A direct IO on page 2 makes the collapse's lock wait after evicting page 1.
        let dio = file
            .direct_io(8192..12288, DirectIoKind::Read, |_, _| Ok::<_, ()>(()))
            .unwrap();
        let collapse = s.spawn(|| file.collapse_range(4096..8192).map(drop));
        wait_until("the collapse evicted page 1", || locked(file, 1));
        go_tx.send(()).unwrap();
        writer.join().unwrap();
        drop(dio);
        assert!(
            collapse.join().unwrap().is_err(),
            "collapsing up to EOF is refused"
        );
    });
    let page1 = file.get(1).expect("page 1 is back in the cache");
    assert_eq!(page1.read(|d| *d), 42);
    assert!(page1.is_dirty());
    assert_eq!(
        file.dirty_pages(..),
        vec![1],
        "page 1 is dirty but carries no DIRTY mark"
    );
}

/// Review finding 3: a WRITEBACK mark outlives the write-back. A write-back in progress on page 0
/// (mark set) is evicted by a direct IO that then fails on page 1; the write-back ends
/// while the index holds a lock entry (its `clear_mark` is refused), and the undo
/// restores the eviction-time marks, WRITEBACK included, and fixes only DIRTY.
#[test]
fn a_failed_direct_io_leaves_no_stale_writeback_mark() {
    let owned: Mapping<u32> = Mapping::new();
    let file = &owned;
    file.set_size(2 * 4096);
    file.write(0, |_| Ok::<_, ()>(0), |d| *d = 1).unwrap();
    file.write(1, |_| Ok::<_, ()>(0), |d| *d = 1).unwrap();
    let (in_wb_tx, in_wb_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let wb = s.spawn(move || {
            file.writeback(0..1, |_, _| {
                in_wb_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok::<_, ()>(())
            })
        });
        in_wb_rx.recv().unwrap();
        assert!(file.pages().get_mark(0, WRITEBACK));
        let dio = s.spawn(|| {
            file.direct_io(0..8192, DirectIoKind::Write, |_, _| Err("device error"))
                .map(drop)
        });
        wait_until("the direct IO evicted page 0", || locked(file, 0));
        go_tx.send(()).unwrap();
        assert_eq!(wb.join().unwrap().unwrap(), 1);
        assert!(dio.join().unwrap().is_err());
    });
    let page0 = file.get(0).unwrap();
    assert!(!page0.is_writeback());
    assert!(
        !file.pages().get_mark(0, WRITEBACK),
        "WRITEBACK mark set on a page not under write-back"
    );
}

/// Review finding 5: a `flush` that panics drops the dirty data of every evicted page: the guard's
/// release empties the indices instead of putting the pages back (the fill protocol puts
/// a shadow entry back on panic; here dirty pages are lost). Page 1 was never even
/// offered to `flush`.
#[test]
fn a_panicking_flush_puts_the_pages_back() {
    let owned: Mapping<u32> = Mapping::new();
    let file = &owned;
    file.set_size(2 * 4096);
    file.write(0, |_| Ok::<_, ()>(0), |d| *d = 1).unwrap();
    file.write(1, |_| Ok::<_, ()>(0), |d| *d = 2).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        file.direct_io(0..8192, DirectIoKind::Write, |_, _| -> Result<(), ()> {
            panic!("flush panicked")
        })
        .map(drop)
    }));
    assert!(r.is_err());
    assert!(file
        .pages()
        .iter(..)
        .all(|(_, e)| !matches!(e, Entry::Locked { .. })));
    assert_eq!(
        file.dirty_pages(..),
        vec![0, 1],
        "dirty pages dropped (cached: {})",
        file.cached_pages()
    );
}

/// Review finding 6: `write` runs the caller's closure under the page lock and marks the page dirty
/// only after it returns. A closure that panics part-way leaves its change in the cached
/// page (the poisoned page mutex is ignored) but the page clean: a read sees the new data,
/// and after the next eviction it is gone again (never written back).
#[test]
fn a_panicking_write_callback_leaves_the_page_dirty() {
    let owned: Mapping<u64> = Mapping::new();
    let file = &owned;
    file.set_size(4096);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        file.write(
            0,
            |_| Ok::<_, ()>(0),
            |d| {
                *d = 9;
                panic!("write callback panicked")
            },
        )
        .unwrap();
    }));
    assert!(r.is_err());
    let seen = file.read(0, |_| Ok::<_, ()>(0), |d| *d).unwrap();
    assert_eq!(seen, 9, "a reader sees the change");
    assert!(file.get(0).unwrap().is_dirty());
    assert_eq!(
        file.dirty_pages(..),
        vec![0],
        "the change will be written back"
    );
    let mut handed = Vec::new();
    drop(
        file.direct_io(0..4096, DirectIoKind::Read, |i, d| {
            handed.push((i, *d));
            Ok::<_, ()>(())
        })
        .unwrap(),
    );
    assert_eq!(
        handed,
        vec![(0, 9)],
        "the eviction hands the change to the device"
    );
}
