//! Finding and iterating (`check_find_*`, `check_multi_find_*`, `check_find_entry`), the
//! span of multi-index entries, pausing, and destroying every shape (`check_destroy`).

use rangelock::{Mark, XArray, MAX_VALUE};

use super::{item, tree};
use crate::support::tree_checks::{assert_tiles, at, check, scaled, seen, spans, Seen};

instantiate! {
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
        assert_eq!((span, seen(&entry)), (first..=last, Seen::Value(1)));
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
    let bits = crate::support::tree_checks::bits::<S>();
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
    let bits = crate::support::tree_checks::bits::<S>();
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
        restarted.push((*span.start(), *span.end(), seen(&entry)));
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
    let bits = crate::support::tree_checks::bits::<S>();
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
            assert_eq!(seen(&entry), Seen::Value(order as u64));
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
    let bits = crate::support::tree_checks::bits::<S>();
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
    let bits = crate::support::tree_checks::bits::<S>();
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
