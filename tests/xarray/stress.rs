//! Concurrent stress: lock-free readers against writers over overlapping indices, with
//! an oracle that needs no global model.
//!
//! * Every item is a [`Page`] that carries its index and a unique generation, and whose
//!   `Drop` overwrites a canary. A reader asserts that every page it gets belongs to the
//!   index it asked for and still has a live canary, also for pages it borrowed earlier
//!   through the same `ReadGuard` (they must stay valid until the guard drops, even if
//!   they were erased meanwhile).
//! * Every value names the range store that wrote it (`first << 32 | last`), so a
//!   reader can check that the index (or the span an iterator reports) lies inside it.
//! * Iteration must report spans in ascending order, each once, intersecting the range.
//! * At the end the tree passes `check_invariants`, and once the tree and the epoch's
//!   garbage are gone every page ever created has been dropped exactly once (none leaked;
//!   a second drop would find the canary dead and panic).
//!
//! Two configurations run: 4-slot nodes with the tree's own epoch `Collector` (deep
//! trees, many splits and frees), and the default 64-slot tree on the global collector.
//! Each runs for `RANGELOCK_STRESS_SECS` seconds (default 1, so about 2 s in all; CI
//! soaks with a larger value). A watchdog aborts the process, naming the stall, if no
//! thread makes progress for 30 s (a deadlock or livelock). Under Miri each thread runs
//! a few operations instead, and deadlocks are Miri's to report.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_epoch::Collector;
use rangelock::{CompareExchangeError, Entry, EntryRef, Mark, XArray};

use crate::support::lock_harness;
use crate::support::lock_harness::{check_value, signature, splitmix64, Budget};

/// Range operations and most single-index ones work on `0..WINDOW`: 5 levels of 4-slot
/// nodes, 2 levels of 64-slot ones.
const WINDOW: u64 = 1024;
/// Far indices that only single-index item operations touch: storing one grows the root
/// to full height, erasing the last one shrinks it back.
const FAR: [u64; 4] = [1 << 20, 1 << 40, u64::MAX - 1, u64::MAX];
const READERS: usize = 3;
const WRITERS: usize = 2;
/// The watchdog aborts after this long without progress.
const STALL: Duration = Duration::from_secs(30);

/// A live page's canary; `Drop` replaces it with [`DEAD`].
const LIVE: u64 = 0x5afe_5afe_5afe_5afe;
const DEAD: u64 = 0xdead_dead_dead_dead;

/// Pages created and dropped, to prove at the end that none leaked.
#[derive(Default)]
struct Census {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

/// An item that knows where it belongs and notices being used after its drop.
///
/// `repr(C)` puts the canary first: the allocator's free-list bookkeeping overwrites the
/// start of a freed block, which is the `Arc`'s two counts, not the canary, so a freed
/// page keeps its `DEAD` canary until the memory is reused.
#[repr(C)]
struct Page {
    canary: AtomicU64,
    index: u64,
    generation: u64,
    census: Arc<Census>,
}

impl Page {
    fn new(index: u64, generation: u64, census: &Arc<Census>) -> Arc<Page> {
        census.created.fetch_add(1, Ordering::Relaxed);
        Arc::new(Page {
            canary: AtomicU64::new(LIVE),
            index,
            generation,
            census: Arc::clone(census),
        })
    }

    /// Asserts that the page is live and belongs at `index`.
    #[track_caller]
    fn check(&self, index: u64) {
        let canary = self.canary.load(Ordering::Relaxed);
        assert_eq!(
            canary, LIVE,
            "page for index {index} used after its drop (canary {canary:#x})"
        );
        assert_eq!(
            self.index, index,
            "index {index} holds the page of index {} (generation {})",
            self.index, self.generation
        );
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let canary = self.canary.swap(DEAD, Ordering::Relaxed);
        assert_eq!(
            canary, LIVE,
            "page {} (generation {}) dropped twice",
            self.index, self.generation
        );
        self.census.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks an entry a writer got back for `index`.
#[track_caller]
fn check_entry(entry: &Entry<Page>, index: u64) {
    match entry {
        Entry::Empty => {}
        Entry::Item(page) => page.check(index),
        Entry::Value(value) => check_value(*value, index, index),
        Entry::Locked { .. } => panic!("nothing locks in this test"),
    }
}

/// splitmix64: a small deterministic generator, one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Mostly a window index, sometimes a far one.
    fn index(&mut self) -> u64 {
        if self.below(10) == 0 {
            FAR[self.below(FAR.len() as u64) as usize]
        } else {
            self.below(WINDOW)
        }
    }

    /// A range inside the window, often small, sometimes most of it.
    fn range(&mut self) -> (u64, u64) {
        let first = self.below(WINDOW);
        let len = match self.below(4) {
            0 => self.below(4),
            1 => self.below(20),
            2 => self.below(100),
            _ => self.below(WINDOW),
        };
        (first, (first + len).min(WINDOW - 1))
    }
}

/// What the threads share.
struct Shared<const SLOTS: usize> {
    xa: XArray<Page, SLOTS>,
    census: Arc<Census>,
    generation: AtomicU64,
    /// Bumped by every thread after every round; watched by the watchdog.
    progress: AtomicU64,
}

fn writer<const SLOTS: usize>(shared: &Shared<SLOTS>, seed: u64, budget: Budget) {
    let xa = &shared.xa;
    let mut rng = Rng(seed);
    let mut round = 0;
    while budget.allows(round) {
        round += 1;
        let generation = shared.generation.fetch_add(1, Ordering::Relaxed);
        let page = |index| Page::new(index, generation, &shared.census);
        match rng.below(100) {
            0..=29 => {
                let index = rng.index();
                check_entry(&xa.store(index, page(index)).unwrap(), index);
            }
            30..=49 => {
                let index = rng.index();
                check_entry(&xa.erase(index).unwrap(), index);
            }
            50..=59 => {
                let (first, last) = rng.range();
                xa.store_range(first..=last, signature(first, last))
                    .unwrap();
            }
            60..=67 => {
                let (first, last) = rng.range();
                xa.erase_range(first..=last).unwrap();
            }
            68..=77 => {
                let index = rng.below(WINDOW);
                let old = xa.store_value(index, signature(index, index)).unwrap();
                check_entry(&old, index);
            }
            78..=89 => {
                let index = rng.index();
                let current = xa.get(index);
                check_entry(&current, index);
                match xa.compare_exchange(index, &current, Entry::Item(page(index))) {
                    Ok(old) => assert!(old.same_as(&current), "compare_exchange at {index}"),
                    Err(error) => {
                        // The other writer changed it meanwhile; our page comes back.
                        let (found, new) = match error {
                            CompareExchangeError::Mismatch { current, new } => (current, new),
                            CompareExchangeError::Refused { error, .. } => {
                                panic!("compare_exchange at {index} refused: {error}")
                            }
                        };
                        check_entry(&found, index);
                        check_entry(&new, index);
                    }
                }
            }
            _ => {
                let index = rng.index();
                if rng.below(2) == 0 {
                    xa.set_mark(index, Mark::M0);
                } else {
                    xa.clear_mark(index, Mark::M0);
                }
            }
        }
        shared.progress.fetch_add(1, Ordering::Relaxed);
    }
}

fn reader<const SLOTS: usize>(shared: &Shared<SLOTS>, seed: u64, budget: Budget) {
    let xa = &shared.xa;
    let mut rng = Rng(seed);
    let mut round = 0;
    while budget.allows(round) {
        round += 1;
        {
            // A batch through one guard; every borrowed page is re-checked at the end.
            let guard = xa.read();
            let mut held: Vec<(u64, &Page)> = Vec::new();
            for _ in 0..16 {
                let index = rng.index();
                match guard.entry(index) {
                    EntryRef::Empty => {}
                    EntryRef::Item(page) => {
                        page.check(index);
                        held.push((index, page));
                    }
                    EntryRef::Value(value) => check_value(value, index, index),
                    EntryRef::Locked { .. } => panic!("nothing locks in this test"),
                }
                if rng.below(4) == 0 {
                    let _ = guard.get_mark(index, Mark::M0);
                }
            }
            let (first, last) = rng.range();
            let mut previous_end: Option<u64> = None;
            for (span, entry) in guard.iter(first..=last).take(64) {
                let (start, end) = (*span.start(), *span.end());
                assert!(
                    start <= end && end >= first && start <= last,
                    "span {start}..={end} does not intersect {first}..={last}"
                );
                if let Some(previous_end) = previous_end {
                    assert!(
                        start > previous_end,
                        "span {start}..={end} after one that ended at {previous_end}"
                    );
                }
                match entry {
                    EntryRef::Empty => panic!("iteration reported an empty span"),
                    EntryRef::Item(page) => {
                        assert_eq!(start, end, "a page spans {start}..={end}");
                        page.check(start);
                        held.push((start, page));
                    }
                    EntryRef::Value(value) => check_value(value, start, end),
                    EntryRef::Locked { .. } => panic!("nothing locks in this test"),
                }
                previous_end = Some(end);
            }
            if let Some(page) = guard.load(rng.index()) {
                page.check(page.index);
            }
            for (index, page) in held {
                page.check(index);
            }
        }
        // The owned paths: `Arc`s that outlive any guard.
        let index = rng.index();
        let loaded = xa.load(index);
        check_entry(&xa.get(index), index);
        let (first, last) = rng.range();
        for (span, entry) in xa.iter(first..=last).take(16) {
            match &entry {
                Entry::Item(page) => page.check(*span.start()),
                Entry::Value(value) => check_value(*value, *span.start(), *span.end()),
                Entry::Empty => panic!("iteration reported an empty span"),
                Entry::Locked { .. } => panic!("nothing locks in this test"),
            }
        }
        if let Some((span, entry)) = xa.find(first) {
            assert!(*span.end() >= first, "find({first}) returned {span:?}");
            if let Entry::Item(page) = &entry {
                page.check(*span.start());
            }
        }
        if let Some(page) = loaded {
            page.check(index);
        }
        shared.progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// Aborts the process if `progress` stops moving for [`STALL`] before `done` is set.
fn watchdog(progress: &AtomicU64, done: &AtomicBool, what: &str) {
    lock_harness::watchdog(progress, done, STALL, |now| {
        format!(
            "stress watchdog ({what}): no progress for {STALL:?} after {now} rounds; \
             a deadlock or livelock in the tree. Aborting."
        )
    });
}

/// Runs the readers and writers on `xa` until the budget is spent, checks the final
/// tree, and drops it.
fn run<const SLOTS: usize>(xa: XArray<Page, SLOTS>, census: Arc<Census>, what: &str) {
    let shared = Shared {
        xa,
        census,
        generation: AtomicU64::new(0),
        progress: AtomicU64::new(0),
    };
    let done = AtomicBool::new(false);
    let (writer_budget, reader_budget) = (Budget::new(60), Budget::new(8));
    thread::scope(|scope| {
        let workers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let shared = &shared;
                scope.spawn(move || writer(shared, 0x1000 + w as u64, writer_budget))
            })
            .chain((0..READERS).map(|r| {
                let shared = &shared;
                scope.spawn(move || reader(shared, 0x2000 + r as u64, reader_budget))
            }))
            .collect();
        if !cfg!(miri) {
            let (progress, done) = (&shared.progress, &done);
            scope.spawn(move || watchdog(progress, done, what));
        }
        for worker in workers {
            if let Err(panic) = worker.join() {
                done.store(true, Ordering::Relaxed);
                std::panic::resume_unwind(panic);
            }
        }
        done.store(true, Ordering::Relaxed);
    });

    let xa = &shared.xa;
    if let Err(violation) = xa.check_invariants() {
        panic!("{what}: tree invariant broken after the run: {violation}");
    }
    let mut items = 0;
    for (span, entry) in xa.iter(..) {
        match &entry {
            Entry::Item(page) => {
                page.check(*span.start());
                items += 1;
            }
            Entry::Value(value) => check_value(*value, *span.start(), *span.end()),
            Entry::Empty => panic!("iteration reported an empty span"),
            Entry::Locked { .. } => panic!("nothing locks in this test"),
        }
    }
    assert_eq!(items, xa.len(), "{what}: len() disagrees with iteration");
}

/// 4-slot nodes and the tree's own collector: dropping the tree and the collector frees
/// every retired page deterministically.
#[test]
fn stress_4_slots_own_collector() {
    let census = Arc::new(Census::default());
    let collector = Collector::new();
    let xa = XArray::<Page, 4>::with_collector(collector.clone());
    run(xa, Arc::clone(&census), "4 slots, own collector");
    drop(collector);
    // `run` dropped the tree; with the last handle on the collector gone, every bag of
    // garbage has run.
    assert_eq!(
        census.dropped.load(Ordering::Relaxed),
        census.created.load(Ordering::Relaxed),
        "pages leaked"
    );
}

/// The production configuration: 64-slot nodes on crossbeam-epoch's global collector.
/// Garbage there is freed by later pins, so the census flushes until it balances.
#[test]
fn stress_64_slots_global_collector() {
    let census = Arc::new(Census::default());
    run(
        XArray::<Page, 64>::new(),
        Arc::clone(&census),
        "64 slots, global collector",
    );
    let created = census.created.load(Ordering::Relaxed);
    // Other tests of this binary may pin the global epoch meanwhile and hold it back for
    // a while; a real leak never balances.
    for _ in 0..100_000 {
        if census.dropped.load(Ordering::Relaxed) == created {
            break;
        }
        crossbeam_epoch::pin().flush();
        thread::yield_now();
    }
    assert_eq!(
        census.dropped.load(Ordering::Relaxed),
        created,
        "pages leaked"
    );
}
