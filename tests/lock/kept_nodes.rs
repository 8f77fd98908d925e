//! Trees that keep emptied nodes for lockers (`XArray::with_kept_nodes`,
//! `src/xarray/kept.rs`): what the claim fast path builds, what the release fast path
//! keeps, the budget that bounds both, and `trim`. The sequences are also run by the
//! differential model (`model.rs` runs every sequence on trees with 2 and 16 places);
//! the race against `trim` is the loom model `tests/loom/kept.rs`.

use std::sync::Arc;

use rangelock::xarray::MAX_KEPT_NODES;
use rangelock::{Entry, LockMode, XArray};

const PLACES: usize = 16;

fn keeping() -> XArray<u64> {
    XArray::new().with_kept_nodes(PLACES)
}

#[track_caller]
fn assert_locked(xa: &XArray<u64>, index: u64) {
    match xa.get(index) {
        Entry::Locked { mode, holders } => {
            assert_eq!((mode, holders), (LockMode::Exclusive, 1), "index {index}")
        }
        other => panic!("index {index} should be locked, found {other:?}"),
    }
}

/// The locked spans `iter(..)` shows, adjacent ones merged: what the tree says is
/// locked, whatever entries carry it.
fn locked_spans(xa: &XArray<u64>) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (span, entry) in xa.iter(..) {
        assert!(matches!(entry, Entry::Locked { .. }), "{entry:?}");
        match spans.last_mut() {
            Some(last) if last.1 + 1 == *span.start() => last.1 = *span.end(),
            _ => spans.push((*span.start(), *span.end())),
        }
    }
    spans
}

/// Leaves a kept empty leaf over `x..x + 64` (`x` a multiple of 64): a page at `x`
/// keeps the leaf while `x + 1` is locked, the page goes, and the release of `x + 1`
/// would leave the leaf empty.
fn empty_a_leaf_by_a_release(xa: &XArray<u64>, x: u64) {
    xa.store(x, Arc::new(x)).unwrap();
    let guard = xa.lock_range(x + 1..=x + 1, LockMode::Exclusive).unwrap();
    assert_eq!(xa.erase(x).unwrap().item().map(|p| **p), Some(x));
    assert_locked(xa, x + 1);
    drop(guard);
}

#[test]
fn a_tree_keeps_nothing_unless_asked() {
    let xa: XArray<u64> = XArray::new();
    assert_eq!(xa.kept_nodes_limit(), 0);
    empty_a_leaf_by_a_release(&xa, 4992);
    assert_eq!(xa.node_count(), 0, "the release unlinked the leaf");
    let a = xa.lock_range(5..=5, LockMode::Exclusive).unwrap();
    let b = xa
        .lock_range(1 << 20..=1 << 20, LockMode::Exclusive)
        .unwrap();
    drop((a, b));
    assert_eq!(xa.node_count(), 0);
    assert_eq!(
        XArray::<u64>::new()
            .with_kept_nodes(1000)
            .kept_nodes_limit(),
        MAX_KEPT_NODES
    );
}

#[test]
fn the_release_that_empties_a_node_keeps_it_for_the_next_locker() {
    let xa = keeping();
    empty_a_leaf_by_a_release(&xa, 4992);
    assert!(xa.is_empty());
    // The leaf and the two nodes above it stay linked, the leaf empty.
    assert_eq!(xa.node_count(), 3);
    xa.check_invariants().unwrap();
    // The next lock there builds nothing, and neither does a lock beside it.
    let guard = xa.lock_range(5002..=5002, LockMode::Exclusive).unwrap();
    assert_locked(&xa, 5002);
    drop(xa.lock_range(5010..=5020, LockMode::Shared).unwrap());
    assert_eq!(xa.node_count(), 3);
    drop(guard);
    assert_eq!(xa.node_count(), 3);
    xa.check_invariants().unwrap();
    // A store into the kept leaf and its erase leave it kept too.
    xa.store(5003, Arc::new(5003)).unwrap();
    assert_eq!(xa.erase(5003).unwrap().item().map(|p| **p), Some(5003));
    assert_eq!(xa.node_count(), 3);
    assert!(xa.is_empty());
    xa.check_invariants().unwrap();
    // `trim` takes a kept leaf with its ancestors, giving its place in the budget back
    // (the self-check compares the two).
    xa.trim();
    assert_eq!(xa.node_count(), 0);
    assert!(xa.is_empty());
    xa.check_invariants().unwrap();
}

#[test]
fn once_the_budget_is_spent_the_release_that_empties_a_node_unlinks_it() {
    let xa = keeping();
    let leaves = PLACES as u64;
    // Leaves under one root over 0..4096, one per 64 indices.
    for leaf in 0..leaves {
        empty_a_leaf_by_a_release(&xa, leaf * 64);
    }
    assert_eq!(xa.node_count(), 1 + PLACES);
    xa.check_invariants().unwrap();
    empty_a_leaf_by_a_release(&xa, leaves * 64);
    assert_eq!(xa.node_count(), 1 + PLACES, "no place left: unlinked");
    assert!(xa.is_empty());
    xa.check_invariants().unwrap();
    xa.trim();
    assert_eq!(xa.node_count(), 0);
    xa.check_invariants().unwrap();
    // `trim` gave every place back: the next release keeps its leaf again.
    empty_a_leaf_by_a_release(&xa, 64);
    assert_eq!(xa.node_count(), 2, "a root over 0..4096 and the kept leaf");
    xa.check_invariants().unwrap();
}

/// Two lockers of disjoint regions of an empty tree: after the first rounds each has
/// nodes of its own, and from then on their locks build nothing and touch no node of
/// the other's region (each region's leaf and the nodes above it are its own; only
/// the root is shared, read on the walk).
#[test]
fn disjoint_lockers_each_end_up_with_a_node_of_their_own() {
    let xa = keeping();
    let (a, b) = (5, 1 << 20);
    let round = |xa: &XArray<u64>| {
        let first = xa.lock_range(a..=a, LockMode::Exclusive).unwrap();
        let second = xa.lock_range(b..=b, LockMode::Exclusive).unwrap();
        assert_locked(xa, a);
        assert_locked(xa, b);
        drop((first, second));
        assert!(xa.is_empty());
        xa.check_invariants().unwrap();
    };
    // The first round: `a` in the head, `b` forces a root over 0..2^24 (records in its
    // slots), which its last release keeps.
    round(&xa);
    assert_eq!(xa.node_count(), 1);
    // The second: `a` stays a record in the root's slot 0 (a chain there would leave
    // the root holding only its first child), `b` builds the nodes down to its leaf.
    round(&xa);
    assert_eq!(xa.node_count(), 4, "the root and b's chain of three");
    // The third: the root holds b's chain, so `a` builds its own.
    round(&xa);
    assert_eq!(xa.node_count(), 7);
    for _ in 0..10 {
        round(&xa);
    }
    assert_eq!(xa.node_count(), 7, "nothing built after the third round");
    // Each lock now lies in its own leaf: both leaves' entries are inline, found at
    // their indices and nowhere else.
    let first = xa.lock_range(a..=a, LockMode::Exclusive).unwrap();
    let second = xa.lock_range(b..=b, LockMode::Exclusive).unwrap();
    assert_eq!(locked_spans(&xa), [(a, a), (b, b)]);
    drop((first, second));
    xa.trim();
    assert_eq!(xa.node_count(), 0);
    xa.check_invariants().unwrap();
}

/// A range built down to lies in the deepest node that covers it: a 256-index range at
/// an unaligned offset inside one node of shift 6 (64 slots of 64 indices) becomes
/// inline entries for the slots it covers whole and records for its two ends, and locks
/// exactly its indices.
#[test]
fn a_range_built_down_locks_exactly_its_indices() {
    let xa = keeping();
    // A page at 0 makes a tree (root over 0..2^24 after the second item) whose slot
    // over 2^18.. is empty.
    xa.store(0, Arc::new(0)).unwrap();
    xa.store(1 << 23, Arc::new(1)).unwrap();
    let nodes = xa.node_count();
    let (first, last) = ((1 << 18) + 100, (1 << 18) + 355);
    let guard = xa.lock_range(first..=last, LockMode::Exclusive).unwrap();
    assert_eq!(
        xa.node_count(),
        nodes + 2,
        "a node of shift 12 and one of shift 6"
    );
    let locked: Vec<(u64, u64)> = xa
        .iter(1..(1 << 23))
        .map(|(span, _)| (*span.start(), *span.end()))
        .collect();
    assert_eq!(locked.first().map(|s| s.0), Some(first));
    assert_eq!(locked.last().map(|s| s.1), Some(last));
    assert!(
        locked.windows(2).all(|w| w[0].1 + 1 == w[1].0),
        "{locked:?}"
    );
    assert!(xa.get(first - 1).is_empty() && xa.get(last + 1).is_empty());
    xa.check_invariants().unwrap();
    drop(guard);
    assert_eq!(xa.len(), 2);
    assert_eq!(xa.node_count(), nodes + 2, "the bottom node is kept");
    xa.check_invariants().unwrap();
    xa.trim();
    assert_eq!(xa.node_count(), nodes);
    xa.check_invariants().unwrap();
}

/// With the budget spent, a claim builds nothing: it takes the slot of the deepest
/// node there, as on a tree that keeps nothing.
#[test]
fn with_the_budget_spent_a_claim_builds_nothing() {
    let xa: XArray<u64> = XArray::new().with_kept_nodes(1);
    xa.store(0, Arc::new(0)).unwrap();
    xa.store(1 << 23, Arc::new(1)).unwrap();
    let nodes = xa.node_count();
    let one = xa
        .lock_range(1 << 18..=1 << 18, LockMode::Exclusive)
        .unwrap();
    assert_eq!(
        xa.node_count(),
        nodes + 3,
        "built down to a leaf: the one place"
    );
    let two = xa
        .lock_range(1 << 19..=1 << 19, LockMode::Exclusive)
        .unwrap();
    assert_eq!(xa.node_count(), nodes + 3, "no place left");
    assert_locked(&xa, 1 << 19);
    drop((one, two));
    assert_eq!(xa.node_count(), nodes + 3);
    xa.check_invariants().unwrap();
}
