//! Marks: setting a slot's mark and recomputing its ancestors' summary bits (cursor
//! invariant 4).

use super::*;

impl<T: Send + Sync + 'static, const SLOTS: usize> WriteCursor<'_, T, SLOTS> {
    /// Whether `slot` carries mark `m`.
    pub(crate) fn is_marked(&self, slot: Slot<SLOTS>, m: usize) -> bool {
        match slot {
            Slot::Head => self.xa.root_marks.load(Ordering::Relaxed) & (1 << m) != 0,
            Slot::In(node, offset) => Self::node(node).mark_bits(m) & (1 << offset) != 0,
        }
    }

    /// Sets or clears mark `m` on `slot` (of the locked owner). The ancestors' bits are
    /// recomputed when the lock is let go.
    pub(crate) fn set_mark(&mut self, slot: Slot<SLOTS>, m: usize, on: bool) {
        match slot {
            Slot::Head => {
                debug_assert!(self.held == Held::Head || self.held == Held::Many);
                if on {
                    self.xa.root_marks.fetch_or(1 << m, Ordering::Release);
                } else {
                    self.xa.root_marks.fetch_and(!(1 << m), Ordering::Release);
                }
            }
            Slot::In(node, offset) => {
                debug_assert!(self.held == Held::Node(node) || self.held == Held::Many);
                let n = Self::node(node);
                let before = n.set_slot_mark(m, offset, on);
                // A set that leaves the summary as it was still recomputes the ancestors
                // if another writer's recomputation of them is under way: this set must
                // be visible from the head when it returns, and theirs may not be done.
                let others = n.propagating();
                #[cfg(loom)]
                let others = others
                    && !crate::mutation::active(crate::mutation::Mutation::PropagationIgnored);
                if (before != 0) != (n.mark_bits(m) != 0) || (on && others) {
                    self.note_change(n, 1 << m);
                }
            }
        }
    }

    /// Clears every mark of `slot` and returns them as a bit set.
    pub(crate) fn take_marks(&mut self, slot: Slot<SLOTS>) -> u8 {
        let mut marks = 0;
        for m in 0..MARK_COUNT {
            if self.is_marked(slot, m) {
                marks |= 1 << m;
                self.set_mark(slot, m, false);
            }
        }
        marks
    }

    /// Clears every mark of `slot`.
    pub(crate) fn clear_marks(&mut self, slot: Slot<SLOTS>) {
        self.take_marks(slot);
    }

    /// Recomputes, bottom up along the path, each ancestor's bit of `marks` for the slot
    /// that leads down, from the child's current bits, under the ancestor's lock; stops
    /// at the first ancestor whose summary did not change. The locked node's own lock
    /// has been let go (top-down lock order).
    pub(super) fn propagate(&mut self, marks: u8) {
        for m in 0..MARK_COUNT {
            if marks & (1 << m) == 0 {
                continue;
            }
            let mut depth = self.path.len();
            while depth > 0 {
                depth -= 1;
                let Step {
                    node: child,
                    base: child_base,
                    ..
                } = self.path[depth];
                match self.recompute(depth, m) {
                    Recompute::Changed => {}
                    Recompute::Unchanged => break,
                    Recompute::Stale => {
                        // The tree grew, shrank or moved the child under this path: find
                        // its ancestors again from the head and go on from there.
                        if !self.find_path(child, child_base) {
                            break; // unlinked: whoever unlinked it fixed what is above
                        }
                        depth = self.path.len();
                    }
                }
            }
        }
    }

    /// Recomputes mark `m` of the slot that leads to `self.path[depth]` in its parent
    /// (or `root_marks`), under the parent's lock (or the head lock), from the child's
    /// current bits.
    pub(super) fn recompute(&mut self, depth: usize, m: usize) -> Recompute {
        let child = self.path[depth].node;
        let any = |child: *const Node<SLOTS>| Self::node(child).mark_bits(m) != 0;
        if depth == 0 {
            let (head_lock, _) = SpinLock::lock(&self.xa.head_lock);
            if self.xa.head.load(Ordering::Acquire) != entry::node_word(child) {
                return Recompute::Stale;
            }
            let bit = 1u8 << m;
            if any(child) {
                self.xa.root_marks.fetch_or(bit, Ordering::Release);
            } else {
                self.xa.root_marks.fetch_and(!bit, Ordering::Release);
            }
            drop(head_lock);
            return Recompute::Unchanged;
        }
        let Step {
            node: parent,
            offset,
            ..
        } = self.path[depth - 1];
        let p = Self::node(parent);
        let Some(lock) = p.lock() else {
            return Recompute::Stale;
        };
        if p.load(offset) != entry::node_word(child) {
            return Recompute::Stale;
        }
        let others = p.propagating();
        let before = p.set_slot_mark(m, offset, any(child));
        let changed = (before != 0) != (p.mark_bits(m) != 0);
        if changed {
            p.begin_propagation();
            self.propagating.push(parent);
        }
        drop(lock);
        // The parent's summary did not change, but another writer's recomputation above
        // it is under way: go on, or this change may return before the head shows it.
        if changed || others {
            Recompute::Changed
        } else {
            Recompute::Unchanged
        }
    }

    /// Rebuilds `self.path` from the head down to `node` (covering `base..`); `false` if
    /// no slot links it any more.
    pub(super) fn find_path(&mut self, node: *const Node<SLOTS>, base: u64) -> bool {
        self.path.clear();
        let target = entry::node_word(node);
        let head = self.xa.head.load(Ordering::Acquire);
        if !entry::is_node(head) {
            return false;
        }
        let shift = Self::node(node).shift as u32;
        let mut current = entry::word_node::<Node<SLOTS>>(head);
        let mut current_base = 0;
        loop {
            let c = Self::node(current);
            let c_shift = c.shift as u32;
            let offset = Geometry::<SLOTS>::offset(base, c_shift);
            self.path.push(Step {
                node: current,
                offset,
                base: current_base,
            });
            if current == node {
                return true;
            }
            if c_shift <= shift {
                self.path.clear();
                return false;
            }
            let word = c.load(offset);
            if !entry::is_node(word) {
                self.path.clear();
                return false;
            }
            let _ = target;
            current_base = Geometry::<SLOTS>::slot_base(base, c_shift);
            current = entry::word_node(word);
        }
    }

    /// [`Self::propagate`] from `node` (covering `base..`) up, finding its ancestors from
    /// the head.
    pub(in crate::xarray) fn propagate_from(
        &mut self,
        node: *const Node<SLOTS>,
        base: u64,
        marks: u8,
    ) {
        if self.find_path(node, base) {
            self.propagate(marks);
        }
        self.path.clear();
    }
}
