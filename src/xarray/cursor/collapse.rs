//! Taking structure down: unlinking emptied nodes, replacing subtrees, shrinking the
//! root, and retiring what was unlinked.

use super::*;

impl<T: Send + Sync + 'static, const SLOTS: usize> WriteCursor<'_, T, SLOTS> {
    /// After slots of `node` (covering `base..`) were emptied: unlinks it if it is
    /// empty, and its ancestors that become empty, bottom up (each under its parent's
    /// lock, then its own). The root is replaced by an empty head when it empties. The
    /// path the cursor remembers may be stale (the root may have grown or shrunk since):
    /// each step finds the node's parent again from the head.
    pub(in crate::xarray) fn collapse_node(&mut self, node: *const Node<SLOTS>, base: u64) {
        let (mut node, mut base) = (node, base);
        let mut spins = 0;
        loop {
            let shift = Self::node(node).shift as u32;
            match self.find_parent(node, base, shift) {
                None => return, // unlinked already
                Some(None) => {
                    let (head_lock, _) = SpinLock::lock(&self.xa.head_lock);
                    if self.xa.head.load(Ordering::Acquire) != entry::node_word(node) {
                        drop(head_lock);
                        sync::spin_wait(&mut spins);
                        continue; // the root changed: look again
                    }
                    if self.unlink_empty(Self::node(node)) {
                        self.xa.head.store(EMPTY, Ordering::Release);
                        self.xa.root_marks.store(0, Ordering::Release);
                    }
                    drop(head_lock);
                    return;
                }
                Some(Some((parent, offset, parent_base))) => {
                    let p = Self::node(parent);
                    let Some(lock) = p.lock() else {
                        sync::spin_wait(&mut spins);
                        continue; // unlinked or replaced meanwhile: look again
                    };
                    if p.load(offset) != entry::node_word(node) {
                        drop(lock);
                        sync::spin_wait(&mut spins);
                        continue;
                    }
                    if !self.unlink_empty(Self::node(node)) {
                        return;
                    }
                    // SAFETY: we hold the parent's lock and it is not obsolete.
                    unsafe { p.replace(offset, EMPTY) };
                    let mut marks_changed = 0u8;
                    for m in 0..MARK_COUNT {
                        let before = p.set_slot_mark(m, offset, false);
                        if (before != 0) != (p.mark_bits(m) != 0) {
                            marks_changed |= 1 << m;
                        }
                    }
                    if marks_changed != 0 {
                        p.begin_propagation();
                        self.propagating.push(parent);
                    }
                    // SAFETY: as above.
                    let parent_count = unsafe { p.count() };
                    drop(lock);
                    if marks_changed != 0 {
                        self.propagate_from(parent, parent_base, marks_changed);
                    }
                    if parent_count != 0 {
                        // The parent may be the root, now holding only its slot-0 child.
                        self.maybe_shrink = true;
                        return;
                    }
                    node = parent;
                    base = parent_base;
                }
            }
        }
    }

    /// Finds, from the head, the slot that links `node` (covering `base..`, of `shift`):
    /// `Some(None)` if the head does, `Some(Some((parent, offset, parent's base)))` if a
    /// node's slot does, `None` if no slot does any more.
    #[allow(clippy::type_complexity)]
    pub(super) fn find_parent(
        &self,
        node: *const Node<SLOTS>,
        base: u64,
        shift: u32,
    ) -> Option<Option<(*const Node<SLOTS>, usize, u64)>> {
        let target = entry::node_word(node);
        let head = self.xa.head.load(Ordering::Acquire);
        if head == target {
            return Some(None);
        }
        if !entry::is_node(head) {
            return None;
        }
        let mut current = entry::word_node::<Node<SLOTS>>(head);
        let mut current_base = 0;
        loop {
            let c = Self::node(current);
            let c_shift = c.shift as u32;
            if c_shift <= shift || base > Geometry::<SLOTS>::max_index(c_shift) + current_base {
                return None;
            }
            let offset = Geometry::<SLOTS>::offset(base, c_shift);
            let word = c.load(offset);
            if word == target {
                return Some(Some((current, offset, current_base)));
            }
            if !entry::is_node(word) {
                return None;
            }
            current_base = Geometry::<SLOTS>::slot_base(base, c_shift);
            current = entry::word_node(word);
        }
    }

    /// With the lock of `n`'s parent (or the head lock) held: if `n` is empty and not
    /// kept for lockers (`kept.rs`; unless this cursor trims), marks it obsolete and
    /// queues it for retirement; the caller then empties the parent's slot.
    pub(super) fn unlink_empty(&mut self, n: &Node<SLOTS>) -> bool {
        let Some(lock) = n.lock() else {
            return false;
        };
        // SAFETY: we hold the node's lock.
        let count = unsafe { n.count() };
        #[cfg(loom)]
        let count = if crate::mutation::active(crate::mutation::Mutation::EmptinessUnchecked)
            && n.is_kept()
        {
            0
        } else {
            count
        };
        if count != 0 || (!self.trimming && n.is_kept()) {
            return false;
        }
        self.obsolete(n);
        drop(lock);
        self.xa.nodes.fetch_sub(1, Ordering::Relaxed);
        self.unlinked_nodes
            .push(entry::node_word(n as *const Node<SLOTS>));
        true
    }

    /// With the owner of `slot` locked and `slot` holding a node: if the subtree holds no
    /// lock entry, replaces it with `word` and returns the old word (the unlinked subtree,
    /// for [`Self::dispose`]); else lets it be and returns the first locked index. Every
    /// node of the subtree is locked (top-down) while it is checked, and marked obsolete
    /// before the slot changes, so a writer that walked into it starts again.
    pub(crate) fn replace_subtree(
        &mut self,
        slot: Slot<SLOTS>,
        base: u64,
        word: usize,
    ) -> Result<usize, u64> {
        let old = self.word(slot);
        debug_assert!(entry::is_node(old));
        let mut locked: SmallVec<[*const Node<SLOTS>; 16]> = SmallVec::new();
        let found = Self::lock_subtree(entry::word_node(old), base, &mut locked);
        if let Err(index) = found {
            for &node in &locked {
                Self::node(node).unlock();
            }
            return Err(index);
        }
        for &node in &locked {
            self.obsolete(Self::node(node));
        }
        let replaced = match slot {
            Slot::Head => self.xa.head.swap(word, Ordering::AcqRel),
            Slot::In(node, offset) => {
                // SAFETY: we hold the owner's lock and it is not obsolete.
                unsafe { Self::node(node).replace(offset, word) }
            }
        };
        debug_assert_eq!(replaced, old);
        self.count_items(EMPTY, word);
        if word == EMPTY {
            if let Slot::In(node, _) = slot {
                self.note_emptied(Self::node(node));
            }
        }
        for &node in &locked {
            Self::node(node).unlock();
        }
        Ok(old)
    }

    /// Locks `node` and every node below it (pre-order), pushing them onto `locked`;
    /// stops at the first lock entry, returning its index.
    pub(super) fn lock_subtree(
        node: *const Node<SLOTS>,
        base: u64,
        locked: &mut SmallVec<[*const Node<SLOTS>; 16]>,
    ) -> Result<(), u64> {
        let n = Self::node(node);
        // The parent is locked and links this node: it cannot be obsolete.
        n.lock()
            .expect("a linked node below a locked parent")
            .keep();
        locked.push(node);
        let shift = n.shift as u32;
        for offset in 0..Geometry::<SLOTS>::slots_in_range(shift) {
            let word = n.load(offset);
            let first = base + ((offset as u64) << shift);
            match entry::kind(word) {
                Kind::Lock => return Err(first),
                Kind::Record => return Err(Self::record(word).bounds().0),
                Kind::Node => Self::lock_subtree(entry::word_node(word), first, locked)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Replaces the root by its slot-0 child while that child is all the root holds (and
    /// the root is not kept for lockers, unless this cursor trims).
    pub(in crate::xarray) fn shrink(&mut self) {
        loop {
            let (head_lock, _) = SpinLock::lock(&self.xa.head_lock);
            let head = self.xa.head.load(Ordering::Acquire);
            if !entry::is_node(head) {
                return;
            }
            let root = Self::node(entry::word_node(head));
            let Some(lock) = root.lock() else {
                return;
            };
            let child = root.load(0);
            // SAFETY: we hold the root's lock.
            if unsafe { root.count() } != 1 || !entry::is_node(child) {
                return;
            }
            // A root kept for lockers stays (`kept.rs`), but for `trim`.
            if root.is_kept() && !self.trimming {
                return;
            }
            // The head's marks become the child's summary. (They were the root's slot-0
            // marks, but a writer may be between recomputing that slot and recomputing
            // `root_marks`: it finds the root obsolete and the child at the head, and
            // recomputes from there.) The old root is retired unchanged (its slot 0
            // still leads to the live child), so a reader inside it keeps walking; a
            // writer that locks it finds it obsolete and starts again.
            self.obsolete(root);
            self.xa.head.store(child, Ordering::Release);
            self.reset_root_marks(entry::word_node(child));
            drop(lock);
            drop(head_lock);
            self.xa.nodes.fetch_sub(1, Ordering::Relaxed);
            self.unlinked_nodes.push(head);
            self.path.clear();
        }
    }

    /// Marks `n` obsolete (its lock held, and it is being unlinked), giving back its
    /// place in the budget of kept empty nodes if it had one (`kept.rs`, invariant 2).
    pub(in crate::xarray) fn obsolete(&self, n: &Node<SLOTS>) {
        if n.make_obsolete() {
            self.xa.kept.give_back();
        }
    }

    /// Retires what this cursor unlinked (no lock is held).
    pub(super) fn retire(&mut self) {
        let n = self.unlinked_nodes.len() + self.unlinked.len();
        if n == 0 {
            return;
        }
        let flush = self.xa.node_slab.note_retired(n);
        for word in self.unlinked_nodes.drain(..) {
            node_slab::retire_node::<SLOTS>(&self.guard, &self.xa.node_slab, word);
        }
        for word in self.unlinked.drain(..) {
            node_slab::retire_subtree::<T, SLOTS>(&self.guard, &self.xa.node_slab, word);
        }
        if flush {
            self.guard.flush();
        }
    }
}
