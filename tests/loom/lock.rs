//! Loom models of the range-lock protocol (`src/lock/`): acquisition, release, waiting,
//! waking, fairness, downgrade and the fill protocol, each raced by two threads (the main
//! thread and one spawned: three-thread versions took minutes).
//!
//! Run them with `ci/loom.sh`, which sets both cfgs:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test --release --test loom -- lock::
//! ```
//!
//! # What makes a bug visible
//!
//! * A lost wake-up leaves a thread asleep on a loom `Condvar` that nobody will notify:
//!   loom reports the deadlock (every thread blocked) and the model fails. A wake-up that
//!   is lost while another thread spins waiting for the sleeper shows up as a model that
//!   never ends (loom's branch limit).
//! * Mutual exclusion is checked in real time and in the memory model ([`Inside`]): a
//!   thread that holds a conflicting lock bumps a std counter right after acquiring and
//!   drops it right before releasing, so two conflicting holders inside at once trip an
//!   assertion (std atomics are exact here: loom runs every model thread on one OS
//!   thread); and it writes a loom cell (the data the lock protects) at both ends, so a
//!   release that does not happen-before the next acquisition (a wrong memory ordering)
//!   is a loom causality violation.
//! * Holder counts, modes and the final state are read back through the public API
//!   (`get` returns [`Entry::Locked`] with the count), after `join` where a count must be
//!   exact; every model ends with an empty tree (or exactly the filled item) that passes
//!   `check_invariants`.
//! * Each tree gets its own [`WaitTable`] (`with_wait_table`), whose visit counter says
//!   whether anybody queued: an acquisition that never had to wait never touches it.
//! * Each model asserts that its iterations together reached every side of its race
//!   (the waiter queued, and did not; each thread first; ...), so a model cannot pass by
//!   never exploring the race (same style as `tests/loom/xarray.rs`).
//! * Mutation checks (done by hand, see the end of this file): each model fails when the
//!   protocol step it covers is broken.
//!
//! Under loom every tree owns its wait table (no process-wide static), condition
//! variables never time out (so no model uses `lock_range_timeout`), and the held-lock
//! lists are loom thread-locals.

#![cfg(loom)]

// Std atomics observe the models (loom runs all of a model's threads on one OS thread,
// so they are exact and add no scheduling points); the protocol runs on loom's.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rangelock::{Entry, LockError, LockMode, WaitTable, XArray};

use crate::support::loom_harness::{model_reaching, Outcomes};

/// A tree of 4-slot nodes (indices below 4 live in one root leaf).
type Tree = XArray<u64, 4>;

/// A fresh tree, shareable between loom threads, with its own wait table (returned too,
/// to count visits: zero means that nobody ever queued).
fn tree() -> (loom::sync::Arc<Tree>, Arc<WaitTable>) {
    let table = Arc::new(WaitTable::new(4));
    let xa = Tree::with_slots().with_wait_table(Arc::clone(&table));
    (loom::sync::Arc::new(xa), table)
}

/// The lock state at `index`, or a panic naming what is there instead.
#[track_caller]
fn locked(xa: &Tree, index: u64) -> (LockMode, u64) {
    match xa.get(index) {
        Entry::Locked { mode, holders } => (mode, holders),
        other => panic!("index {index} should be locked, found {other:?}"),
    }
}

/// Asserts the state every model ends in: nothing locked, nothing left, a valid tree.
#[track_caller]
fn assert_released(xa: &Tree) {
    assert!(xa.is_empty(), "locks left behind: {:?}", xa.get(1));
    assert_eq!(xa.node_count(), 0);
    xa.check_invariants().unwrap();
}

/// A critical section of the holders that conflict with each other (Exclusive holders,
/// or a Shared holder against Exclusive ones): `enter` right after acquiring, `leave`
/// right before releasing.
///
/// * In real time: a std counter, with no loom scheduling point between the acquisition
///   and `enter`, so two holders inside together trip an assertion in `enter` (the
///   holders look the tree up in between, which gives loom points to preempt at).
/// * In the memory model: `enter` and `leave` write a loom cell, the data the lock
///   protects, as the first thing after the acquisition and the last thing before the
///   release (so that no lookup's epoch pin in between can order them by accident):
///   loom reports two writes not ordered by happens-before (a release that does not
///   synchronise with the next acquisition, say a `Relaxed` head compare-exchange of the
///   fast path) as a causality violation.
#[derive(Default)]
struct Inside {
    count: AtomicUsize,
    data: loom::cell::UnsafeCell<u64>,
}

// SAFETY: `data` is only written in `enter` and `leave`, by a thread that holds a lock
// conflicting with every other writer's; loom checks every access and reports the race
// that a broken lock would cause (which is what the models look for).
unsafe impl Sync for Inside {}

impl Inside {
    #[track_caller]
    fn enter(&self, who: &str) {
        let before = self.count.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            before, 0,
            "{who} acquired while a conflicting holder is inside"
        );
        self.write();
    }

    fn leave(&self) {
        self.write();
        self.count.fetch_sub(1, Ordering::Relaxed);
    }

    fn write(&self) {
        // SAFETY: see `unsafe impl Sync`: loom checks this write against the others.
        self.data.with_mut(|data| unsafe { *data += 1 });
    }

    /// Reads the protected data (as a Shared holder that follows an Exclusive one).
    fn read(&self) -> u64 {
        // SAFETY: see `unsafe impl Sync`: loom checks this read against the writes.
        self.data.with(|data| unsafe { *data })
    }
}

/// (1a) Lock vs release vs wake: the main thread holds 1..=2 Exclusive; thread B locks
/// 0..=1 Exclusive, which claims 0, finds 1 taken, sets the entry's waiters flag, queues
/// and sleeps, keeping 0 claimed meanwhile; main releases. Whatever the interleaving of
/// B's claim, registration and sleep with main's release (before B looks, after B
/// queued but before it sleeps, after it sleeps), B must get the range (a lost wake-up
/// is a loom deadlock), never while main still holds it, and the tree ends empty.
#[test]
fn release_wakes_a_queued_acquirer() {
    model_reaching(&["B queued", "B found it free"], |outcomes| {
        let (xa, table) = tree();
        let inside = Arc::new(Inside::default());
        let a = xa.lock_range(1..=2, LockMode::Exclusive).unwrap();

        let b = {
            let (xa, inside) = (xa.clone(), Arc::clone(&inside));
            loom::thread::spawn(move || {
                let g = xa.lock_range(0..=1, LockMode::Exclusive).unwrap();
                inside.enter("B");
                assert_eq!(locked(&xa, 0), (LockMode::Exclusive, 1));
                assert_eq!(locked(&xa, 1), (LockMode::Exclusive, 1));
                inside.leave();
                drop(g);
            })
        };

        // After the spawn, so that only the lock orders this write before B's.
        inside.enter("main");
        inside.leave();
        drop(a);
        b.join().unwrap();
        outcomes.saw(if table.visits() > 0 {
            "B queued"
        } else {
            "B found it free"
        });
        assert_released(&xa);
    });
}

/// (1b) The head fast path vs the slow path: thread W locks the whole range `..` of the
/// empty tree (one compare-exchange of the head, `EMPTY -> lock`; released by one
/// compare-exchange back) while the main thread locks 1..=2 through the write lock, both
/// Exclusive. The slow path may read the head's lock word and then lose it to W's
/// release compare-exchange before it sets the waiters flag (it must look again), or set
/// the flag first (then W's release compare-exchange fails and W releases under the
/// write lock, waking it); W may find main's entries and queue behind them. Either way
/// both get their range, never at once, and the tree ends empty.
#[test]
#[ignore = "since the per-node lock redesign (issue 12) this model runs past 5 minutes at \
            LOOM_MAX_PREEMPTIONS=2 and misses a required outcome at 1; run it with \
            `LOOM_LOCK_PREEMPTIONS=2 ci/loom.sh --include-ignored`"]
fn whole_range_fast_path_vs_sub_range() {
    model_reaching(
        &[
            "whole first, sub queued",
            "whole first, sub free",
            "sub first, whole queued",
            "sub first, whole free",
        ],
        |outcomes| {
            let (xa, table) = tree();
            let inside = Arc::new(Inside::default());
            let first = Arc::new(AtomicUsize::new(0)); // 1: whole, 2: sub
            let whole = {
                let (xa, inside, first) = (xa.clone(), Arc::clone(&inside), Arc::clone(&first));
                loom::thread::spawn(move || {
                    let g = xa.lock_range(.., LockMode::Exclusive).unwrap();
                    inside.enter("whole");
                    let _ = first.compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed);
                    assert_eq!(locked(&xa, 0), (LockMode::Exclusive, 1));
                    assert_eq!(locked(&xa, u64::MAX), (LockMode::Exclusive, 1));
                    inside.leave();
                    drop(g);
                })
            };

            let g = xa.lock_range(1..=2, LockMode::Exclusive).unwrap();
            inside.enter("sub");
            let _ = first.compare_exchange(0, 2, Ordering::Relaxed, Ordering::Relaxed);
            assert_eq!(locked(&xa, 2), (LockMode::Exclusive, 1));
            inside.leave();
            drop(g);
            whole.join().unwrap();

            let queued = table.visits() > 0;
            outcomes.saw(match (first.load(Ordering::Relaxed), queued) {
                (1, true) => "whole first, sub queued",
                (1, false) => "whole first, sub free",
                (2, true) => "sub first, whole queued",
                (2, false) => "sub first, whole free",
                (other, _) => unreachable!("first = {other}"),
            });
            assert_released(&xa);
        },
    );
}

/// (2) Two Shared holders racing their counts: the main thread locks 0..=1 Shared while
/// thread T locks 1..=2 Shared; index 1 is shared, so its entry counts both. While a
/// thread holds, it sees index 1 Shared with 1 or 2 holders (1: the other is not in, or
/// its store is not visible yet) and its private index with exactly 1. After joining T
/// (its release happens-before), main still holds index 1: it must see exactly 1 holder
/// there and nothing at 2, so a lost or doubled count update shows up; after main drops,
/// the tree is empty.
#[test]
fn shared_holders_count_each_other() {
    model_reaching(
        &["main saw 1", "main saw 2", "T saw 1", "T saw 2"],
        |outcomes| {
            let (xa, table) = tree();
            let t = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let g = xa.lock_range(1..=2, LockMode::Shared).unwrap();
                    let (mode, holders) = locked(&xa, 1);
                    assert_eq!(mode, LockMode::Shared);
                    assert!(holders == 1 || holders == 2, "T saw {holders} holders");
                    assert_eq!(locked(&xa, 2), (LockMode::Shared, 1));
                    drop(g);
                    holders
                })
            };

            let g = xa.lock_range(0..=1, LockMode::Shared).unwrap();
            let (mode, holders) = locked(&xa, 1);
            assert_eq!(mode, LockMode::Shared);
            assert!(holders == 1 || holders == 2, "main saw {holders} holders");
            assert_eq!(locked(&xa, 0), (LockMode::Shared, 1));
            outcomes.saw(format!("main saw {holders}"));
            outcomes.saw(format!("T saw {}", t.join().unwrap()));

            // T released: exactly main's hold is left.
            assert_eq!(locked(&xa, 1), (LockMode::Shared, 1));
            assert_eq!(locked(&xa, 0), (LockMode::Shared, 1));
            assert!(xa.get(2).is_empty(), "T's index 2 outlived its guard");
            drop(g);
            assert_eq!(table.visits(), 0, "compatible Shared holders never queue");
            assert_released(&xa);
        },
    );
}

/// (3a) A queued Exclusive acquirer blocks newcomers: index 1 is held Shared (by a
/// detached guard of the main thread, so that main asks for it again as a newcomer, not
/// as a holder); thread X asks for it Exclusive and queues (its record is the wait
/// table's first visit, made under the write lock together with the waiters flag). Main
/// reads the visit counter and then tries index 1 Shared. Shared is compatible with the
/// hold, but a newcomer must not overtake a queued conflicting acquirer: if main saw X
/// queued before it tried, it gets `WouldBlock`; `WouldBlock` happens only with X queued;
/// if main got in first, X queues behind both holds. Then the hold is released and X
/// gets index 1, never while a Shared holder is inside.
#[test]
fn queued_exclusive_refuses_new_shared() {
    model_reaching(
        &[
            "X queued: newcomer refused",
            "X not queued: newcomer joined",
        ],
        |outcomes| {
            let (xa, table) = tree();
            let hold_released = Arc::new(AtomicBool::new(false));
            let hold = xa.lock_range(1..=1, LockMode::Shared).unwrap().detach();

            let x = {
                let (xa, hold_released) = (xa.clone(), Arc::clone(&hold_released));
                loom::thread::spawn(move || {
                    let g = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
                    assert!(
                        hold_released.load(Ordering::Relaxed),
                        "X got 1 while it is held"
                    );
                    assert_eq!(locked(&xa, 1), (LockMode::Exclusive, 1));
                    drop(g);
                })
            };

            let x_queued = table.visits() > 0;
            match xa.try_lock_range(1..=1, LockMode::Shared) {
                Ok(g) => {
                    assert!(
                        !x_queued,
                        "a newcomer overtook X, queued Exclusive before it came"
                    );
                    // X cannot be in: the hold is still there. Both Shared holds count.
                    assert_eq!(locked(&xa, 1), (LockMode::Shared, 2));
                    drop(g);
                    outcomes.saw("X not queued: newcomer joined");
                }
                Err(LockError::WouldBlock) => {
                    assert!(table.visits() > 0, "refused with nobody queued");
                    outcomes.saw("X queued: newcomer refused");
                }
                Err(e) => panic!("unexpected {e:?}"),
            }

            hold_released.store(true, Ordering::Relaxed);
            drop(hold);
            x.join().unwrap();
            assert_released(&xa);
        },
    );
}

/// (3b) The recursive-read exception: as (3a), but main holds index 1 through its own
/// (not detached) guard when it asks for it Shared again. Queueing behind X would wait
/// for itself (X waits for main's hold), so a thread that already holds the index Shared
/// joins its Shared holders even with X queued: `try_lock_range` succeeds either way.
#[test]
fn holder_rejoins_past_queued_exclusive() {
    model_reaching(
        &["X queued: holder joined", "X not queued: holder joined"],
        |outcomes| {
            let (xa, table) = tree();
            let main_holds = Arc::new(AtomicBool::new(true));
            let a = xa.lock_range(1..=1, LockMode::Shared).unwrap();

            let x = {
                let (xa, main_holds) = (xa.clone(), Arc::clone(&main_holds));
                loom::thread::spawn(move || {
                    let g = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
                    assert!(
                        !main_holds.load(Ordering::Relaxed),
                        "X got 1 while main holds it"
                    );
                    drop(g);
                })
            };

            let x_queued = table.visits() > 0;
            let again = xa.try_lock_range(1..=1, LockMode::Shared).expect(
                "a Shared holder joins its own Shared entry even behind a queued Exclusive",
            );
            assert_eq!(locked(&xa, 1), (LockMode::Shared, 2));
            outcomes.saw(if x_queued {
                "X queued: holder joined"
            } else {
                "X not queued: holder joined"
            });
            drop(again);
            main_holds.store(false, Ordering::Relaxed);
            drop(a);
            x.join().unwrap();
            assert_released(&xa);
        },
    );
}

/// (3c) Queue order across a release: main holds index 1 Shared; thread X asks for it
/// Exclusive (and may queue); main releases and at once asks for index 1 Shared again,
/// blocking. If X was queued by then (the visit counter, read after main's release,
/// says so: main's release visits the table only when X's waiters flag is set), the
/// release reserved the entry for the front of its queue, X, and main's new request
/// must queue behind X's older conflicting record: X gets index 1 first, then wakes
/// main. If X had not queued yet, main may get in first and X waits for it.
#[test]
fn queued_exclusive_goes_before_later_shared() {
    model_reaching(
        &[
            "X queued: X first",
            "X not queued: X first",
            "X not queued: main first",
        ],
        |outcomes| {
            let (xa, table) = tree();
            let inside = Arc::new(Inside::default());
            let tickets = Arc::new(AtomicUsize::new(0));
            let a = xa.lock_range(1..=1, LockMode::Shared).unwrap();

            let x = {
                let (xa, inside, tickets) = (xa.clone(), Arc::clone(&inside), Arc::clone(&tickets));
                loom::thread::spawn(move || {
                    let g = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
                    inside.enter("X");
                    let ticket = tickets.fetch_add(1, Ordering::Relaxed);
                    inside.leave();
                    drop(g);
                    ticket
                })
            };

            inside.enter("main"); // after the spawn: only the lock orders it before X
            inside.leave();
            drop(a);
            let x_queued = table.visits() > 0;
            let g = xa.lock_range(1..=1, LockMode::Shared).unwrap();
            inside.enter("main again");
            let main_ticket = tickets.fetch_add(1, Ordering::Relaxed);
            inside.leave();
            drop(g);
            let x_ticket = x.join().unwrap();

            let x_first = x_ticket < main_ticket;
            if x_queued {
                assert!(x_first, "main's new request overtook X, queued before it");
            }
            outcomes.saw(match (x_queued, x_first) {
                (true, _) => "X queued: X first",
                (false, true) => "X not queued: X first",
                (false, false) => "X not queued: main first",
            });
            assert_released(&xa);
        },
    );
}

/// (4) Fill vs direct IO on one index: thread F faults index 1 in (`get_or_fill`: lock
/// the index Exclusive, run the fill with no internal lock held, publish the item in
/// the lock entry's place) while the main thread, a direct-IO, locks 1..=1 Shared
/// (evicting any item there into its guard). Either D comes first and F waits for it
/// (F fills after D released: the item is in the tree), or F publishes first and D
/// evicts exactly that item (the tree ends empty); D waits while F fills. The fill runs
/// exactly once, never while D holds the index, and no item is lost or duplicated.
#[test]
fn fill_vs_direct_io() {
    model_reaching(&["D evicted the fill", "F filled after D"], |outcomes| {
        let (xa, _table) = tree();
        let inside = Arc::new(Inside::default());
        let fills = Arc::new(AtomicUsize::new(0));

        let f = {
            let (xa, inside, fills) = (xa.clone(), Arc::clone(&inside), Arc::clone(&fills));
            loom::thread::spawn(move || {
                let seen = xa.clone();
                xa.get_or_fill(1, move |i| {
                    inside.enter("fill");
                    fills.fetch_add(1, Ordering::Relaxed);
                    assert_eq!(locked(&seen, i), (LockMode::Exclusive, 1));
                    inside.leave();
                    Ok::<_, ()>(Arc::new(41))
                })
                .unwrap()
            })
        };

        let d = xa.lock_range(1..=1, LockMode::Shared).unwrap();
        inside.enter("D");
        assert_eq!(locked(&xa, 1), (LockMode::Shared, 1));
        let evicted: Vec<Arc<u64>> = d
            .evicted()
            .iter()
            .map(|e| {
                assert_eq!(e.range(), 1..=1);
                Arc::clone(e.entry().item().expect("only F's item can be evicted"))
            })
            .collect();
        inside.leave();
        drop(d);
        let item = f.join().unwrap();

        assert_eq!(*item, 41);
        assert_eq!(
            fills.load(Ordering::Relaxed),
            1,
            "the fill ran more than once"
        );
        match evicted.as_slice() {
            [] => {
                let cached = xa.load(1).expect("F's item is not in the tree");
                assert!(Arc::ptr_eq(&cached, &item), "another item at 1");
                assert_eq!(xa.len(), 1);
                xa.check_invariants().unwrap();
                outcomes.saw("F filled after D");
            }
            [e] => {
                assert!(Arc::ptr_eq(e, &item), "D evicted another item");
                assert_released(&xa);
                outcomes.saw("D evicted the fill");
            }
            more => panic!("D evicted {} items", more.len()),
        }
    });
}

/// Downgrade with a Shared acquirer racing it: the main thread holds `range` Exclusive;
/// thread B locks index 1 Shared (queues, or finds the entry already Shared); main
/// downgrades and then waits, without releasing, until B reports that it got index 1.
/// So B must get it while main still holds the range Shared: the downgrade has to wake
/// it (if it does not, B sleeps and main spins forever: loom's branch limit fails the
/// model). B sees 2 Shared holders at 1 (main cannot release before B's report); main,
/// after the report, sees them too. Then both release and the tree is empty.
fn downgrade_model(range: std::ops::RangeInclusive<u64>, outcomes: &Outcomes) {
    let (xa, table) = tree();
    let inside = Arc::new(Inside::default());
    let acquired = loom::sync::Arc::new(loom::sync::atomic::AtomicBool::new(false));
    let mut a = xa.lock_range(range, LockMode::Exclusive).unwrap();

    let b = {
        let (xa, inside, acquired) = (xa.clone(), Arc::clone(&inside), acquired.clone());
        loom::thread::spawn(move || {
            let g = xa.lock_range(1..=1, LockMode::Shared).unwrap();
            assert_eq!(locked(&xa, 1), (LockMode::Shared, 2));
            // Main's write as Exclusive holder happens-before this Shared acquisition.
            assert_eq!(inside.read(), 2);
            acquired.store(true, loom::sync::atomic::Ordering::Release);
            drop(g);
        })
    };

    // Writes the protected data as the Exclusive holder, after the spawn (which would
    // order it before everything B does by itself).
    inside.enter("main");
    inside.leave();
    a.downgrade();
    assert_eq!(a.mode(), LockMode::Shared);
    while !acquired.load(loom::sync::atomic::Ordering::Acquire) {
        loom::thread::yield_now();
    }
    // B holds 1 or has released it; main still holds it Shared.
    let (mode, holders) = locked(&xa, 1);
    assert_eq!(mode, LockMode::Shared);
    assert!(holders == 1 || holders == 2, "{holders} holders at 1");
    assert_eq!(locked(&xa, 0), (LockMode::Shared, 1));
    drop(a);
    b.join().unwrap();
    outcomes.saw(if table.visits() > 0 {
        "B queued, woken by the downgrade"
    } else {
        "B came after the downgrade"
    });
    assert_released(&xa);
}

const DOWNGRADE_OUTCOMES: &[&str] = &[
    "B queued, woken by the downgrade",
    "B came after the downgrade",
];

/// (5a) Downgrade of a sub-range lock (0..=1) under the write lock.
#[test]
fn downgrade_wakes_shared_waiter() {
    model_reaching(DOWNGRADE_OUTCOMES, |outcomes| {
        downgrade_model(0..=1, outcomes)
    });
}

/// (5b) Downgrade of a whole-range lock taken by the head fast path: one compare-exchange
/// (Exclusive -> Shared) of the head if nobody set the waiters flag, else the walk
/// under the write lock that wakes B. B's Shared claim of index 1 then splits the head's
/// Shared entry, so main's release compare-exchange fails and it walks the tree instead.
#[test]
fn downgrade_whole_range_wakes_shared_waiter() {
    model_reaching(DOWNGRADE_OUTCOMES, |outcomes| {
        downgrade_model(0..=u64::MAX, outcomes)
    });
}

// Mutation checks, done by hand in a scratch copy of the crate (each breaks one protocol
// step; every listed model then fails, as it must):
//
// | mutation                                                      | failing model(s): how |
// |---------------------------------------------------------------|------------------------|
// | `claim::release` skips `table.wake`                           | 1a, 1b: loom deadlock |
// | `WaitTable::wait` sleeps before checking its record's mark    | 1a: loom deadlock |
// | fast-path release CAS ignores the waiters flag (drops a flagged head) | 1b: loom deadlock |
// | fast-path acquire CAS `Relaxed` instead of `Acquire`          | 1b: causality violation |
// | fast-path release CAS `Relaxed` instead of `Release`          | 1b: causality violation |
// | `may_take` ignores the mode (Exclusive joins a holder)        | 1a, 4: holder count / mode assertion |
// | `may_take` raises no holder count (`holders.max(1)`)          | 2: index 1 empty while main holds it |
// | `may_take` never defers to an older conflicting waiter        | 3a, 3c: "overtook X" |
// | no recursive-read exception                                   | 3b: `WouldBlock` |
// | a release with acquirers queued removes the entry instead of reserving it | 3c: "overtook X" |
// | `claim::publish` skips its wake                               | 4: loom deadlock |
// | `claim::downgrade` skips its wake                             | 5a, 5b: loom branch limit (spin) |
// | fast-path downgrade CAS `Relaxed` instead of `Release`        | 5b: causality violation |
