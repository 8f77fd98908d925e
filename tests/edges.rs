//! Edge-case tests of the public tree API: the edge indices (0, 63, 64, 4095, 4096, 2^32,
//! u64::MAX - 1, u64::MAX), value limits, invalid ranges, values handed back on failure,
//! and the tree's height following its contents.
//!
//! Every test body is generic over the fan-out and runs for `SLOTS` = 64 (the default),
//! 4 (the tiny test geometry), and 2, 8 and 32, whose top node is partial (8 and 32 slots
//! do not divide 64 index bits evenly). `check_invariants` runs after every mutation.

mod common;

use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::Arc;

use common::{assert_tiles, at, check, expected_nodes, levels, spans, Seen, EDGES};
use rangelock::{
    CompareExchangeError, Entry, EntryRef, Mark, StoreError, XArray, XaError, MAX_VALUE,
};

/// Runs the generic test body `$name::<SLOTS>` as one test per fan-out.
macro_rules! for_each_fan_out {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn slots_64() {
                super::$name::<64>()
            }
            #[test]
            fn slots_32() {
                super::$name::<32>()
            }
            #[test]
            fn slots_8() {
                super::$name::<8>()
            }
            #[test]
            fn slots_4() {
                super::$name::<4>()
            }
            #[test]
            fn slots_2() {
                super::$name::<2>()
            }
        }
    )*};
}

for_each_fan_out!(
    single_item_at_each_edge,
    single_value_at_each_edge,
    all_edges_together,
    erase_in_every_order_shrinks,
    marks_at_each_edge,
    find_and_iter_across_the_whole_space,
    multi_index_entry_at_the_top_edge,
    whole_space_entry_splits_at_edges,
    erase_range_at_edges,
    value_limits,
    invalid_ranges_are_refused,
    compare_exchange_hands_new_back,
    height_follows_contents,
    clear_at_edges,
    read_guard_at_edges,
    len_counts_items_only,
    long_iteration_on_an_owned_collector,
);

fn tree<const S: usize>() -> XArray<u64, S> {
    XArray::with_slots()
}

/// The neighbours of `index` that exist in `u64`.
fn neighbours(index: u64) -> impl Iterator<Item = u64> {
    [index.checked_sub(1), index.checked_add(1)]
        .into_iter()
        .flatten()
}

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
            assert_eq!(
                (span, common::seen(&entry)),
                (index..=index, Seen::Item(index))
            );
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
        assert_eq!(common::seen(&old), Seen::Item(index));
        check(&xa);
        assert_eq!(xa.len(), 1);

        let erased = xa.erase(index).unwrap();
        check(&xa);
        assert_eq!(common::seen(&erased), Seen::Item(index ^ 1));
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
            assert_eq!(
                (span, common::seen(&entry)),
                (index..=index, Seen::Value(value))
            );
            assert_eq!(common::seen(&xa.erase(index).unwrap()), Seen::Value(value));
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
            assert_eq!(common::seen(&xa.erase(index).unwrap()), Seen::Item(index));
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
        assert_eq!(
            (span, common::seen(&entry)),
            (u64::MAX..=u64::MAX, Seen::Value(1))
        );
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

/// A multi-index entry over the last `S` indices (one aligned block): every index reads
/// the value, find and iter report it once with its whole span, and touching one index
/// splits it.
fn multi_index_entry_at_the_top_edge<const S: usize>() {
    let xa = tree::<S>();
    let first = u64::MAX - (S as u64 - 1);
    xa.store_range(first.., 9).unwrap();
    check(&xa);
    assert_eq!(spans(&xa, ..), vec![(first, u64::MAX, Seen::Value(9))]);
    // Started inside the entry, iteration reports the whole span, which begins earlier.
    assert_eq!(
        spans(&xa, u64::MAX..),
        vec![(first, u64::MAX, Seen::Value(9))]
    );
    assert_eq!(xa.find(u64::MAX).unwrap().0, first..=u64::MAX);
    assert_eq!(at(&xa, first - 1), Seen::Empty);
    for index in first..=u64::MAX {
        assert_eq!(at(&xa, index), Seen::Value(9));
    }

    // Marking the last index splits the block: only that index carries the mark.
    assert!(xa.set_mark(u64::MAX, Mark::M0));
    check(&xa);
    assert!(xa.get_mark(u64::MAX, Mark::M0));
    assert!(!xa.get_mark(u64::MAX - 1, Mark::M0));
    let marked: Vec<_> = xa.iter_marked(.., Mark::M0).map(|(s, _)| s).collect();
    assert_eq!(marked, vec![u64::MAX..=u64::MAX]);
    assert_tiles(&spans(&xa, ..), first, u64::MAX, Seen::Value(9));

    // Storing an item at the last index leaves the others alone.
    xa.store(u64::MAX, Arc::new(1)).unwrap();
    check(&xa);
    assert_eq!(at(&xa, u64::MAX), Seen::Item(1));
    assert!(
        xa.get_mark(u64::MAX, Mark::M0),
        "a store keeps the index's marks"
    );
    assert_eq!(at(&xa, u64::MAX - 1), Seen::Value(9));
    assert_eq!(at(&xa, first), Seen::Value(9));
    assert_eq!(xa.len(), 1);

    xa.erase_range(first..).unwrap();
    check(&xa);
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
    assert!(!xa.any_marked(Mark::M0));
}

/// A value over all of `u64` lives in the head; marking, storing or erasing at an edge
/// splits it down one path only.
fn whole_space_entry_splits_at_edges<const S: usize>() {
    for index in EDGES {
        let xa = tree::<S>();
        xa.store_range(.., 5).unwrap();
        check(&xa);
        assert_eq!(xa.node_count(), 0, "a whole-space value needs no node");
        assert!(!xa.is_empty());
        assert_eq!(
            spans(&xa, index..=index),
            vec![(0, u64::MAX, Seen::Value(5))]
        );
        assert_eq!(xa.find(u64::MAX).unwrap().0, 0..=u64::MAX);

        assert!(xa.set_mark(index, Mark::M2));
        check(&xa);
        assert_eq!(xa.node_count(), levels::<S>(u64::MAX), "one path of splits");
        assert!(xa.get_mark(index, Mark::M2));
        for n in neighbours(index) {
            assert!(!xa.get_mark(n, Mark::M2));
            assert_eq!(at(&xa, n), Seen::Value(5));
        }
        assert_eq!(common::seen(&xa.erase(index).unwrap()), Seen::Value(5));
        check(&xa);
        assert_eq!(at(&xa, index), Seen::Empty);
        assert!(!xa.any_marked(Mark::M2));
        // Everything except `index` is still covered, in order, with no overlap.
        let all = spans(&xa, ..);
        let covered: u128 = all.iter().map(|&(a, b, _)| (b - a) as u128 + 1).sum();
        assert_eq!(covered, (1u128 << 64) - 1, "{all:?}");
        if index > 0 {
            assert_tiles(&spans(&xa, ..index), 0, index - 1, Seen::Value(5));
        }
        if index < u64::MAX {
            assert_tiles(
                &spans(&xa, index + 1..),
                index + 1,
                u64::MAX,
                Seen::Value(5),
            );
            assert_eq!(xa.find(index).unwrap().0.start(), &(index + 1));
        } else {
            assert!(xa.find(u64::MAX).is_none());
        }
        xa.erase_range(..).unwrap();
        check(&xa);
        assert!(xa.is_empty());
        assert_eq!(xa.node_count(), 0);
    }
}

/// erase_range at the edges of the index space.
fn erase_range_at_edges<const S: usize>() {
    let xa = tree::<S>();
    for index in EDGES {
        xa.store(index, Arc::new(index)).unwrap();
    }
    xa.erase_range(u64::MAX..=u64::MAX).unwrap();
    check(&xa);
    assert_eq!(at(&xa, u64::MAX), Seen::Empty);
    assert_eq!(at(&xa, u64::MAX - 1), Seen::Item(u64::MAX - 1));
    xa.erase_range(..=0).unwrap();
    check(&xa);
    assert_eq!(at(&xa, 0), Seen::Empty);
    assert_eq!(at(&xa, 63), Seen::Item(63));
    xa.erase_range(64..4096).unwrap();
    check(&xa);
    assert_eq!(spans(&xa, ..).len(), 4); // 63, 4096, 2^32, u64::MAX - 1
    xa.erase_range((Excluded(4096), Unbounded)).unwrap();
    check(&xa);
    assert_eq!(
        spans(&xa, ..),
        vec![(63, 63, Seen::Item(63)), (4096, 4096, Seen::Item(4096))]
    );
    assert_eq!(xa.node_count(), expected_nodes::<S>(&[63, 4096]));
    xa.erase_range(..).unwrap();
    check(&xa);
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
    // Erasing ranges of an empty tree is a no-op, also at the edges.
    xa.erase_range(u64::MAX - 1..).unwrap();
    xa.erase_range(..).unwrap();
    check(&xa);
    assert_eq!(xa.node_count(), 0);
}

/// MAX_VALUE is stored; MAX_VALUE + 1 and above are refused with an error naming the
/// value, and nothing is stored or changed.
fn value_limits<const S: usize>() {
    for index in EDGES {
        let xa = tree::<S>();
        for too_large in [MAX_VALUE + 1, u64::MAX] {
            let err = xa.store_value(index, too_large).unwrap_err();
            assert_eq!(err, XaError::ValueTooLarge { value: too_large });
            let message = err.to_string();
            assert!(message.contains(&format!("{too_large:#x}")), "{message}");
            check(&xa);
            assert!(xa.is_empty());
            assert_eq!(xa.node_count(), 0, "a refused store must not build nodes");

            let err = xa.store_range(index..=index, too_large).unwrap_err();
            assert_eq!(err, XaError::ValueTooLarge { value: too_large });
            let err = xa.store_range(.., too_large).unwrap_err();
            assert_eq!(err, XaError::ValueTooLarge { value: too_large });
            check(&xa);
            assert!(xa.is_empty());
            assert_eq!(xa.node_count(), 0);
        }

        assert!(xa.store_value(index, MAX_VALUE).unwrap().is_empty());
        check(&xa);
        assert_eq!(at(&xa, index), Seen::Value(MAX_VALUE));
        let nodes = xa.node_count();
        // A refused overwrite leaves the stored value in place.
        assert!(xa.store_value(index, MAX_VALUE + 1).is_err());
        assert!(xa.store_range(index..=index, MAX_VALUE + 1).is_err());
        let refused =
            xa.compare_exchange(index, &Entry::Value(MAX_VALUE), Entry::Value(MAX_VALUE + 1));
        match refused {
            Err(CompareExchangeError::Refused { error, new }) => {
                assert_eq!(
                    error,
                    XaError::ValueTooLarge {
                        value: MAX_VALUE + 1
                    }
                );
                assert_eq!(new.value(), Some(MAX_VALUE + 1), "new handed back");
            }
            other => panic!("expected Refused, got {other:?}"),
        }
        check(&xa);
        assert_eq!(at(&xa, index), Seen::Value(MAX_VALUE));
        assert_eq!(xa.node_count(), nodes);

        xa.store_range(index..=index, MAX_VALUE).unwrap();
        check(&xa);
        assert_eq!(at(&xa, index), Seen::Value(MAX_VALUE));
        let swapped = xa.compare_exchange(index, &Entry::Value(MAX_VALUE), Entry::Value(0));
        assert_eq!(swapped.unwrap().value(), Some(MAX_VALUE));
        check(&xa);
        assert_eq!(at(&xa, index), Seen::Value(0));
    }
}

/// Empty and inverted ranges are refused by store_range and erase_range with the bounds
/// as given, change nothing, and iterate as nothing.
fn invalid_ranges_are_refused<const S: usize>() {
    let invalid: [(Bound<u64>, Bound<u64>); 10] = [
        (Included(5), Excluded(5)),
        (Included(6), Included(5)),
        (Included(6), Excluded(5)),
        (Included(u64::MAX), Excluded(u64::MAX)),
        (Excluded(u64::MAX), Unbounded),
        (Excluded(u64::MAX), Included(u64::MAX)),
        (Unbounded, Excluded(0)),
        (Included(0), Excluded(0)),
        (Excluded(5), Excluded(6)),
        (Excluded(5), Included(5)),
    ];
    let xa = tree::<S>();
    for index in EDGES {
        xa.store(index, Arc::new(index)).unwrap();
    }
    xa.store_range(5..=6, 1).unwrap();
    xa.set_mark(5, Mark::M0);
    let before = spans(&xa, ..);
    let nodes = xa.node_count();
    for (start, end) in invalid {
        let expected = XaError::InvalidRange { start, end };
        assert_eq!(xa.store_range((start, end), 1), Err(expected.clone()));
        assert_eq!(
            xa.store_range((start, end), MAX_VALUE + 1),
            Err(expected.clone())
        );
        assert_eq!(xa.erase_range((start, end)), Err(expected.clone()));
        assert!(expected.to_string().contains("holds no index"));
        check(&xa);
        assert!(xa.iter((start, end)).next().is_none());
        assert!(xa.iter_marked((start, end), Mark::M0).next().is_none());
        assert!(xa.read().iter((start, end)).next().is_none());
        assert_eq!(spans(&xa, ..), before);
        assert_eq!(xa.node_count(), nodes);
    }
    // The error names the bounds as given.
    let message = xa
        .store_range((Included(9), Excluded(3)), 1)
        .unwrap_err()
        .to_string();
    assert!(message.contains('9') && message.contains('3'), "{message}");

    // The smallest valid ranges at each end are accepted.
    let singletons: [(Bound<u64>, Bound<u64>); 4] = [
        (Excluded(u64::MAX - 1), Unbounded),
        (Included(u64::MAX), Included(u64::MAX)),
        (Unbounded, Included(0)),
        (Unbounded, Excluded(1)),
    ];
    for range in singletons {
        xa.store_range(range, 3).unwrap();
        check(&xa);
        assert_eq!(spans(&xa, range).len(), 1);
        xa.erase_range(range).unwrap();
        check(&xa);
        assert!(xa.iter(range).next().is_none());
    }
}

/// compare_exchange hands `new` back on a mismatch (the same `Arc`, not a copy) together
/// with the entry it found; items compare by identity, not content.
fn compare_exchange_hands_new_back<const S: usize>() {
    for index in EDGES {
        let xa = tree::<S>();
        let a = Arc::new(index);
        let b = Arc::new(index); // equal content, different item
        xa.store(index, a.clone()).unwrap();

        for expected in [
            Entry::Empty,
            Entry::Item(b.clone()),
            Entry::Value(index >> 1),
        ] {
            match xa.compare_exchange(index, &expected, Entry::Item(b.clone())) {
                Err(CompareExchangeError::Mismatch { current, new }) => {
                    assert!(Arc::ptr_eq(current.item().unwrap(), &a));
                    assert!(Arc::ptr_eq(new.item().unwrap(), &b));
                }
                other => panic!("expected Mismatch, got {other:?}"),
            }
            check(&xa);
        }
        assert_eq!(
            Arc::strong_count(&b),
            1,
            "every handed-back clone was dropped"
        );
        let err = xa
            .compare_exchange(index, &Entry::Empty, Entry::Value(4))
            .unwrap_err();
        assert!(err.to_string().contains("compare_exchange failed"));
        assert_eq!(err.into_new().value(), Some(4));
        assert!(Arc::ptr_eq(&xa.load(index).unwrap(), &a), "unchanged");

        let old = xa
            .compare_exchange(index, &Entry::Item(a.clone()), Entry::Item(b.clone()))
            .unwrap();
        check(&xa);
        assert!(Arc::ptr_eq(old.item().unwrap(), &a));
        assert!(Arc::ptr_eq(&xa.load(index).unwrap(), &b));
        assert_eq!(xa.len(), 1);

        let old = xa
            .compare_exchange(index, &Entry::Item(b.clone()), Entry::Empty)
            .unwrap();
        check(&xa);
        assert!(Arc::ptr_eq(old.item().unwrap(), &b));
        assert!(xa.is_empty());
        assert_eq!(xa.node_count(), 0);
        // Empty -> empty succeeds without building anything.
        assert!(xa
            .compare_exchange(index, &Entry::Empty, Entry::Empty)
            .unwrap()
            .is_empty());
        check(&xa);
        assert_eq!(xa.node_count(), 0);
    }
}

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
    let n = common::scaled(1000, 300);
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
