//! What the two differential drivers' models and checks share: the interval map of
//! non-empty indices, the tree's block rules (computed here, independently of the
//! crate), and the checks and reports both drivers make against an `XArray`.
//!
//! `tests/support/xarray_ops.rs` and `tests/support/range_ops.rs` use it as
//! `super::interval_model` (mounted once by `tests/support/mod.rs`, or by a fuzz target),
//! beside `arbitrary_indices.rs`.

use std::collections::BTreeMap;
use std::fmt;

use rangelock::XArray;

use super::arbitrary_indices::MarkSel;

/// A run of a [`RunMap`]: indices `start..=last` (the key is `start`) holding `entry`
/// with the marks `marks` (bit `i` for mark `i`).
#[derive(Clone, Debug)]
pub struct StoredRun<E> {
    pub last: u64,
    pub entry: E,
    pub marks: u8,
}

/// An interval map of the non-empty indices: disjoint runs `start -> (last, entry,
/// marks)`; an index no run covers is empty.
#[derive(Debug)]
pub struct RunMap<E> {
    runs: BTreeMap<u64, StoredRun<E>>,
}

impl<E> Default for RunMap<E> {
    fn default() -> Self {
        RunMap {
            runs: BTreeMap::new(),
        }
    }
}

impl<E: Clone + PartialEq> RunMap<E> {
    /// The run covering `index`.
    pub fn covering(&self, index: u64) -> Option<(u64, &StoredRun<E>)> {
        self.runs
            .range(..=index)
            .next_back()
            .filter(|(_, run)| run.last >= index)
            .map(|(&start, run)| (start, run))
    }

    /// Entry and marks at `index`.
    pub fn get(&self, index: u64) -> Option<(&E, u8)> {
        self.covering(index).map(|(_, run)| (&run.entry, run.marks))
    }

    /// Makes `at` the start of a run if a run covers it.
    fn split(&mut self, at: u64) {
        let Some((start, run)) = self.covering(at) else {
            return;
        };
        if start == at {
            return;
        }
        let tail = run.clone();
        self.runs.get_mut(&start).expect("run").last = at - 1;
        self.runs.insert(at, tail);
    }

    /// Gives every index of `[first, last]` the entry and marks (or empties them). Equal
    /// neighbours stay separate runs (see [`RunMap::coalesce`]).
    pub fn assign(&mut self, first: u64, last: u64, value: Option<(E, u8)>) {
        self.split(first);
        if last < u64::MAX {
            self.split(last + 1);
        }
        let inside: Vec<u64> = self.runs.range(first..=last).map(|(&k, _)| k).collect();
        for key in inside {
            self.runs.remove(&key);
        }
        if let Some((entry, marks)) = value {
            self.runs.insert(first, StoredRun { last, entry, marks });
        }
    }

    /// Merges the run at `start` with equal neighbours (keeps the map small).
    pub fn coalesce(&mut self, start: u64) {
        let mut start = start;
        if let Some((&prev, prev_run)) = self.runs.range(..start).next_back() {
            let run = &self.runs[&start];
            if prev_run.last.wrapping_add(1) == start
                && prev_run.entry == run.entry
                && prev_run.marks == run.marks
            {
                let last = run.last;
                self.runs.remove(&start);
                self.runs.get_mut(&prev).expect("run").last = last;
                start = prev;
            }
        }
        let run = &self.runs[&start];
        if run.last < u64::MAX {
            let next = run.last + 1;
            if let Some(next_run) = self.runs.get(&next) {
                if next_run.entry == run.entry && next_run.marks == run.marks {
                    let last = next_run.last;
                    self.runs.remove(&next);
                    self.runs.get_mut(&start).expect("run").last = last;
                }
            }
        }
    }

    /// Sets or clears the mark `bit` on one index; `false` if it is empty.
    pub fn change_mark(&mut self, index: u64, bit: u8, on: bool) -> bool {
        let Some((entry, marks)) = self.get(index).map(|(e, m)| (e.clone(), m)) else {
            return false;
        };
        let marks = if on { marks | bit } else { marks & !bit };
        self.assign(index, index, Some((entry, marks)));
        true
    }

    /// The runs intersecting `[first, last]`, ascending (not clipped to it).
    pub fn overlapping(&self, first: u64, last: u64) -> impl Iterator<Item = (u64, &StoredRun<E>)> {
        let from = self.covering(first).map_or(first, |(start, _)| start);
        self.runs
            .range(from..=last)
            .map(|(&start, run)| (start, run))
    }

    /// The first non-empty index at or after `from`.
    pub fn first_at_or_after(&self, from: u64) -> Option<u64> {
        if self.covering(from).is_some() {
            return Some(from);
        }
        self.runs.range(from..).next().map(|(&start, _)| start)
    }

    /// Whether every index is empty.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn clear(&mut self) {
        self.runs.clear();
    }

    /// The number of indices whose entry satisfies `counted`.
    pub fn count(&self, counted: impl Fn(&E) -> bool) -> u64 {
        self.runs
            .iter()
            .filter(|(_, run)| counted(&run.entry))
            .map(|(&start, run)| run.last - start + 1)
            .sum()
    }

    /// Whether some index carries the mark `bit`.
    pub fn any_marked(&self, bit: u8) -> bool {
        self.runs.values().any(|run| run.marks & bit != 0)
    }
}

/// The canonical decomposition of `[first, last]` for `slots` slots per node, computed
/// independently of the crate: greedily from the left, the largest block of `slots^k`
/// indices aligned to its size that fits; all of `u64` is one block.
pub fn canonical_blocks(slots: u64, first: u64, last: u64) -> Vec<(u64, u64)> {
    if first == 0 && last == u64::MAX {
        return vec![(0, u64::MAX)];
    }
    let (mut pos, end) = (u128::from(first), u128::from(last));
    let mut out = Vec::new();
    while pos <= end {
        let mut size: u128 = 1;
        loop {
            let bigger = size * u128::from(slots);
            if pos % bigger != 0 || pos + bigger - 1 > end {
                break;
            }
            size = bigger;
        }
        out.push((pos as u64, (pos + size - 1) as u64));
        pos += size;
    }
    out
}

/// Whether `[first, last]` is an aligned block of `slots^k` indices (or all of `u64`).
pub fn is_block(slots: u64, first: u64, last: u64) -> bool {
    if first == 0 && last == u64::MAX {
        return true;
    }
    if last < first {
        return false;
    }
    let size = u128::from(last - first) + 1;
    let mut block = 1u128;
    while block < size {
        block *= u128::from(slots);
    }
    block == size && u128::from(first) % size == 0
}

/// The cheap checks both drivers make after every step, against what the model says:
/// `check_invariants`, `len()` against the number of `items`, `is_empty()` (and no node
/// left when empty), and `any_marked` of each mark. The first divergence, described.
pub fn summary_divergence<const SLOTS: usize>(
    tree: &XArray<u64, SLOTS>,
    items: u64,
    empty: bool,
    any_marked: impl Fn(MarkSel) -> bool,
) -> Option<String> {
    if let Err(e) = tree.check_invariants() {
        return Some(format!("check_invariants: {e}"));
    }
    let len = tree.len() as u64;
    if len != items {
        return Some(format!("len() is {len}, model holds {items} items"));
    }
    if tree.is_empty() != empty {
        return Some(format!(
            "is_empty() is {}, model empty: {empty}",
            tree.is_empty()
        ));
    }
    // An empty tree links only the empty nodes kept for lockers (`check_invariants`
    // checks that each empty node is one) and their ancestors.
    let levels = 64usize.div_ceil(SLOTS.trailing_zeros() as usize);
    if empty && tree.node_count() > tree.kept_nodes_limit() * levels {
        return Some(format!("empty tree keeps {} nodes", tree.node_count()));
    }
    for mark in MarkSel::ALL {
        let (got, want) = (tree.any_marked(mark.mark()), any_marked(mark));
        if got != want {
            return Some(format!("any_marked({mark:?}) is {got}, model {want}"));
        }
    }
    None
}

/// Where the tree's runs first differ from the model's: `differs from run {i} on:` and
/// up to four runs of each from there; `None` when they are equal.
pub fn runs_divergence<R: PartialEq + fmt::Debug>(got: &[R], want: &[R]) -> Option<String> {
    if got == want {
        return None;
    }
    let diff = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    Some(format!(
        "differs from run {diff} on:\n  tree:  {:?}\n  model: {:?}",
        &got[diff..got.len().min(diff + 4)],
        &want[diff..want.len().min(diff + 4)],
    ))
}
