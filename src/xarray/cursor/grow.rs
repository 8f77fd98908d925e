//! Building structure: growing the root, pushing multi-index entries and lock records
//! down, and the slot a block needs.

use super::*;

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> WriteCursor<'a, T, SLOTS> {
    /// Makes sure a slot covering exactly `block` exists, growing the root and pushing
    /// multi-index entries and lock records down on the way, and returns it with its
    /// owner locked. The block's slot holds what the index held before (a piece of the
    /// entry that covered it, or nothing).
    pub(crate) fn create(&mut self, block: Block) -> Slot<SLOTS> {
        self.create_with(block, true)
            .expect("the lock layer pushes its own entries down")
    }

    /// [`Self::create`] for a plain writer: `None` (the owner of the slot that holds it
    /// still locked) if the block lies inside a lock entry, which only the lock layer may
    /// take apart (its owner may have evicted into it and find it again by its block).
    pub(crate) fn create_plain(&mut self, block: Block) -> Option<Slot<SLOTS>> {
        self.create_with(block, false)
    }

    pub(super) fn create_with(&mut self, block: Block, locks_too: bool) -> Option<Slot<SLOTS>> {
        let mut at = self.lock_at(block.first, block.shift);
        loop {
            if !locks_too && !at.outside && self.locks_block(&at, block) {
                return None;
            }
            if block.shift == Geometry::<SLOTS>::HEAD_SHIFT {
                return Some(Slot::Head);
            }
            if matches!(at.slot, Slot::Head) {
                match self.root_for(block, &at) {
                    Some(next) => at = next,
                    None => at = self.lock_at(block.first, block.shift),
                }
                continue;
            }
            if at.shift == block.shift {
                return Some(at.slot);
            }
            debug_assert!(at.shift > block.shift && !entry::is_node(at.word));
            at = self.push_down(&at, block.first);
        }
    }

    /// Whether the located slot holds a lock entry that covers part of `block`.
    pub(super) fn locks_block(&self, at: &Located<SLOTS>, block: Block) -> bool {
        match entry::kind(at.word) {
            Kind::Lock => true,
            Kind::Record => self
                .located_record(at)
                .is_some_and(|r| r.first <= block.last() && block.first <= r.last),
            _ => false,
        }
    }

    /// With the head locked: makes the head a root node whose subtree can hold `block`
    /// (creating it, growing it, or moving the head's entry into it), locks the root's
    /// slot covering `block.first` and returns it. `None` if a fast path changed the head
    /// meanwhile (the caller locates again).
    pub(super) fn root_for(&mut self, block: Block, at: &Located<SLOTS>) -> Option<Located<SLOTS>> {
        let head = self.xa.head.load(Ordering::Acquire);
        let root = match entry::kind(head) {
            Kind::Node => {
                let mut root = entry::word_node::<Node<SLOTS>>(head);
                loop {
                    let shift = Self::node(root).shift as u32;
                    if shift >= block.shift && Geometry::<SLOTS>::max_index(shift) >= block.first {
                        break root;
                    }
                    root = self.grow(root);
                }
            }
            Kind::Empty => {
                let mut shift = block.shift;
                while Geometry::<SLOTS>::max_index(shift) < block.first {
                    shift += Geometry::<SLOTS>::BITS;
                }
                let root = self.xa.node_slab.alloc(shift, EMPTY, 0);
                let root = self.publish_root(head, root.into_raw())?;
                // Empty until the writer writes: unlinked again if it does not.
                self.pending_empty.push((root, 0));
                root
            }
            Kind::Value | Kind::Lock => {
                // A lock entry carries no marks (evicting took them); its pieces are cut
                // by `pieces`, which knows what a reserved entry keeps.
                let root = if entry::kind(head) == Kind::Lock {
                    self.pieces(Geometry::<SLOTS>::TOP_SHIFT, 0, 0, u64::MAX, head)
                } else {
                    let marks = self.xa.root_marks.load(Ordering::Relaxed);
                    self.xa
                        .node_slab
                        .alloc(Geometry::<SLOTS>::TOP_SHIFT, head, marks)
                };
                let root = self.publish_root(head, root.into_raw())?;
                self.note_split(head, 0);
                root
            }
            Kind::Record => {
                if !self.xa.take_head_record(head) {
                    return None;
                }
                let record = Self::record(head);
                let state = record.state();
                let (first, last) = record.bounds();
                let mut shift = block.shift;
                while Geometry::<SLOTS>::max_index(shift) < last.max(block.first) {
                    shift += Geometry::<SLOTS>::BITS;
                }
                let root = self.pieces(shift, 0, first, last, state);
                let Some(root) = self.publish_root(entry::busy(head), root.into_raw()) else {
                    unreachable!("a busy head changes only under the head lock")
                };
                self.records().free(record);
                root
            }
            Kind::Item => unreachable!("items live only in leaves"),
        };
        let _ = at;
        // Lock the root's slot for the block: top-down from the head lock we hold.
        let r = Self::node(root);
        let lock = r.lock()?;
        lock.keep();
        sync::spin_unlock(&self.xa.head_lock);
        self.held = Held::Node(root);
        let shift = r.shift as u32;
        let offset = Geometry::<SLOTS>::offset(block.first, shift);
        self.path.clear();
        self.path.push(Step {
            node: root,
            offset,
            base: 0,
        });
        let first = Geometry::<SLOTS>::slot_base(block.first, shift);
        let word = r.load(offset);
        if entry::is_node(word) && shift != block.shift {
            // Below the root: locate again from the top (the root is there now).
            return Some(self.lock_at(block.first, block.shift));
        }
        Some(Located {
            slot: Slot::In(root, offset),
            shift,
            first,
            last: walk::slot_last(first, shift),
            word,
            outside: false,
        })
    }

    /// With the head locked (a [`Located`] that is `outside`): grows the root until it
    /// reaches `index`, then lets go of the head.
    pub(crate) fn reach(&mut self, index: u64) {
        debug_assert_eq!(self.held, Held::Head);
        let head = self.xa.head.load(Ordering::Acquire);
        if entry::is_node(head) {
            let mut root = entry::word_node::<Node<SLOTS>>(head);
            while Geometry::<SLOTS>::max_index(Self::node(root).shift as u32) < index {
                root = self.grow(root);
            }
        }
        self.unlock();
    }

    /// With the head locked and holding the root `root`: puts a new root above it (the
    /// old root in slot 0) and returns the new root.
    pub(in crate::xarray) fn grow(&mut self, root: *const Node<SLOTS>) -> *const Node<SLOTS> {
        let shift = Self::node(root).shift as u32;
        let marks = summary(Self::node(root));
        let top = self
            .xa
            .node_slab
            .alloc(shift + Geometry::<SLOTS>::BITS, EMPTY, 0);
        // SAFETY: `top` is not yet published; only this thread can reach it.
        unsafe { top.replace(0, entry::node_word(root)) };
        for m in 0..MARK_COUNT {
            if marks & (1 << m) != 0 {
                top.set_slot_mark(m, 0, true);
            }
        }
        let top = self
            .publish_root(entry::node_word(root), top.into_raw())
            .expect("a head holding a node changes only under the head lock");
        self.reset_root_marks(top);
        top
    }

    /// With the head locked and holding the new root `root` (grown, or shrunk to a
    /// child): sets the head's marks to the root's summary. A writer whose recomputation
    /// of the old root's marks is still under way finds its path stale and recomputes from
    /// the new root; this covers the ones that had already recomputed the old root.
    pub(in crate::xarray) fn reset_root_marks(&self, root: *const Node<SLOTS>) {
        let marks = summary(Self::node(root));
        self.xa.root_marks.store(marks, Ordering::Release);
    }

    /// Publishes `root` as the head if the head is still `old` (which `root` already
    /// contains); otherwise frees `root` and returns `None`. `root` is a node this
    /// writer built (its pointer from [`NewNode::into_raw`], not published): it is passed as
    /// that pointer, never boxed again, so that every later access (the writer's
    /// unlock through it, readers through the head) derives from one tag, as Miri's
    /// tree borrows requires.
    pub(in crate::xarray) fn publish_root(
        &mut self,
        old: usize,
        root: *const Node<SLOTS>,
    ) -> Option<*const Node<SLOTS>> {
        debug_assert!(self.held == Held::Head || self.held == Held::Many);
        let new = entry::node_word(root);
        if let Err(now) =
            self.xa
                .head
                .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
        {
            debug_assert!(!entry::is_node(now));
            // Records made for it (the pieces of a head record) go back to the pool.
            let r = Self::node(root);
            for offset in 0..SLOTS {
                let word = r.load(offset);
                if entry::is_record(word) {
                    self.records().free(Self::record(word));
                }
            }
            // SAFETY: `root` came from the caller's `NewNode::into_raw` and was never
            // published; the head word it was filled with is not a node (only non-node
            // heads change without the head lock), so it owns no children.
            unsafe { self.xa.node_slab.give(root) };
            return None;
        }
        self.xa.nodes.fetch_add(1, Ordering::Relaxed);
        Some(root)
    }

    /// A new node of `shift` (starting at `base`) holding a lock entry with `state` over
    /// `first..=last` (inside the node's span): inline entries in the slots it covers
    /// whole, lock records in the one or two it covers in part.
    ///
    /// A *reserved* entry (no holders: its holders left while acquirers were queued on
    /// it) keeps only its first piece. Its waiters are queued under its first index, so
    /// reserved pieces anywhere else would name no waiter, and nothing would ever remove
    /// them (the lock layer settles a reservation under the key its waiters use); left
    /// empty, those indices are free, which is what a waiter walking again may take.
    pub(in crate::xarray) fn pieces(
        &self,
        shift: u32,
        base: u64,
        first: u64,
        last: u64,
        state: usize,
    ) -> NewNode<'a, SLOTS> {
        let last = if LockState::of(state).holders == 0 {
            last.min(walk::slot_last(
                Geometry::<SLOTS>::slot_base(first, shift),
                shift,
            ))
        } else {
            last
        };
        let node = self.xa.node_slab.alloc(shift, EMPTY, 0);
        let lo = ((first - base) >> shift) as usize;
        let hi = ((last - base) >> shift) as usize;
        for offset in lo..=hi {
            let slot_first = base + ((offset as u64) << shift);
            let slot_last = walk::slot_last(slot_first, shift);
            let (a, b) = (first.max(slot_first), last.min(slot_last));
            let word = if (a, b) == (slot_first, slot_last) {
                state
            } else {
                entry::record_word(self.records().alloc(a, b, state))
            };
            // SAFETY: `node` is not yet published; only this thread can reach it.
            unsafe { node.replace(offset, word) };
        }
        node
    }

    /// With the owner of `at` locked and `at.word` a non-node word over a bigger span:
    /// replaces it with a child node of its pieces (copies of a value or an inline lock
    /// entry with the same marks; a lock record's bounds cut at the child slots), locks
    /// the child and returns its slot covering `index`.
    pub(crate) fn push_down(&mut self, at: &Located<SLOTS>, index: u64) -> Located<SLOTS> {
        let Slot::In(parent, offset) = at.slot else {
            unreachable!("the head is pushed down by `root_for`")
        };
        debug_assert_eq!(self.held, Held::Node(parent));
        let p = Self::node(parent);
        let shift = at.shift - Geometry::<SLOTS>::BITS;
        let child = match entry::kind(at.word) {
            Kind::Record => {
                let record = Self::record(at.word);
                let (first, last) = record.bounds();
                let state = record.state();
                self.note_split(state, first);
                self.pieces(shift, at.first, first, last, state)
            }
            // An inline lock entry (no marks: evicting took them), cut by `pieces`,
            // which knows what a reserved entry keeps.
            Kind::Lock => {
                debug_assert_eq!(p.slot_marks(offset), 0, "a lock entry with marks");
                self.note_split(at.word, at.first);
                self.pieces(shift, at.first, at.first, at.last, at.word)
            }
            Kind::Empty | Kind::Value => {
                self.note_split(at.word, at.first);
                self.xa
                    .node_slab
                    .alloc(shift, at.word, p.slot_marks(offset))
            }
            Kind::Item | Kind::Node => unreachable!("items and nodes are not pushed down"),
        };
        let child = child.into_raw();
        let c = Self::node(child);
        c.lock_new().keep();
        // SAFETY: we hold the parent's lock (not obsolete); the child is fully built, and
        // `replace` publishes it with a Release store.
        let old = unsafe { p.replace(offset, entry::node_word(child)) };
        debug_assert_eq!(old, at.word);
        self.xa.nodes.fetch_add(1, Ordering::Relaxed);
        if entry::is_record(old) {
            self.records().free(Self::record(old));
        }
        if self.path.len() == 1 && offset == 0 {
            self.maybe_shrink = true;
        }
        p.unlock();
        self.held = Held::Node(child);
        let child_offset = Geometry::<SLOTS>::offset(index, shift);
        self.path.push(Step {
            node: child,
            offset: child_offset,
            base: at.first,
        });
        if at.word == EMPTY {
            // A new empty node: if the writer ends up writing nothing into it (a lock
            // appeared below), it must not stay linked.
            self.pending_empty.push((child, at.first));
        }
        let first = Geometry::<SLOTS>::slot_base(index, shift);
        Located {
            slot: Slot::In(child, child_offset),
            shift,
            first,
            last: walk::slot_last(first, shift),
            word: c.load(child_offset),
            outside: false,
        }
    }

    /// With the head locked: moves the head's entry into a new root node of its pieces
    /// that can hold `index` (what [`Self::push_down`] does for a node's slot). `None` if
    /// a fast path changed the head meanwhile (locate again).
    pub(crate) fn push_down_head(&mut self, index: u64) -> Option<Located<SLOTS>> {
        debug_assert_eq!(self.held, Held::Head);
        let at = Located {
            slot: Slot::Head,
            shift: Geometry::<SLOTS>::HEAD_SHIFT,
            first: 0,
            last: u64::MAX,
            word: self.xa.head.load(Ordering::Acquire),
            outside: false,
        };
        self.root_for(
            Block {
                first: index,
                shift: 0,
            },
            &at,
        )
    }

    /// Records that a lock entry with waiters, based at `base`, is being split (a lock
    /// word, or a record's state word).
    pub(super) fn note_split(&mut self, word: usize, base: u64) {
        if entry::kind(word) == Kind::Lock && LockState::of(word).waiters {
            self.split_waiting.push(base);
        }
    }
}
