//! Range locks under concurrency: the oracle stress test.
//!
//! Threads lock random ranges of a small window (so they overlap), plus occasional huge
//! ranges and `..`, in random modes, through every entry point (`lock_range`,
//! `try_lock_range`, `lock_range_timeout`, two ranges in ascending order, `downgrade`,
//! `detach`, `get_or_fill`, `load_wait`), while others store items and values that the
//! locks evict. An oracle (the list of granted ranges, entered after a grant and left
//! before the release) asserts that no Exclusive range overlaps another granted range,
//! and that `get` inside a held range shows a lock entry of the right mode with at least
//! as many holders as the oracle knows of. A watchdog aborts the process if no thread
//! makes progress for [`STALL`] (a deadlock or a lost wake-up). Each configuration runs
//! for `RANGELOCK_STRESS_SECS` seconds (default 1). At the end nothing locked or reserved
//! is left behind, and one whole-range lock evicts every item that remains.
//!
//! Fairness, failure paths and wait-table visits are in `tests/lock/fairness.rs`,
//! `tests/lock/safety/` and `tests/lock/wait_table.rs`; the shared tools in
//! `tests/support/lock_harness.rs`.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use rangelock::{
    Entry, FillError, LockError, LockMode, Mark, RangeGuard, WaitTable, XArray, XaError,
};

use crate::support::lock_harness;
use crate::support::lock_harness::{check_value, signature, Budget, Rng, STALL, WINDOW};
use crate::support::tree_checks::check;

const THREADS: usize = 4;

// ---------------------------------------------------------------------------------------
// Small tools
// ---------------------------------------------------------------------------------------

/// Checks an entry found at (or replaced at) `index`: items are `Arc::new(index)`.
#[track_caller]
fn check_plain(entry: &Entry<u64>, index: u64) {
    match entry {
        Entry::Empty => {}
        Entry::Item(item) => assert_eq!(**item, index, "index {index} holds item {item}"),
        Entry::Value(value) => check_value(*value, index, index),
        Entry::Locked { .. } => panic!("index {index}: a plain write replaced a lock entry"),
    }
}

/// Locks `first..=last`, through `..` when that is all of `u64` (the fast path's form).
fn lock<const S: usize>(
    xa: &XArray<u64, S>,
    first: u64,
    last: u64,
    mode: LockMode,
) -> Result<RangeGuard<'_, u64, S>, LockError> {
    if (first, last) == (0, u64::MAX) {
        xa.lock_range(.., mode)
    } else {
        xa.lock_range(first..=last, mode)
    }
}

/// Locks a mutex even if a panicking thread poisoned it (the first panic is the report).
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------
// The oracle and the threads
// ---------------------------------------------------------------------------------------

/// A granted range, as the oracle knows it.
#[derive(Clone, Copy, Debug)]
struct Holding {
    first: u64,
    last: u64,
    mode: LockMode,
    id: u64,
    thread: usize,
}

/// The granted ranges: entered after the grant, left before the release, so at any
/// moment every holding listed is really held.
#[derive(Default)]
struct Oracle {
    held: Mutex<Vec<Holding>>,
    next_id: AtomicU64,
}

impl Oracle {
    /// Records a grant; panics if it overlaps a granted range in a conflicting mode.
    fn enter(&self, thread: usize, first: u64, last: u64, mode: LockMode) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let me = Holding {
            first,
            last,
            mode,
            id,
            thread,
        };
        let mut held = locked(&self.held);
        for h in held.iter() {
            let overlap = h.first <= last && first <= h.last;
            assert!(
                !overlap || h.mode.is_compatible(mode),
                "granted {me:?} to thread {thread} while thread {} holds {h:?}",
                h.thread
            );
        }
        held.push(me);
        id
    }

    fn leave(&self, id: u64) {
        let mut held = locked(&self.held);
        let at = held
            .iter()
            .position(|h| h.id == id)
            .expect("a holding leaves once");
        held.swap_remove(at);
    }

    fn set_mode(&self, id: u64, mode: LockMode) {
        let mut held = locked(&self.held);
        held.iter_mut()
            .find(|h| h.id == id)
            .expect("a live holding")
            .mode = mode;
    }
}

/// What the stress threads share.
struct Stress<const S: usize> {
    xa: XArray<u64, S>,
    oracle: Oracle,
    /// Bumped by every thread after every operation; watched by the watchdog.
    progress: AtomicU64,
    stats: Stats,
}

/// Outcome counters, printed at the end (they show that every path ran).
#[derive(Default)]
struct Stats {
    granted: AtomicU64,
    exclusive: AtomicU64,
    whole: AtomicU64,
    evicted: AtomicU64,
    downgraded: AtomicU64,
    detached: AtomicU64,
    pairs: AtomicU64,
    self_deadlocks: AtomicU64,
    would_block: AtomicU64,
    timed_out: AtomicU64,
    faults: AtomicU64,
    fills: AtomicU64,
    fill_errors: AtomicU64,
    writes_refused: AtomicU64,
    load_waits: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} grants ({} exclusive, {} of all u64, {} entries evicted, {} downgrades, {} \
             detached, {} pairs), {} WouldDeadlock, {} WouldBlock, {} TimedOut, {} faults \
             ({} fills, {} failed), {} writes refused, {} load_waits",
            get(&self.granted),
            get(&self.exclusive),
            get(&self.whole),
            get(&self.evicted),
            get(&self.downgraded),
            get(&self.detached),
            get(&self.pairs),
            get(&self.self_deadlocks),
            get(&self.would_block),
            get(&self.timed_out),
            get(&self.faults),
            get(&self.fills),
            get(&self.fill_errors),
            get(&self.writes_refused),
            get(&self.load_waits),
        )
    }
}

impl<const S: usize> Stress<S> {
    /// Checks a fresh grant (its evicted entries, then the tree inside it) and enters it
    /// in the oracle.
    fn granted(&self, thread: usize, guard: &RangeGuard<'_, u64, S>, rng: &mut Rng) -> u64 {
        let (first, last) = (*guard.range().start(), *guard.range().end());
        let mode = guard.mode();
        Stats::bump(&self.stats.granted);
        if mode == LockMode::Exclusive {
            Stats::bump(&self.stats.exclusive);
        }
        if (first, last) == (0, u64::MAX) {
            Stats::bump(&self.stats.whole);
        }
        let mut previous: Option<u64> = None;
        for e in guard.evicted() {
            let (from, to) = (*e.range().start(), *e.range().end());
            assert!(
                first <= from && to <= last,
                "{first}..={last} evicted {from}..={to}"
            );
            if let Some(previous) = previous {
                assert!(from > previous, "evicted entries out of order");
            }
            previous = Some(to);
            match e.entry() {
                Entry::Item(item) => {
                    assert_eq!(from, to, "an item covers {from}..={to}");
                    assert_eq!(**item, from);
                }
                Entry::Value(value) => check_value(*value, from, to),
                other => panic!("evicted {other:?} at {from}..={to}"),
            }
            Stats::bump(&self.stats.evicted);
        }
        let id = self.oracle.enter(thread, first, last, mode);
        self.check_inside(first, last, mode, rng);
        id
    }

    /// Asserts that a few indices of a range this thread holds in `mode` show a lock
    /// entry of that mode, with at least as many holders as the oracle lists.
    fn check_inside(&self, first: u64, last: u64, mode: LockMode, rng: &mut Rng) {
        for index in [first, last, rng.within(first, last)] {
            // Under the oracle's lock nobody leaves it, so every listed holding is held
            // while we look.
            let held = locked(&self.oracle.held);
            let listed = held
                .iter()
                .filter(|h| h.first <= index && index <= h.last)
                .count() as u64;
            let entry = self.xa.get(index);
            drop(held);
            match entry {
                Entry::Locked {
                    mode: found,
                    holders,
                } => {
                    assert_eq!(found, mode, "index {index} of held {first}..={last}");
                    assert!(
                        holders >= listed.max(1),
                        "index {index}: {holders} holders, {listed} granted ranges cover it"
                    );
                    if mode == LockMode::Exclusive {
                        assert_eq!(holders, 1, "index {index} held Exclusive");
                    }
                }
                other => panic!("index {index} of held {first}..={last} ({mode:?}) is {other:?}"),
            }
        }
    }

    /// Holds a granted range for a moment (maybe downgrading or detaching it) and
    /// releases it.
    fn hold(&self, thread: usize, mut guard: RangeGuard<'_, u64, S>, rng: &mut Rng) {
        let id = self.granted(thread, &guard, rng);
        let (first, last) = (*guard.range().start(), *guard.range().end());
        rng.pause();
        if guard.mode() == LockMode::Exclusive && rng.below(4) == 0 {
            // The oracle first: while it says Shared the range is still Exclusive, which
            // is stricter, so no check can fail in between.
            self.oracle.set_mode(id, LockMode::Shared);
            guard.downgrade();
            assert_eq!(guard.mode(), LockMode::Shared);
            Stats::bump(&self.stats.downgraded);
            self.check_inside(first, last, LockMode::Shared, rng);
            rng.pause();
        }
        if rng.below(8) == 0 {
            let detached = guard.detach();
            Stats::bump(&self.stats.detached);
            rng.pause();
            self.oracle.leave(id);
            drop(detached);
        } else {
            self.oracle.leave(id);
            drop(guard);
        }
    }

    /// Two ranges, the second starting at or after the first (the documented order).
    fn pair(&self, thread: usize, rng: &mut Rng) {
        let xa = &self.xa;
        let (a_first, a_last) = rng.range();
        let a_mode = rng.mode();
        let a = lock(xa, a_first, a_last, a_mode).expect("first of a pair");
        let a_id = self.granted(thread, &a, rng);
        let b_first = if rng.below(2) == 0 {
            rng.within(a_first, a_last.min(a_first + 2 * WINDOW))
        } else {
            a_first.max(rng.below(WINDOW))
        };
        let b_last = (b_first + rng.below(WINDOW / 4)).max(b_first);
        let b_mode = rng.mode();
        let overlap = b_first <= a_last;
        let conflict = overlap && !(a_mode.is_compatible(b_mode));
        match lock(xa, b_first, b_last, b_mode) {
            Ok(b) => {
                assert!(!conflict, "{b_first}..={b_last} {b_mode:?} granted while this thread holds {a_first}..={a_last} {a_mode:?}");
                Stats::bump(&self.stats.pairs);
                let b_id = self.granted(thread, &b, rng);
                rng.pause();
                self.oracle.leave(b_id);
                drop(b);
            }
            Err(LockError::WouldDeadlock { index }) => {
                assert!(
                    conflict,
                    "WouldDeadlock at {index} for {b_first}..={b_last} {b_mode:?} while holding {a_first}..={a_last} {a_mode:?}"
                );
                // The walk meets this thread's own lock first, at the range's first index.
                assert_eq!(index, b_first);
                Stats::bump(&self.stats.self_deadlocks);
            }
            Err(e) => panic!("second of a pair: {e}"),
        }
        self.oracle.leave(a_id);
        drop(a);
    }

    fn fault(&self, thread: usize, rng: &mut Rng) {
        let index = rng.below(WINDOW);
        let fail = rng.below(8) == 0;
        Stats::bump(&self.stats.faults);
        let result = self.xa.get_or_fill(index, |i| {
            assert_eq!(i, index);
            // The fill runs holding `index` Exclusive.
            let id = self.oracle.enter(thread, i, i, LockMode::Exclusive);
            assert!(
                matches!(
                    self.xa.get(i),
                    Entry::Locked {
                        mode: LockMode::Exclusive,
                        holders: 1
                    }
                ),
                "index {i} while filling: {:?}",
                self.xa.get(i)
            );
            Stats::bump(&self.stats.fills);
            self.oracle.leave(id);
            if fail {
                Err("no such page")
            } else {
                Ok(Arc::new(i))
            }
        });
        match result {
            Ok(item) => assert_eq!(*item, index),
            Err(FillError::Fill(_)) => {
                assert!(fail);
                Stats::bump(&self.stats.fill_errors);
            }
            Err(FillError::Lock(e)) => panic!("fault at {index}: {e}"),
        }
    }

    fn write(&self, rng: &mut Rng) {
        let xa = &self.xa;
        let index = rng.below(WINDOW);
        let refused = |error: XaError, first: u64, last: u64| match error {
            XaError::Locked { index } if first <= index && index <= last => {
                Stats::bump(&self.stats.writes_refused)
            }
            other => panic!("write of {first}..={last} refused: {other}"),
        };
        match rng.below(5) {
            0 | 1 => match xa.store(index, Arc::new(index)) {
                Ok(old) => check_plain(&old, index),
                Err(e) => refused(e.error, index, index),
            },
            2 => match xa.store_value(index, signature(index, index)) {
                Ok(old) => check_plain(&old, index),
                Err(e) => refused(e, index, index),
            },
            3 => {
                let last = (index + rng.below(16)).min(WINDOW - 1);
                if let Err(e) = xa.store_range(index..=last, signature(index, last)) {
                    refused(e, index, last);
                }
            }
            _ => match xa.erase(index) {
                Ok(old) => check_plain(&old, index),
                Err(e) => refused(e, index, index),
            },
        }
        if rng.below(4) == 0 {
            xa.set_mark(index, Mark::M0);
        }
    }

    fn run_thread(&self, thread: usize, budget: Budget) {
        let xa = &self.xa;
        let mut rng = Rng(0x10c4_0000 + thread as u64 * 0x1_0001);
        let mut round = 0;
        while budget.allows(round) {
            round += 1;
            match rng.below(100) {
                0..=39 => {
                    let (first, last) = rng.range();
                    let guard = lock(xa, first, last, rng.mode()).expect("lock_range");
                    self.hold(thread, guard, &mut rng);
                }
                40..=49 => self.pair(thread, &mut rng),
                50..=59 => {
                    let (first, last) = rng.range();
                    match xa.try_lock_range(first..=last, rng.mode()) {
                        Ok(guard) => self.hold(thread, guard, &mut rng),
                        Err(LockError::WouldBlock) => Stats::bump(&self.stats.would_block),
                        Err(e) => panic!("try_lock_range: {e}"),
                    }
                }
                60..=69 => {
                    let (first, last) = rng.range();
                    let timeout = Duration::from_micros(rng.below(300));
                    match xa.lock_range_timeout(first..=last, rng.mode(), timeout) {
                        Ok(guard) => self.hold(thread, guard, &mut rng),
                        Err(LockError::TimedOut) => Stats::bump(&self.stats.timed_out),
                        Err(e) => panic!("lock_range_timeout: {e}"),
                    }
                }
                70..=79 => self.fault(thread, &mut rng),
                80..=94 => self.write(&mut rng),
                _ => {
                    let index = rng.below(WINDOW);
                    let entry = xa.load_wait(index).expect("load_wait holding nothing");
                    check_plain(&entry, index);
                    Stats::bump(&self.stats.load_waits);
                }
            }
            self.progress.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Aborts the process if `progress` stops moving for [`STALL`] before `done` is set,
/// printing the oracle's holdings (who holds what while everybody waits).
fn watchdog<const S: usize>(
    progress: &AtomicU64,
    done: &AtomicBool,
    oracle: &Oracle,
    xa: &XArray<u64, S>,
    what: &str,
) {
    lock_harness::watchdog(progress, done, STALL, |now| {
        let held = oracle.held.try_lock().map(|h| format!("{:?}", *h));
        // The lock entries left in the tree (lock-free reads: safe while stuck).
        let locks: Vec<String> = xa
            .iter(..)
            .filter(|(_, e)| matches!(e, Entry::Locked { .. }))
            .take(64)
            .map(|(span, e)| format!("{span:?}: {e:?}"))
            .collect();
        format!(
            "lock stress watchdog ({what}): no progress for {STALL:?} after {now} \
             operations; a deadlock or a lost wake-up. Granted ranges: {held:?}. \
             Lock entries: {locks:?}. Aborting."
        )
    });
}

fn stress<const S: usize>(xa: XArray<u64, S>, what: &str) {
    let shared = Stress {
        xa,
        oracle: Oracle::default(),
        progress: AtomicU64::new(0),
        stats: Stats::default(),
    };
    let done = AtomicBool::new(false);
    let budget = Budget::new(40);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let shared = &shared;
                scope.spawn(move || shared.run_thread(t, budget))
            })
            .collect();
        if !cfg!(miri) {
            let (shared, done) = (&shared, &done);
            scope.spawn(move || watchdog(&shared.progress, done, &shared.oracle, &shared.xa, what));
        }
        let mut panicked = None;
        for worker in workers {
            if let Err(panic) = worker.join() {
                panicked.get_or_insert(panic);
            }
        }
        done.store(true, Ordering::Relaxed);
        if let Some(panic) = panicked {
            std::panic::resume_unwind(panic);
        }
    });
    println!("{what}: {}", shared.stats.line());

    let xa = &shared.xa;
    assert!(locked(&shared.oracle.held).is_empty());
    check(xa);
    // Nothing locked or reserved is left behind: only items and values.
    for (span, entry) in xa.iter(..) {
        match &entry {
            Entry::Item(item) => assert_eq!(**item, *span.start()),
            Entry::Value(value) => check_value(*value, *span.start(), *span.end()),
            other => panic!("{what}: {span:?} holds {other:?} after every guard was dropped"),
        }
    }
    // Locking everything evicts every item and value; releasing it leaves nothing.
    let items = xa.len();
    let all = xa.lock_range(.., LockMode::Exclusive).unwrap();
    let evicted_items = all
        .evicted()
        .iter()
        .filter(|e| e.entry().item().is_some())
        .count();
    assert_eq!(evicted_items, items);
    assert_eq!(xa.len(), 0);
    drop(all);
    assert!(xa.is_empty(), "{what}: not empty after the final lock");
    assert_eq!(xa.node_count(), 0);
    check(xa);
}

/// The production shape: 64-slot nodes, the process-wide wait table.
#[test]
fn stress_64_slots_global_table() {
    stress(XArray::<u64, 64>::with_slots(), "64 slots, global table");
}

/// Deep trees of 4-slot nodes (many splits of lock entries), and a one-bucket wait table:
/// every waiter of every entry shares a bucket and its condition variable, so a wake-up
/// must reach exactly the records it marks.
#[test]
fn stress_4_slots_one_bucket_table() {
    let xa = XArray::<u64, 4>::with_slots().with_wait_table(Arc::new(WaitTable::new(1)));
    stress(xa, "4 slots, one-bucket table");
}
