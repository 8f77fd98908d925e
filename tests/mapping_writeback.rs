//! Write-back (the page-cache half of fsync) against everything that can hide a dirty
//! page from it: a second write-back in progress, an edit holding evicted dirty pages, a
//! caller that holds a range itself, and an acquisition that slept and failed. Each test
//! failed on the version before (found by the second review; the comment on each says
//! how) and keeps the fix. Every blocking scenario runs under a watchdog (threads not
//! joined on timeout; a hang is a failure).
#![cfg(not(loom))]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rangelock::mapping::{DirectIoKind, Mapping, PageGeometry, WRITEBACK};
use rangelock::{Entry, WaitTable, XArray};

const WATCHDOG: Duration = Duration::from_secs(20);
const SETTLE: Duration = Duration::from_secs(2);

fn leak<P: Send + Sync + 'static>() -> &'static Mapping<P> {
    Box::leak(Box::new(Mapping::new()))
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn locked<P: Send + Sync + 'static>(file: &Mapping<P>, index: u64) -> bool {
    matches!(file.pages().get(index), Entry::Locked { .. })
}

type Device = Arc<Mutex<Vec<(u64, u32)>>>;

/// Review finding: two write-backs at once. `writeback` claims "when it returns, every
/// buffered write that completed before the call is on the device", but a page that
/// another write-back is writing right now has its DIRTY mark cleared and only a
/// WRITEBACK mark, which `writeback` never looks at: the second fsync returns at once,
/// before the first one's device write of the page has finished (or failed).
#[test]
fn a_second_writeback_waits_for_a_page_under_writeback() {
    let file: &'static Mapping<u32> = leak();
    file.set_size(4096);
    file.write(0, |_| Ok::<_, ()>(0), |d| *d = 1).unwrap(); // completed before both calls
    let device: Device = Arc::default();
    let (in_tx, in_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let dev1 = device.clone();
    thread::spawn(move || {
        file.writeback(.., |i, d| {
            in_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            dev1.lock().unwrap().push((i, *d));
            Ok::<_, ()>(())
        })
        .unwrap();
    });
    in_rx.recv_timeout(WATCHDOG).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let dev2 = device.clone();
    thread::spawn(move || {
        let r = file.writeback(.., |i, d| {
            dev2.lock().unwrap().push((i, *d));
            Ok::<_, ()>(())
        });
        // What an fsync caller may rely on once it returns:
        let on_device = dev2.lock().unwrap().contains(&(0, 1));
        done_tx.send((r.is_ok(), on_device)).unwrap();
    });
    let early = done_rx.recv_timeout(SETTLE).ok();
    go_tx.send(()).unwrap(); // let the first write-back finish in any case
    let (ok, on_device) = match early {
        Some(r) => r,
        None => done_rx
            .recv_timeout(WATCHDOG)
            .expect("second writeback hangs"),
    };
    assert!(ok);
    assert!(
        on_device,
        "the second writeback returned Ok while page 0 (dirty before the call) was not on the device"
    );
}

/// Review finding: an edit (here insert_range) evicts a dirty page and hands it to its caller
/// (`EditGuard::dirty`). Its entries are Exclusive but not `pending` once the lock is
/// granted, so `wait_sealed` does not wait for them, and both passes of `writeback`
/// miss the page (it is in neither the tree nor on the device): fsync returns Ok while
/// a buffered write that completed before it is only in the edit's hands.
#[test]
fn writeback_waits_for_an_edit_holding_a_dirty_page() {
    let file: &'static Mapping<u32> = leak();
    file.set_size(8 * 4096);
    file.write(5, |_| Ok::<_, ()>(0), |d| *d = 42).unwrap(); // completed before the fsync
    let device: Device = Arc::default();
    let edit = file.insert_range(0..4096).unwrap();
    assert_eq!(
        edit.dirty().iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![5]
    );
    let (done_tx, done_rx) = mpsc::channel();
    let dev = device.clone();
    thread::spawn(move || {
        let r = file.writeback(.., |i, d| {
            dev.lock().unwrap().push((i, *d));
            Ok::<_, ()>(())
        });
        let on_device = dev.lock().unwrap().iter().any(|&(_, d)| d == 42);
        done_tx.send((r.is_ok(), on_device)).unwrap();
    });
    let early = done_rx.recv_timeout(SETTLE).ok();
    // The edit's caller writes the handed-over pages, then drops the guard.
    for (i, page) in edit.dirty() {
        device.lock().unwrap().push((*i, page.read(|d| *d)));
    }
    drop(edit);
    let (ok, on_device) = match early {
        Some(r) => r,
        None => done_rx.recv_timeout(WATCHDOG).expect("writeback hangs"),
    };
    assert!(ok);
    assert!(
        on_device,
        "writeback returned Ok while the dirty page was held by the edit, not on the device"
    );
}

/// Review finding: `writeback` now waits (`wait_sealed`) for `pending` entries, which are
/// range-lock state, without the deadlock detection covering the wait: a thread that
/// holds a direct IO (an O_DSYNC write syncing before it drops its guard) and calls
/// writeback deadlocks with a truncate that evicted page 0 (pending) and is queued on
/// the direct IO's page 1. Before b9eb416 writeback never waited for a range.
#[test]
fn writeback_while_holding_a_direct_io_fails_instead_of_deadlocking() {
    let table = Arc::new(WaitTable::new(16));
    let file: &'static Mapping<u32> = Box::leak(Box::new(Mapping::with_tree(
        XArray::new().with_wait_table(table.clone()),
        PageGeometry::default(),
    )));
    file.set_size(2 * 4096);
    file.write(0, |_| Ok::<_, ()>(0), |d| *d = 1).unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let dio = file
            .direct_io(4096..8192, DirectIoKind::Write, |_, _| Ok::<_, ()>(()))
            .unwrap();
        held_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        // The device write is done; sync (O_DSYNC) before ending the IO.
        let r = file.writeback(.., |_, _| Ok::<_, ()>(()));
        done_tx.send(format!("{r:?}")).unwrap();
        drop(dio);
    });
    held_rx.recv_timeout(WATCHDOG).unwrap();
    thread::spawn(move || drop(file.truncate(0).unwrap()));
    wait_until("the truncate evicted page 0 and queued on page 1", || {
        locked(file, 0)
    });
    go_tx.send(()).unwrap();
    let r = done_rx.recv_timeout(WATCHDOG);
    assert!(
        r.is_ok(),
        "writeback by the direct IO's holder never returned (deadlock: it waits for the \
         truncate's pending page 0, the truncate waits for the direct IO); page 0: {:?}, \
         page 1: {:?}, wait table: {:?}",
        file.pages().get(0),
        file.pages().get(1),
        table.dump()
    );
    let r = r.unwrap();
    assert!(r.contains("WouldDeadlock"), "it must refuse to wait: {r}");
}

/// Review finding: the lock layer's `rollback` (an acquisition that slept, then failed:
/// here WouldDeadlock) still restores the marks the pages had at eviction, the bug
/// b9eb416 fixed only for `Eviction`. A write-back that was writing page 0 when a
/// truncate evicted it fails while the truncate sleeps (its `set_mark(DIRTY)` and
/// `clear_mark(WRITEBACK)` are refused by the lock entry); the truncate then fails with
/// WouldDeadlock and puts page 0 back with WRITEBACK and without DIRTY: a dirty page
/// that `dirty_pages` and `writeback` never see again.
#[test]
fn a_truncate_rolled_back_after_sleeping_leaves_marks_in_step_with_flags() {
    let file: &'static Mapping<u32> = leak();
    file.set_size(4 * 4096);
    file.write(0, |_| Ok::<_, ()>(0), |d| *d = 1).unwrap();
    file.fault(1, |_| Ok::<_, ()>(0)).unwrap();
    // A write-back of page 0 that is inside its device write.
    let (in_wb_tx, in_wb_rx) = mpsc::channel();
    let (wb_go_tx, wb_go_rx) = mpsc::channel::<()>();
    let (wb_done_tx, wb_done_rx) = mpsc::channel();
    thread::spawn(move || {
        let r = file.writeback(0..=0, |_, _| {
            in_wb_tx.send(()).unwrap();
            wb_go_rx.recv().unwrap();
            Err("device error")
        });
        wb_done_tx.send(r.is_err()).unwrap();
    });
    in_wb_rx.recv_timeout(WATCHDOG).unwrap();
    // Another thread's direct IO holds page 2 for a while.
    let (o_held_tx, o_held_rx) = mpsc::channel();
    let (o_go_tx, o_go_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let dio = file
            .direct_io(2 * 4096..3 * 4096, DirectIoKind::Read, |_, _| {
                Ok::<_, ()>(())
            })
            .unwrap();
        o_held_tx.send(()).unwrap();
        o_go_rx.recv().unwrap();
        drop(dio);
    });
    o_held_rx.recv_timeout(WATCHDOG).unwrap();
    // A thread that holds page 3 under its own direct IO truncates to 0: it evicts pages
    // 0 and 1, sleeps on page 2, and fails at page 3 (its own) with WouldDeadlock.
    let (t_done_tx, t_done_rx) = mpsc::channel();
    thread::spawn(move || {
        let dio = file
            .direct_io(3 * 4096..4 * 4096, DirectIoKind::Read, |_, _| {
                Ok::<_, ()>(())
            })
            .unwrap();
        let r = file.truncate(0).map(drop);
        drop(dio);
        t_done_tx.send(format!("{r:?}")).unwrap();
    });
    wait_until("the truncate evicted page 0", || locked(file, 0));
    wb_go_tx.send(()).unwrap(); // the write-back fails while page 0 is out of the tree
    assert!(wb_done_rx.recv_timeout(WATCHDOG).unwrap());
    o_go_tx.send(()).unwrap();
    let t = t_done_rx.recv_timeout(WATCHDOG).unwrap();
    assert!(t.contains("WouldDeadlock"), "{t}");
    let page0 = file.get(0).expect("page 0 is back");
    assert!(page0.is_dirty(), "the failed write-back left it dirty");
    assert!(!page0.is_writeback());
    let (stale_writeback, dirty_marked) =
        (file.pages().get_mark(0, WRITEBACK), file.dirty_pages(..));
    let written = file.writeback(.., |_, _| Ok::<_, ()>(())).unwrap();
    assert!(
        !stale_writeback && dirty_marked == vec![0] && written == 1,
        "page 0 is dirty, yet: WRITEBACK mark {stale_writeback} (not under write-back), \
         dirty_pages {dirty_marked:?}, an fsync wrote {written} pages"
    );
}
