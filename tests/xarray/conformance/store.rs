//! Single-index stores, loads, inserts, compare-exchange and erase
//! (`check_xa_load`, `check_insert`, `check_cmpxchg`, `check_xa_shrink`, ...).

use std::sync::Arc;

use rangelock::{CompareExchangeError, Entry};

use super::{item, tree};
use crate::support::tree_checks::{
    assert_tiles, at, check, expected_nodes, scaled, seen, spans, Seen,
};

instantiate! {
    load_progressive_store_then_erase => [slots_64: 64, slots_4: 4];
    insert_at_powers_of_two_and_below => [slots_64: 64, slots_4: 4, slots_2: 2];
    insert_is_refused_on_an_occupied_index => [slots_64: 64, slots_4: 4];
    compare_exchange_results => [slots_64: 64, slots_4: 4];
    compare_exchange_on_one_index_of_a_multi_index_value => [slots_64: 64, slots_4: 4];
    erase_shrinks_the_tree => [slots_64: 64, slots_4: 4];
    erase_while_iterating_empties_the_tree => [slots_64: 64, slots_4: 4];
}

/// check_xa_load: a progressive store of 0..1023 loads correctly after every step, then a
/// progressive erase does too, and the tree ends empty.
fn load_progressive_store_then_erase<const S: usize>() {
    let n = scaled(1024, 24);
    let xa = tree::<S>();
    for i in 0..n {
        assert!(xa.store(i, item(i)).unwrap().is_empty());
        check(&xa);
        for j in 0..n {
            let loaded = xa.load(j);
            if j <= i {
                assert_eq!(loaded.as_deref(), Some(&j), "after storing 0..={i}");
            } else {
                assert!(loaded.is_none(), "{j} loaded after storing 0..={i}");
            }
        }
    }
    assert_eq!(xa.len(), n as usize);
    for i in 0..n {
        assert_eq!(seen(&xa.erase(i).unwrap()), Seen::Item(i));
        check(&xa);
        for j in 0..n {
            assert_eq!(xa.load(j).is_some(), j > i, "{j} after erasing 0..={i}");
        }
    }
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
}

/// check_insert: inserting at 2^k and 2^k - 1 for every k < 64 (and at u64::MAX) leaves
/// the neighbours empty, and erasing it leaves an empty tree.
fn insert_at_powers_of_two_and_below<const S: usize>() {
    let xa = tree::<S>();
    let mut indices: Vec<u64> = (0..64).flat_map(|k| [1u64 << k, (1u64 << k) - 1]).collect();
    indices.push(u64::MAX);
    indices.extend(0..scaled(1024, 16));
    for index in indices {
        let inserted = xa.compare_exchange(index, &Entry::Empty, Entry::Item(item(index)));
        assert!(inserted.unwrap().is_empty());
        check(&xa);
        assert_eq!(xa.load(index).as_deref(), Some(&index));
        assert_eq!(xa.node_count(), expected_nodes::<S>(&[index]));
        for n in [index.checked_sub(1), index.checked_add(1)]
            .into_iter()
            .flatten()
        {
            assert_eq!(at(&xa, n), Seen::Empty, "neighbour {n} of {index}");
        }
        assert_eq!(xa.iter(..).count(), 1);
        assert_eq!(seen(&xa.erase(index).unwrap()), Seen::Item(index));
        check(&xa);
        assert!(xa.is_empty());
        assert_eq!(xa.node_count(), 0);
    }
}

/// check_cmpxchg (xa_insert): an insert (compare_exchange from empty) on an occupied
/// index is refused and reports what is there.
fn insert_is_refused_on_an_occupied_index<const S: usize>() {
    let xa = tree::<S>();
    for index in [0, 5, 4096, u64::MAX] {
        xa.store_value(index, 1).unwrap();
        match xa.compare_exchange(index, &Entry::Empty, Entry::Value(2)) {
            Err(CompareExchangeError::Mismatch { current, new }) => {
                assert_eq!(current.value(), Some(1));
                assert_eq!(new.value(), Some(2));
            }
            other => panic!("insert over an entry: {other:?}"),
        }
        check(&xa);
        assert_eq!(at(&xa, index), Seen::Value(1));
    }
    // An index inside a multi-index value is occupied too.
    xa.store_range(100..200, 3).unwrap();
    let refused = xa.compare_exchange(150, &Entry::Empty, Entry::Value(2));
    assert!(matches!(
        refused,
        Err(CompareExchangeError::Mismatch {
            current: Entry::Value(3),
            ..
        })
    ));
    check(&xa);
}

/// check_cmpxchg: success returns the old entry, failure returns the current one;
/// empty -> value and value -> empty both work.
fn compare_exchange_results<const S: usize>() {
    const LOTS: u64 = 12_345_678;
    let xa = tree::<S>();
    let five = item(5);
    let six = item(6);
    assert!(xa.store(LOTS, five.clone()).unwrap().is_empty());

    // Failure: the current entry comes back.
    let failed = xa
        .compare_exchange(LOTS, &Entry::Item(six.clone()), Entry::Value(7))
        .unwrap_err();
    match failed {
        CompareExchangeError::Mismatch { current, .. } => {
            assert!(Arc::ptr_eq(current.item().unwrap(), &five))
        }
        other => panic!("{other:?}"),
    }
    // Success: the old entry comes back.
    let old = xa
        .compare_exchange(LOTS, &Entry::Item(five.clone()), Entry::Item(six.clone()))
        .unwrap();
    assert!(Arc::ptr_eq(old.item().unwrap(), &five));
    check(&xa);
    assert!(Arc::ptr_eq(&xa.load(LOTS).unwrap(), &six));
    drop(old);

    // Empty -> value.
    assert!(xa
        .compare_exchange(5, &Entry::Empty, Entry::Value(5))
        .unwrap()
        .is_empty());
    check(&xa);
    assert_eq!(at(&xa, 5), Seen::Value(5));
    // A stale expectation fails and reports the value.
    let failed = xa.compare_exchange(5, &Entry::Value(4), Entry::Empty);
    assert!(matches!(
        failed,
        Err(CompareExchangeError::Mismatch {
            current: Entry::Value(5),
            new: Entry::Empty
        })
    ));
    // Value -> empty.
    assert_eq!(
        xa.compare_exchange(5, &Entry::Value(5), Entry::Empty)
            .unwrap()
            .value(),
        Some(5)
    );
    check(&xa);
    assert_eq!(at(&xa, 5), Seen::Empty);
    assert_eq!(spans(&xa, ..), vec![(LOTS, LOTS, Seen::Item(6))]);
    assert_eq!(xa.len(), 1);

    // Value -> item and item -> value keep the item count right.
    xa.store_value(9, 9).unwrap();
    xa.compare_exchange(9, &Entry::Value(9), Entry::Item(item(90)))
        .unwrap();
    check(&xa);
    assert_eq!(xa.len(), 2);
    let old = xa
        .compare_exchange(LOTS, &Entry::Item(six), Entry::Value(1))
        .unwrap();
    check(&xa);
    assert_eq!(seen(&old), Seen::Item(6));
    assert_eq!(xa.len(), 1);
    xa.erase(9).unwrap();
    xa.erase(LOTS).unwrap();
    check(&xa);
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
}

/// check_cmpxchg_order, under per-index semantics: compare_exchange at one index of a
/// multi-index value changes that index only (Linux erases the whole entry); the other
/// indices and the adjacent entry keep their values.
fn compare_exchange_on_one_index_of_a_multi_index_value<const S: usize>() {
    let size = (S * S) as u64; // one block two levels up
    let xa = tree::<S>();
    xa.store_range(0..size, 7).unwrap();
    xa.store_range(size..2 * size, 8).unwrap();
    check(&xa);
    for index in 0..size {
        assert_eq!(
            xa.find(index).unwrap().0,
            0..=size - 1,
            "one entry at {index}"
        );
    }
    let hit = size / 2 + 1;
    let old = xa
        .compare_exchange(hit, &Entry::Value(7), Entry::Empty)
        .unwrap();
    check(&xa);
    assert_eq!(old.value(), Some(7));
    assert_eq!(at(&xa, hit), Seen::Empty);
    assert_tiles(&spans(&xa, ..hit), 0, hit - 1, Seen::Value(7));
    assert_tiles(
        &spans(&xa, hit + 1..size),
        hit + 1,
        size - 1,
        Seen::Value(7),
    );
    assert_eq!(
        spans(&xa, size..),
        vec![(size, 2 * size - 1, Seen::Value(8))]
    );

    // A mismatch inside the entry changes nothing.
    let refused = xa.compare_exchange(hit + 1, &Entry::Value(8), Entry::Value(0));
    assert!(matches!(
        refused,
        Err(CompareExchangeError::Mismatch {
            current: Entry::Value(7),
            ..
        })
    ));
    // Value -> other value at index 0 only.
    xa.compare_exchange(0, &Entry::Value(7), Entry::Value(9))
        .unwrap();
    check(&xa);
    assert_eq!(at(&xa, 0), Seen::Value(9));
    assert_eq!(at(&xa, 1), Seen::Value(7));
    // Item into the adjacent entry, at its last index.
    xa.compare_exchange(2 * size - 1, &Entry::Value(8), Entry::Item(item(1)))
        .unwrap();
    check(&xa);
    assert_eq!(at(&xa, 2 * size - 2), Seen::Value(8));
    assert_eq!(at(&xa, 2 * size - 1), Seen::Item(1));
    xa.erase_range(..).unwrap();
    check(&xa);
    assert!(xa.is_empty() && xa.node_count() == 0);
}

/// check_xa_shrink: erasing index 1 of {0, 1} leaves a one-node tree; growing to
/// u64::MAX and erasing back restores the original shape for entries of order 0..14
/// at 0.
fn erase_shrinks_the_tree<const S: usize>() {
    let xa = tree::<S>();
    xa.store(0, item(0)).unwrap();
    xa.store(1, item(1)).unwrap();
    assert_eq!(xa.node_count(), 1);
    xa.erase(1).unwrap();
    check(&xa);
    assert_eq!(xa.node_count(), 1);
    assert_eq!(xa.load(0).as_deref(), Some(&0));
    xa.erase(0).unwrap();
    assert_eq!(xa.node_count(), 0);

    for order in 0..=14 {
        let size = 1u64 << order;
        xa.store_range(0..size, order).unwrap();
        check(&xa);
        let nodes = xa.node_count();
        let before = spans(&xa, ..);
        xa.store(u64::MAX, item(9)).unwrap();
        check(&xa);
        assert!(xa.node_count() > nodes);
        xa.erase(u64::MAX).unwrap();
        check(&xa);
        assert_eq!(xa.node_count(), nodes, "order {order}: shape restored");
        assert_eq!(spans(&xa, ..), before);
        assert_tiles(&before, 0, size - 1, Seen::Value(order));
        xa.erase_range(..size).unwrap();
        check(&xa);
        assert!(xa.is_empty() && xa.node_count() == 0);
    }
}

/// check_xas_erase: entries at every index of [i, 2i + 17) plus u64::MAX, each erased as
/// an iteration reaches it, leave an empty tree (with single-index and range stores; i up
/// to 40 and a few larger, where Linux takes every i below 200).
fn erase_while_iterating_empties_the_tree<const S: usize>() {
    let starts = if cfg!(miri) {
        vec![0, 5]
    } else {
        (0..=40).chain([63, 64, 100, 150, 199]).collect()
    };
    for i in starts {
        for ranged in [false, true] {
            let xa = tree::<S>();
            if ranged {
                xa.store_range(i..2 * i + 17, i).unwrap();
            } else {
                for j in i..2 * i + 17 {
                    xa.store_value(j, j).unwrap();
                }
            }
            xa.store(u64::MAX, item(0)).unwrap();
            check(&xa);
            let mut covered = 0u128;
            for (span, _) in xa.iter(..) {
                xa.erase_range(span.clone()).unwrap();
                check(&xa);
                covered += (span.end() - span.start()) as u128 + 1;
            }
            assert_eq!(covered, (i + 17) as u128 + 1);
            assert!(xa.is_empty(), "i = {i}");
            assert_eq!(xa.node_count(), 0);
        }
    }
}
