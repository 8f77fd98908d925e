//! Helpers shared by the tree's and the range locks' tests (`xarray::edges`,
//! `xarray::conformance`, `xarray_memory`, `lock::safety`, `lock::stress`, `lock_memory`):
//! the edge indices, invariant checks, entries reduced to [`Seen`], span tiling.
#![allow(dead_code)]

use std::ops::RangeBounds;

use rangelock::{Entry, XArray};

/// The edge indices every test draws from (STYLE.md, habit 7).
pub const EDGES: [u64; 8] = [0, 63, 64, 4095, 4096, 1 << 32, u64::MAX - 1, u64::MAX];

/// `full` normally, `miri` under Miri (which runs these tests too, ~1000x slower).
pub fn scaled(full: u64, miri: u64) -> u64 {
    if cfg!(miri) {
        miri
    } else {
        full
    }
}

/// Panics with the first violated structural invariant, naming the caller's line.
#[track_caller]
pub fn check<T, const S: usize>(xa: &XArray<T, S>) {
    if let Err(violation) = xa.check_invariants() {
        panic!("tree invariant broken: {violation} ({xa:?})");
    }
}

/// An entry reduced to something comparable: items by their content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Empty,
    Item(u64),
    Value(u64),
    /// A lock entry: (exclusive, holders).
    Locked(bool, u64),
}

pub fn seen(entry: &Entry<u64>) -> Seen {
    match entry {
        Entry::Empty => Seen::Empty,
        Entry::Item(item) => Seen::Item(**item),
        Entry::Value(value) => Seen::Value(*value),
        Entry::Locked { mode, holders } => {
            Seen::Locked(*mode == rangelock::LockMode::Exclusive, *holders)
        }
    }
}

/// What `xa.get(index)` holds, as a [`Seen`].
pub fn at<const S: usize>(xa: &XArray<u64, S>, index: u64) -> Seen {
    seen(&xa.get(index))
}

/// The `(first, last, entry)` triples that `xa.iter(range)` yields.
pub fn spans<const S: usize>(
    xa: &XArray<u64, S>,
    range: impl RangeBounds<u64>,
) -> Vec<(u64, u64, Seen)> {
    xa.iter(range)
        .map(|(span, entry)| (*span.start(), *span.end(), seen(&entry)))
        .collect()
}

/// Index bits one level of a `S`-slot tree consumes.
pub fn bits<const S: usize>() -> u32 {
    S.trailing_zeros()
}

/// How many levels (nodes on one root-to-leaf path) a tree whose largest index is
/// `index` needs: `ceil(bit_length(index) / bits)`, at least one.
pub fn levels<const S: usize>(index: u64) -> usize {
    let bit_length = 64 - index.leading_zeros();
    (bit_length.div_ceil(bits::<S>())).max(1) as usize
}

/// Asserts that the spans tile `[first, last]` exactly, in order, without gaps or
/// overlaps, each with `expected`.
#[track_caller]
pub fn assert_tiles(spans: &[(u64, u64, Seen)], first: u64, last: u64, expected: Seen) {
    assert!(!spans.is_empty(), "nothing covers [{first}, {last}]");
    let mut next = Some(first);
    for &(start, end, entry) in spans {
        assert_eq!(Some(start), next, "gap or overlap in {spans:?}");
        assert!(start <= end);
        assert_eq!(entry, expected, "in {spans:?}");
        next = end.checked_add(1);
    }
    assert_eq!(
        spans.last().unwrap().1,
        last,
        "spans {spans:?} end early/late"
    );
}

/// The number of nodes a minimal tree holding exactly the single-index entries at
/// `indices` has: one root-to-leaf path per index, shared where the indices share a
/// prefix. A node of level `l` (shift `l * bits`) is identified by `index >> ((l + 1) *
/// bits)`; the tree has `levels(max)` levels.
pub fn expected_nodes<const S: usize>(indices: &[u64]) -> usize {
    let Some(&max) = indices.iter().max() else {
        return 0;
    };
    let bits = bits::<S>();
    (0..levels::<S>(max) as u32)
        .map(|level| {
            let mut ids: Vec<u64> = indices
                .iter()
                .map(|&i| i.checked_shr((level + 1) * bits).unwrap_or(0))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        })
        .sum()
}
