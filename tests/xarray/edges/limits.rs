//! The limits of the API: multi-index entries and range erases at the top edge, value
//! limits, invalid ranges, and the new value handed back by a failed compare-exchange.

use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::Arc;

use rangelock::{CompareExchangeError, Entry, Mark, XaError, MAX_VALUE};

use super::{neighbours, tree};
use crate::support::tree_checks::{
    assert_tiles, at, check, expected_nodes, levels, seen, spans, Seen, EDGES,
};

for_each_fan_out!(
    multi_index_entry_at_the_top_edge,
    whole_space_entry_splits_at_edges,
    erase_range_at_edges,
    value_limits,
    invalid_ranges_are_refused,
    compare_exchange_hands_new_back,
);

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
        assert_eq!(seen(&xa.erase(index).unwrap()), Seen::Value(5));
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
