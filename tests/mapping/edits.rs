//! The truncate family against concurrent size changes and at the edges of the index
//! space: an edit changes the size in one atomic step (a hole punch not at all), so a
//! truncate of other pages or a direct write past the end of file that calls `set_size`
//! is never undone; open-ended collapse and insert ranges get the right errors; and an
//! edit by a thread that holds part of its range fails before it evicts anything. The
//! first four failed on the version before (found by the third review; the comment on
//! each says how). Every blocking scenario runs under a watchdog.
#![cfg(not(loom))]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rangelock::mapping::{DirectIoKind, Mapping, MappingError};
use rangelock::LockError;

use crate::support::mapping_waits::{hold_page_lock, leak, locked, wait_until, within, WATCHDOG};

/// Review finding 1a: `punch_hole` stores back the size it read when it took its range
/// (`edit` always calls `store_size(size_after(old))`, and punch_hole's `size_after` is
/// the identity). Its range is only the hole, so a truncate of the pages above it runs
/// at the same time: the truncate sets 4096, then the punch writes the old 16384 back.
/// The file grows again over blocks the truncate freed; faults past 4096 succeed.
#[test]
fn punch_hole_keeps_a_concurrent_truncate_of_a_disjoint_range() {
    let file: &'static Mapping<u32> = leak();
    file.set_size(4 * 4096);
    let release_page0 = hold_page_lock(file, 0);
    // punch_hole(0..4096): takes page 0, reads the size (16384), then waits for page 0's
    // page lock in its eviction loop.
    let (punched_tx, punched_rx) = mpsc::channel();
    thread::spawn(move || {
        let edit = file.punch_hole(0..4096).unwrap();
        drop(edit);
        punched_tx.send(()).unwrap();
    });
    wait_until("punch_hole holds page 0", || locked(file, 0));
    thread::sleep(Duration::from_millis(100)); // it reads the size right after
                                               // A truncate of pages 1.. (disjoint from the hole) runs to completion meanwhile.
    let edit = within(move || {
        let e = file.truncate(4096).unwrap();
        let size = e.size();
        drop(e);
        size
    });
    assert_eq!(edit, 4096);
    assert_eq!(file.size(), 4096, "the truncate is done");
    release_page0.send(()).unwrap();
    punched_rx.recv_timeout(WATCHDOG).unwrap();
    assert_eq!(
        file.size(),
        4096,
        "punch_hole wrote back the size it read before the truncate: the truncate is undone \
         and page 3 (freed on disk) can be faulted again: {:?}",
        file.fault(3, |_| Ok::<_, ()>(0)).map(|_| ())
    );
}

/// Review finding 1b: the same store undoes the size a direct write past EOF set under its guard,
/// exactly as `direct_io`'s docs say to ("call set_size after the device write, while still
/// holding the guard, so that a truncate cannot come in between"). The data written to
/// page 5 ends up past the end of file.
#[test]
fn punch_hole_keeps_the_size_set_by_a_direct_write_past_eof() {
    let file: &'static Mapping<u32> = leak();
    file.set_size(4 * 4096);
    let release_page0 = hold_page_lock(file, 0);
    let (punched_tx, punched_rx) = mpsc::channel();
    thread::spawn(move || {
        drop(file.punch_hole(0..4096).unwrap());
        punched_tx.send(()).unwrap();
    });
    wait_until("punch_hole holds page 0", || locked(file, 0));
    thread::sleep(Duration::from_millis(100));
    within(move || {
        let dio = file
            .direct_io(5 * 4096..6 * 4096, DirectIoKind::Write, |_, _| {
                Ok::<_, ()>(())
            })
            .unwrap();
        // ... device write of page 5 ...
        file.set_size(6 * 4096);
        drop(dio);
    });
    assert_eq!(file.size(), 6 * 4096);
    release_page0.send(()).unwrap();
    punched_rx.recv_timeout(WATCHDOG).unwrap();
    assert_eq!(
        file.size(),
        6 * 4096,
        "punch_hole wrote back the old size: the direct write's page 5 is past EOF ({:?})",
        file.fault(5, |_| Ok::<_, ()>(0)).map(|_| ())
    );
}

/// Review finding 2: `collapse_range` and `insert_range` read the size when the range is
/// taken and store `old -/+ len` after the eviction loop. `set_size` is lock-free
/// (`fetch_max`), so a growth in between is lost: for collapse the result (12288) is
/// neither "set_size then collapse" (36864) nor "collapse then set_size" (40960), and the
/// set_size call returned 40960. Same for insert.
#[test]
fn collapse_and_insert_keep_a_concurrent_set_size() {
    let mut lost = Vec::new();
    for insert in [false, true] {
        let file: &'static Mapping<u32> = leak();
        file.set_size(4 * 4096);
        let release_page3 = hold_page_lock(file, 3);
        let (done_tx, done_rx) = mpsc::channel();
        thread::spawn(move || {
            let e = if insert {
                file.insert_range(0..4096).unwrap()
            } else {
                file.collapse_range(0..4096).unwrap()
            };
            drop(e);
            done_tx.send(()).unwrap();
        });
        wait_until("the edit holds page 3", || locked(file, 3));
        thread::sleep(Duration::from_millis(100));
        let returned = file.set_size(10 * 4096);
        assert_eq!(returned, 10 * 4096);
        release_page3.send(()).unwrap();
        done_rx.recv_timeout(WATCHDOG).unwrap();
        let size = file.size();
        let ok = if insert {
            [10 * 4096, 11 * 4096]
        } else {
            [10 * 4096, 9 * 4096]
        };
        if !ok.contains(&size) {
            lost.push(format!(
                "{}: size {size} though set_size returned {returned}",
                if insert {
                    "insert_range"
                } else {
                    "collapse_range"
                }
            ));
        }
    }
    assert!(lost.is_empty(), "a concurrent set_size was lost: {lost:?}");
}

/// Review finding 3 (wrong error): `collapse_range(4096..)` and `insert_range(4096..)` end at
/// 2^64, a page boundary, but `aligned` refuses any range whose last byte is u64::MAX as
/// `Unaligned`; the right refusals are `OutsideFile` (collapse: it reaches past EOF) and
/// `TooLarge` (insert).
#[test]
fn open_ended_collapse_and_insert_get_outside_file_and_too_large() {
    let file: Mapping<u32> = Mapping::new();
    file.set_size(4 * 4096);
    let c = file.collapse_range(4096..).map(drop);
    let i = file.insert_range(4096..).map(drop);
    assert!(
        matches!(c, Err(MappingError::OutsideFile { .. }))
            && matches!(i, Err(MappingError::TooLarge { .. })),
        "collapse: {c:?}, insert: {i:?}"
    );
}

/// A truncate by a thread that holds a direct IO inside the truncated range fails with
/// `WouldDeadlock` at once, before it evicts anything: cached pages below the direct IO
/// keep their pages, flags and marks (a failure after evicting would have put them back
/// with the marks they had when evicted, out of step with a write that landed in
/// between).
#[test]
fn an_edit_over_a_range_this_thread_holds_fails_before_evicting() {
    let file: Mapping<u32> = Mapping::new();
    file.set_size(8 * 4096);
    file.write(1, |_| Ok::<_, ()>(0), |d| *d = 1).unwrap();
    let page1 = file.get(1).unwrap();
    let dio = file
        .direct_io(5 * 4096..6 * 4096, DirectIoKind::Write, |_, _| {
            Ok::<_, ()>(())
        })
        .unwrap();
    assert_eq!(
        file.truncate(4096).unwrap_err(),
        MappingError::Lock(LockError::WouldDeadlock { index: 5 })
    );
    assert!(std::sync::Arc::ptr_eq(&file.get(1).unwrap(), &page1));
    assert!(!page1.is_evicted() && page1.is_dirty());
    assert_eq!(file.dirty_pages(..), vec![1]);
    assert_eq!(file.size(), 8 * 4096);
    drop(dio);
}
