//! A structural self-check of the tree, for tests, the quickcheck model and the fuzzer.
//!
//! It takes the head lock and then the lock of every node it visits (top-down, all held
//! until it is done, so it sees one state of the tree), and verifies every invariant that
//! [`cursor`](super::cursor) promises: shifts, counts, mark summaries, no empty node and
//! a minimal root but where a node is kept for lockers (`kept.rs`), the count of kept
//! nodes, items only in leaves, lock records inside their slots, and the tree's item
//! and node counters. The invariants that writers restore after they let go
//! of their locks (ancestors' marks, unlinking emptied nodes, the counters) hold when no
//! writer runs: call it when the tree is quiescent.

use super::entry::{self, Kind, EMPTY};
use super::lock_word::LockState;
use super::node::{Geometry, Node};
use super::tree::XArray;
use crate::sync::atomic::Ordering;

impl<T, const SLOTS: usize> XArray<T, SLOTS> {
    /// Checks the tree's structural invariants; `Err` describes the first violation.
    ///
    /// Meant for tests and fuzzing: it walks the whole tree holding the head lock and
    /// every node's lock (see the module docs).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let _guard = self.pin();
        let (head_lock, _) = crate::sync::SpinLock::lock(&self.head_lock);
        let mut locked: Vec<&Node<SLOTS>> = Vec::new();
        let result = self.check_locked(&mut locked);
        for node in locked {
            node.unlock();
        }
        drop(head_lock);
        result
    }

    fn check_locked<'a>(&'a self, locked: &mut Vec<&'a Node<SLOTS>>) -> Result<(), String> {
        let head = self.head.load(Ordering::Acquire);
        let root_marks = self.root_marks.load(Ordering::Acquire);
        let mut totals = Totals::default();
        match entry::kind(head) {
            Kind::Empty if root_marks != 0 => {
                return Err(format!("empty tree with marks {root_marks:#b}"))
            }
            Kind::Item => return Err("item in the head".into()),
            Kind::Node => {
                // SAFETY: we hold the head lock and are pinned: the root stays linked,
                // hence allocated.
                let root = unsafe { &*entry::word_node::<Node<SLOTS>>(head) };
                let lock = root
                    .lock()
                    .ok_or_else(|| "the root is obsolete".to_string())?;
                lock.keep();
                locked.push(root);
                let child = root.load(0);
                // SAFETY: we hold the root's lock (`count` is only touched under it).
                if unsafe { root.count() } == 1 && entry::is_node(child) && !root.is_kept() {
                    return Err("root holds only a child in slot 0 (not shrunk)".into());
                }
                let marks = Self::check_node(root, 0, true, &mut totals, locked)?;
                if marks != root_marks {
                    return Err(format!(
                        "root marks {root_marks:#b} but subtree has {marks:#b}"
                    ));
                }
            }
            Kind::Lock => totals.lock(head),
            Kind::Record => {
                let state = self.check_record(head, 0, u64::MAX, &mut totals)?;
                if state != LockState::single(LockState::of(state).mode).word() {
                    return Err(format!(
                        "a head record with state {:?}",
                        LockState::of(state)
                    ));
                }
            }
            _ => {}
        }
        let claims = self.waits.pending();
        if totals.pending > 0 && claims == 0 {
            return Err(format!(
                "{} entries pending but no pending acquisition counted",
                totals.pending
            ));
        }
        if totals.locks == 0 && claims != 0 {
            return Err(format!(
                "no lock entries but {claims} pending acquisitions counted"
            ));
        }
        let (items, nodes) = (
            self.items.load(Ordering::Relaxed),
            self.nodes.load(Ordering::Relaxed),
        );
        let kept = self.kept.taken();
        if kept != totals.kept || kept > self.kept.limit() {
            return Err(format!(
                "the budget counts {kept} kept nodes, the tree has {}",
                totals.kept
            ));
        }
        if (items, nodes) != (totals.items, totals.nodes) {
            return Err(format!(
                "counters say {items} items / {nodes} nodes, tree has {} / {}",
                totals.items, totals.nodes
            ));
        }
        Ok(())
    }

    /// Checks the lock record that `word` names, in a slot over `first..=last`; returns
    /// its state.
    fn check_record(
        &self,
        word: usize,
        first: u64,
        last: u64,
        totals: &mut Totals,
    ) -> Result<usize, String> {
        // SAFETY: record memory is type-stable while the tree lives.
        let record = unsafe { &*entry::word_record::<super::record::LockRecord>(word) };
        let (a, b) = record.bounds();
        let state = record.state();
        if !(first <= a && a <= b && b <= last) || (a, b) == (first, last) {
            return Err(format!(
                "lock record {a}..={b} in a slot over {first}..={last}"
            ));
        }
        if entry::kind(state) != Kind::Lock {
            return Err(format!("lock record {a}..={b} with state {state:#x}"));
        }
        totals.lock(state);
        Ok(state)
    }

    /// Checks one node (locked by the caller); returns the union of its slots' marks.
    fn check_node<'a>(
        node: &'a Node<SLOTS>,
        base: u64,
        is_root: bool,
        totals: &mut Totals,
        locked: &mut Vec<&'a Node<SLOTS>>,
    ) -> Result<u8, String> {
        totals.nodes += 1;
        let shift = node.shift as u32;
        if shift % Geometry::<SLOTS>::BITS != 0 || shift > Geometry::<SLOTS>::TOP_SHIFT {
            return Err(format!("node at {base} has shift {shift}"));
        }
        let in_range = Geometry::<SLOTS>::slots_in_range(shift);
        let mut count = 0;
        let mut union = 0u8;
        for offset in 0..SLOTS {
            let word = node.load(offset);
            let slot_first = base.wrapping_add((offset as u64) << shift.min(63));
            let slot_marks = node.slot_marks(offset);
            if offset >= in_range {
                if word != EMPTY || slot_marks != 0 {
                    return Err(format!("slot {offset} of top node beyond u64::MAX is used"));
                }
                continue;
            }
            if word == EMPTY {
                if slot_marks != 0 {
                    return Err(format!(
                        "empty slot at {slot_first} (shift {shift}) has marks"
                    ));
                }
                continue;
            }
            count += 1;
            match entry::kind(word) {
                Kind::Node => {
                    // SAFETY: we hold this node's lock and are pinned: the child stays
                    // linked, hence allocated.
                    let child = unsafe { &*entry::word_node::<Node<SLOTS>>(word) };
                    let lock = child
                        .lock()
                        .ok_or_else(|| format!("obsolete node linked at {slot_first}"))?;
                    lock.keep();
                    locked.push(child);
                    if shift == 0 || child.shift as u32 != shift - Geometry::<SLOTS>::BITS {
                        return Err(format!(
                            "child at {slot_first} has shift {} under {shift}",
                            child.shift
                        ));
                    }
                    let below = Self::check_node(child, slot_first, false, totals, locked)?;
                    if below != slot_marks {
                        return Err(format!(
                            "slot at {slot_first} (shift {shift}) has marks {slot_marks:#b}, subtree {below:#b}"
                        ));
                    }
                }
                Kind::Item => {
                    if shift != 0 {
                        return Err(format!("item above the leaves at {slot_first}"));
                    }
                    totals.items += 1;
                }
                Kind::Lock => totals.lock(word),
                Kind::Record => {
                    if shift == 0 {
                        return Err(format!("lock record in a leaf at {slot_first}"));
                    }
                    let slot_last = super::walk::slot_last(slot_first, shift);
                    // SAFETY: record memory is type-stable while the tree lives.
                    let record = unsafe { &*entry::word_record::<super::record::LockRecord>(word) };
                    let (a, b) = record.bounds();
                    if !(slot_first <= a && a <= b && b <= slot_last)
                        || (a, b) == (slot_first, slot_last)
                    {
                        return Err(format!(
                            "lock record {a}..={b} in a slot over {slot_first}..={slot_last}"
                        ));
                    }
                    totals.lock(record.state());
                }
                _ => {}
            }
            if matches!(entry::kind(word), Kind::Lock | Kind::Record) && slot_marks != 0 {
                return Err(format!("lock entry at {slot_first} carries marks"));
            }
            union |= slot_marks;
        }
        // SAFETY: we hold the node's lock.
        let recorded = unsafe { node.count() };
        if recorded != count {
            return Err(format!(
                "node at {base} (shift {shift}) counts {recorded}, has {count}"
            ));
        }
        if node.is_kept() {
            totals.kept += 1;
        } else if count == 0 {
            return Err(format!("empty node at {base} (root: {is_root}), not kept"));
        }
        Ok(union)
    }
}

#[derive(Default)]
struct Totals {
    items: usize,
    nodes: usize,
    /// Lock entries, and those of them marked pending.
    locks: usize,
    pending: usize,
    /// Nodes counted against the budget of kept empty nodes (`kept.rs`).
    kept: usize,
}

impl Totals {
    fn lock(&mut self, word: usize) {
        self.locks += 1;
        if LockState::of(word).pending {
            self.pending += 1;
        }
    }
}
