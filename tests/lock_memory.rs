//! Memory of range locks: a lock of any length on an empty tree costs O(levels) nodes
//! and a few KiB at most, holders stack in the entry word (no per-holder allocation), a
//! lock over a populated range evicts exactly its entries, and releasing gives every
//! byte back.
//!
//! A counting global allocator (`testkit/src/counting_alloc.rs`) keeps, per thread, the
//! bytes currently live, the high-water mark of that, and the bytes ever allocated; per
//! thread, because the harness runs tests in parallel. The measurements use the global
//! epoch collector, warmed up first (the thread's epoch registration and the process-wide
//! wait table are allocated once, before any baseline), and everything they measure
//! happens on their own thread. The byte-exact release checks use trees with their own
//! `Collector`: once the tree and the collector are dropped, everything the tree retired
//! has been freed on this thread.
//!
//! A binary of its own, not a module of `tests/lock/`: the allocator is per binary, and
//! the other lock tests retire garbage into the global collector, which a measured
//! thread's pins could free in the middle of a byte-exact measurement.

#![cfg(not(loom))]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;

use crossbeam_epoch::Collector;
use rangelock::{Entry, LockMode, RangeLock, XArray};

use rangelock_testkit::counting_alloc::{allocated, live, peak, reset_peak, Counting};
use support::tree_checks::{check, levels};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocates this thread's one-time state (its global-epoch registration, the lazily
/// built process-wide wait table) so that no measurement pays for it.
fn warm_up() {
    let xa: XArray<u64> = XArray::new();
    let _ = xa.load(0);
    let held = xa.lock_range(0..10, LockMode::Exclusive).unwrap();
    assert_eq!(
        xa.try_lock_range(5..6, LockMode::Shared).unwrap_err(),
        rangelock::LockError::WouldDeadlock { index: 5 }
    );
    drop(held);
    // A timed wait on a held range visits the (global) wait table's code paths.
    let detached = xa.lock_range(0..10, LockMode::Exclusive).unwrap().detach();
    let _ = xa.lock_range_timeout(0..10, LockMode::Shared, std::time::Duration::ZERO);
    drop(detached);
    assert!(xa.is_empty());
}

/// What one lock of `first..=last` on an empty tree costs.
///
/// Peaks are bounded by bytes *allocated*: the live-byte delta of a call can only be
/// smaller (pinning the global epoch may free earlier trees' garbage in the middle of a
/// measurement), never larger.
#[derive(Debug)]
struct Cost {
    /// Bytes allocated by the `lock_range` call: a bound on its peak of live bytes.
    allocated: usize,
    /// The tree's node bytes while the guard is held.
    held: usize,
    /// Nodes in the tree while the guard is held.
    nodes: usize,
    /// Bytes allocated by the release (an epoch bag, when retiring fills one).
    release_allocated: usize,
}

/// [`lock_cost`], the cheapest of three tries. Any pin of the global epoch may also
/// allocate for crossbeam-epoch itself, rarely: a ~2 KiB bag when the thread's bag of
/// deferred frees fills up, which can happen when it unlinks the records of exited
/// threads (other tests'). The lock's own cost is the same every time.
fn cheapest<const S: usize>(first: u64, last: u64, mode: LockMode) -> Cost {
    let mut best = lock_cost::<S>(first, last, mode);
    for _ in 0..2 {
        let again = lock_cost::<S>(first, last, mode);
        assert_eq!((again.held, again.nodes), (best.held, best.nodes));
        best.allocated = best.allocated.min(again.allocated);
        best.release_allocated = best.release_allocated.min(again.release_allocated);
    }
    if S == 64 {
        // Nothing but the nodes: the guard, the claim and the held list live inline, and
        // so does the cursor's path up to 12 levels (a 4-slot tree has up to 32: it
        // spills).
        assert_eq!(
            best.allocated, best.held,
            "[{first}, {last}]: bytes allocated"
        );
    }
    best
}

fn lock_cost<const S: usize>(first: u64, last: u64, mode: LockMode) -> Cost {
    let xa: XArray<u64, S> = XArray::with_slots();
    let _ = xa.load(0);
    let before = allocated();
    let guard = if (first, last) == (0, u64::MAX) {
        xa.lock_range(.., mode)
    } else {
        xa.lock_range(first..=last, mode)
    }
    .unwrap();
    let lock_allocated = allocated() - before;
    let held = xa.memory_usage();
    let nodes = xa.node_count();
    assert!(lock_allocated >= held);
    check(&xa);
    assert!(guard.evicted().is_empty());
    let expected = Entry::<u64>::Locked { mode, holders: 1 };
    for index in [first, last, first + (last - first) / 2] {
        assert!(
            xa.get(index).same_as(&expected),
            "[{first}, {last}] at {index}"
        );
    }
    let before = allocated();
    drop(guard);
    let release_allocated = allocated() - before;
    assert!(
        xa.is_empty(),
        "[{first}, {last}]: not empty after the release"
    );
    assert_eq!(xa.node_count(), 0);
    assert_eq!(xa.memory_usage(), 0);
    check(&xa);
    Cost {
        allocated: lock_allocated,
        held,
        nodes,
        release_allocated,
    }
}

/// The exponents k of the range lengths 2^k to test: all of 1..=64, or (under Miri,
/// where each lock costs seconds) 1, 22, 43 and 64.
fn lengths() -> impl Iterator<Item = u32> {
    (1..=64u32).step_by(if cfg!(miri) { 21 } else { 1 })
}

/// `lock_range(0..2^k)` on an empty tree, for every k in 1..=64 (and `..`), also
/// `1..2^k` and the last 2^k indices: the call allocates at most 8 KiB (a bound on its
/// peak of live bytes), exactly the tree's nodes, at most one node per level of
/// the tree the range's ends need, and the release leaves no node. Then, with an owned
/// collector, the same locks and releases give back every byte.
///
/// Everything runs in one test function: the per-thread counters would not mix with
/// other tests anyway, but one function keeps the epoch's deferred frees of all these
/// trees on this thread.
#[test]
#[cfg_attr(
    feature = "lockdep",
    ignore = "lockdep allocates (classes, graph, held lists)"
)]
fn locks_cost_per_level_and_release_everything() {
    warm_up();
    let mut most = (0usize, 0usize, 0usize);
    let mut worst = String::new();
    let (mut most_4, mut most_release, mut most_aligned) = (0usize, 0usize, 0usize);
    for k in lengths() {
        let last = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
        for (first, last) in [(0, last), (1, last), (u64::MAX - last, u64::MAX)] {
            for mode in [LockMode::Exclusive, LockMode::Shared] {
                let cost = cheapest::<64>(first, last, mode);
                let height = levels::<64>(last);
                assert!(
                    cost.nodes <= height,
                    "[{first}, {last}]: {} nodes > {height} levels",
                    cost.nodes
                );
                assert!(cost.allocated <= 8192, "[{first}, {last}]: {cost:?}");
                assert!(
                    cost.release_allocated <= 8192,
                    "[{first}, {last}]: {cost:?}"
                );
                if cost.allocated > most.0 {
                    worst = format!("[{first}, {last}] {mode:?}: {cost:?}");
                }
                most = (
                    most.0.max(cost.allocated),
                    most.1.max(cost.held),
                    most.2.max(cost.nodes),
                );
                most_release = most_release.max(cost.release_allocated);
                if first == 0 {
                    most_aligned = most_aligned.max(cost.allocated);
                }

                // 64-byte nodes, up to 32 levels.
                let cost = cheapest::<4>(first, last, mode);
                assert!(
                    cost.nodes <= levels::<4>(last),
                    "4 slots [{first}, {last}]: {cost:?}"
                );
                assert!(
                    cost.allocated <= 4096,
                    "4 slots [{first}, {last}]: {cost:?}"
                );
                most_4 = most_4.max(cost.allocated);
            }
        }
    }
    // All of u64, spelled `..`: the fast path, one compare-exchange of the head.
    let whole = cheapest::<64>(0, u64::MAX, LockMode::Exclusive);
    assert_eq!(
        (
            whole.allocated,
            whole.held,
            whole.nodes,
            whole.release_allocated
        ),
        (0, 0, 0, 0)
    );
    println!(
        "lock_range on an empty tree, k in 1..=64: at most {} bytes allocated by the call \
         (= node bytes held, at most {}), {} nodes (64 slots; worst {worst}); releases \
         allocated at most {most_release} (epoch bags); 0..2^k alone: at most \
         {most_aligned}; at most {most_4} bytes with 4 slots; `..`: {whole:?}",
        most.0, most.1, most.2
    );

    // Byte-exact: an owned collector frees everything the tree retired when it goes.
    let start = live();
    {
        let xa: XArray<u64> = XArray::with_collector(Collector::new());
        for k in lengths() {
            let last = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
            for (first, last) in [(0, last), (1, last), (u64::MAX - last, u64::MAX)] {
                drop(xa.lock_range(first..=last, LockMode::Exclusive).unwrap());
                let a = xa.lock_range(first..=last, LockMode::Shared).unwrap();
                let b = xa.lock_range(first..=last, LockMode::Shared).unwrap();
                drop((b, a));
                assert!(xa.is_empty());
                assert_eq!(xa.node_count(), 0);
            }
        }
        drop(xa.lock_range(.., LockMode::Shared).unwrap());
    }
    assert_eq!(
        live() - start,
        0,
        "bytes left after the tree and its collector"
    );
}

/// Shared holders are counted in the entry word: a hundred overlapping Shared locks of a
/// range allocate no more than two do (the first is a lock record in the head, the second
/// moves it into a node whose entries count their holders). (Detached, so that this thread's held-lock list, which
/// spills to the heap past 8 guards, stays out of the count.)
#[test]
fn shared_holders_stack_without_allocating() {
    warm_up();
    // (first holder's bytes, second holder's, 98 more holders'), the cheapest of three
    // tries (see `cheapest`: a pin of the global epoch may rarely allocate an epoch bag).
    let mut best = (usize::MAX, usize::MAX, usize::MAX);
    for _ in 0..3 {
        let xa: XArray<u64> = XArray::new();
        let _ = xa.load(0);
        let mut guards = Vec::with_capacity(100);
        let shared = || {
            xa.lock_range(0..1 << 40, LockMode::Shared)
                .unwrap()
                .detach()
        };
        let before = allocated();
        guards.push(shared());
        let one = allocated() - before;
        guards.push(shared());
        let two = allocated() - before - one;
        for _ in 2..100 {
            guards.push(shared());
        }
        let more = allocated() - before - one - two;
        assert!(matches!(
            xa.get(12345),
            Entry::Locked {
                mode: LockMode::Shared,
                holders: 100
            }
        ));
        assert!(one + two >= xa.memory_usage());
        best = (best.0.min(one), best.1.min(two), best.2.min(more));
        guards.clear();
        assert!(xa.is_empty());
        assert_eq!(xa.node_count(), 0);
    }
    // The first holder is a lock record in the head (from this thread's pool cache);
    // the second moves it into one node of 16 entries of 2^36 indices each, which every
    // later holder joins by raising their counts. The tree's first node comes in a slab
    // chunk of its own: a 48-byte chunk header and the 544-byte node.
    assert_eq!(best.0, 0, "the first holder of 0..2^40 allocated");
    assert_eq!(
        best.1,
        48 + 544,
        "one node for the second holder of 0..2^40"
    );
    assert_eq!(best.2, 0, "98 more holders allocated");
    println!(
        "0..2^40 Shared: {} bytes allocated for the first holder, {} for the second, {} for \
         98 more",
        best.0, best.1, best.2
    );

    // The same through RangeLock (a tree of its own).
    let ranges = RangeLock::new();
    let w = ranges.lock(0..4096, LockMode::Exclusive).unwrap();
    assert!(
        ranges.memory_usage() <= 2 * 544,
        "{}",
        ranges.memory_usage()
    );
    drop(w);
    assert!(ranges.is_unlocked());
    assert_eq!(ranges.memory_usage(), 0);
}

/// A lock over a populated range (items at 0..1000) evicts exactly those items, in index
/// order and each once; the tree then holds no item; after the release the tree is
/// empty, and once the tree and its collector are gone every byte is back.
#[test]
#[cfg_attr(
    feature = "lockdep",
    ignore = "lockdep allocates (classes, graph, held lists)"
)]
fn locking_a_populated_range_evicts_exactly_its_items() {
    warm_up();
    let start = live();
    let n = if cfg!(miri) { 100 } else { 1000 };
    let peak_during;
    {
        let xa: XArray<u64> = XArray::with_collector(Collector::new());
        for i in 0..n {
            xa.store(i, Arc::new(i)).unwrap();
        }
        xa.store_value(1 << 41, 7).unwrap(); // beyond the range: untouched
        check(&xa);
        let before = reset_peak();
        let guard = xa.lock_range(0..1 << 40, LockMode::Exclusive).unwrap();
        peak_during = peak() - before;
        let evicted = guard.evicted();
        assert_eq!(evicted.len() as u64, n);
        for (i, e) in evicted.iter().enumerate() {
            assert_eq!(e.range(), i as u64..=i as u64);
            assert_eq!(e.entry().item().map(|p| **p), Some(i as u64));
        }
        assert_eq!(xa.len(), 0);
        assert!(matches!(
            xa.get(500),
            Entry::Locked {
                mode: LockMode::Exclusive,
                holders: 1
            }
        ));
        assert_eq!(xa.get(1 << 41).value(), Some(7));
        check(&xa);
        drop(guard);
        assert!(xa.get(500).is_empty());
        assert_eq!(xa.erase(1 << 41).unwrap().value(), Some(7));
        assert!(xa.is_empty());
        assert_eq!(xa.node_count(), 0);
        assert_eq!(xa.memory_usage(), 0);
    }
    // Measured before printing: the harness captures output in a buffer on this thread.
    let left = live() - start;
    println!(
        "lock 0..2^40 over {n} items: {peak_during} bytes live at the peak of the call \
         (the evicted list and the nodes the items lived in, retired to the epoch)"
    );
    assert_eq!(left, 0, "bytes left after the tree and its collector");
}
