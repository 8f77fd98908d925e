//! Entries at the edge indices: one at a time and all together, erased in every order,
//! marked, found and iterated across the whole index space.

use std::sync::Arc;

use rangelock::{Mark, MAX_VALUE};

use super::{neighbours, tree};
use crate::support::tree_checks::{at, check, expected_nodes, levels, seen, spans, Seen, EDGES};

for_each_fan_out!(
    single_item_at_each_edge,
    single_value_at_each_edge,
    all_edges_together,
    erase_in_every_order_shrinks,
    marks_at_each_edge,
    find_and_iter_across_the_whole_space,
);

/// Store, load, get, find, iter and erase of one item at each edge index, alone.
fn single_item_at_each_edge<const S: usize>() {
    for index in EDGES {
        let xa = tree::<S>();
        let old = xa.store(index, Arc::new(index)).unwrap();
        assert!(old.is_empty(), "{index}: fresh store replaced {old:?}");
        check(&xa);
        assert_eq!(xa.load(index).as_deref(), Some(&index));
        assert_eq!(at(&xa, index), Seen::Item(index));
        for n in neighbours(index) {
            assert_eq!(at(&xa, n), Seen::Empty, "neighbour {n} of {index}");
            assert!(xa.load(n).is_none());
        }
        assert_eq!(xa.len(), 1);
        assert!(!xa.is_empty());
        assert_eq!(xa.node_count(), levels::<S>(index), "height for {index}");

        for from in [0, index.saturating_sub(1), index] {
            let (span, entry) = xa.find(from).expect("find");
            assert_eq!((span, seen(&entry)), (index..=index, Seen::Item(index)));
        }
        if let Some(after) = index.checked_add(1) {
            assert!(
                xa.find(after).is_none(),
                "find({after}) past the only entry"
            );
            assert!(xa.iter(after..).next().is_none());
        }
        assert_eq!(spans(&xa, ..), vec![(index, index, Seen::Item(index))]);
        assert_eq!(
            spans(&xa, index..=index),
            vec![(index, index, Seen::Item(index))]
        );

        // Overwriting hands back the old item.
        let old = xa.store(index, Arc::new(index ^ 1)).unwrap();
        assert_eq!(seen(&old), Seen::Item(index));
        check(&xa);
        assert_eq!(xa.len(), 1);

        let erased = xa.erase(index).unwrap();
        check(&xa);
        assert_eq!(seen(&erased), Seen::Item(index ^ 1));
        assert!(xa.is_empty());
        assert_eq!(xa.node_count(), 0);
        assert_eq!(xa.len(), 0);
        assert!(xa.load(index).is_none());
        assert!(xa.find(0).is_none());
        // Erasing again, or erasing where nothing ever was, changes nothing.
        assert!(xa.erase(index).unwrap().is_empty());
        check(&xa);
        assert_eq!(xa.node_count(), 0);
    }
}

/// The same for a value entry, including the largest value and 0 (which is not empty).
fn single_value_at_each_edge<const S: usize>() {
    for index in EDGES {
        for value in [0, 1, index >> 1, MAX_VALUE] {
            let xa = tree::<S>();
            assert!(xa.store_value(index, value).unwrap().is_empty());
            check(&xa);
            assert_eq!(at(&xa, index), Seen::Value(value));
            assert!(xa.load(index).is_none(), "a value is not an item");
            assert_eq!(xa.len(), 0);
            assert!(!xa.is_empty());
            assert_eq!(xa.node_count(), levels::<S>(index));
            for n in neighbours(index) {
                assert_eq!(at(&xa, n), Seen::Empty);
            }
            let (span, entry) = xa.find(0).unwrap();
            assert_eq!((span, seen(&entry)), (index..=index, Seen::Value(value)));
            assert_eq!(seen(&xa.erase(index).unwrap()), Seen::Value(value));
            check(&xa);
            assert!(xa.is_empty());
            assert_eq!(xa.node_count(), 0);
        }
    }
}

/// All eight edges in one tree: loads, ordered iteration, find between the edges,
/// ranges that fall between them.
fn all_edges_together<const S: usize>() {
    let xa = tree::<S>();
    for (n, index) in EDGES.into_iter().enumerate() {
        xa.store(index, Arc::new(index)).unwrap();
        check(&xa);
        assert_eq!(xa.len(), n + 1);
        assert_eq!(xa.node_count(), expected_nodes::<S>(&EDGES[..=n]));
    }
    for index in EDGES {
        assert_eq!(xa.load(index).as_deref(), Some(&index));
    }
    let expected: Vec<_> = EDGES.iter().map(|&i| (i, i, Seen::Item(i))).collect();
    assert_eq!(spans(&xa, ..), expected);

    for (n, &index) in EDGES.iter().enumerate() {
        // find from the edge itself, and from just past the previous edge.
        let (span, _) = xa.find(index).unwrap();
        assert_eq!(span, index..=index);
        if n > 0 {
            let (span, _) = xa.find(EDGES[n - 1] + 1).unwrap();
            assert_eq!(span, index..=index);
        }
        assert_eq!(spans(&xa, index..).len(), EDGES.len() - n);
        assert_eq!(spans(&xa, ..=index).len(), n + 1);
        assert_eq!(spans(&xa, ..index).len(), n);
        // The open interval between two neighbouring edges holds nothing.
        if let Some(&next) = EDGES.get(n + 1) {
            assert!(xa.iter(index + 1..next).next().is_none());
            assert_eq!(spans(&xa, index..=next).len(), 2);
        }
    }
    // The inner edges 63/64 and 4095/4096 sit on either side of a node boundary.
    assert_eq!(
        spans(&xa, 63..=64),
        vec![(63, 63, Seen::Item(63)), (64, 64, Seen::Item(64))]
    );
    assert_eq!(spans(&xa, 4095..4097).len(), 2);
    assert_eq!(spans(&xa, u64::MAX - 1..).len(), 2);
}

/// Erasing the edges forwards, backwards and from the middle out always ends with an
/// empty tree and no nodes, and the node count matches a minimal tree at every step.
fn erase_in_every_order_shrinks<const S: usize>() {
    let forward: Vec<u64> = EDGES.to_vec();
    let backward: Vec<u64> = EDGES.iter().rev().copied().collect();
    let middle_out = vec![4095, 4096, 64, 1 << 32, 63, u64::MAX - 1, 0, u64::MAX];
    for order in [forward, backward, middle_out] {
        let xa = tree::<S>();
        for index in EDGES {
            xa.store(index, Arc::new(index)).unwrap();
        }
        let mut present = EDGES.to_vec();
        for index in order {
            assert_eq!(seen(&xa.erase(index).unwrap()), Seen::Item(index));
            check(&xa);
            present.retain(|&i| i != index);
            assert_eq!(xa.len(), present.len());
            assert_eq!(
                xa.node_count(),
                expected_nodes::<S>(&present),
                "{present:?}"
            );
            for &i in &present {
                assert_eq!(xa.load(i).as_deref(), Some(&i));
            }
        }
        assert!(xa.is_empty());
        assert_eq!(xa.node_count(), 0);
    }
}

/// Marks at each edge: an empty index cannot be marked, stores do not mark, the three
/// marks are independent, erase clears them, and neighbours never see them.
fn marks_at_each_edge<const S: usize>() {
    for index in EDGES {
        let xa = tree::<S>();
        for mark in Mark::ALL {
            assert!(!xa.set_mark(index, mark), "marked an empty index");
            check(&xa);
            assert!(!xa.get_mark(index, mark));
            assert!(!xa.any_marked(mark));
        }
        assert!(xa.is_empty(), "a refused mark must not build nodes");
        assert_eq!(xa.node_count(), 0);

        xa.store(index, Arc::new(index)).unwrap();
        for mark in Mark::ALL {
            assert!(!xa.get_mark(index, mark), "a store created {mark:?}");
        }
        assert!(xa.set_mark(index, Mark::M1));
        check(&xa);
        assert!(xa.get_mark(index, Mark::M1));
        assert!(!xa.get_mark(index, Mark::M0));
        assert!(!xa.get_mark(index, Mark::M2));
        assert!(xa.any_marked(Mark::M1));
        assert!(!xa.any_marked(Mark::M0));
        for n in neighbours(index) {
            assert!(!xa.get_mark(n, Mark::M1), "neighbour {n} of {index} marked");
        }
        let marked: Vec<_> = xa.iter_marked(.., Mark::M1).map(|(s, _)| s).collect();
        assert_eq!(marked, vec![index..=index]);
        assert!(xa.iter_marked(.., Mark::M0).next().is_none());
        assert!(xa.iter_marked(index..=index, Mark::M1).next().is_some());
        if let Some(after) = index.checked_add(1) {
            assert!(xa.iter_marked(after.., Mark::M1).next().is_none());
        }
        // Setting twice is idempotent; a store keeps the index's marks.
        assert!(xa.set_mark(index, Mark::M1));
        xa.store(index, Arc::new(7)).unwrap();
        check(&xa);
        assert!(xa.get_mark(index, Mark::M1));

        assert!(xa.set_mark(index, Mark::M2));
        xa.clear_mark(index, Mark::M1);
        check(&xa);
        assert!(!xa.get_mark(index, Mark::M1));
        assert!(!xa.any_marked(Mark::M1));
        assert!(xa.get_mark(index, Mark::M2));
        xa.clear_mark(index, Mark::M1); // clearing a clear mark is a no-op
        check(&xa);

        xa.erase(index).unwrap();
        check(&xa);
        for mark in Mark::ALL {
            assert!(!xa.get_mark(index, mark));
            assert!(!xa.any_marked(mark));
            assert!(!xa.set_mark(index, mark), "re-marked an erased index");
        }
        assert!(xa.is_empty());
        assert_eq!(xa.node_count(), 0);
    }
}

/// find and iter with entries only at 0 and u64::MAX: the whole space between them is
/// walked without wrapping.
fn find_and_iter_across_the_whole_space<const S: usize>() {
    let xa = tree::<S>();
    assert!(xa.find(0).is_none());
    assert!(xa.find(u64::MAX).is_none());
    assert!(xa.iter(..).next().is_none());

    xa.store_value(u64::MAX, 1).unwrap();
    check(&xa);
    for from in [0, 1, 63, 64, 4096, 1 << 32, u64::MAX - 1, u64::MAX] {
        let (span, entry) = xa.find(from).unwrap();
        assert_eq!((span, seen(&entry)), (u64::MAX..=u64::MAX, Seen::Value(1)));
    }
    xa.store_value(0, 2).unwrap();
    check(&xa);
    assert_eq!(xa.find(0).unwrap().0, 0..=0);
    assert_eq!(xa.find(1).unwrap().0, u64::MAX..=u64::MAX);
    assert!(xa.iter(1..u64::MAX).next().is_none());
    assert_eq!(
        spans(&xa, 1..=u64::MAX),
        vec![(u64::MAX, u64::MAX, Seen::Value(1))]
    );
    assert_eq!(spans(&xa, ..=0), vec![(0, 0, Seen::Value(2))]);
    assert_eq!(spans(&xa, ..1), vec![(0, 0, Seen::Value(2))]);
    assert_eq!(
        spans(&xa, ..),
        vec![(0, 0, Seen::Value(2)), (u64::MAX, u64::MAX, Seen::Value(1))]
    );
    // The iterator is fused: once done it stays done.
    let mut iter = xa.iter(u64::MAX..);
    assert!(iter.next().is_some());
    assert!(iter.next().is_none());
    assert!(iter.next().is_none());
}
