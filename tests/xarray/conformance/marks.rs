//! Marks: set, clear and get at every position, marks of range stores, and marked
//! iteration (`check_xa_mark`, `check_find_2`, ...).

use rangelock::Mark;

use super::{item, tree};
use crate::support::tree_checks::{assert_tiles, at, check, scaled, spans, Seen};

instantiate! {
    marks_behave_at_every_position => [slots_64: 64, slots_4: 4];
    range_store_marks_are_the_union_per_block => [slots_64: 64, slots_4: 4];
    marked_iteration_finds_every_marked_entry => [slots_64: 64, slots_4: 4];
    marked_iteration_from_inside_a_multi_index_entry => [slots_4: 4, slots_64: 64];
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
