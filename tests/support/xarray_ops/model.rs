//! The sequential model: an interval map from index runs to (entry, marks).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use rangelock::Entry;

use super::input::{MarkSel, Range};

/// A non-empty entry of the model. Items compare by identity, like the tree's
/// `compare_exchange`.
#[derive(Clone)]
pub enum ModelEntry {
    Item(Arc<u64>),
    Value(u64),
}

impl PartialEq for ModelEntry {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ModelEntry::Item(a), ModelEntry::Item(b)) => Arc::ptr_eq(a, b),
            (ModelEntry::Value(a), ModelEntry::Value(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for ModelEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Every fresh item carries a unique serial number.
            ModelEntry::Item(item) => write!(f, "item#{}", **item),
            ModelEntry::Value(v) => write!(f, "value {v}"),
        }
    }
}

impl ModelEntry {
    pub(super) fn from_tree(entry: &Entry<u64>) -> Option<ModelEntry> {
        match entry {
            Entry::Empty => None,
            Entry::Item(item) => Some(ModelEntry::Item(Arc::clone(item))),
            Entry::Value(v) => Some(ModelEntry::Value(*v)),
            Entry::Locked { .. } => panic!("the xarray_ops driver never locks: {entry:?}"),
        }
    }

    pub(super) fn to_tree(entry: Option<&ModelEntry>) -> Entry<u64> {
        match entry {
            None => Entry::Empty,
            Some(ModelEntry::Item(item)) => Entry::Item(Arc::clone(item)),
            Some(ModelEntry::Value(v)) => Entry::Value(*v),
        }
    }
}

/// Identity of two tree entries (what `compare_exchange` compares).
pub(super) fn same_entry(a: &Entry<u64>, b: &Entry<u64>) -> bool {
    match (a, b) {
        (Entry::Empty, Entry::Empty) => true,
        (Entry::Item(a), Entry::Item(b)) => Arc::ptr_eq(a, b),
        (Entry::Value(a), Entry::Value(b)) => a == b,
        _ => false,
    }
}

#[derive(Clone, Debug)]
struct ModelRun {
    last: u64,
    entry: ModelEntry,
    marks: u8,
}

/// A maximal run of indices with the same entry: `(first, last, entry)`.
pub type Run = (u64, u64, ModelEntry);

/// The sequential model: disjoint runs of non-empty indices.
#[derive(Default)]
pub struct Model {
    runs: BTreeMap<u64, ModelRun>,
}

impl Model {
    /// The run covering `index`.
    fn covering(&self, index: u64) -> Option<(u64, &ModelRun)> {
        self.runs
            .range(..=index)
            .next_back()
            .filter(|(_, run)| run.last >= index)
            .map(|(&start, run)| (start, run))
    }

    /// Entry and marks at `index`.
    pub(super) fn get(&self, index: u64) -> Option<(&ModelEntry, u8)> {
        self.covering(index).map(|(_, run)| (&run.entry, run.marks))
    }

    pub(super) fn entry(&self, index: u64) -> Entry<u64> {
        ModelEntry::to_tree(self.get(index).map(|(entry, _)| entry))
    }

    pub(super) fn item_at(&self, index: u64) -> Option<Arc<u64>> {
        match self.get(index) {
            Some((ModelEntry::Item(item), _)) => Some(Arc::clone(item)),
            _ => None,
        }
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

    /// Gives every index of `[first, last]` the entry and marks (or empties them).
    pub(super) fn assign(&mut self, first: u64, last: u64, value: Option<(ModelEntry, u8)>) {
        self.split(first);
        if last < u64::MAX {
            self.split(last + 1);
        }
        let inside: Vec<u64> = self.runs.range(first..=last).map(|(&k, _)| k).collect();
        for key in inside {
            self.runs.remove(&key);
        }
        if let Some((entry, marks)) = value {
            self.runs.insert(first, ModelRun { last, entry, marks });
            self.coalesce(first);
        }
    }

    /// Merges the run at `start` with equal neighbours (keeps the map small).
    fn coalesce(&mut self, start: u64) {
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

    /// Stores one entry at `index`; the index keeps its marks.
    pub(super) fn store(&mut self, index: u64, entry: ModelEntry) {
        let marks = self.get(index).map_or(0, |(_, marks)| marks);
        self.assign(index, index, Some((entry, marks)));
    }

    /// `store_range` on a tree with `slots` slots per node.
    pub(super) fn store_range(&mut self, slots: u64, first: u64, last: u64, value: u64) {
        for (block_first, block_last) in canonical_blocks(slots, first, last) {
            let marks = self.union_marks(block_first, block_last);
            self.assign(
                block_first,
                block_last,
                Some((ModelEntry::Value(value), marks)),
            );
        }
    }

    fn union_marks(&self, first: u64, last: u64) -> u8 {
        self.overlapping(first, last)
            .fold(0, |marks, (_, run)| marks | run.marks)
    }

    /// The runs intersecting `[first, last]`, ascending.
    fn overlapping(&self, first: u64, last: u64) -> impl Iterator<Item = (u64, &ModelRun)> {
        let from = self.covering(first).map_or(first, |(start, _)| start);
        self.runs
            .range(from..=last)
            .map(|(&start, run)| (start, run))
    }

    /// Sets or clears a mark on one index; `false` if it is empty.
    pub(super) fn change_mark(&mut self, index: u64, mark: MarkSel, on: bool) -> bool {
        let Some((entry, marks)) = self.get(index).map(|(e, m)| (e.clone(), m)) else {
            return false;
        };
        let marks = if on {
            marks | mark.bit()
        } else {
            marks & !mark.bit()
        };
        self.assign(index, index, Some((entry, marks)));
        true
    }

    /// Whether every index is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The number of indices holding items.
    pub(super) fn items(&self) -> u64 {
        self.runs
            .iter()
            .filter(|(_, run)| matches!(run.entry, ModelEntry::Item(_)))
            .map(|(&start, run)| run.last - start + 1)
            .sum()
    }

    pub(super) fn any_marked(&self, mark: MarkSel) -> bool {
        self.runs.values().any(|run| run.marks & mark.bit() != 0)
    }

    /// The first non-empty index at or after `from`.
    pub(super) fn first_at_or_after(&self, from: u64) -> Option<u64> {
        if self.covering(from).is_some() {
            return Some(from);
        }
        self.runs.range(from..).next().map(|(&start, _)| start)
    }

    /// Maximal runs of identical entries in `[first, last]` (only indices carrying
    /// `mark`, if given).
    pub(super) fn flatten(&self, first: u64, last: u64, mark: Option<MarkSel>) -> Vec<Run> {
        let mut out = Vec::new();
        for (start, run) in self.overlapping(first, last) {
            if mark.is_some_and(|m| run.marks & m.bit() == 0) {
                continue;
            }
            push_run(&mut out, start.max(first), run.last.min(last), &run.entry);
        }
        out
    }

    /// Whether every index of `[first, last]` holds `entry` with one common set of
    /// marks (as every index of one tree slot does).
    pub(super) fn uniform(&self, first: u64, last: u64, entry: &ModelEntry) -> bool {
        let mut next = Some(first);
        let mut marks = None;
        for (start, run) in self.overlapping(first, last) {
            if Some(start.max(first)) != next || run.entry != *entry {
                return false;
            }
            if *marks.get_or_insert(run.marks) != run.marks {
                return false;
            }
            next = run.last.checked_add(1);
        }
        next.is_none_or(|n| n > last)
    }
}

/// Appends `[first, last] -> entry` to `runs`, merging with the last run when adjacent
/// and identical.
pub(super) fn push_run(runs: &mut Vec<Run>, first: u64, last: u64, entry: &ModelEntry) {
    if let Some(prev) = runs.last_mut() {
        if prev.1.checked_add(1) == Some(first) && prev.2 == *entry {
            prev.1 = last;
            return;
        }
    }
    runs.push((first, last, entry.clone()));
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

/// Normalises bounds to an inclusive `(first, last)`, `None` when no index is in range.
pub fn inclusive(range: Range) -> Option<(u64, u64)> {
    let first = match range.start {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match range.end {
        Bound::Included(e) => e,
        Bound::Excluded(e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some((first, last))
}
