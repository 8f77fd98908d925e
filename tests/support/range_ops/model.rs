//! The sequential model: an interval map of items and values (with marks) outside the
//! locked ranges, and the list of live guards as plain intervals.

use std::fmt;
use std::sync::Arc;

use rangelock::{Entry, LockMode};

use super::arbitrary_indices::Hex;
use super::interval_model::{canonical_blocks, RunMap};

/// What one index means, as far as the tree's readers can tell. Items compare by
/// identity.
#[derive(Clone)]
pub enum View {
    Item(Arc<u64>),
    Value(u64),
    Locked { mode: LockMode, holders: u64 },
}

impl PartialEq for View {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (View::Item(a), View::Item(b)) => Arc::ptr_eq(a, b),
            (View::Value(a), View::Value(b)) => a == b,
            (
                View::Locked { mode, holders },
                View::Locked {
                    mode: other_mode,
                    holders: other_holders,
                },
            ) => mode == other_mode && holders == other_holders,
            _ => false,
        }
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Every fresh item carries a unique serial number.
            View::Item(item) => write!(f, "item#{}", **item),
            View::Value(v) => write!(f, "value {v}"),
            View::Locked { mode, holders } => write!(f, "locked {mode:?} x{holders}"),
        }
    }
}

impl View {
    /// The view of a tree entry (`None` for an empty index).
    pub fn of(entry: &Entry<u64>) -> Option<View> {
        match entry {
            Entry::Empty => None,
            Entry::Item(item) => Some(View::Item(Arc::clone(item))),
            Entry::Value(v) => Some(View::Value(*v)),
            Entry::Locked { mode, holders } => Some(View::Locked {
                mode: *mode,
                holders: *holders,
            }),
        }
    }

    /// The tree entry this view stands for.
    pub fn entry(view: Option<&View>) -> Entry<u64> {
        match view {
            None => Entry::Empty,
            Some(View::Item(item)) => Entry::Item(Arc::clone(item)),
            Some(View::Value(v)) => Entry::Value(*v),
            Some(View::Locked { mode, holders }) => Entry::Locked {
                mode: *mode,
                holders: *holders,
            },
        }
    }
}

/// A maximal run of indices with one view and one set of marks: `(first, last, view,
/// marks)`.
pub type Run = (u64, u64, View, u8);

/// Appends a run, merging it into the previous one when adjacent and identical.
pub fn push_run(runs: &mut Vec<Run>, first: u64, last: u64, view: &View, marks: u8) {
    if let Some(prev) = runs.last_mut() {
        if prev.1.checked_add(1) == Some(first) && prev.2 == *view && prev.3 == marks {
            prev.1 = last;
            return;
        }
    }
    runs.push((first, last, view.clone(), marks));
}

/// Items and values (never `View::Locked`) by disjoint runs; absent means empty.
#[derive(Default)]
pub struct Store {
    runs: RunMap<View>,
}

impl Store {
    /// The entry and marks at `index`.
    pub fn get(&self, index: u64) -> Option<(&View, u8)> {
        self.runs.get(index)
    }

    /// Gives every index of `[first, last]` the entry and marks (or empties them).
    pub fn assign(&mut self, first: u64, last: u64, value: Option<(View, u8)>) {
        debug_assert!(!matches!(value, Some((View::Locked { .. }, _))));
        self.runs.assign(first, last, value);
    }

    /// Stores one entry at `index`; the index keeps its marks.
    pub fn store(&mut self, index: u64, view: View) {
        let marks = self.get(index).map_or(0, |(_, marks)| marks);
        self.assign(index, index, Some((view, marks)));
    }

    /// `store_range` on a tree with `slots` slots per node: one entry per canonical
    /// block, each with the union of the marks it replaces.
    pub fn store_range(&mut self, slots: u64, first: u64, last: u64, value: u64) {
        for (block_first, block_last) in canonical_blocks(slots, first, last) {
            let marks = self
                .flatten(block_first, block_last)
                .iter()
                .fold(0, |marks, run| marks | run.3);
            self.assign(block_first, block_last, Some((View::Value(value), marks)));
        }
    }

    /// Sets or clears a mark on one index; `false` if it is empty.
    pub fn change_mark(&mut self, index: u64, bit: u8, on: bool) -> bool {
        self.runs.change_mark(index, bit, on)
    }

    /// Maximal runs of `[first, last]` (clipped), with marks.
    pub fn flatten(&self, first: u64, last: u64) -> Vec<Run> {
        let mut out = Vec::new();
        for (start, run) in self.runs.overlapping(first, last) {
            push_run(
                &mut out,
                start.max(first),
                run.last.min(last),
                &run.entry,
                run.marks,
            );
        }
        out
    }

    /// Empties `[first, last]` and returns what was there (an acquisition's eviction).
    pub fn take(&mut self, first: u64, last: u64) -> Vec<Run> {
        let runs = self.flatten(first, last);
        self.assign(first, last, None);
        runs
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn clear(&mut self) {
        self.runs.clear();
    }

    /// The number of indices holding items.
    pub fn items(&self) -> u64 {
        self.runs.count(|view| matches!(view, View::Item(_)))
    }

    pub fn any_marked(&self, bit: u8) -> bool {
        self.runs.any_marked(bit)
    }
}

/// A live guard, as the model sees it.
#[derive(Clone, Debug)]
pub struct GuardModel {
    pub first: u64,
    pub last: u64,
    pub mode: LockMode,
    /// Still in this thread's held-lock list (not detached).
    pub attached: bool,
    /// What the acquisition evicted (cleared by `take_evicted`).
    pub evicted: Vec<Run>,
}

impl fmt::Display for GuardModel {
    /// `first..=last Mode`, and ` (detached)` for a detached guard.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}..={} {:?}",
            Hex(self.first),
            Hex(self.last),
            self.mode
        )?;
        if !self.attached {
            write!(f, " (detached)")?;
        }
        Ok(())
    }
}

impl GuardModel {
    pub fn covers(&self, index: u64) -> bool {
        self.first <= index && index <= self.last
    }

    pub fn overlaps(&self, first: u64, last: u64) -> bool {
        self.first <= last && first <= self.last
    }
}

/// The lock state of `index`: `Locked { mode, holders }` if a guard covers it.
pub fn lock_at(guards: &[GuardModel], index: u64) -> Option<View> {
    let mut holders = 0;
    let mut mode = LockMode::Shared;
    for g in guards.iter().filter(|g| g.covers(index)) {
        holders += 1;
        if g.mode == LockMode::Exclusive {
            mode = LockMode::Exclusive;
        }
    }
    (holders > 0).then_some(View::Locked { mode, holders })
}

/// The first index of `[first, last]` that a guard holds in a mode conflicting with
/// `mode`: where an ascending claim stops.
pub fn first_conflict(guards: &[GuardModel], first: u64, last: u64, mode: LockMode) -> Option<u64> {
    guards
        .iter()
        .filter(|g| g.overlaps(first, last) && !g.mode.is_compatible(mode))
        .map(|g| g.first.max(first))
        .min()
}

/// The first locked index of `[first, last]`.
pub fn first_locked(guards: &[GuardModel], first: u64, last: u64) -> Option<u64> {
    guards
        .iter()
        .filter(|g| g.overlaps(first, last))
        .map(|g| g.first.max(first))
        .min()
}

/// The runs of every locked index, ascending (holders and mode constant on each).
pub fn lock_runs(guards: &[GuardModel]) -> Vec<Run> {
    // Every index where the set of covering guards may change.
    let mut cuts: Vec<u64> = guards
        .iter()
        .flat_map(|g| [Some(g.first), g.last.checked_add(1)])
        .flatten()
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(u64::MAX, |&next| next - 1);
        if let Some(view) = lock_at(guards, start) {
            push_run(&mut out, start, end, &view, 0);
        }
    }
    out
}
