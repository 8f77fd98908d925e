//! The `lockdep` feature end to end: classes of trees, range locks and mappings, the
//! reports of each rule, and no report where the rules allow the order.
//!
//! Every test here sends reports to one collecting hook and looks only at reports that
//! name its own classes (tests run in parallel and share the process's graph).
//!
//! A binary of its own: the hook is process-wide, and in a binary with other tests it
//! would swallow the reports that `cargo test --features lockdep` must see as panics
//! there. `tests/lockdep_panic.rs` is alone for the converse reason (no hook at all).
#![cfg(feature = "lockdep")]

use std::convert::Infallible;
use std::sync::Mutex;

use rangelock::lockdep::{self, Report, ReportKind};
use rangelock::mapping::{DirectIoKind, Mapping};
use rangelock::{LockMode, RangeLock, XArray};

static REPORTS: Mutex<Vec<Report>> = Mutex::new(Vec::new());

fn collect(report: &Report) {
    REPORTS.lock().unwrap().push(report.clone());
}

/// Installs the collecting hook; returns a function that lists the reports naming `class`.
fn collecting() -> impl Fn(&str) -> Vec<Report> {
    lockdep::set_report_hook(Some(collect));
    |class: &str| {
        REPORTS
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.message().contains(class))
            .cloned()
            .collect()
    }
}

fn zero_page(_: u64) -> Result<Vec<u8>, Infallible> {
    Ok(vec![0; 4096])
}

fn no_flush(_: u64, _: &Vec<u8>) -> Result<(), Infallible> {
    Ok(())
}

/// Locks page 0 of `outer`, then of `inner`, with direct reads, on a new thread.
fn nest_direct_io(name: &str, outer: &Mapping<Vec<u8>>, inner: &Mapping<Vec<u8>>) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, || {
                let a = outer
                    .direct_io(0..4096, DirectIoKind::Read, no_flush)
                    .unwrap();
                let b = inner
                    .direct_io(0..4096, DirectIoKind::Read, no_flush)
                    .unwrap();
                drop((b, a));
            })
            .unwrap()
            .join()
            .unwrap();
    });
}

#[test]
fn abba_across_two_mappings_at_different_times_is_reported_with_both_backtraces() {
    let reports = collecting();
    let a = Mapping::<Vec<u8>>::new().with_class("abba.file_a");
    let b = Mapping::<Vec<u8>>::new().with_class("abba.file_b");
    a.set_size(1 << 20);
    b.set_size(1 << 20);
    nest_direct_io("first", &a, &b);
    assert!(reports("abba.file_a").is_empty(), "one order alone is fine");
    nest_direct_io("second", &b, &a); // later, on another thread: nothing hangs
    let found = reports("abba.file_a");
    assert_eq!(found.len(), 1, "{found:#?}");
    let text = found[0].message();
    assert_eq!(found[0].kind(), ReportKind::CircularDependency);
    assert!(text.contains("possible circular locking dependency detected"));
    assert!(text.contains("abba.file_b -> abba.file_a"), "{text}");
    // Both threads, and both backtraces, each through the thread's closure here.
    assert!(text.contains("thread 'first'") && text.contains("thread 'second'"));
    assert!(text.contains("first seen at:") && text.contains("closes the cycle, at:"));
    assert_eq!(text.matches("nest_direct_io").count(), 2, "{text}");
}

#[test]
fn a_descending_second_range_is_reported_and_an_ascending_one_is_not() {
    let reports = collecting();
    let xa: XArray<u64> = XArray::new().with_class("order.tree");
    {
        let _low = xa.lock_range(0..10, LockMode::Exclusive).unwrap();
        let _high = xa.lock_range(20..30, LockMode::Exclusive).unwrap();
    }
    assert!(reports("order.tree").is_empty());
    {
        let _high = xa.lock_range(20..30, LockMode::Exclusive).unwrap();
        let _low = xa.lock_range(0..10, LockMode::Exclusive).unwrap();
    }
    let found = reports("order.tree");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].kind(), ReportKind::DescendingRange);
    assert!(found[0].message().contains("Exclusive 0..=9"));
    assert!(found[0].message().contains("Exclusive 20..=29"));
}

#[test]
fn recursive_shared_and_refused_self_waits_are_not_reported() {
    let reports = collecting();
    let xa: XArray<u64> = XArray::new().with_class("recursive.tree");
    let _all = xa.lock_range(0..100, LockMode::Shared).unwrap();
    let _high = xa.lock_range(50..60, LockMode::Shared).unwrap();
    // Below `_high`, but inside `_all`: it joins without waiting.
    let _again = xa.lock_range(10..20, LockMode::Shared).unwrap();
    // A wait for itself is refused by the lock layer, not reported.
    assert!(xa.lock_range(5..6, LockMode::Exclusive).is_err());
    assert!(reports("recursive.tree").is_empty());
}

#[test]
fn two_trees_of_one_class_need_a_declared_nesting() {
    let reports = collecting();
    let make = || RangeLock::new().with_class("nesting.lock");
    let (first, second) = (make(), make());
    {
        let _a = first.lock(0..1, LockMode::Exclusive).unwrap();
        let _b = second.lock_nested(0..1, LockMode::Exclusive, 1).unwrap();
        let _c = lockdep::nested(2, || make().lock(0..1, LockMode::Shared).map(drop));
    }
    assert!(reports("nesting.lock").is_empty());
    {
        let _a = first.lock(0..1, LockMode::Exclusive).unwrap();
        let _b = second.lock(0..1, LockMode::Exclusive).unwrap();
    }
    let found = reports("nesting.lock");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].kind(), ReportKind::UndeclaredNesting);
}

#[test]
fn a_fill_that_takes_a_lock_held_elsewhere_before_the_page_is_reported() {
    let reports = collecting();
    let journal = RangeLock::new().with_class("fill.journal");
    let file = Mapping::<Vec<u8>>::new().with_class("fill.file");
    file.set_size(1 << 20);
    // Elsewhere: the journal, then a fault of the file.
    {
        let _j = journal.lock(0..1, LockMode::Exclusive).unwrap();
        file.fault(0, zero_page).unwrap();
    }
    assert!(reports("fill.journal").is_empty());
    // A fill (under the page's fill lock) that takes the journal.
    file.fault(1, |i| {
        let _j = journal.lock(0..1, LockMode::Exclusive).unwrap();
        zero_page(i)
    })
    .unwrap();
    let found = reports("fill.journal");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].message().contains("fill.file -> fill.journal"));
}

#[test]
fn a_flush_that_takes_a_lock_held_elsewhere_before_the_page_is_reported() {
    let reports = collecting();
    let journal = RangeLock::new().with_class("flush.journal");
    let file = Mapping::<Vec<u8>>::new().with_class("flush.file");
    file.set_size(1 << 20);
    file.write(0, zero_page, |page| page[0] = 1).unwrap(); // a dirty page to flush
    {
        let _j = journal.lock(0..1, LockMode::Exclusive).unwrap();
        drop(
            file.direct_io(8192..12288, DirectIoKind::Read, no_flush)
                .unwrap(),
        );
    }
    assert!(reports("flush.journal").is_empty());
    let dio = file
        .direct_io(0..4096, DirectIoKind::Write, |_, _: &Vec<u8>| {
            let _j = journal.lock(0..1, LockMode::Exclusive).unwrap();
            Ok::<_, Infallible>(())
        })
        .unwrap();
    drop(dio);
    let found = reports("flush.journal");
    assert!(!found.is_empty());
    assert!(found
        .iter()
        .all(|r| r.kind() == ReportKind::CircularDependency));
    assert!(found
        .iter()
        .any(|r| r.message().contains("flush.file -> flush.journal")));
}

#[test]
fn a_three_class_cycle_is_reported_when_it_closes() {
    let reports = collecting();
    let a = RangeLock::new().with_class("tri.a");
    let b = RangeLock::new().with_class("tri.b");
    let c = RangeLock::new().with_class("tri.c");
    let nest = |outer: &RangeLock, inner: &RangeLock| {
        let _o = outer.lock(0..1, LockMode::Shared).unwrap();
        let _i = inner.lock(0..1, LockMode::Shared).unwrap();
    };
    nest(&a, &b);
    nest(&b, &c);
    assert!(reports("tri.a").is_empty() && reports("tri.c").is_empty());
    nest(&c, &a);
    let found = reports("tri.a");
    assert_eq!(found.len(), 1, "{found:#?}");
    let text = found[0].message();
    assert!(text.contains("tri.b taken while holding tri.a"), "{text}");
    assert!(text.contains("tri.c taken while holding tri.b"), "{text}");
    assert!(text.contains("tri.c -> tri.a"), "{text}");
}

#[test]
fn a_detached_guard_leaves_the_thread() {
    let reports = collecting();
    let a = RangeLock::new().with_class("detach.a");
    let b = RangeLock::new().with_class("detach.b");
    // `a` detached: it left this thread, so `b` is not ordered after it.
    let detached = a.lock(0..1, LockMode::Exclusive).unwrap().detach();
    let held_b = b.lock(0..1, LockMode::Exclusive).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || drop(detached)); // released on another thread
    });
    drop(held_b);
    {
        // (Another range of `a`, so that a record of the detached guard left behind
        // would not make the lock layer refuse this as a wait for itself.)
        let _b = b.lock(0..1, LockMode::Exclusive).unwrap();
        let _a = a.lock(1..2, LockMode::Exclusive).unwrap();
    }
    assert!(reports("detach.").is_empty(), "{:#?}", reports("detach."));
}

#[test]
fn a_try_lock_orders_nothing() {
    let reports = collecting();
    let a = RangeLock::new().with_class("try.a");
    let b = RangeLock::new().with_class("try.b");
    {
        let _b = b.lock(0..1, LockMode::Exclusive).unwrap();
        let _a = a.try_lock(0..1, LockMode::Exclusive).unwrap(); // never waits
    }
    {
        let _a = a.lock(0..1, LockMode::Exclusive).unwrap();
        let _b = b.lock(0..1, LockMode::Exclusive).unwrap();
    }
    assert!(reports("try.").is_empty(), "{:#?}", reports("try."));
}
