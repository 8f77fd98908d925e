//! The driver: applies each operation to the tree and the model and compares.

use std::fmt;
use std::ops::{Bound, RangeInclusive};
use std::sync::Arc;

use crossbeam_epoch::Collector;
use rangelock::{CompareExchangeError, Entry, XArray, XaError, MAX_VALUE};

use super::arbitrary_indices::inclusive;
use super::input::{Expected, Index, ItemSource, MarkSel, NewEntry, Op, Range};
use super::interval_model::{is_block, runs_divergence, summary_divergence};
use super::model::{push_run, same_entry, Model, ModelEntry, Run};

/// Runs `ops` against a 4-slot and a 64-slot tree, each beside its own model; panics on
/// the first divergence.
pub fn run(ops: &[Op]) {
    run_with::<4>(ops);
    run_with::<64>(ops);
}

/// Runs `ops` against an `XArray<u64, SLOTS>` and the model.
pub fn run_with<const SLOTS: usize>(ops: &[Op]) {
    let mut driver = Driver::<SLOTS> {
        // An owned collector: dropping the tree frees everything it retired, so Miri and
        // the fuzzer see no garbage left in the global collector.
        tree: XArray::with_collector(Collector::new()),
        model: Model::default(),
        serial: 0,
        step: 0,
        op: None,
    };
    // Comparing the whole map after every step is quadratic; long inputs (the fuzzer's)
    // compare every 8th step and at the end. Divergences persist, so they are still seen.
    let full_every = if ops.len() <= 32 { 1 } else { 8 };
    for (step, op) in ops.iter().enumerate() {
        driver.step = step;
        driver.op = Some(op.clone());
        driver.apply(op);
        driver.check_summary();
        if step % full_every == 0 || step + 1 == ops.len() {
            driver.check_contents();
        }
    }
}

struct Driver<const SLOTS: usize> {
    tree: XArray<u64, SLOTS>,
    model: Model,
    /// Serial number of the next fresh item (its payload).
    serial: u64,
    step: usize,
    op: Option<Op>,
}

impl<const SLOTS: usize> Driver<SLOTS> {
    #[track_caller]
    fn fail(&self, what: fmt::Arguments<'_>) -> ! {
        panic!(
            "XArray<u64, {SLOTS}> diverged from the model at step {} ({:?}): {what}",
            self.step, self.op
        )
    }

    fn fresh(&mut self) -> Arc<u64> {
        self.serial += 1;
        Arc::new(self.serial)
    }

    fn item_at_or_fresh(&mut self, index: Index) -> Arc<u64> {
        match self.model.item_at(index.0) {
            Some(item) => item,
            None => self.fresh(),
        }
    }

    #[track_caller]
    fn expect_entry(&self, what: &str, got: &Entry<u64>, want: &Entry<u64>) {
        if !same_entry(got, want) {
            self.fail(format_args!("{what}: tree {got:?}, model {want:?}"));
        }
    }

    /// The batched lookups (`ReadGuard::entries_many`, `get_many`, `load_many`) at
    /// `index` and at three indices derived from it (its neighbour, half of it, its
    /// mirror at the top of the index space), each against the model as a single lookup
    /// would be.
    fn check_get_many(&self, index: u64) {
        let indices = [index, index.wrapping_add(1), index / 2, u64::MAX - index];
        let guard = self.tree.read();
        let batches = guard
            .entries_many(indices)
            .into_iter()
            .zip(guard.get_many(indices))
            .zip(guard.load_many(indices));
        for (i, ((got, item), owned)) in indices.into_iter().zip(batches) {
            let want = self.model.entry(i);
            let want_item = want.item().map(Arc::as_ptr);
            let same = got.is_empty() == want.is_empty()
                && got.value() == want.value()
                && got.item().map(|r| r as *const u64) == want_item
                && item.map(|r| r as *const u64) == want_item
                && owned.as_ref().map(Arc::as_ptr) == want_item;
            if !same {
                self.fail(format_args!(
                    "entries_many, get_many or load_many at {i}: tree {got:?}, {item:?}, \
                     {owned:?}, model {want:?}"
                ));
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Store { index, item } => {
                let i = index.0;
                let item = match item {
                    ItemSource::Fresh => self.fresh(),
                    ItemSource::SameAs(source) => self.item_at_or_fresh(source),
                };
                let want = self.model.entry(i);
                let old = match self.tree.store(i, Arc::clone(&item)) {
                    Ok(old) => old,
                    Err(e) => self.fail(format_args!("store refused: {e}")),
                };
                self.expect_entry("store's old entry", &old, &want);
                self.model.store(i, ModelEntry::Item(item));
            }
            Op::StoreValue { index, value } => {
                let (i, v) = (index.0, value.0);
                let want = self.model.entry(i);
                match (self.tree.store_value(i, v), v > MAX_VALUE) {
                    (Ok(old), false) => {
                        self.expect_entry("store_value's old entry", &old, &want);
                        self.model.store(i, ModelEntry::Value(v));
                    }
                    (Err(XaError::ValueTooLarge { value }), true) if value == v => {}
                    (got, _) => self.fail(format_args!("store_value returned {got:?}")),
                }
            }
            Op::StoreRange { range, value } => {
                let got = self.tree.store_range(range.bounds(), value.0);
                let invalid = XaError::InvalidRange {
                    start: range.start,
                    end: range.end,
                };
                let too_large = XaError::ValueTooLarge { value: value.0 };
                match (inclusive(range.bounds()), value.0 > MAX_VALUE) {
                    (Some((first, last)), false) => {
                        if let Err(e) = got {
                            self.fail(format_args!("store_range refused: {e:?}"));
                        }
                        self.model.store_range(SLOTS as u64, first, last, value.0);
                    }
                    // Both errors apply: either may be reported.
                    (None, true) if got == Err(too_large.clone()) => {}
                    (None, _) if got == Err(invalid.clone()) => {}
                    (Some(_), true) if got == Err(too_large.clone()) => {}
                    _ => self.fail(format_args!("store_range returned {got:?}")),
                }
            }
            Op::Erase { index } => {
                let want = self.model.entry(index.0);
                let old = self.tree.erase(index.0).unwrap();
                self.expect_entry("erase's old entry", &old, &want);
                self.model.assign(index.0, index.0, None);
            }
            Op::EraseRange { range } => {
                let got = self.tree.erase_range(range.bounds());
                match inclusive(range.bounds()) {
                    Some((first, last)) => {
                        if let Err(e) = got {
                            self.fail(format_args!("erase_range refused: {e:?}"));
                        }
                        self.model.assign(first, last, None);
                    }
                    None => {
                        let invalid = XaError::InvalidRange {
                            start: range.start,
                            end: range.end,
                        };
                        if got != Err(invalid) {
                            self.fail(format_args!("erase_range returned {got:?}"));
                        }
                    }
                }
            }
            Op::CompareExchange {
                index,
                current,
                new,
            } => self.compare_exchange(index.0, current, new),
            Op::SetMark { index, mark } => {
                let got = self.tree.set_mark(index.0, mark.mark());
                let want = self.model.change_mark(index.0, mark, true);
                if got != want {
                    self.fail(format_args!("set_mark returned {got}, model {want}"));
                }
            }
            Op::ClearMark { index, mark } => {
                self.tree.clear_mark(index.0, mark.mark());
                self.model.change_mark(index.0, mark, false);
            }
            Op::GetMark { index, mark } => {
                let got = self.tree.get_mark(index.0, mark.mark());
                let want = self
                    .model
                    .get(index.0)
                    .is_some_and(|(_, marks)| marks & mark.bit() != 0);
                if got != want {
                    self.fail(format_args!("get_mark returned {got}, model {want}"));
                }
            }
            Op::Load { index } => {
                let got = self.tree.load(index.0);
                let want = self.model.item_at(index.0);
                let same = match (&got, &want) {
                    (None, None) => true,
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                };
                if !same {
                    self.fail(format_args!("load returned {got:?}, model {want:?}"));
                }
            }
            Op::Get { index } => {
                let got = self.tree.get(index.0);
                self.expect_entry("get", &got, &self.model.entry(index.0));
                self.check_get_many(index.0);
            }
            Op::Find { from } => self.check_find(from.0),
            Op::Iter { range } => {
                let got: Vec<_> = self.tree.iter(range.bounds()).collect();
                self.compare_iteration("iter", range, None, got);
            }
            Op::IterMarked { range, mark } => {
                let got: Vec<_> = self.tree.iter_marked(range.bounds(), mark.mark()).collect();
                self.compare_iteration("iter_marked", range, Some(mark), got);
            }
            Op::AnyMarked { .. } => {} // checked after every step
            Op::Clear => {
                self.tree.clear();
                self.model = Model::default();
            }
        }
    }

    fn compare_exchange(&mut self, i: u64, current: Expected, new: NewEntry) {
        let found = self.model.entry(i);
        let current = match current {
            Expected::Current => found.clone(),
            Expected::Empty => Entry::Empty,
            Expected::Value(v) => Entry::Value(v.0),
            Expected::ItemAt(j) => Entry::Item(self.item_at_or_fresh(j)),
            Expected::FreshItem => Entry::Item(self.fresh()),
        };
        let new = match new {
            NewEntry::Empty => Entry::Empty,
            NewEntry::Value(v) => Entry::Value(v.0),
            NewEntry::FreshItem => Entry::Item(self.fresh()),
            NewEntry::ItemAt(j) => Entry::Item(self.item_at_or_fresh(j)),
        };
        let result = self.tree.compare_exchange(i, &current, new.clone());
        let refused = matches!(new, Entry::Value(v) if v > MAX_VALUE);
        match result {
            Err(CompareExchangeError::Refused { error, new: back }) if refused => {
                let value = new.value().expect("a value");
                if error != (XaError::ValueTooLarge { value }) {
                    self.fail(format_args!("compare_exchange refused with {error:?}"));
                }
                self.expect_entry("compare_exchange's returned new", &back, &new);
            }
            Err(CompareExchangeError::Mismatch {
                current: seen,
                new: back,
            }) if !refused && !same_entry(&current, &found) => {
                self.expect_entry("compare_exchange's mismatch", &seen, &found);
                self.expect_entry("compare_exchange's returned new", &back, &new);
            }
            Ok(old) if !refused && same_entry(&current, &found) => {
                self.expect_entry("compare_exchange's old entry", &old, &found);
                match ModelEntry::from_tree(&new) {
                    None => self.model.assign(i, i, None),
                    Some(entry) => self.model.store(i, entry),
                }
            }
            other => self.fail(format_args!(
                "compare_exchange({current:?} -> {new:?}) returned {other:?}, model holds {found:?}"
            )),
        }
    }

    fn check_find(&self, from: u64) {
        let got = self.tree.find(from);
        let want = self.model.first_at_or_after(from);
        match (got, want) {
            (None, None) => {}
            (Some((span, entry)), Some(first)) => {
                self.check_span("find", &span);
                let (start, end) = (*span.start(), *span.end());
                let Some(model_entry) = ModelEntry::from_tree(&entry) else {
                    self.fail(format_args!("find returned an empty entry at {span:?}"));
                };
                if end < from || start.max(from) != first {
                    self.fail(format_args!(
                        "find returned span {span:?}, model's first entry is at {first}"
                    ));
                }
                if !self.model.uniform(start, end, &model_entry) {
                    self.fail(format_args!(
                        "find returned {span:?} -> {model_entry:?}, model has {:?}",
                        self.model.flatten(start, end, None)
                    ));
                }
            }
            (got, want) => self.fail(format_args!("find returned {got:?}, model {want:?}")),
        }
    }

    /// A span must be an aligned block of `SLOTS^k` indices, or all of `u64`.
    #[track_caller]
    fn check_span(&self, what: &str, span: &RangeInclusive<u64>) {
        if !is_block(SLOTS as u64, *span.start(), *span.end()) {
            self.fail(format_args!(
                "{what} reported span {span:?}, not an aligned block"
            ));
        }
    }

    /// Checks an iteration's spans and compares its meaning (per index) with the model.
    fn compare_iteration(
        &self,
        what: &str,
        range: Range,
        mark: Option<MarkSel>,
        got: Vec<(RangeInclusive<u64>, Entry<u64>)>,
    ) {
        let Some((first, last)) = inclusive(range.bounds()) else {
            if !got.is_empty() {
                self.fail(format_args!("{what} over an empty range yielded {got:?}"));
            }
            return;
        };
        let mut runs: Vec<Run> = Vec::new();
        let mut prev_end: Option<u64> = None;
        for (span, entry) in &got {
            self.check_span(what, span);
            let (start, end) = (*span.start(), *span.end());
            if end < first || start > last {
                self.fail(format_args!(
                    "{what}({range:?}) yielded {span:?} outside the range"
                ));
            }
            if prev_end.is_some_and(|p| start <= p) {
                self.fail(format_args!(
                    "{what}({range:?}) yielded {span:?} after a span ending at {prev_end:?}"
                ));
            }
            prev_end = Some(end);
            let Some(entry) = ModelEntry::from_tree(entry) else {
                self.fail(format_args!("{what} yielded an empty entry at {span:?}"));
            };
            push_run(&mut runs, start.max(first), end.min(last), &entry);
        }
        let want = self.model.flatten(first, last, mark);
        if let Some(divergence) = runs_divergence(&runs, &want) {
            self.fail(format_args!("{what}({range:?}, {mark:?}) {divergence}"));
        }
    }

    /// Cheap checks, after every step.
    fn check_summary(&self) {
        let (items, empty) = (self.model.items(), self.model.is_empty());
        let any_marked = |mark| self.model.any_marked(mark);
        if let Some(divergence) = summary_divergence(&self.tree, items, empty, any_marked) {
            self.fail(format_args!("{divergence}"));
        }
    }

    /// The whole map: entries through `iter(..)`, marks through `iter_marked(.., m)`.
    fn check_contents(&self) {
        let all = Range {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        };
        self.compare_iteration("iter", all, None, self.tree.iter(..).collect());
        for mark in MarkSel::ALL {
            let got = self.tree.iter_marked(.., mark.mark()).collect();
            self.compare_iteration("iter_marked", all, Some(mark), got);
        }
    }
}
