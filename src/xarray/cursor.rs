//! The write cursor: every structural change of the tree, made under the write lock.
//!
//! A [`WriteCursor`] holds the tree's write lock and an epoch guard for the whole
//! operation and remembers the path from the root to the slot it works on, so marks can
//! be propagated and empty nodes freed upward without parent pointers.
//!
//! # Invariants kept here (and relied on by readers, see [`walk`](super::walk))
//!
//! 1. The head is empty, a non-node entry covering all of `u64`, or the root node.
//! 2. A node with shift `s > 0` holds child nodes (shift `s - BITS`) or non-node entries
//!    covering their slot's `2^s` indices; items only ever sit in leaves (shift 0).
//! 3. A node is published (one `Release` store of its word) only when fully initialised,
//!    and after it is unlinked no writer touches it again; then it is retired.
//! 4. A node's mark bit `m` for slot `i` is set iff the entry in slot `i` (or an entry
//!    somewhere below it) carries mark `m`; the head's marks are `root_marks`. An empty
//!    slot carries no mark.
//! 5. Every node reachable from the head other than the root has at least one non-empty
//!    slot, and the root is not a node whose only non-empty slot is a child node in
//!    slot 0 (the tree is as short as its contents allow).
//! 6. `count` of every node equals its non-empty slots; `items` and `nodes` of the tree
//!    equal the items and nodes reachable from the head.
//!
//! # The one word changed outside the lock
//!
//! The range-lock layer's fast path (`src/lock/`) locks the whole index space of an empty
//! tree with one compare-exchange of the head, `EMPTY -> lock(1 holder)`, unlocks it with
//! one compare-exchange back, and downgrades it (Exclusive to Shared) with a third, all
//! without this lock. So while the head is empty or
//! holds a lock entry with one holder and no waiters, it may change under a writer's feet.
//! Writers therefore change a non-node head only by compare-exchange against the word they
//! based their decision on ([`WriteCursor::swap`], `root_covering`), and re-read a slot
//! after [`WriteCursor::create`] before deciding what to write there; a lock that appears
//! on an empty head came after them (the tree was empty). A head that holds a node, a
//! value, or any other lock state is stable under the lock.

use crossbeam_epoch::Guard;
use smallvec::SmallVec;

use super::entry::{self, Kind, EMPTY, MARK_COUNT};
use super::lock_word::LockState;
use super::node::{self, Geometry, Node};
use super::span::Block;
use super::tree::XArray;
use crate::sync::atomic::Ordering;
use crate::sync::{self, MutexGuard};

/// Where a slot word lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot<const SLOTS: usize> {
    /// The tree's head (covers all of `u64`).
    Head,
    /// Slot `offset` of a reachable node.
    In(*const Node<SLOTS>, usize),
}

/// What [`WriteCursor::locate`] found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located<const SLOTS: usize> {
    /// The slot found. When it is the head and holds the root node, the block asked
    /// for contains every index the tree can hold at its current height.
    pub(crate) slot: Slot<SLOTS>,
    /// The slot covers `2^shift` indices (64: the head).
    pub(crate) shift: u32,
    /// The slot's word; `EMPTY` when `outside`.
    pub(crate) word: usize,
    /// The index lies beyond the root node's reach (nothing covers it).
    pub(crate) outside: bool,
}

/// Holds the write lock and the path to the current slot.
pub(crate) struct WriteCursor<'a, T: Send + Sync + 'static, const SLOTS: usize> {
    xa: &'a XArray<T, SLOTS>,
    /// `None` only while the cursor is being dropped (the lock is released before the
    /// unlinked memory is retired).
    lock: Option<MutexGuard<'a, ()>>,
    /// A pin taken before the lock, for writes that also read through `walk` functions;
    /// most writes need none (see [`Self::new`]).
    pub(crate) guard: Option<Guard>,
    /// Words unlinked by this write, retired (through the epoch) once the lock is
    /// released: (word, whole subtree?).
    unlinked: SmallVec<[(usize, bool); 4]>,
    /// (node, offset in node) from the root down to the current slot's node.
    path: SmallVec<[(*const Node<SLOTS>, usize); 12]>,
    /// Base indices of lock entries with the waiters flag that [`Self::create`] split:
    /// the lock layer wakes their waiters (they were queued under the old entry's base).
    pub(crate) split_waiting: SmallVec<[u64; 2]>,
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> WriteCursor<'a, T, SLOTS> {
    /// Takes the write lock without pinning the epoch.
    ///
    /// A writer needs no pin for its own walk: under the lock, every node reachable from
    /// the head is live (only writers unlink, and unlinked memory is freed only after it
    /// is retired). What this write unlinks is retired when the cursor drops, *after* the
    /// lock is released and only then pinned: pinning may run deferred frees, which drop
    /// items and so run the user's `Drop for T`, which must never happen under the write
    /// lock (a `Drop` that touched this tree would deadlock). Retiring after the unlink is
    /// as safe as retiring at once: a reader that saw the memory is pinned in an epoch no
    /// later than ours, so the free waits for it either way.
    pub(crate) fn new(xa: &'a XArray<T, SLOTS>) -> Self {
        Self::build(xa, None)
    }

    /// Pins (before locking, for the reason in [`Self::new`]), then takes the write lock:
    /// for writes that also read through the lock-free `walk` functions.
    pub(crate) fn new_pinned(xa: &'a XArray<T, SLOTS>) -> Self {
        let guard = xa.pin();
        Self::build(xa, Some(guard))
    }

    fn build(xa: &'a XArray<T, SLOTS>, guard: Option<Guard>) -> Self {
        let lock = sync::lock(&xa.write_lock);
        WriteCursor {
            xa,
            lock: Some(lock),
            guard,
            unlinked: SmallVec::new(),
            path: SmallVec::new(),
            split_waiting: SmallVec::new(),
        }
    }

    /// The pin of a cursor made by [`Self::new_pinned`].
    pub(crate) fn pinned(&self) -> &Guard {
        self.guard.as_ref().expect("a cursor made by new_pinned")
    }

    /// The tree this cursor writes.
    pub(crate) fn tree(&self) -> &'a XArray<T, SLOTS> {
        self.xa
    }

    /// The word in `slot` now.
    pub(crate) fn word(&self, slot: Slot<SLOTS>) -> usize {
        match slot {
            Slot::Head => self.xa.head.load(Ordering::Acquire),
            Slot::In(node, offset) => Self::node(node).load(offset),
        }
    }

    /// Dereferences a node the cursor reached.
    #[inline(always)]
    fn node<'n>(ptr: *const Node<SLOTS>) -> &'n Node<SLOTS> {
        // SAFETY: every node pointer the cursor holds was read from a slot of a reachable
        // node (or the head) while holding the write lock; only writers unlink nodes, and
        // they all hold that lock, so the node stays reachable, hence allocated, for as long
        // as the cursor (and its lock) lives.
        unsafe { &*ptr }
    }

    /// Walks from the head towards `index` without changing anything, stopping at the
    /// first non-node word or at the slot of shift `stop_shift`.
    pub(crate) fn locate(&mut self, index: u64, stop_shift: u32) -> Located<SLOTS> {
        self.path.clear();
        let mut word = self.xa.head.load(Ordering::Acquire);
        if !entry::is_node(word) || stop_shift == Geometry::<SLOTS>::HEAD_SHIFT {
            return Located {
                slot: Slot::Head,
                shift: Geometry::<SLOTS>::HEAD_SHIFT,
                word,
                outside: false,
            };
        }
        let mut node = entry::word_node::<Node<SLOTS>>(word);
        let root_shift = Self::node(node).shift as u32;
        if index > Geometry::<SLOTS>::max_index(root_shift) {
            return Located {
                slot: Slot::Head,
                shift: Geometry::<SLOTS>::HEAD_SHIFT,
                word: EMPTY,
                outside: true,
            };
        }
        if stop_shift > root_shift {
            // The aligned block of `2^stop_shift` indices around `index` contains the
            // root's whole range: the slot that covers it is the head.
            return Located {
                slot: Slot::Head,
                shift: Geometry::<SLOTS>::HEAD_SHIFT,
                word,
                outside: false,
            };
        }
        loop {
            let shift = Self::node(node).shift as u32;
            let offset = Geometry::<SLOTS>::offset(index, shift);
            self.path.push((node, offset));
            word = Self::node(node).load(offset);
            if !entry::is_node(word) || shift == stop_shift {
                return Located {
                    slot: Slot::In(node, offset),
                    shift,
                    word,
                    outside: false,
                };
            }
            node = entry::word_node(word);
        }
    }

    /// Makes sure a slot covering exactly `block` exists, growing the root and splitting
    /// multi-index entries on the way, and returns it.
    pub(crate) fn create(&mut self, block: Block) -> Slot<SLOTS> {
        self.path.clear();
        if block.shift == Geometry::<SLOTS>::HEAD_SHIFT {
            return Slot::Head;
        }
        let mut node = self.root_covering(block);
        loop {
            let n = Self::node(node);
            let shift = n.shift as u32;
            let offset = Geometry::<SLOTS>::offset(block.first, shift);
            self.path.push((node, offset));
            if shift == block.shift {
                return Slot::In(node, offset);
            }
            let word = n.load(offset);
            node = match entry::kind(word) {
                Kind::Node => entry::word_node(word),
                Kind::Empty | Kind::Value | Kind::Lock => {
                    debug_assert!(shift > 0);
                    self.note_split(word, Geometry::<SLOTS>::slot_base(block.first, shift));
                    let child = Node::<SLOTS>::filled(
                        shift - Geometry::<SLOTS>::BITS,
                        word,
                        n.slot_marks(offset),
                    );
                    self.publish_child(node, offset, child)
                }
                Kind::Item => unreachable!("items live only in leaves"),
            };
        }
    }

    /// Publishes `child` in `parent`'s slot `offset` (replacing an empty slot or the
    /// non-node entry the child was filled with).
    fn publish_child(
        &mut self,
        parent: *const Node<SLOTS>,
        offset: usize,
        child: Box<Node<SLOTS>>,
    ) -> *const Node<SLOTS> {
        let child = Box::into_raw(child) as *const Node<SLOTS>;
        // SAFETY: we hold the write lock and `parent` is reachable; the child is fully
        // initialised and the swap inside `replace` is a Release store.
        let old = unsafe { Self::node(parent).replace(offset, entry::node_word(child)) };
        debug_assert!(!entry::is_node(old) && entry::kind(old) != Kind::Item);
        self.xa.nodes.fetch_add(1, Ordering::Relaxed);
        child
    }

    /// Returns a root node whose subtree can hold `block`, creating, growing or splitting
    /// the head as needed. `block.shift < 64`.
    fn root_covering(&mut self, block: Block) -> *const Node<SLOTS> {
        loop {
            let head = self.xa.head.load(Ordering::Acquire);
            if let Some(root) = self.try_root_covering(block, head) {
                return root;
            }
            // The lock fast path changed an empty or singly-locked head: decide again.
        }
    }

    /// One attempt of [`Self::root_covering`] based on the head word `head`; `None` if a
    /// non-node head changed before it could be replaced.
    fn try_root_covering(&mut self, block: Block, head: usize) -> Option<*const Node<SLOTS>> {
        match entry::kind(head) {
            Kind::Empty => {
                let mut shift = block.shift;
                while Geometry::<SLOTS>::max_index(shift) < block.first {
                    shift += Geometry::<SLOTS>::BITS;
                }
                self.publish_head(head, Node::filled(shift, EMPTY, 0))
            }
            Kind::Node => {
                let mut root = entry::word_node::<Node<SLOTS>>(head);
                loop {
                    let shift = Self::node(root).shift as u32;
                    if shift >= block.shift && Geometry::<SLOTS>::max_index(shift) >= block.first {
                        return Some(root);
                    }
                    let marks = self.xa.root_marks.load(Ordering::Relaxed);
                    let top = Node::<SLOTS>::filled(shift + Geometry::<SLOTS>::BITS, EMPTY, 0);
                    // SAFETY: `top` is not yet published; we hold the write lock.
                    unsafe { top.replace(0, entry::node_word(root)) };
                    for m in 0..MARK_COUNT {
                        if marks & (1 << m) != 0 {
                            top.set_slot_mark(m, 0, true);
                        }
                    }
                    let old = entry::node_word(root);
                    root = self
                        .publish_head(old, top)
                        .expect("a head holding a node changes only under the write lock");
                }
            }
            Kind::Value | Kind::Lock => {
                let marks = self.xa.root_marks.load(Ordering::Relaxed);
                let root = Node::filled(Geometry::<SLOTS>::TOP_SHIFT, head, marks);
                let root = self.publish_head(head, root)?;
                self.note_split(head, 0);
                Some(root)
            }
            Kind::Item => unreachable!("items live only in leaves"),
        }
    }

    /// Publishes `root` as the head if the head is still `old` (which `root` already
    /// contains); otherwise frees `root` unpublished and returns `None`.
    fn publish_head(&mut self, old: usize, root: Box<Node<SLOTS>>) -> Option<*const Node<SLOTS>> {
        let root = Box::into_raw(root) as *const Node<SLOTS>;
        let new = entry::node_word(root);
        if let Err(now) =
            self.xa
                .head
                .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
        {
            debug_assert!(!entry::is_node(now));
            // SAFETY: `root` came from `Box::into_raw` above and was never published.
            // The old head word it was filled with is not a node (only non-node heads can
            // change under the lock), so it owns no children: freeing the box alone is
            // right.
            unsafe { node::free_node::<SLOTS>(root) };
            return None;
        }
        self.xa.nodes.fetch_add(1, Ordering::Relaxed);
        Some(root)
    }

    /// Records that a lock entry with waiters, based at `base`, is being split.
    fn note_split(&mut self, word: usize, base: u64) {
        if entry::kind(word) == Kind::Lock && LockState::of(word).waiters {
            self.split_waiting.push(base);
        }
    }

    /// Replaces the word in `slot` with `new` if it is `expected`; returns the old word,
    /// or the word found. Only a non-node head can differ from what the caller read under
    /// the lock (see the module docs); other slots are checked in debug builds only.
    pub(crate) fn swap(
        &mut self,
        slot: Slot<SLOTS>,
        expected: usize,
        new: usize,
    ) -> Result<usize, usize> {
        debug_assert!(!entry::is_node(new));
        match slot {
            Slot::Head => {
                self.xa.head.compare_exchange(
                    expected,
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )?;
            }
            Slot::In(..) => {
                let old = self.replace(slot, new);
                debug_assert_eq!(old, expected, "slots in nodes change only under the lock");
                return Ok(old);
            }
        }
        if entry::kind(new) == Kind::Item {
            self.xa.items.fetch_add(1, Ordering::Relaxed);
        }
        Ok(expected)
    }

    /// Stores `word` (never a node) in `slot` and returns the old word, which the caller
    /// must hand to [`Self::dispose`]. Marks are left as they are. For the head, use
    /// [`Self::swap`] unless it holds a node (see the module docs).
    pub(crate) fn replace(&mut self, slot: Slot<SLOTS>, word: usize) -> usize {
        debug_assert!(!entry::is_node(word));
        let old = match slot {
            Slot::Head => self.xa.head.swap(word, Ordering::AcqRel),
            // SAFETY: we hold the write lock and the node is reachable.
            Slot::In(node, offset) => unsafe { Self::node(node).replace(offset, word) },
        };
        if entry::kind(word) == Kind::Item {
            self.xa.items.fetch_add(1, Ordering::Relaxed);
        }
        old
    }

    /// Takes ownership of a word that was just unlinked: retires it through the epoch
    /// and updates the tree's counters. An item comes back as a fresh `Arc` (the tree's
    /// own reference is dropped only after concurrent readers are done with it).
    pub(crate) fn dispose(&mut self, old: usize) -> super::Entry<T> {
        match entry::kind(old) {
            Kind::Empty => super::Entry::Empty,
            Kind::Lock => {
                let state = LockState::of(old);
                super::Entry::Locked {
                    mode: state.mode,
                    holders: state.holders,
                }
            }
            Kind::Value => super::Entry::Value(entry::word_value(old)),
            Kind::Item => {
                self.xa.items.fetch_sub(1, Ordering::Relaxed);
                let ptr = entry::word_item::<T>(old);
                // SAFETY: the tree owned one strong reference to this item and retires it
                // below (after the epoch), so the count is at least 1 now.
                let item = unsafe {
                    crate::sync::ItemArc::increment_strong_count(ptr);
                    crate::sync::ItemArc::from_raw(ptr)
                };
                self.unlinked.push((old, true));
                super::Entry::Item(item)
            }
            Kind::Node => {
                let (nodes, items) = Self::census(old);
                self.xa.nodes.fetch_sub(nodes, Ordering::Relaxed);
                self.xa.items.fetch_sub(items, Ordering::Relaxed);
                self.unlinked.push((old, true));
                super::Entry::Empty
            }
        }
    }

    /// Counts the nodes and items of a subtree that was just unlinked (and that no writer
    /// can change, since we hold the lock).
    fn census(word: usize) -> (usize, usize) {
        match entry::kind(word) {
            Kind::Item => (0, 1),
            Kind::Node => {
                let node = Self::node(entry::word_node(word));
                let mut totals = (1, 0);
                for offset in 0..SLOTS {
                    let (n, i) = Self::census(node.load(offset));
                    totals.0 += n;
                    totals.1 += i;
                }
                totals
            }
            _ => (0, 0),
        }
    }

    /// Whether `slot` carries mark `m`.
    pub(crate) fn is_marked(&self, slot: Slot<SLOTS>, m: usize) -> bool {
        match slot {
            Slot::Head => self.xa.root_marks.load(Ordering::Relaxed) & (1 << m) != 0,
            Slot::In(node, offset) => Self::node(node).mark_bits(m) & (1 << offset) != 0,
        }
    }

    /// Sets or clears mark `m` on `slot` (the cursor's current slot) and propagates the
    /// change up the remembered path: a set stops at the first ancestor that already had
    /// the bit, a clear at the first node that still has other marked slots.
    pub(crate) fn set_mark(&mut self, slot: Slot<SLOTS>, m: usize, on: bool) {
        if let Slot::In(node, offset) = slot {
            debug_assert_eq!(self.path.last(), Some(&(node, offset)));
            for depth in (0..self.path.len()).rev() {
                let (node, offset) = self.path[depth];
                let node = Self::node(node);
                let before = node.set_slot_mark(m, offset, on);
                let after = node.mark_bits(m);
                // Ancestors summarise "any bit set in this node": done if that did not change.
                if (before != 0) == (after != 0) {
                    return;
                }
            }
        }
        if on {
            self.xa.root_marks.fetch_or(1 << m, Ordering::Release);
        } else {
            self.xa.root_marks.fetch_and(!(1 << m), Ordering::Release);
        }
    }

    /// Clears every mark of `slot`.
    pub(crate) fn clear_marks(&mut self, slot: Slot<SLOTS>) {
        for m in 0..MARK_COUNT {
            if self.is_marked(slot, m) {
                self.set_mark(slot, m, false);
            }
        }
    }

    /// After slots on the current path were emptied: unlinks and retires the nodes that
    /// became empty (bottom up). The cursor's `Drop` then shortens the tree while the root
    /// holds nothing but a child in slot 0 (invariant 5).
    pub(crate) fn collapse(&mut self) {
        while let Some(&(node, _)) = self.path.last() {
            // SAFETY: we hold the write lock.
            if unsafe { Self::node(node).count() } != 0 {
                break;
            }
            self.path.pop();
            let parent_slot = match self.path.last() {
                Some(&(parent, offset)) => Slot::In(parent, offset),
                None => Slot::Head,
            };
            // An empty node carries no marks, so its parent slot's bits are clear already.
            let old = match parent_slot {
                Slot::Head => self.xa.head.swap(EMPTY, Ordering::AcqRel),
                // SAFETY: we hold the write lock and the parent is reachable.
                Slot::In(parent, offset) => unsafe { Self::node(parent).replace(offset, EMPTY) },
            };
            debug_assert_eq!(old, entry::node_word(node));
            self.xa.nodes.fetch_sub(1, Ordering::Relaxed);
            self.unlinked.push((old, false));
        }
    }

    /// Replaces the root by its slot-0 child while that child is all the root holds.
    ///
    /// Needed after slots were emptied ([`Self::collapse`]) and after any write that went
    /// through [`Self::create`]: splitting a multi-index entry in the root's slot 0, when
    /// that entry is all the root holds, leaves the new child as the root's only content.
    /// The cursor's `Drop` runs it, so every write ends with a minimal tree; it must come
    /// last because it invalidates the remembered path.
    fn shrink(&mut self) {
        loop {
            let head = self.xa.head.load(Ordering::Acquire);
            if !entry::is_node(head) {
                return;
            }
            let root = Self::node(entry::word_node(head));
            let child = root.load(0);
            // SAFETY: we hold the write lock.
            if unsafe { root.count() } != 1 || !entry::is_node(child) {
                return;
            }
            // The child's marks are the root's slot-0 marks, which are `root_marks`: the
            // head's marks do not change. The old root is retired unchanged (its slot 0
            // still leads to the live child), so a reader inside it keeps walking.
            self.xa.head.store(child, Ordering::Release);
            self.xa.nodes.fetch_sub(1, Ordering::Relaxed);
            self.unlinked.push((head, false));
            self.path.clear();
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> Drop for WriteCursor<'_, T, SLOTS> {
    /// Ends every write with invariant 5 restored, still under the write lock; then
    /// releases the lock and retires what the write unlinked (see [`Self::new`]).
    fn drop(&mut self) {
        self.shrink();
        drop(self.lock.take());
        if self.unlinked.is_empty() {
            return;
        }
        let pinned;
        let guard = match &self.guard {
            Some(guard) => guard,
            None => {
                pinned = self.xa.pin();
                &pinned
            }
        };
        for &(word, whole) in &self.unlinked {
            if whole {
                node::retire_subtree::<T, SLOTS>(guard, word);
            } else {
                node::retire_node::<T, SLOTS>(guard, word);
            }
        }
    }
}
