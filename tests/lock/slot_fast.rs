//! The lock fast paths inside a node (`src/xarray/slot_fast.rs`): a range over empty
//! slots of one node becomes one word per slot under that node's lock, and the release of
//! such entries empties those slots while the node keeps another entry. These tests pin
//! down what the paths must leave behind in the cases where they apply and in the ones
//! where they must hand over to the general path (a node that would empty, a root that
//! would need shrinking, an entry with a second holder). The sequences are covered by the
//! differential model (`model.rs`), the races by the loom models (`tests/loom/slot_fast.rs`).

use std::sync::Arc;

use rangelock::{Entry, LockError, LockMode, XArray};

/// What `iter(..)` shows of the tree: (first, last, entry) for every entry.
fn shape(xa: &XArray<u64>) -> Vec<(u64, u64, String)> {
    xa.iter(..)
        .map(|(span, entry)| (*span.start(), *span.end(), format!("{entry:?}")))
        .collect()
}

#[track_caller]
fn assert_locked(xa: &XArray<u64>, index: u64, mode: LockMode, holders: u64) {
    match xa.get(index) {
        Entry::Locked {
            mode: m,
            holders: h,
        } => {
            assert_eq!((m, h), (mode, holders), "index {index}")
        }
        other => panic!("index {index} should be locked, found {other:?}"),
    }
}

#[test]
fn a_lock_in_a_populated_leaf_is_one_entry_and_its_release_leaves_the_leaf_as_it_was() {
    let xa: XArray<u64> = XArray::new();
    for i in (0..64).filter(|&i| i != 10) {
        xa.store(i, Arc::new(i)).unwrap();
    }
    let before = shape(&xa);
    let nodes = xa.node_count();
    let guard = xa.lock_range(10..=10, LockMode::Exclusive).unwrap();
    assert_locked(&xa, 10, LockMode::Exclusive, 1);
    assert!(guard.evicted().is_empty());
    assert_eq!(xa.node_count(), nodes, "the lock built no structure");
    assert_eq!(xa.len(), 63);
    xa.check_invariants().unwrap();
    assert_eq!(
        xa.try_lock_range(10..=10, LockMode::Shared).map(drop),
        Err(LockError::WouldDeadlock { index: 10 }),
        "this thread holds it Exclusive"
    );
    drop(guard);
    assert_eq!(shape(&xa), before);
    assert_eq!(xa.node_count(), nodes);
    xa.check_invariants().unwrap();
}

#[test]
fn a_range_over_empty_slots_of_one_node_locks_exactly_its_indices() {
    // A page at 0 and at 4096: under the root, the node over 0..4096 has slots of 64
    // indices, the first a leaf (the page at 0), the others empty.
    let xa: XArray<u64> = XArray::new();
    xa.store(0, Arc::new(0)).unwrap();
    xa.store(4096, Arc::new(4096)).unwrap();
    let before = shape(&xa);
    let nodes = xa.node_count();
    // 100..=300: part of the slot over 64..128, all of 128..192 and 192..256, part of
    // 256..320.
    let guard = xa.lock_range(100..=300, LockMode::Exclusive).unwrap();
    assert_eq!(xa.node_count(), nodes);
    for i in [100, 127, 128, 200, 256, 300] {
        assert_locked(&xa, i, LockMode::Exclusive, 1);
    }
    for i in [1, 64, 99, 301, 319, 320, 4095] {
        assert!(xa.get(i).is_empty(), "index {i}: {:?}", xa.get(i));
    }
    xa.check_invariants().unwrap();
    // Another thread's view: the edges are exact.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                xa.try_lock_range(300..=301, LockMode::Shared).map(drop),
                Err(LockError::WouldBlock)
            );
            assert_eq!(
                xa.try_lock_range(90..=100, LockMode::Shared).map(drop),
                Err(LockError::WouldBlock)
            );
            // Beside it, in the same slot as its last part: granted.
            let next = xa.try_lock_range(301..=310, LockMode::Exclusive).unwrap();
            assert_locked(&xa, 305, LockMode::Exclusive, 1);
            drop(next);
        });
    });
    drop(guard);
    assert_eq!(shape(&xa), before);
    assert_eq!(xa.node_count(), nodes);
    xa.check_invariants().unwrap();
}

#[test]
fn an_entry_joined_by_a_second_holder_outlives_the_first_release() {
    let xa: XArray<u64> = XArray::new();
    for i in [0, 1, 3] {
        xa.store(i, Arc::new(i)).unwrap();
    }
    let first = xa.lock_range(2..=2, LockMode::Shared).unwrap();
    let second = xa.lock_range(2..=2, LockMode::Shared).unwrap();
    assert_locked(&xa, 2, LockMode::Shared, 2);
    drop(first);
    assert_locked(&xa, 2, LockMode::Shared, 1);
    xa.check_invariants().unwrap();
    drop(second);
    assert!(xa.get(2).is_empty());
    assert_eq!(xa.len(), 3);
    xa.check_invariants().unwrap();
}

#[test]
fn the_release_that_would_empty_a_node_unlinks_it() {
    let xa: XArray<u64> = XArray::new();
    xa.store(5000, Arc::new(5000)).unwrap();
    let guard = xa.lock_range(5001..=5001, LockMode::Exclusive).unwrap();
    assert_eq!(xa.erase(5000).unwrap().item().map(|p| **p), Some(5000));
    assert_locked(&xa, 5001, LockMode::Exclusive, 1);
    drop(guard);
    assert!(xa.is_empty(), "{:?}", shape(&xa));
    assert_eq!(xa.node_count(), 0);
    xa.check_invariants().unwrap();
}

#[test]
fn the_release_that_leaves_the_root_with_only_its_first_child_shrinks_the_root() {
    let xa: XArray<u64> = XArray::new();
    xa.store(0, Arc::new(0)).unwrap();
    assert_eq!(xa.node_count(), 1, "one leaf over 0..64");
    // 100 is beyond the leaf: the root grows to a node over 0..4096 whose slot 0 is
    // the leaf and whose slot over 64..128 holds the lock.
    let guard = xa.lock_range(100..=100, LockMode::Exclusive).unwrap();
    assert_eq!(xa.node_count(), 2);
    // A second lock in the new root's empty slots comes and goes by the fast path.
    drop(xa.lock_range(200..=210, LockMode::Exclusive).unwrap());
    assert_eq!(xa.node_count(), 2);
    drop(guard);
    assert_eq!(xa.node_count(), 1, "the root shrank back to the leaf");
    assert_eq!(shape(&xa), [(0, 0, "Item(0)".to_string())]);
    xa.check_invariants().unwrap();
}

#[test]
fn a_range_that_spans_a_populated_leaf_takes_the_general_path_and_ends_the_same() {
    let xa: XArray<u64> = XArray::new();
    xa.store(64, Arc::new(64)).unwrap();
    xa.store(4096, Arc::new(4096)).unwrap();
    let before = shape(&xa);
    // 60..=200 spans the leaf over 64..128 (which holds a page): evicted, then put back
    // by nobody: the release leaves the range empty.
    let guard = xa.lock_range(60..=200, LockMode::Exclusive).unwrap();
    assert_eq!(guard.evicted().len(), 1);
    for i in [60, 64, 127, 128, 200] {
        assert_locked(&xa, i, LockMode::Exclusive, 1);
    }
    drop(guard);
    assert!(xa.get(64).is_empty());
    assert_eq!(shape(&xa), before[1..]);
    xa.check_invariants().unwrap();
}
