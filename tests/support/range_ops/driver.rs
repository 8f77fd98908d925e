//! The driver: applies each operation to the tree (and its guards) and to the model, and
//! compares. Acquisitions and releases are in `locks.rs`.

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use crossbeam_epoch::Collector;
use rangelock::{
    CompareExchangeError, Entry, Evicted, LockMode, Mark, StoreError, XArray, XaError,
};

use super::arbitrary_indices::{inclusive, Hex};
use super::input::{MarkSel, NewEntry, Pick, Range, RangeOp};
use super::interval_model::{is_block, runs_divergence, summary_divergence};
use super::model::{first_locked, lock_at, lock_runs, push_run, GuardModel, Run, Store, View};

#[path = "locks.rs"]
mod locks;

use locks::Guard;

/// Runs `ops` against a 4-slot and a 64-slot tree, each beside its own model; panics on
/// the first divergence. One thread takes random ranges in random order on purpose:
/// lock-order checking (`--features lockdep`) is off for it.
pub fn run(ops: &[RangeOp]) {
    rangelock::lockdep::unchecked(|| {
        run_with::<4>(ops, 0);
        run_with::<64>(ops, 0);
        // Trees that keep emptied nodes for lockers and build down to them
        // (`src/xarray/kept.rs`): a budget small enough to run out, and a roomy one.
        run_with::<4>(ops, 2);
        run_with::<64>(ops, 16);
    })
}

/// Runs `ops` against an `XArray<u64, SLOTS>` that keeps up to `kept` empty nodes for
/// lockers, and the model; then drops every guard still live and checks that exactly
/// the model's items and values are left.
pub fn run_with<const SLOTS: usize>(ops: &[RangeOp], kept: usize) {
    // An owned collector: dropping the tree frees everything it retired.
    let tree = XArray::<u64, SLOTS>::with_collector(Collector::new()).with_kept_nodes(kept);
    let mut driver = Driver {
        tree: &tree,
        store: Store::default(),
        guards: Vec::new(),
        models: Vec::new(),
        serial: 0,
        step: 0,
        op: None,
    };
    // Comparing the whole map after every step is quadratic; long inputs (the fuzzer's)
    // compare after every refused acquisition (which must have changed nothing), every
    // 8th step and at the end. Divergences persist, so they are still seen.
    let full_every = if ops.len() <= 32 { 1 } else { 8 };
    for (step, op) in ops.iter().enumerate() {
        driver.step = step;
        driver.op = Some(op.clone());
        let refused = driver.apply(op);
        driver.check_summary();
        if step % full_every == 0 || refused {
            driver.check_contents();
        }
    }
    driver.step = ops.len();
    driver.op = None;
    driver.check_contents();
    // Release what is left, oldest first.
    while !driver.guards.is_empty() {
        driver.unlock(0);
        driver.check_summary();
    }
    driver.check_contents();
    // The empty nodes kept for lockers are all that an empty tree links: `trim` takes
    // them all.
    tree.trim();
    driver.check_summary();
    if driver.store.is_empty() && tree.node_count() != 0 {
        driver.fail(format_args!(
            "all guards dropped, tree empty and trimmed, {} nodes left",
            tree.node_count()
        ));
    }
}

struct Driver<'a, const SLOTS: usize> {
    tree: &'a XArray<u64, SLOTS>,
    store: Store,
    /// The live guards, and beside them (same positions) their models.
    guards: Vec<Guard<'a, SLOTS>>,
    models: Vec<GuardModel>,
    /// Serial number of the last fresh item (its payload).
    serial: u64,
    step: usize,
    op: Option<RangeOp>,
}

impl<'a, const SLOTS: usize> Driver<'a, SLOTS> {
    #[track_caller]
    fn fail(&self, what: fmt::Arguments<'_>) -> ! {
        let guards: Vec<String> = self.models.iter().map(GuardModel::to_string).collect();
        panic!(
            "XArray<u64, {SLOTS}> (keeping up to {} nodes) diverged from the range-lock model at step {} ({:?}): {what}\n  live guards: {guards:?}",
            self.tree.kept_nodes_limit(), self.step, self.op
        )
    }

    fn fresh(&mut self) -> Arc<u64> {
        self.serial += 1;
        Arc::new(self.serial)
    }

    /// What the model says `index` holds, lock entries included.
    fn view_at(&self, index: u64) -> Option<View> {
        lock_at(&self.models, index).or_else(|| self.store.get(index).map(|(v, _)| v.clone()))
    }

    fn marks_at(&self, index: u64) -> u8 {
        match lock_at(&self.models, index) {
            Some(_) => 0,
            None => self.store.get(index).map_or(0, |(_, marks)| marks),
        }
    }

    fn locked(&self, index: u64) -> bool {
        self.models.iter().any(|g| g.covers(index))
    }

    #[track_caller]
    fn expect_entry(&self, what: &str, got: &Entry<u64>, want: &Entry<u64>) {
        if !got.same_as(want) {
            self.fail(format_args!("{what}: tree {got:?}, model {want:?}"));
        }
    }

    fn pick(&self, guard: Pick) -> Option<usize> {
        (!self.guards.is_empty()).then(|| usize::from(guard.0) % self.guards.len())
    }

    /// Applies one operation; `true` if it was an acquisition that was refused.
    fn apply(&mut self, op: &RangeOp) -> bool {
        if let RangeOp::Lock { range, mode, how } = *op {
            return !self.lock(range, mode.mode(), how);
        }
        self.apply_other(op);
        false
    }

    fn apply_other(&mut self, op: &RangeOp) {
        match *op {
            RangeOp::Lock { .. } => unreachable!("applied by `apply`"),
            RangeOp::Unlock { guard } => {
                if let Some(k) = self.pick(guard) {
                    self.unlock(k);
                }
            }
            RangeOp::Downgrade { guard } => {
                let Some(k) = self.pick(guard) else { return };
                let Guard::Attached(g) = &mut self.guards[k] else {
                    return;
                };
                g.downgrade();
                let mode = g.mode();
                if mode != LockMode::Shared {
                    self.fail(format_args!("downgraded guard is {mode:?}"));
                }
                self.models[k].mode = LockMode::Shared;
                self.probe_range(self.models[k].first, self.models[k].last);
            }
            RangeOp::Publish { guard } => {
                let Some(k) = self.pick(guard) else { return };
                if !self.models[k].attached {
                    return;
                }
                let item = self.fresh();
                let Guard::Attached(g) = self.guards.remove(k) else {
                    unreachable!("the model says attached")
                };
                let model = self.models.remove(k);
                let publishable = model.first == model.last && model.mode == LockMode::Exclusive;
                match g.publish(Arc::clone(&item)) {
                    Ok(()) if publishable => {
                        self.store
                            .assign(model.first, model.first, Some((View::Item(item), 0)));
                    }
                    Err(e) if !publishable && Arc::ptr_eq(&e.item, &item) => {}
                    Ok(()) => self.fail(format_args!("publish succeeded")),
                    Err(_) => self.fail(format_args!(
                        "publish refused (or handed back another item)"
                    )),
                }
                self.probe_range(model.first, model.last);
            }
            RangeOp::Detach { guard } => {
                let Some(k) = self.pick(guard) else { return };
                if !self.models[k].attached {
                    return;
                }
                let Guard::Attached(g) = self.guards.remove(k) else {
                    unreachable!("the model says attached")
                };
                self.guards.insert(k, Guard::Detached(g.detach()));
                self.models[k].attached = false;
            }
            RangeOp::TakeEvicted { guard } => {
                let Some(k) = self.pick(guard) else { return };
                let taken = self.guards[k].take_evicted();
                let (first, last) = (self.models[k].first, self.models[k].last);
                self.check_evicted("take_evicted", first, last, &taken, &self.models[k].evicted);
                self.models[k].evicted.clear();
                if !self.guards[k].evicted().is_empty() {
                    self.fail(format_args!("evicted() not empty after take_evicted"));
                }
            }
            RangeOp::Store { index } => {
                let i = index.0;
                let item = self.fresh();
                let want = View::entry(self.view_at(i).as_ref());
                match self.tree.store(i, Arc::clone(&item)) {
                    Ok(old) if !self.locked(i) => {
                        self.expect_entry("store's old entry", &old, &want);
                        self.store.store(i, View::Item(item));
                    }
                    Err(StoreError { error, item: back })
                        if self.locked(i)
                            && error == (XaError::Locked { index: i })
                            && Arc::ptr_eq(&back, &item) => {}
                    got => self.fail(format_args!("store returned {got:?}")),
                }
            }
            RangeOp::StoreValue { index, value } => {
                let (i, v) = (index.0, value.0);
                let want = View::entry(self.view_at(i).as_ref());
                match self.tree.store_value(i, v) {
                    Ok(old) if !self.locked(i) => {
                        self.expect_entry("store_value's old entry", &old, &want);
                        self.store.store(i, View::Value(v));
                    }
                    Err(XaError::Locked { index }) if self.locked(i) && index == i => {}
                    got => self.fail(format_args!("store_value returned {got:?}")),
                }
            }
            RangeOp::Erase { index } => {
                let i = index.0;
                let want = View::entry(self.view_at(i).as_ref());
                match self.tree.erase(i) {
                    Ok(old) if !self.locked(i) => {
                        self.expect_entry("erase's old entry", &old, &want);
                        self.store.assign(i, i, None);
                    }
                    Err(XaError::Locked { index }) if self.locked(i) && index == i => {}
                    got => self.fail(format_args!("erase returned {got:?}")),
                }
            }
            RangeOp::SetMark { index, mark } => {
                let i = index.0;
                let got = self.tree.set_mark(i, mark.mark());
                let want = !self.locked(i) && self.store.change_mark(i, mark.bit(), true);
                if got != want {
                    self.fail(format_args!("set_mark returned {got}, model {want}"));
                }
            }
            RangeOp::ClearMark { index, mark } => {
                let i = index.0;
                self.tree.clear_mark(i, mark.mark());
                if !self.locked(i) {
                    self.store.change_mark(i, mark.bit(), false);
                }
            }
            RangeOp::Get { index } => self.probe(index.0),
            RangeOp::CompareExchange { index, new } => self.compare_exchange(index.0, new),
            RangeOp::StoreRange { range, value } => {
                let got = self.tree.store_range(range.bounds(), value.0);
                if let Some((first, last)) = self.range_write("store_range", range, got) {
                    self.store.store_range(SLOTS as u64, first, last, value.0);
                }
            }
            RangeOp::EraseRange { range } => {
                let got = self.tree.erase_range(range.bounds());
                if let Some((first, last)) = self.range_write("erase_range", range, got) {
                    self.store.assign(first, last, None);
                }
            }
            RangeOp::Clear => {
                self.tree.clear();
                self.store.clear();
            }
            // The contents stay; the checks after every step see the tree it leaves.
            RangeOp::Trim => self.tree.trim(),
        }
    }

    /// Checks what a range write (`store_range`, `erase_range`) of `range` returned:
    /// `InvalidRange` for an empty range, else `Locked` at its first locked index, else
    /// `Ok`. The range to apply to the model when it succeeded.
    fn range_write(
        &self,
        what: &str,
        range: Range,
        got: Result<(), XaError>,
    ) -> Option<(u64, u64)> {
        let want = match inclusive(range.bounds()) {
            None => Err(XaError::InvalidRange {
                start: range.start,
                end: range.end,
            }),
            Some((first, last)) => match first_locked(&self.models, first, last) {
                Some(index) => Err(XaError::Locked { index }),
                None => Ok(()),
            },
        };
        if got != want {
            self.fail(format_args!("{what} returned {got:?}, model {want:?}"));
        }
        got.ok().and(inclusive(range.bounds()))
    }

    fn compare_exchange(&mut self, i: u64, new: NewEntry) {
        let current = View::entry(self.view_at(i).as_ref());
        let new = match new {
            NewEntry::Empty => Entry::Empty,
            NewEntry::Value(v) => Entry::Value(v.0),
            NewEntry::FreshItem => Entry::Item(self.fresh()),
        };
        let got = self.tree.compare_exchange(i, &current, new.clone());
        match got {
            // A lock entry never matches, not even its own state.
            Err(CompareExchangeError::Mismatch {
                current: seen,
                new: back,
            }) if self.locked(i) => {
                self.expect_entry("compare_exchange's mismatch", &seen, &current);
                self.expect_entry("compare_exchange's returned new", &back, &new);
            }
            Ok(old) if !self.locked(i) => {
                self.expect_entry("compare_exchange's old entry", &old, &current);
                match View::of(&new) {
                    None => self.store.assign(i, i, None),
                    Some(view) => self.store.store(i, view),
                }
            }
            other => self.fail(format_args!(
                "compare_exchange({current:?} -> {new:?}) returned {other:?}"
            )),
        }
    }

    /// `get`, `load` and `get_mark` at one index.
    fn probe(&self, index: u64) {
        let got = self.tree.get(index);
        let want = View::entry(self.view_at(index).as_ref());
        if !got.same_as(&want) {
            self.fail(format_args!(
                "get({}) is {got:?}, model {want:?}",
                Hex(index)
            ));
        }
        let loaded = self.tree.load(index);
        let item = match self.view_at(index) {
            Some(View::Item(item)) => Some(item),
            _ => None,
        };
        if loaded.as_ref().map(Arc::as_ptr) != item.as_ref().map(Arc::as_ptr) {
            self.fail(format_args!(
                "load({}) is {loaded:?}, model {item:?}",
                Hex(index)
            ));
        }
        let marks = self.marks_at(index);
        for mark in MarkSel::ALL {
            let got = self.tree.get_mark(index, mark.mark());
            if got != (marks & mark.bit() != 0) {
                self.fail(format_args!(
                    "get_mark({}, {mark:?}) is {got}, model marks {marks:#b}",
                    Hex(index)
                ));
            }
        }
    }

    /// Probes a range's ends, their neighbours, and a few indices inside.
    fn probe_range(&self, first: u64, last: u64) {
        let span = last - first;
        let mut points = vec![
            first.checked_sub(1),
            Some(first),
            first.checked_add(1),
            Some(first + span / 4),
            Some(first + span / 2),
            Some(last - span / 4),
            last.checked_sub(1),
            Some(last),
            last.checked_add(1),
        ];
        points.extend(self.models.iter().flat_map(|g| {
            // Where another guard's range begins or ends inside this one.
            [g.first, g.last]
                .into_iter()
                .filter(|&p| first <= p && p <= last)
                .map(Some)
        }));
        let mut points: Vec<u64> = points.into_iter().flatten().collect();
        points.sort_unstable();
        points.dedup();
        for p in points {
            self.probe(p);
        }
    }

    /// Compares what an acquisition evicted with the model's runs: ascending, disjoint
    /// aligned blocks inside the range, the same entries with the same marks.
    fn check_evicted(&self, what: &str, first: u64, last: u64, got: &[Evicted<u64>], want: &[Run]) {
        let mut runs: Vec<Run> = Vec::new();
        let mut prev_end: Option<u64> = None;
        for e in got {
            let (start, end) = (*e.range().start(), *e.range().end());
            if start < first || end > last || !is_block(SLOTS as u64, start, end) {
                self.fail(format_args!(
                    "{what}: entry at {start}..={end} is not an aligned block inside {}..={}",
                    Hex(first),
                    Hex(last)
                ));
            }
            if prev_end.is_some_and(|p| start <= p) {
                self.fail(format_args!("{what}: {start}..={end} out of order"));
            }
            prev_end = Some(end);
            let view = match View::of(e.entry()) {
                Some(view @ (View::Item(_) | View::Value(_))) => view,
                other => self.fail(format_args!("{what}: evicted {other:?}")),
            };
            let marks = Mark::ALL
                .iter()
                .enumerate()
                .filter(|(_, &m)| e.is_marked(m))
                .fold(0u8, |acc, (bit, _)| acc | 1 << bit);
            push_run(&mut runs, start, end, &view, marks);
        }
        if runs != want {
            self.fail(format_args!(
                "{what}:\n  tree:  {runs:?}\n  model: {want:?}"
            ));
        }
    }

    /// Cheap checks, after every step.
    fn check_summary(&self) {
        let items = self.store.items();
        let empty = self.store.is_empty() && self.models.is_empty();
        let any_marked = |mark: MarkSel| self.store.any_marked(mark.bit());
        if let Some(divergence) = summary_divergence(self.tree, items, empty, any_marked) {
            self.fail(format_args!("{divergence}"));
        }
    }

    /// The whole map by meaning: `iter(..)` (lock entries included) against the model's
    /// items, values and lock runs; `iter_marked(.., m)` against its marked runs.
    fn check_contents(&self) {
        let mut all: Vec<Run> = self
            .store
            .flatten(0, u64::MAX)
            .into_iter()
            .map(|(first, last, view, _)| (first, last, view, 0))
            .chain(lock_runs(&self.models))
            .collect();
        all.sort_by_key(|run| run.0);
        let mut want = Vec::new();
        for (i, (first, last, view, marks)) in all.iter().enumerate() {
            if i > 0 && all[i - 1].1 >= *first {
                self.fail(format_args!(
                    "model error: item or value inside a locked range at {}",
                    Hex(*first)
                ));
            }
            push_run(&mut want, *first, *last, view, *marks);
        }
        self.compare_iteration("iter", None, &want);
        for mark in MarkSel::ALL {
            let mut want = Vec::new();
            for (first, last, view, marks) in self.store.flatten(0, u64::MAX) {
                if marks & mark.bit() != 0 {
                    push_run(&mut want, first, last, &view, 0);
                }
            }
            self.compare_iteration("iter_marked", Some(mark), &want);
        }
    }

    fn compare_iteration(&self, what: &str, mark: Option<MarkSel>, want: &[Run]) {
        let got: Vec<(RangeInclusive<u64>, Entry<u64>)> = match mark {
            None => self.tree.iter(..).collect(),
            Some(mark) => self.tree.iter_marked(.., mark.mark()).collect(),
        };
        let mut runs: Vec<Run> = Vec::new();
        let mut prev_end: Option<u64> = None;
        for (span, entry) in &got {
            let (start, end) = (*span.start(), *span.end());
            // Items and values sit in slots, so their spans are aligned blocks; a lock
            // entry may be a lock record, whose span is its own bounds.
            if !is_block(SLOTS as u64, start, end) && !matches!(entry, Entry::Locked { .. }) {
                self.fail(format_args!(
                    "{what} yielded {span:?}, not an aligned block"
                ));
            }
            if prev_end.is_some_and(|p| start <= p) {
                self.fail(format_args!(
                    "{what} yielded {span:?} after a span ending at {prev_end:?}"
                ));
            }
            prev_end = Some(end);
            let Some(view) = View::of(entry) else {
                self.fail(format_args!("{what} yielded an empty entry at {span:?}"));
            };
            push_run(&mut runs, start, end, &view, 0);
        }
        if let Some(divergence) = runs_divergence(&runs, want) {
            self.fail(format_args!("{what}(.., {mark:?}) {divergence}"));
        }
    }
}
