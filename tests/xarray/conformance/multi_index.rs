//! Multi-index entries and range stores (`check_multi_store`, `check_store_range`,
//! `check_xa_multi_store_advanced`, the page-cache-like add and delete).

use std::sync::Arc;

use crossbeam_epoch::Collector;
use rangelock::{Mark, XArray};

use super::{item, tree};
use crate::support::tree_checks::{assert_tiles, at, check, scaled, spans, Seen};

instantiate! {
    multi_index_store_basics => [slots_2: 2, slots_4: 4, slots_64: 64];
    multi_store_every_pair_of_orders_at_zero => [slots_64: 64, slots_4: 4];
    multi_store_every_pair_of_orders_at_the_top => [slots_64: 64, slots_4: 4];
    store_at_one_index_of_a_multi_index_entry => [slots_4: 4, slots_64: 64];
    store_range_replaces_what_was_in_range => [slots_64: 64, slots_4: 4];
    page_cache_like_add_and_delete => [slots_64: 64, slots_4: 4];
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
