//! The sequential model: an interval map from index runs to (entry, marks).

use std::fmt;
use std::sync::Arc;

use rangelock::Entry;

use super::input::MarkSel;
use super::interval_model::{canonical_blocks, RunMap};

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

/// A maximal run of indices with the same entry: `(first, last, entry)`.
pub type Run = (u64, u64, ModelEntry);

/// The sequential model: disjoint runs of non-empty indices, equal neighbours merged.
#[derive(Default)]
pub struct Model {
    runs: RunMap<ModelEntry>,
}

impl Model {
    /// Entry and marks at `index`.
    pub(super) fn get(&self, index: u64) -> Option<(&ModelEntry, u8)> {
        self.runs.get(index)
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

    /// Gives every index of `[first, last]` the entry and marks (or empties them).
    pub(super) fn assign(&mut self, first: u64, last: u64, value: Option<(ModelEntry, u8)>) {
        let stored = value.is_some();
        self.runs.assign(first, last, value);
        if stored {
            self.runs.coalesce(first);
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
        self.runs
            .overlapping(first, last)
            .fold(0, |marks, (_, run)| marks | run.marks)
    }

    /// Sets or clears a mark on one index; `false` if it is empty.
    pub(super) fn change_mark(&mut self, index: u64, mark: MarkSel, on: bool) -> bool {
        let changed = self.runs.change_mark(index, mark.bit(), on);
        if changed {
            self.runs.coalesce(index);
        }
        changed
    }

    /// Whether every index is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The number of indices holding items.
    pub(super) fn items(&self) -> u64 {
        self.runs
            .count(|entry| matches!(entry, ModelEntry::Item(_)))
    }

    pub(super) fn any_marked(&self, mark: MarkSel) -> bool {
        self.runs.any_marked(mark.bit())
    }

    /// The first non-empty index at or after `from`.
    pub(super) fn first_at_or_after(&self, from: u64) -> Option<u64> {
        self.runs.first_at_or_after(from)
    }

    /// Maximal runs of identical entries in `[first, last]` (only indices carrying
    /// `mark`, if given).
    pub(super) fn flatten(&self, first: u64, last: u64, mark: Option<MarkSel>) -> Vec<Run> {
        let mut out = Vec::new();
        for (start, run) in self.runs.overlapping(first, last) {
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
        for (start, run) in self.runs.overlapping(first, last) {
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
