//! Conformance with the behaviours Linux's `lib/test_xarray.c` checks, written from the
//! catalogue in the research notes (no code or text taken from Linux).
//!
//! Where the kernel's semantics and ours differ, the test checks ours and says so: the
//! kernel treats a multi-order entry as one entry (a store or cmpxchg at any of its
//! indices replaces all of them), while this tree is a per-index map whose multi-index
//! entries are only a compact representation (touching one index splits the entry and
//! the other indices keep their value and marks). "Order `o`" below means a block of
//! `2^o` indices; `store_range` decomposes a range into aligned power-of-`SLOTS` blocks.
//!
//! Not ported (no such API here): ID allocation (`check_xa_alloc*`), reserved entries
//! (`check_reserve`), cursor stepping and `xas_pause` (`check_move`; restarting an
//! iterator is the equivalent, see `pause_and_restart_*`), range preallocation
//! (`check_create_range`), node accounting internals (`check_account`,
//! `check_workingset`; `check_invariants` covers the counts), pointer alignment
//! (`check_align`), and RCU retry placement (`check_xas_retry`, a concurrency matter for
//! the loom models). `check_find_3` (a marked iteration over an inverted range) is in
//! `tests/edges.rs` with the other invalid ranges.
//!
//! `cargo test --test conformance` runs in a few seconds in a debug build; loops shrink
//! under Miri (`cfg!(miri)`).

mod common;

use std::sync::Arc;

use crossbeam_epoch::Collector;

use common::{assert_tiles, at, check, expected_nodes, scaled, spans, Seen};
use rangelock::{CompareExchangeError, Entry, Mark, XArray, MAX_VALUE};

/// One `#[test]` per listed fan-out for the generic body `$name::<SLOTS>`.
macro_rules! instantiate {
    ($($name:ident => [$($test:ident: $slots:literal),+ $(,)?]);* $(;)?) => {$(
        mod $name {
            $(
                #[test]
                fn $test() {
                    super::$name::<$slots>()
                }
            )+
        }
    )*};
}

instantiate! {
    load_progressive_store_then_erase => [slots_64: 64, slots_4: 4];
    insert_at_powers_of_two_and_below => [slots_64: 64, slots_4: 4, slots_2: 2];
    insert_is_refused_on_an_occupied_index => [slots_64: 64, slots_4: 4];
    compare_exchange_results => [slots_64: 64, slots_4: 4];
    compare_exchange_on_one_index_of_a_multi_index_value => [slots_64: 64, slots_4: 4];
    marks_behave_at_every_position => [slots_64: 64, slots_4: 4];
    range_store_marks_are_the_union_per_block => [slots_64: 64, slots_4: 4];
    marked_iteration_finds_every_marked_entry => [slots_64: 64, slots_4: 4];
    marked_iteration_from_inside_a_multi_index_entry => [slots_4: 4, slots_64: 64];
    erase_shrinks_the_tree => [slots_64: 64, slots_4: 4];
    erase_while_iterating_empties_the_tree => [slots_64: 64, slots_4: 4];
    multi_index_store_basics => [slots_2: 2, slots_4: 4, slots_64: 64];
    multi_store_every_pair_of_orders_at_zero => [slots_64: 64, slots_4: 4];
    multi_store_every_pair_of_orders_at_the_top => [slots_64: 64, slots_4: 4];
    store_at_one_index_of_a_multi_index_entry => [slots_4: 4, slots_64: 64];
    store_range_replaces_what_was_in_range => [slots_64: 64, slots_4: 4];
    page_cache_like_add_and_delete => [slots_64: 64, slots_4: 4];
    find_from_every_start => [slots_64: 64, slots_4: 4];
    find_from_inside_a_multi_index_entry => [slots_4: 4, slots_64: 64];
    nothing_after_a_multi_index_entry_at_zero => [slots_64: 64, slots_4: 4];
    no_wrap_at_u64_max => [slots_64: 64, slots_4: 4, slots_8: 8];
    iteration_reports_multi_index_entries_once => [slots_4: 4, slots_64: 64];
    pause_and_restart_sees_each_entry_once => [slots_4: 4, slots_64: 64];
    span_is_the_order_at_every_index => [slots_2: 2, slots_4: 4, slots_64: 64];
    covering_entry_is_reported_once => [slots_4: 4, slots_64: 64];
    find_entry_by_value => [slots_64: 64, slots_4: 4];
    clear_destroys_every_shape => [slots_64: 64, slots_4: 4];
}

fn tree<const S: usize>() -> XArray<u64, S> {
    XArray::with_slots()
}

fn item(x: u64) -> Arc<u64> {
    Arc::new(x)
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
        assert_eq!(common::seen(&xa.erase(i).unwrap()), Seen::Item(i));
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
        assert_eq!(common::seen(&xa.erase(index).unwrap()), Seen::Item(index));
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
    assert_eq!(common::seen(&old), Seen::Item(6));
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

/// The positions the mark tests run at: the edges plus 0x41, inside a small block.
const MARK_POSITIONS: [u64; 9] = [0, 0x41, 63, 64, 4095, 4096, 1 << 32, u64::MAX - 1, u64::MAX];

/// check_xa_mark_1: an empty index can't be marked, storing doesn't create marks, marks
/// are independent, erase clears marks and they can't be re-set; a range store over marked
/// entries carries their union on every index; iteration sees the two entries, one of them
/// marked; the next index stays unmarked.
fn marks_behave_at_every_position<const S: usize>() {
    for index in MARK_POSITIONS {
        let xa = tree::<S>();
        assert!(!xa.set_mark(index, Mark::M0));
        assert!(!xa.get_mark(index, Mark::M0));
        check(&xa);

        xa.store(index, item(index)).unwrap();
        check(&xa);
        for mark in Mark::ALL {
            assert!(!xa.get_mark(index, mark), "storing created {mark:?}");
        }
        assert!(xa.set_mark(index, Mark::M0));
        check(&xa);
        assert!(xa.get_mark(index, Mark::M0));
        assert!(!xa.get_mark(index, Mark::M1));
        assert!(xa.set_mark(index, Mark::M1));
        xa.clear_mark(index, Mark::M0);
        check(&xa);
        assert!(!xa.get_mark(index, Mark::M0));
        assert!(xa.get_mark(index, Mark::M1), "marks are independent");

        xa.erase(index).unwrap();
        check(&xa);
        for mark in Mark::ALL {
            assert!(!xa.get_mark(index, mark), "erase left {mark:?}");
            assert!(!xa.set_mark(index, mark), "re-set {mark:?} after erase");
        }
        assert!(xa.is_empty() && xa.node_count() == 0);

        // The aligned block of S indices around `index`, and another block beside it.
        let size = S as u64;
        let base = index & !(size - 1);
        let last = base + (size - 1);
        let other = index ^ 1; // a second index in the same block
        let beside = if last < u64::MAX {
            last + 1
        } else {
            base - size
        };
        xa.store(index, item(1)).unwrap();
        xa.store(other, item(2)).unwrap();
        assert!(xa.set_mark(index, Mark::M0));
        assert!(xa.set_mark(other, Mark::M1));
        check(&xa);
        xa.store_range(base..=last, 42).unwrap();
        check(&xa);
        assert_eq!(xa.len(), 0, "the range store released both items");
        for i in base..=last {
            assert_eq!(at(&xa, i), Seen::Value(42));
            assert!(xa.get_mark(i, Mark::M0), "{i} lacks M0 of {index}");
            assert!(xa.get_mark(i, Mark::M1), "{i} lacks M1 of {other}");
            assert!(!xa.get_mark(i, Mark::M2));
        }
        xa.store(beside, item(3)).unwrap();
        check(&xa);
        let (lo, hi) = (base.min(beside), last.max(beside));
        assert_eq!(xa.iter(lo..=hi).count(), 2);
        let marked: Vec<_> = xa.iter_marked(lo..=hi, Mark::M0).map(|(s, _)| s).collect();
        assert_eq!(marked, vec![base..=last]);
        assert!(
            !xa.get_mark(beside, Mark::M0),
            "the next index stays unmarked"
        );
        assert!(!xa.get_mark(beside, Mark::M1));

        xa.erase_range(lo..=hi).unwrap();
        check(&xa);
        assert!(xa.is_empty() && xa.node_count() == 0);
        assert!(!xa.any_marked(Mark::M0) && !xa.any_marked(Mark::M1));
    }
}

/// check_xa_mark_1 (range stores): each block of a range store carries the union of the
/// marks of the entries it replaced in that block, not in the whole range.
fn range_store_marks_are_the_union_per_block<const S: usize>() {
    let size = S as u64;
    let xa = tree::<S>();
    // Two blocks of S, one item with a mark in each; a third, unmarked, block.
    xa.store(3 % size, item(0)).unwrap();
    xa.store(size + size / 2, item(1)).unwrap();
    xa.store(2 * size, item(2)).unwrap();
    xa.set_mark(3 % size, Mark::M0);
    xa.set_mark(size + size / 2, Mark::M1);
    xa.store_range(0..3 * size, 5).unwrap();
    check(&xa);
    assert_eq!(xa.iter(..).count(), 3);
    for i in 0..3 * size {
        let block = i / size;
        assert_eq!(xa.get_mark(i, Mark::M0), block == 0, "M0 at {i}");
        assert_eq!(xa.get_mark(i, Mark::M1), block == 1, "M1 at {i}");
        assert!(!xa.get_mark(i, Mark::M2));
    }
    // A range store replacing a subtree carries the marks found deep inside it.
    let xa = tree::<S>();
    let big = size * size * size;
    xa.store(big - 1, item(0)).unwrap();
    xa.set_mark(big - 1, Mark::M2);
    xa.store_range(0..big, 6).unwrap();
    check(&xa);
    assert_eq!(spans(&xa, ..), vec![(0, big - 1, Seen::Value(6))]);
    assert!(xa.get_mark(0, Mark::M2) && xa.get_mark(big / 2, Mark::M2));
    assert!(xa.any_marked(Mark::M2));
    // A range store over unmarked entries and holes carries no mark.
    xa.store_range(big..2 * big, 1).unwrap();
    assert!(!xa.get_mark(big, Mark::M2));
    // Erasing one index of the marked entry keeps the others' marks.
    xa.erase(5).unwrap();
    check(&xa);
    assert!(!xa.get_mark(5, Mark::M2));
    assert!(xa.get_mark(4, Mark::M2) && xa.get_mark(6, Mark::M2));
    let marked: u64 = xa
        .iter_marked(.., Mark::M2)
        .map(|(s, _)| s.end() - s.start() + 1)
        .sum();
    assert_eq!(marked, big - 1);

    // Over the whole space the new entry lives in the head and still carries the union;
    // erasing one index splits it and every other index keeps both marks.
    let xa = tree::<S>();
    xa.store(0, item(0)).unwrap();
    xa.store(u64::MAX, item(1)).unwrap();
    xa.set_mark(0, Mark::M0);
    xa.set_mark(u64::MAX, Mark::M1);
    xa.store_range(.., 3).unwrap();
    check(&xa);
    assert_eq!(xa.node_count(), 0);
    for i in [0, 1, 1 << 40, u64::MAX] {
        assert!(xa.get_mark(i, Mark::M0) && xa.get_mark(i, Mark::M1));
        assert!(!xa.get_mark(i, Mark::M2));
    }
    let marked: Vec<_> = xa.iter_marked(5.., Mark::M1).map(|(s, _)| s).collect();
    assert_eq!(marked, vec![0..=u64::MAX]);
    xa.erase(1 << 40).unwrap();
    check(&xa);
    assert!(!xa.get_mark(1 << 40, Mark::M0));
    assert!(xa.get_mark((1 << 40) - 1, Mark::M0) && xa.get_mark((1 << 40) + 1, Mark::M1));
    let marked: u128 = xa
        .iter_marked(.., Mark::M0)
        .map(|(s, _)| (s.end() - s.start()) as u128 + 1)
        .sum();
    assert_eq!(marked, u64::MAX as u128);
}

/// check_xa_mark_2: a thousand marked entries are all found by marked iteration, and
/// clearing the marks of half of them hides exactly that half.
fn marked_iteration_finds_every_marked_entry<const S: usize>() {
    let n = scaled(1000, 40);
    let xa = tree::<S>();
    let index = |i: u64| i * 7 + (i % 3) * 4096;
    for i in 0..n {
        xa.store(index(i), item(i)).unwrap();
        assert!(xa.set_mark(index(i), Mark::M1));
    }
    xa.store(1 << 40, item(0)).unwrap(); // unmarked
    check(&xa);
    let mut expected: Vec<u64> = (0..n).map(index).collect();
    expected.sort_unstable();
    let marked: Vec<u64> = xa
        .iter_marked(.., Mark::M1)
        .map(|(s, _)| *s.start())
        .collect();
    assert_eq!(marked, expected);
    let guard_marked = xa.read().iter_marked(.., Mark::M1).count();
    assert_eq!(guard_marked, n as usize);
    for i in (0..n).step_by(2) {
        xa.clear_mark(index(i), Mark::M1);
    }
    check(&xa);
    let mut odd: Vec<u64> = (0..n).filter(|i| i % 2 == 1).map(index).collect();
    odd.sort_unstable();
    let marked: Vec<u64> = xa
        .iter_marked(.., Mark::M1)
        .map(|(s, _)| *s.start())
        .collect();
    assert_eq!(marked, odd);
    // A bounded marked iteration respects both ends.
    let (lo, hi) = (odd[1], odd[odd.len() - 2]);
    let inner: Vec<u64> = xa
        .iter_marked(lo..hi, Mark::M1)
        .map(|(s, _)| *s.start())
        .collect();
    assert_eq!(inner, odd[1..odd.len() - 2].to_vec());
    assert!(xa.iter_marked(.., Mark::M0).next().is_none());
}

/// check_xa_mark_3: a marked iteration started inside a marked multi-index entry reports
/// it once, with its whole span; after marking one index only (which splits the entry),
/// only that index is reported.
fn marked_iteration_from_inside_a_multi_index_entry<const S: usize>() {
    let size = S as u64;
    let base = 0x40 * size / 4; // 0x40 for 4 slots; aligned for any fan-out
    let xa = tree::<S>();
    xa.store(base, item(0)).unwrap();
    xa.set_mark(base, Mark::M0);
    xa.store_range(base..base + size, 1).unwrap();
    check(&xa);
    let seen: Vec<_> = xa
        .iter_marked(base + 1.., Mark::M0)
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seen, vec![base..=base + size - 1]);

    let xa = tree::<S>();
    xa.store_range(base..base + size, 1).unwrap();
    assert!(xa.set_mark(base + 1, Mark::M0));
    check(&xa);
    let seen: Vec<_> = xa.iter_marked(base.., Mark::M0).map(|(s, _)| s).collect();
    assert_eq!(seen, vec![base + 1..=base + 1]);
    assert_tiles(&spans(&xa, ..), base, base + size - 1, Seen::Value(1));
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

/// check_multi_store: an order-1 store loads at both indices and leaves the next one
/// alone; a store beside it leaves it alone; a larger store overwrites it; an order-63
/// erase empties the tree, even when index 0 was empty.
fn multi_index_store_basics<const S: usize>() {
    let xa = tree::<S>();
    xa.store_range(0..2, 1).unwrap();
    check(&xa);
    assert_eq!(at(&xa, 0), Seen::Value(1));
    assert_eq!(at(&xa, 1), Seen::Value(1));
    assert_eq!(at(&xa, 2), Seen::Empty);
    assert_eq!(xa.node_count(), 1);
    xa.store(2, item(2)).unwrap();
    check(&xa);
    assert_tiles(&spans(&xa, ..2), 0, 1, Seen::Value(1));
    assert_eq!(at(&xa, 2), Seen::Item(2));
    xa.store_range(0..4, 3).unwrap();
    check(&xa);
    assert_tiles(&spans(&xa, ..), 0, 3, Seen::Value(3));
    assert_eq!(xa.len(), 0);
    xa.erase_range(0..1 << 63).unwrap();
    check(&xa);
    assert!(xa.is_empty() && xa.node_count() == 0);

    // The same with nothing at index 0.
    xa.store(1, item(1)).unwrap();
    xa.store_range(1 << 40..1 << 41, 4).unwrap();
    check(&xa);
    xa.erase_range(0..1 << 63).unwrap();
    check(&xa);
    assert!(xa.is_empty() && xa.node_count() == 0);
    // ...and the top half survives an erase of the bottom half.
    xa.store_range(1 << 62..=u64::MAX, 5).unwrap();
    xa.erase_range(0..1 << 63).unwrap();
    check(&xa);
    assert_tiles(&spans(&xa, ..), 1 << 63, u64::MAX, Seen::Value(5));
}

/// check_multi_store (every pair of orders): storing 2^b indices over 2^a indices at 0,
/// for every a and b up to 64, reads correctly at every 2^k - 1 and iterates as the two
/// ranges.
fn multi_store_every_pair_of_orders_at_zero<const S: usize>() {
    multi_store_every_pair_of_orders::<S>(false);
}

/// check_multi_store (every pair of orders), mirrored: both ranges end at u64::MAX.
fn multi_store_every_pair_of_orders_at_the_top<const S: usize>() {
    multi_store_every_pair_of_orders::<S>(true);
}

/// The body of the two tests above.
fn multi_store_every_pair_of_orders<const S: usize>(top: bool) {
    let orders: Vec<u32> = if cfg!(miri) {
        vec![0, 1, 2, 5, 6, 7, 63, 64]
    } else {
        (0..=64).collect()
    };
    // The range of the 2^order indices at the bottom or top of the space.
    let range = |order: u32, top: bool| -> (u64, u64) {
        let last = if order == 64 {
            u64::MAX
        } else {
            (1u64 << order) - 1
        };
        if top {
            (u64::MAX - last, u64::MAX)
        } else {
            (0, last)
        }
    };
    let xa = tree::<S>();
    for &a in &orders {
        for &b in &orders {
            let (a_first, a_last) = range(a, top);
            let (b_first, b_last) = range(b, top);
            xa.store_range(a_first..=a_last, 1).unwrap();
            xa.store_range(b_first..=b_last, 2).unwrap();
            check(&xa);
            // Probe 2^k - 1 (bottom) or u64::MAX - (2^k - 1) (top) for every k.
            for k in 0..=64u32 {
                let (probe_first, probe_last) = range(k, top);
                let probe = if top { probe_first } else { probe_last };
                let expected = if k <= b {
                    Seen::Value(2)
                } else if k <= a {
                    Seen::Value(1)
                } else {
                    Seen::Empty
                };
                assert_eq!(at(&xa, probe), expected, "a={a} b={b} top={top} k={k}");
            }
            let all = spans(&xa, ..);
            if b >= a {
                assert_tiles(&all, b_first, b_last, Seen::Value(2));
            } else if top {
                assert_tiles(&spans(&xa, ..b_first), a_first, b_first - 1, Seen::Value(1));
                assert_tiles(&spans(&xa, b_first..), b_first, b_last, Seen::Value(2));
            } else {
                assert_tiles(&spans(&xa, ..=b_last), b_first, b_last, Seen::Value(2));
                assert_tiles(
                    &spans(&xa, b_last + 1..),
                    b_last + 1,
                    a_last,
                    Seen::Value(1),
                );
            }
            xa.erase_range(..).unwrap();
            check(&xa);
            assert!(xa.is_empty() && xa.node_count() == 0);
        }
    }
}

/// check_multi_store (store to any index), under per-index semantics: a store at any one
/// index of a multi-index entry replaces that index only; the rest keep the value.
fn store_at_one_index_of_a_multi_index_entry<const S: usize>() {
    let size = (S * S) as u64;
    let base = size * 3;
    for hit in base..base + size {
        let xa = tree::<S>();
        xa.store_range(base..base + size, 1).unwrap();
        let old = xa.store(hit, item(hit)).unwrap();
        check(&xa);
        assert_eq!(old.value(), Some(1));
        assert_eq!(xa.len(), 1);
        assert_eq!(at(&xa, hit), Seen::Item(hit));
        if hit > base {
            assert_tiles(&spans(&xa, ..hit), base, hit - 1, Seen::Value(1));
        }
        if hit < base + size - 1 {
            assert_tiles(
                &spans(&xa, hit + 1..),
                hit + 1,
                base + size - 1,
                Seen::Value(1),
            );
        }
        xa.erase_range(base..base + size).unwrap();
        check(&xa);
        assert!(xa.is_empty() && xa.node_count() == 0);
    }
}

/// check_store_range: store_range(i..=j) for every 0 <= i <= j < 128 at bases 0, 128,
/// 4095, 4096, 123456 and 2^24: the ends load the value, the neighbours are empty, the
/// range iterates as exactly [i, j], and erasing the range empties the tree. One test per
/// base (they run in parallel), each for 64 slots and, at the bases next to a 4-slot
/// block boundary (0, 4095, 4096, 2^24), for 4 slots too.
mod store_range_every_pair_at_every_base {
    use super::store_range_every_pair as pairs;

    #[test]
    fn base_0() {
        pairs::<64>(0);
        pairs::<4>(0);
    }
    #[test]
    fn base_128() {
        pairs::<64>(128);
    }
    #[test]
    fn base_4095() {
        pairs::<64>(4095);
        pairs::<4>(4095);
    }
    #[test]
    fn base_4096() {
        pairs::<64>(4096);
        pairs::<4>(4096);
    }
    #[test]
    fn base_123456() {
        pairs::<64>(123_456);
    }
    #[test]
    fn base_2_pow_24() {
        pairs::<64>(1 << 24);
        pairs::<4>(1 << 24);
    }
}

/// The body of `store_range_every_pair_at_every_base` for one base.
fn store_range_every_pair<const S: usize>(base: u64) {
    let width = scaled(128, 4);
    let xa = tree::<S>();
    for i in 0..width {
        for j in i..width {
            let (first, last) = (base + i, base + j);
            let value = first * 1000 + last;
            xa.store_range(first..=last, value).unwrap();
            check(&xa);
            assert_eq!(at(&xa, first), Seen::Value(value));
            assert_eq!(at(&xa, last), Seen::Value(value));
            if first > 0 {
                assert_eq!(at(&xa, first - 1), Seen::Empty, "[{first}, {last}]");
            }
            assert_eq!(at(&xa, last + 1), Seen::Empty, "[{first}, {last}]");
            assert_tiles(&spans(&xa, first..=last), first, last, Seen::Value(value));
            // Nothing outside the range: the first entry starts at `first`, none follows.
            assert_eq!(xa.find(0).map(|(s, _)| *s.start()), Some(first));
            assert!(xa.find(last + 1).is_none());
            xa.erase_range(first..=last).unwrap();
            check(&xa);
            assert!(xa.is_empty(), "[{first}, {last}] left {xa:?}");
            assert_eq!(xa.node_count(), 0);
        }
    }
}

/// check_store_iter: a range store replaces (and releases) every entry in its range,
/// whether none, one or many were there, and leaves entries just outside it alone.
fn store_range_replaces_what_was_in_range<const S: usize>() {
    let size = S as u64;
    let (first, last) = (size, 2 * size - 1); // one aligned block
    for present in [
        vec![],
        vec![first],
        vec![first + 1],
        (first..=last).collect(),
    ] {
        // An owned collector: dropping the tree frees what it retired, deterministically.
        let xa: XArray<u64, S> = XArray::with_collector(Collector::new());
        xa.store(first - 1, item(0)).unwrap();
        xa.store(last + 1, item(0)).unwrap();
        for &i in &present {
            xa.store(i, item(i)).unwrap();
            xa.set_mark(i, Mark::M2);
        }
        let kept = item(7);
        if let Some(&i) = present.first() {
            xa.store(i, kept.clone()).unwrap();
        }
        check(&xa);
        xa.store_range(first..=last, 9).unwrap();
        check(&xa);
        assert_eq!(xa.len(), 2, "{present:?}");
        assert_eq!(
            spans(&xa, first..=last),
            vec![(first, last, Seen::Value(9))]
        );
        assert_eq!(at(&xa, first - 1), Seen::Item(0));
        assert_eq!(at(&xa, last + 1), Seen::Item(0));
        assert_eq!(xa.get_mark(first, Mark::M2), !present.is_empty());
        assert!(!xa.get_mark(first - 1, Mark::M2) && !xa.get_mark(last + 1, Mark::M2));
        drop(xa);
        assert_eq!(
            Arc::strong_count(&kept),
            1,
            "the range store released the item"
        );
    }
    // A long range over scattered entries in many nodes.
    let xa = tree::<S>();
    for i in (0..5000).step_by(37) {
        xa.store(i, item(i)).unwrap();
    }
    xa.store(5000, item(0)).unwrap();
    xa.store_range(1..5000, 1).unwrap();
    check(&xa);
    assert_eq!(xa.len(), 2);
    assert_eq!(at(&xa, 0), Seen::Item(0));
    assert_eq!(at(&xa, 5000), Seen::Item(0));
    assert_tiles(&spans(&xa, 1..5000), 1, 4999, Seen::Value(1));
}

/// check_multi_store_advanced: page-cache-like adds and deletes of 2^o-index ranges at
/// many positions, with neighbouring ranges of other orders or holes around them.
fn page_cache_like_add_and_delete<const S: usize>() {
    let max_order = if cfg!(miri) { 5 } else { 20 };
    let xa = tree::<S>();
    for order in 0..=max_order {
        let size = 1u64 << order;
        let positions: [u64; 10] = [0, 1, 2, 3, 63, 64, 65, 4095, 4096, (1 << 30) + 5];
        for m in positions {
            let Some(pos) = m.checked_mul(size) else {
                continue;
            };
            let end = pos + size - 1;
            xa.store_range(pos..=end, 1).unwrap();
            check(&xa);
            if pos > 0 {
                assert_eq!(at(&xa, pos - 1), Seen::Empty);
            }
            assert_eq!(at(&xa, end + 1), Seen::Empty);
            assert_eq!(
                xa.find(pos).unwrap().0.start(),
                &pos,
                "order {order} at {pos}"
            );
            // Neighbours: a smaller range just before, a larger one just after.
            let before = pos.saturating_sub(size / 2 + 1);
            if before < pos {
                xa.store_range(before..pos, 2).unwrap();
            }
            xa.store_range(end + 1..=end + 2 * size, 3).unwrap();
            check(&xa);
            assert_tiles(&spans(&xa, pos..=end), pos, end, Seen::Value(1));
            // Delete the middle: the neighbours stay, the hole is empty.
            xa.erase_range(pos..=end).unwrap();
            check(&xa);
            assert!(xa.iter(pos..=end).next().is_none());
            assert_eq!(xa.find(pos).unwrap().0.start(), &(end + 1));
            if before < pos {
                assert_tiles(&spans(&xa, ..pos), before, pos - 1, Seen::Value(2));
            }
            assert_tiles(&spans(&xa, pos..), end + 1, end + 2 * size, Seen::Value(3));
            xa.erase_range(..).unwrap();
            check(&xa);
            assert!(xa.is_empty() && xa.node_count() == 0);
        }
    }
}

/// check_find_1: with entries at i < j < 100, find(k) for every k returns the lowest
/// entry at or after k, and a marked iteration from k the marked one if it is >= k;
/// erase clears the marks.
fn find_from_every_start<const S: usize>() {
    let n = scaled(100, 8);
    let xa = tree::<S>();
    for i in 0..n {
        for j in i + 1..n {
            xa.store(i, item(i)).unwrap();
            xa.store_value(j, j).unwrap();
            let marked = if (i + j) % 2 == 0 { i } else { j };
            assert!(xa.set_mark(marked, Mark::M0));
            check(&xa);
            for k in (0..=j + 1).chain([n, u64::MAX]) {
                let expected = if k <= i {
                    Some(i)
                } else if k <= j {
                    Some(j)
                } else {
                    None
                };
                let found = xa.find(k).map(|(s, _)| *s.start());
                assert_eq!(found, expected, "find({k}) with {i}, {j}");
                let first_marked = xa
                    .iter_marked(k.., Mark::M0)
                    .next()
                    .map(|(s, _)| *s.start());
                assert_eq!(first_marked, (marked >= k).then_some(marked), "k = {k}");
            }
            xa.erase(i).unwrap();
            xa.erase(j).unwrap();
            check(&xa);
            assert!(!xa.any_marked(Mark::M0), "erase cleared the mark");
            assert!(xa.is_empty() && xa.node_count() == 0);
        }
    }
}

/// check_multi_find_1: find from inside a multi-index entry returns it with its whole
/// span; from after it, the next entry; a bounded iteration stops at its end.
fn find_from_inside_a_multi_index_entry<const S: usize>() {
    let size = (S * S) as u64;
    let (first, last) = (size, 2 * size - 1);
    let next = 3 * size + 5;
    let xa = tree::<S>();
    xa.store_range(first..=last, 1).unwrap();
    xa.store(next, item(0)).unwrap();
    for k in (0..=last).step_by(S / 2) {
        let (span, entry) = xa.find(k).unwrap();
        assert_eq!((span, common::seen(&entry)), (first..=last, Seen::Value(1)));
    }
    assert_eq!(xa.find(last + 1).unwrap().0, next..=next);
    assert_eq!(
        spans(&xa, first + 1..next),
        vec![(first, last, Seen::Value(1))]
    );
    assert!(xa.iter(last + 1..next).next().is_none());
    assert!(xa.find(next + 1).is_none());
}

/// check_multi_find_3: after an entry of 2^k indices at 0, nothing is found from its end.
fn nothing_after_a_multi_index_entry_at_zero<const S: usize>() {
    let bits = common::bits::<S>();
    let xa = tree::<S>();
    for k in 1..64 {
        let size = 1u64 << k;
        xa.store_range(0..size, k).unwrap();
        check(&xa);
        assert!(xa.find(size).is_none(), "k = {k}");
        assert!(xa.iter(size..).next().is_none());
        assert_tiles(&spans(&xa, ..), 0, size - 1, Seen::Value(k));
        // Started inside, at 1, iteration begins with the block holding 1.
        let (span, _) = xa.iter(1..).next().unwrap();
        let shift = k as u32 / bits * bits;
        assert!(span.contains(&1) && *span.end() == (1u64 << shift).max(2) - 1);
        xa.erase_range(..).unwrap();
        assert!(xa.is_empty() && xa.node_count() == 0);
    }
}

/// check_find_4 (and check_move's end): an entry at u64::MAX is found from u64::MAX,
/// iteration from there yields it once and stops (no wrap to 0), and after erasing it
/// nothing is found.
fn no_wrap_at_u64_max<const S: usize>() {
    let xa = tree::<S>();
    xa.store(0, item(0)).unwrap(); // a wrap-around would find this
    xa.store(u64::MAX, item(1)).unwrap();
    xa.set_mark(0, Mark::M1);
    xa.set_mark(u64::MAX, Mark::M1);
    check(&xa);
    assert_eq!(xa.find(u64::MAX).unwrap().0, u64::MAX..=u64::MAX);
    for start in [u64::MAX, u64::MAX - 1, 1] {
        let mut iter = xa.iter(start..);
        assert_eq!(iter.next().map(|(s, _)| s), Some(u64::MAX..=u64::MAX));
        assert!(iter.next().is_none(), "wrapped after u64::MAX from {start}");
        let mut marked = xa.iter_marked(start.., Mark::M1);
        assert_eq!(marked.next().map(|(s, _)| s), Some(u64::MAX..=u64::MAX));
        assert!(marked.next().is_none());
        let guard = xa.read();
        let mut borrowed = guard.iter(start..);
        assert!(borrowed.next().is_some() && borrowed.next().is_none());
    }
    xa.erase(u64::MAX).unwrap();
    check(&xa);
    assert!(xa.find(u64::MAX).is_none());
    assert!(xa.find(1).is_none());
    assert!(xa.iter(u64::MAX..).next().is_none());

    // The same with a multi-index entry that ends at u64::MAX.
    let first = u64::MAX - (S as u64 * S as u64 - 1);
    xa.store_range(first.., 3).unwrap();
    let mut iter = xa.iter(u64::MAX..);
    assert_eq!(iter.next().map(|(s, _)| s), Some(first..=u64::MAX));
    assert!(iter.next().is_none());
    xa.erase_range(first..).unwrap();
    assert!(xa.find(u64::MAX).is_none());
    // And with the whole space in one entry.
    xa.store_range(.., 4).unwrap();
    let mut iter = xa.iter(u64::MAX..);
    assert_eq!(iter.next().map(|(s, _)| s), Some(0..=u64::MAX));
    assert!(iter.next().is_none());
    check(&xa);
}

/// check_multi_store (iteration): a multi-index entry is reported once by an iteration,
/// and once again by an iteration restarted from any index inside it.
fn iteration_reports_multi_index_entries_once<const S: usize>() {
    let size = (S * S) as u64;
    let (first, last) = (2 * size, 3 * size - 1);
    let xa = tree::<S>();
    xa.store(first - 1, item(0)).unwrap();
    xa.store_range(first..=last, 1).unwrap();
    xa.store(last + 1, item(0)).unwrap();
    check(&xa);
    assert_eq!(xa.iter(..).count(), 3);
    for start in first..=last {
        let seen = spans(&xa, start..);
        assert_eq!(seen.len(), 2, "from {start}: {seen:?}");
        assert_eq!(seen[0], (first, last, Seen::Value(1)));
        // Bounded inside the entry: still once.
        assert_eq!(spans(&xa, start..=last).len(), 1);
        assert_eq!(spans(&xa, first..=start).len(), 1);
    }
}

/// check_pause: iterating entries of increasing and then decreasing order, straight
/// through, restarting after every entry, or from an unaligned start, sees each entry
/// exactly once.
fn pause_and_restart_sees_each_entry_once<const S: usize>() {
    let bits = common::bits::<S>();
    let orders: Vec<u32> = (0..6).chain((0..6).rev()).map(|o| o * bits).collect();
    let xa = tree::<S>();
    let mut expected = Vec::new();
    let mut next = 0u64;
    for (n, &order) in orders.iter().enumerate() {
        let size = 1u64 << order;
        let first = next.div_ceil(size) * size + size; // aligned, with a hole before it
        xa.store_range(first..first + size, n as u64).unwrap();
        expected.push((first, first + size - 1, Seen::Value(n as u64)));
        next = first + size;
    }
    check(&xa);
    assert_eq!(spans(&xa, ..), expected);

    // Restart ("pause") after every entry.
    let mut restarted = Vec::new();
    let mut from = Some(0u64);
    while let Some(start) = from {
        let Some((span, entry)) = xa.iter(start..).next() else {
            break;
        };
        restarted.push((*span.start(), *span.end(), common::seen(&entry)));
        from = span.end().checked_add(1);
    }
    assert_eq!(restarted, expected);

    // From an unaligned start inside each entry: that entry first, each once.
    for (n, &(first, last, _)) in expected.iter().enumerate() {
        let start = first + (last - first) / 2 + 1;
        let start = start.min(last);
        assert_eq!(spans(&xa, start..), expected[n..].to_vec());
    }
}

/// check_get_order: for entries of order 0..19, every index of an entry reports the
/// whole entry (its order) through find, and an empty neighbour reports nothing.
fn span_is_the_order_at_every_index<const S: usize>() {
    let bits = common::bits::<S>();
    let max_order = if cfg!(miri) { 6 } else { 19 };
    let xa = tree::<S>();
    for order in (0..=max_order).filter(|o| o % bits == 0) {
        let size = 1u64 << order;
        let first = 3 * size;
        let last = first + size - 1;
        xa.store_range(first..=last, order as u64).unwrap();
        check(&xa);
        let step = (size / 256).max(1);
        for index in (first..=last).step_by(step as usize).chain([last]) {
            let (span, entry) = xa.find(index).unwrap();
            assert_eq!(span, first..=last, "order {order} at {index}");
            assert_eq!(common::seen(&entry), Seen::Value(order as u64));
        }
        assert_eq!(at(&xa, first - 1), Seen::Empty);
        assert_eq!(at(&xa, last + 1), Seen::Empty);
        assert!(xa.find(last + 1).is_none());
        xa.erase_range(first..=last).unwrap();
        assert!(xa.is_empty());
    }
}

/// check_xas_conflict_get_order: an iteration over any aligned range smaller or larger
/// than an entry, that overlaps it, reports the covering entry exactly once.
fn covering_entry_is_reported_once<const S: usize>() {
    let bits = common::bits::<S>();
    for order in (0..=4).map(|o| o * bits) {
        let size = 1u64 << order;
        let first = 5 * size;
        let last = first + size - 1;
        let xa = tree::<S>();
        xa.store_range(first..=last, 1).unwrap();
        for query_order in 0..=order + 2 * bits {
            let q = 1u64 << query_order;
            let q_first = first & !(q - 1);
            for offset in (0..size.max(q)).step_by(q.max(1) as usize).take(8) {
                let start = q_first + offset;
                if start > last {
                    break;
                }
                let seen = spans(&xa, start..start + q);
                assert_eq!(
                    seen,
                    vec![(first, last, Seen::Value(1))],
                    "order {order}, query {start}+{q}"
                );
            }
        }
    }
}

/// check_find_entry: searching by value through restarted iterations (every 4 entries)
/// over a grid of entries of several orders finds each value's first index, and absent
/// values are not found, also with an entry at u64::MAX.
fn find_entry_by_value<const S: usize>() {
    fn find_value<const S: usize>(xa: &XArray<u64, S>, wanted: u64) -> Option<u64> {
        let mut from = 0u64;
        loop {
            let batch: Vec<_> = xa.iter(from..).take(4).collect();
            for (span, entry) in &batch {
                if entry.value() == Some(wanted) {
                    return Some(*span.start());
                }
            }
            let (last, _) = batch.last()?;
            from = last.end().checked_add(1)?;
        }
    }
    let xa = tree::<S>();
    let bits = common::bits::<S>();
    let mut expected = Vec::new();
    for order in (0..=12).filter(|o| o % bits == 0) {
        for copy in 0..3u64 {
            let size = 1u64 << order;
            let first = (copy + 1) * (1 << 20) + 4 * size;
            xa.store_range(first..first + size, order as u64 * 10 + copy)
                .unwrap();
            expected.push((order as u64 * 10 + copy, first));
        }
    }
    check(&xa);
    for &(value, first) in &expected {
        assert_eq!(find_value(&xa, value), Some(first));
    }
    assert_eq!(find_value(&xa, MAX_VALUE), None);
    xa.store_value(u64::MAX, 999).unwrap();
    assert_eq!(find_value(&xa, 999), Some(u64::MAX));
    assert_eq!(find_value(&xa, 998), None);
}

/// check_destroy: clearing an empty tree, a single entry at each of 0..999, an entry at
/// u64::MAX and an order-11 entry leaves an empty tree with no nodes.
fn clear_destroys_every_shape<const S: usize>() {
    let xa = tree::<S>();
    xa.clear();
    check(&xa);
    assert!(xa.is_empty());
    for index in (0..scaled(1000, 10)).chain([u64::MAX]) {
        xa.store(index, item(index)).unwrap();
        xa.clear();
        check(&xa);
        assert!(xa.is_empty() && xa.node_count() == 0);
        assert_eq!(xa.len(), 0);
        assert!(xa.load(index).is_none());
    }
    xa.store_range(0..1 << 11, 11).unwrap();
    xa.set_mark(5, Mark::M0);
    xa.clear();
    check(&xa);
    assert!(xa.is_empty() && xa.node_count() == 0 && !xa.any_marked(Mark::M0));
}
