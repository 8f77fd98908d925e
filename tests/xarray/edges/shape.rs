//! The tree's shape and bookkeeping at the edges: height following the contents,
//! `clear`, read guards, `len`, the item handed back by a failed store, and a long
//! iteration on an owned collector.

use std::sync::Arc;

use rangelock::{EntryRef, Mark, StoreError, XArray, XaError};

use super::{neighbours, tree};
use crate::support::tree_checks::{check, expected_nodes, levels, scaled, EDGES};

for_each_fan_out!(
    height_follows_contents,
    clear_at_edges,
    read_guard_at_edges,
    len_counts_items_only,
    long_iteration_on_an_owned_collector,
);

/// The tree is exactly as tall as its largest index needs, grows and shrinks with it,
/// and has no node left once everything is erased.
fn height_follows_contents<const S: usize>() {
    let xa = tree::<S>();
    xa.store(0, Arc::new(0)).unwrap();
    check(&xa);
    assert_eq!(xa.node_count(), 1, "one leaf for index 0");
    assert_eq!(xa.memory_usage() % xa.node_count(), 0);
    let node_bytes = xa.memory_usage();

    xa.store(u64::MAX, Arc::new(1)).unwrap();
    check(&xa);
    let top = levels::<S>(u64::MAX);
    assert_eq!(
        xa.node_count(),
        2 * top - 1,
        "two paths that share the root"
    );
    assert_eq!(xa.memory_usage(), xa.node_count() * node_bytes);

    xa.erase(u64::MAX).unwrap();
    check(&xa);
    assert_eq!(xa.node_count(), 1, "the tree shrinks back to one leaf");
    assert_eq!(xa.load(0).as_deref(), Some(&0));

    xa.store(u64::MAX, Arc::new(1)).unwrap();
    xa.erase(0).unwrap();
    check(&xa);
    assert_eq!(xa.node_count(), top, "only the path to u64::MAX remains");
    xa.erase(u64::MAX).unwrap();
    check(&xa);
    assert_eq!(xa.node_count(), 0);
    assert_eq!(xa.memory_usage(), 0);
    if S == 64 {
        xa.store(u64::MAX, Arc::new(1)).unwrap();
        assert_eq!(xa.node_count(), 11, "u64::MAX needs 11 levels of 64 slots");
        xa.erase(u64::MAX).unwrap();
        check(&xa);
    }

    // Grow one bit at a time, then shrink back one bit at a time.
    let mut present = Vec::new();
    for k in 0..64 {
        let index = 1u64 << k;
        xa.store(index, Arc::new(index)).unwrap();
        check(&xa);
        present.push(index);
        assert_eq!(xa.node_count(), expected_nodes::<S>(&present));
    }
    while let Some(index) = present.pop() {
        xa.erase(index).unwrap();
        check(&xa);
        assert_eq!(
            xa.node_count(),
            expected_nodes::<S>(&present),
            "{present:?}"
        );
    }
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
}

/// clear empties a tree holding items, values, ranges and marks at every edge.
fn clear_at_edges<const S: usize>() {
    let xa = tree::<S>();
    for index in EDGES {
        xa.store(index, Arc::new(index)).unwrap();
        xa.set_mark(index, Mark::M0);
    }
    xa.store_range(100..1 << 40, 8).unwrap();
    xa.set_mark(12345, Mark::M1);
    check(&xa);
    xa.clear();
    check(&xa);
    assert!(xa.is_empty());
    assert_eq!(xa.len(), 0);
    assert_eq!(xa.node_count(), 0);
    for mark in Mark::ALL {
        assert!(!xa.any_marked(mark));
    }
    assert!(xa.iter(..).next().is_none());
    xa.clear(); // clearing an empty tree is a no-op
    check(&xa);
    // The tree is usable again.
    xa.store(u64::MAX, Arc::new(3)).unwrap();
    check(&xa);
    assert_eq!(xa.node_count(), levels::<S>(u64::MAX));
    // A whole-space value (in the head) is cleared too, marks included.
    xa.store_range(.., 1).unwrap();
    xa.set_mark(9, Mark::M2);
    xa.clear();
    check(&xa);
    assert!(xa.is_empty() && !xa.any_marked(Mark::M2));
}

/// The read guard's borrowed lookups agree with the owned ones at the edges.
fn read_guard_at_edges<const S: usize>() {
    let xa = tree::<S>();
    for (n, index) in EDGES.into_iter().enumerate() {
        if n % 2 == 0 {
            xa.store(index, Arc::new(index)).unwrap();
        } else {
            xa.store_value(index, n as u64).unwrap();
        }
        if n % 3 == 0 {
            xa.set_mark(index, Mark::M2);
        }
    }
    let guard = xa.read();
    for (n, index) in EDGES.into_iter().enumerate() {
        match guard.entry(index) {
            EntryRef::Item(&item) => {
                assert!(n % 2 == 0);
                assert_eq!(item, index);
                assert_eq!(guard.get(index), Some(&index));
                assert_eq!(guard.load(index).as_deref(), Some(&index));
            }
            EntryRef::Value(value) => {
                assert!(n % 2 == 1);
                assert_eq!(value, n as u64);
                assert!(guard.get(index).is_none() && guard.load(index).is_none());
            }
            EntryRef::Empty => panic!("{index} is empty"),
            EntryRef::Locked { .. } => panic!("{index} is locked"),
        }
        assert_eq!(guard.get_mark(index, Mark::M2), n % 3 == 0);
        for n in neighbours(index) {
            if !EDGES.contains(&n) {
                assert!(guard.entry(n).is_empty());
            }
        }
    }
    let all: Vec<u64> = guard.iter(..).map(|(s, _)| *s.start()).collect();
    assert_eq!(all, EDGES.to_vec());
    let marked: Vec<u64> = guard
        .iter_marked(.., Mark::M2)
        .map(|(s, _)| *s.start())
        .collect();
    assert_eq!(marked, vec![0, 4095, u64::MAX - 1]);
    let tail: Vec<u64> = guard.iter(u64::MAX..).map(|(s, _)| *s.start()).collect();
    assert_eq!(tail, vec![u64::MAX]);
    // An item erased while the guard lives stays borrowable through it.
    let borrowed = guard.get(0).unwrap();
    xa.erase(0).unwrap();
    assert_eq!(*borrowed, 0);
    drop(guard);
    check(&xa);
}

/// len counts items only; values make the tree non-empty without counting.
fn len_counts_items_only<const S: usize>() {
    let xa = tree::<S>();
    xa.store_range(.., 1).unwrap();
    assert_eq!(xa.len(), 0);
    assert!(!xa.is_empty());
    for (n, index) in EDGES.into_iter().enumerate() {
        xa.store(index, Arc::new(index)).unwrap();
        check(&xa);
        assert_eq!(xa.len(), n + 1);
    }
    // A range store over items releases them.
    xa.store_range(0..=4096, 2).unwrap();
    check(&xa);
    assert_eq!(xa.len(), 3);
    xa.erase_range(1 << 32..).unwrap();
    check(&xa);
    assert_eq!(xa.len(), 0);
    assert!(!xa.is_empty());
    xa.erase_range(..1 << 32).unwrap();
    check(&xa);
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
}

/// A failed store hands the caller's item back. No store of this layer can fail yet (the
/// lock layer will refuse stores over lock entries), so this pins the error's shape: the
/// same `Arc` comes back, and the message names the reason.
#[test]
fn store_error_hands_the_item_back() {
    let xa: XArray<u64> = XArray::new();
    for index in EDGES {
        assert!(xa.store(index, Arc::new(index)).is_ok());
    }
    let item = Arc::new(42u64);
    let err = StoreError {
        error: XaError::ValueTooLarge { value: u64::MAX },
        item: item.clone(),
    };
    let message = err.to_string();
    assert!(message.starts_with("store refused") && message.contains("0xffffffffffffffff"));
    assert!(format!("{err:?}").contains("ValueTooLarge"));
    let as_error: &dyn std::error::Error = &err;
    assert!(!as_error.to_string().is_empty());
    let StoreError { item: back, .. } = err;
    assert!(Arc::ptr_eq(&back, &item));
}

/// An iteration longer than the iterator's re-pin interval (128 entries), on a tree with
/// its own collector, erasing what it has passed: it sees every entry once, in order.
fn long_iteration_on_an_owned_collector<const S: usize>() {
    let n = scaled(1000, 300);
    let xa: XArray<u64, S> = XArray::with_collector(crossbeam_epoch::Collector::new());
    let index = |i: u64| if i + 1 == n { u64::MAX } else { i * 3 };
    for i in 0..n {
        xa.store(index(i), Arc::new(i)).unwrap();
    }
    check(&xa);
    let mut seen = 0;
    for (span, entry) in xa.iter(..) {
        assert_eq!(span, index(seen)..=index(seen));
        assert_eq!(entry.item().map(|item| **item), Some(seen));
        xa.erase(*span.start()).unwrap();
        seen += 1;
    }
    check(&xa);
    assert_eq!(seen, n);
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
}
