//! The write cursor: every change of a slot, made under the lock of the node that holds
//! it (or of the head).
//!
//! There is no tree-wide write lock. A [`WriteCursor`] pins the epoch, walks from the
//! head without locks to the slot it wants, locks the node that holds it (the tree's
//! `head_lock` for the head), checks that the node is not obsolete and re-reads the slot,
//! and only then writes. Writers of disjoint slots in different nodes share no cache
//! line. A cursor holds at most one node lock at a time, except while it builds or
//! unlinks structure, when it holds a parent and then a child (always top-down).
//!
//! # Invariants kept here (and relied on by readers, see [`walk`](super::walk))
//!
//! 1. The head is empty, a non-node entry covering all of `u64` (or a lock record), or
//!    the root node.
//! 2. A node with shift `s > 0` holds child nodes (shift `s - BITS`) or non-node entries
//!    covering their slot's `2^s` indices; items only ever sit in leaves (shift 0); lock
//!    records only in the head and in slots of shift > 0, inside their slot's span.
//! 3. A node is published (one `Release` store of its word) only when fully initialised,
//!    and after it is unlinked (marked obsolete under its lock) no writer touches it
//!    again; then it is retired, and reused once the epoch has passed it.
//! 4. A node's mark bit `m` for slot `i` is set iff the entry in slot `i` (or an entry
//!    somewhere below it) carries mark `m`; the head's marks are `root_marks`. An empty
//!    slot carries no mark. (Between a change and the end of its cursor's maintenance, an
//!    ancestor's bit may lag; every change is followed by a recomputation of each
//!    ancestor bit under that ancestor's lock, from the child's current bits, so the
//!    last recomputation wins and the invariant holds once writers are done.)
//! 5. Every node reachable from the head other than the root has at least one non-empty
//!    slot, and the root is not a node whose only non-empty slot is a child node in
//!    slot 0 (the tree is as short as its contents allow), once writers are done.
//! 6. `count` of every node equals its non-empty slots; `items` and `nodes` of the tree
//!    equal the items and nodes reachable from the head (once writers are done).
//!
//! # Lock order
//!
//! `head_lock`, then nodes from the root down (a parent before its child). A cursor
//! that must change a parent after a child (unlinking an empty node, propagating a mark)
//! lets go of the child first and validates again under the parent's lock. Nothing is
//! called under a node lock that takes another lock except the wait table's bucket
//! mutexes (lock layer), which take nothing further.
//!
//! # The words changed without a lock
//!
//! The range-lock layer's fast paths (`src/lock/`) change the *head* without
//! `head_lock`: an empty head becomes a lock entry over everything or a lock record, and
//! back, and a whole-range entry is downgraded, each by one compare-exchange. So a
//! writer under `head_lock` changes a non-node head only by compare-exchange against the
//! word it based its decision on ([`WriteCursor::swap`]) and treats a failure as "look
//! again"; a head record's state is changed by compare-exchange too (`record.rs`). A
//! head holding a node changes only under `head_lock`.

use crossbeam_epoch::Guard;
use smallvec::SmallVec;

use super::entry::{self, Kind, EMPTY, MARK_COUNT};
use super::lock_word::LockState;
use super::node::{self, Geometry, Node};
use super::record::{LockRecord, RecordPool};
use super::span::Block;
use super::tree::XArray;
use super::walk;
use crate::sync::atomic::Ordering;
use crate::sync::{self, SpinLock};

/// Where a slot word lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot<const SLOTS: usize> {
    /// The tree's head (covers all of `u64`).
    Head,
    /// Slot `offset` of a reachable node.
    In(*const Node<SLOTS>, usize),
}

/// What [`WriteCursor::lock_at`] found, with its owner locked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located<const SLOTS: usize> {
    /// The slot found. When it is the head and holds the root node, the block asked
    /// for contains every index the tree can hold at its current height.
    pub(crate) slot: Slot<SLOTS>,
    /// The slot covers `2^shift` indices (64: the head).
    pub(crate) shift: u32,
    /// The slot's span.
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// The slot's raw word (a record word is not resolved); `EMPTY` when `outside`.
    pub(crate) word: usize,
    /// The index lies beyond the root node's reach (nothing covers it): the head is
    /// locked, and [`WriteCursor::create`] grows the root to reach it.
    pub(crate) outside: bool,
}

/// One step of the path from the root to the locked slot.
#[derive(Clone, Copy, Debug)]
struct Step<const SLOTS: usize> {
    node: *const Node<SLOTS>,
    offset: usize,
    /// The first index `node` covers.
    base: u64,
}

/// The marks (as bits) that any slot of `node` carries.
pub(super) fn summary<const SLOTS: usize>(node: &Node<SLOTS>) -> u8 {
    let mut marks = 0u8;
    for m in 0..MARK_COUNT {
        if node.mark_bits(m) != 0 {
            marks |= 1 << m;
        }
    }
    marks
}

/// What a recomputation of an ancestor's mark bit found.
enum Recompute {
    /// The ancestor's summary changed: go on up.
    Changed,
    /// It did not: stop.
    Unchanged,
    /// The path no longer leads to the child: find it again.
    Stale,
}

/// The lock a cursor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Held<const SLOTS: usize> {
    Nothing,
    Head,
    Node(*const Node<SLOTS>),
    /// The head lock and every node in `WriteCursor::many` (a range write).
    Many,
}

/// Pins the epoch, holds at most one slot owner's lock, and remembers the path to it.
pub(crate) struct WriteCursor<'a, T: Send + Sync + 'static, const SLOTS: usize> {
    pub(super) xa: &'a XArray<T, SLOTS>,
    guard: Guard,
    pub(super) held: Held<SLOTS>,
    /// The nodes a range write holds locked, with their bases, in the order locked (see
    /// `range_write.rs`).
    pub(super) many: SmallVec<[(*const Node<SLOTS>, u64); 16]>,
    /// Nodes whose last slot this cursor emptied, and nodes whose mark summary it
    /// changed (marks as bits), each with its base: unlinked, or their ancestors' bits
    /// recomputed, once the cursor lets go of its locks (top-down lock order: the
    /// ancestors are locked after).
    pub(super) pending_empty: SmallVec<[(*const Node<SLOTS>, u64); 4]>,
    pending_marks: SmallVec<[(*const Node<SLOTS>, u64, u8); 4]>,
    /// (node, offset, base) from the root down to the locked slot's node.
    path: SmallVec<[Step<SLOTS>; 12]>,
    /// The root's slot 0 was pushed down: the root may now hold nothing but that child.
    maybe_shrink: bool,
    /// Nodes unlinked by this cursor, retired (through the epoch, into the node cache)
    /// once no lock is held.
    unlinked_nodes: SmallVec<[usize; 4]>,
    /// Items and whole subtrees unlinked by this cursor, retired likewise.
    unlinked: SmallVec<[usize; 4]>,
    /// Base indices of lock entries with the waiters flag that this cursor split or
    /// pushed down: the lock layer wakes their waiters (they were queued under the old
    /// entry's base).
    pub(crate) split_waiting: SmallVec<[u64; 2]>,
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> WriteCursor<'a, T, SLOTS> {
    /// Pins the epoch (before any lock: pinning may run deferred frees, which drop
    /// items and so run the user's `Drop for T`, which must never run under a lock of
    /// this tree). Holds no lock yet.
    pub(crate) fn new(xa: &'a XArray<T, SLOTS>) -> Self {
        WriteCursor {
            xa,
            guard: xa.pin(),
            held: Held::Nothing,
            many: SmallVec::new(),
            pending_empty: SmallVec::new(),
            pending_marks: SmallVec::new(),
            path: SmallVec::new(),
            maybe_shrink: false,
            unlinked_nodes: SmallVec::new(),
            unlinked: SmallVec::new(),
            split_waiting: SmallVec::new(),
        }
    }

    /// The cursor's pin, for walks of the lock-free `walk` functions.
    pub(crate) fn pinned(&self) -> &Guard {
        &self.guard
    }

    /// The tree this cursor writes.
    pub(crate) fn tree(&self) -> &'a XArray<T, SLOTS> {
        self.xa
    }

    /// Dereferences a node the cursor reached.
    #[inline(always)]
    pub(super) fn node<'n>(ptr: *const Node<SLOTS>) -> &'n Node<SLOTS> {
        // SAFETY: every node pointer the cursor holds was read from a slot of a node
        // reachable from the head (or the head) while the cursor's guard was pinned, and
        // the guard stays pinned for the cursor's life: an unlinked node is retired
        // through the epoch, so it stays allocated at least that long.
        unsafe { &*ptr }
    }

    /// The record a record word points to.
    #[inline(always)]
    pub(crate) fn record<'r>(word: usize) -> &'r LockRecord {
        debug_assert!(entry::is_record(word));
        // SAFETY: record memory is type-stable for as long as the tree lives (see
        // `record.rs`), and the cursor borrows the tree.
        unsafe { &*entry::word_record::<LockRecord>(word) }
    }

    /// The bounds and state of the lock record in the located slot, read consistently: a
    /// head record may be taken out by a fast release (and its memory reused) at any
    /// time, so it is read with `record::read`'s validation; `None` if it is gone (the
    /// index is no longer locked by it). A record in a locked node is stable.
    pub(crate) fn located_record(&self, at: &Located<SLOTS>) -> Option<super::record::Seen> {
        debug_assert!(entry::is_record(at.word));
        match at.slot {
            Slot::Head => loop {
                if let Some(seen) = super::record::read(&self.xa.head, at.word) {
                    return Some(seen);
                }
                if self.xa.head.load(Ordering::Acquire) != at.word {
                    return None;
                }
            },
            Slot::In(..) => {
                let record = Self::record(at.word);
                let (first, last) = record.bounds();
                Some(super::record::Seen {
                    first,
                    last,
                    state: record.state(),
                })
            }
        }
    }

    /// The pool this tree's records come from.
    pub(crate) fn records(&self) -> &'a RecordPool {
        self.xa.records()
    }

    /// The word in `slot` now.
    pub(crate) fn word(&self, slot: Slot<SLOTS>) -> usize {
        match slot {
            Slot::Head => self.xa.head.load(Ordering::Acquire),
            Slot::In(node, offset) => Self::node(node).load(offset),
        }
    }

    // -----------------------------------------------------------------------------------
    // Locking

    fn lock_head(&mut self) {
        debug_assert_eq!(self.held, Held::Nothing);
        SpinLock::lock(&self.xa.head_lock).0.keep();
        self.held = Held::Head;
    }

    /// Lets go of the lock held, then does the maintenance the writes under it asked
    /// for: unlinking emptied nodes, recomputing ancestors' marks, shrinking the root,
    /// retiring what was unlinked.
    pub(crate) fn unlock(&mut self) {
        match core::mem::replace(&mut self.held, Held::Nothing) {
            Held::Nothing => return,
            Held::Head => sync::spin_unlock(&self.xa.head_lock),
            Held::Node(node) => Self::node(node).unlock(),
            Held::Many => {
                for (node, _) in self.many.drain(..).rev() {
                    Self::node(node).unlock();
                }
                sync::spin_unlock(&self.xa.head_lock);
                self.maybe_shrink = true;
            }
        }
        self.maintain();
    }

    /// What the writes under the lock just let go of asked for: recomputing ancestors'
    /// marks (first: the path is still fresh), unlinking emptied nodes, shrinking the
    /// root, retiring what was unlinked.
    fn maintain(&mut self) {
        let marks = core::mem::take(&mut self.pending_marks);
        for (node, base, changed) in marks {
            if self.path.last().is_some_and(|step| step.node == node) {
                self.propagate(changed);
            } else {
                self.propagate_from(node, base, changed);
            }
        }
        let emptied = core::mem::take(&mut self.pending_empty);
        for (node, base) in emptied {
            self.collapse_node(node, base);
        }
        if self.maybe_shrink {
            self.maybe_shrink = false;
            self.shrink();
        }
        self.retire();
    }

    /// Notes that the locked node `n` emptied a slot (`marks == 0`; it matters if `n` is
    /// now empty, or is the root) or changed the summary of `marks`.
    pub(super) fn note_change(&mut self, n: &Node<SLOTS>, marks: u8) {
        let ptr = n as *const Node<SLOTS>;
        let base = if self.held == Held::Many {
            self.many
                .iter()
                .find(|(node, _)| *node == ptr)
                .map(|&(_, base)| base)
                .expect("a range write changes only nodes it holds")
        } else {
            let step = self.path.last().expect("a locked node");
            debug_assert_eq!(step.node, ptr);
            step.base
        };
        if marks == 0 {
            // SAFETY: the caller holds `n`'s lock.
            if unsafe { n.count() } == 0 {
                if !self.pending_empty.iter().any(|&(node, _)| node == ptr) {
                    self.pending_empty.push((ptr, base));
                }
            } else if self.path.len() == 1 {
                self.maybe_shrink = true;
            }
        } else if let Some(entry) = self.pending_marks.iter_mut().find(|e| e.0 == ptr) {
            entry.2 |= marks;
        } else {
            self.pending_marks.push((ptr, base, marks));
        }
    }

    /// Walks from the head towards `index` and locks the owner of the first slot that
    /// holds a non-node word, or of the slot of shift `stop_shift` (64: the head) on the
    /// way. Lets go of any lock held before. The slot's word is read under the lock.
    pub(crate) fn lock_at(&mut self, index: u64, stop_shift: u32) -> Located<SLOTS> {
        self.unlock();
        'walk: loop {
            self.path.clear();
            let head = self.xa.head.load(Ordering::Acquire);
            let to_head = !entry::is_node(head) || stop_shift >= Geometry::<SLOTS>::HEAD_SHIFT;
            let root_shift = if entry::is_node(head) {
                Self::node(entry::word_node(head)).shift as u32
            } else {
                0
            };
            let outside =
                entry::is_node(head) && index > Geometry::<SLOTS>::max_index(root_shift);
            if to_head || outside || stop_shift > root_shift {
                // The head itself, the region beyond the root, or a block that contains
                // the root's whole range.
                self.lock_head();
                let now = self.xa.head.load(Ordering::Acquire);
                let same = if entry::is_node(head) {
                    now == head
                } else {
                    !entry::is_node(now)
                };
                if !same {
                    self.unlock();
                    continue 'walk;
                }
                return Located {
                    slot: Slot::Head,
                    shift: Geometry::<SLOTS>::HEAD_SHIFT,
                    first: 0,
                    last: u64::MAX,
                    word: if outside { EMPTY } else { now },
                    outside,
                };
            }
            let mut node = entry::word_node::<Node<SLOTS>>(head);
            let mut base = 0;
            loop {
                let n = Self::node(node);
                let shift = n.shift as u32;
                let offset = Geometry::<SLOTS>::offset(index, shift);
                let word = n.load(offset);
                let slot_first = Geometry::<SLOTS>::slot_base(index, shift);
                if entry::is_node(word) && shift != stop_shift {
                    self.path.push(Step { node, offset, base });
                    node = entry::word_node(word);
                    base = slot_first;
                    continue;
                }
                let Some(lock) = n.lock() else {
                    continue 'walk; // unlinked meanwhile
                };
                lock.keep();
                self.held = Held::Node(node);
                let word = n.load(offset);
                if entry::is_node(word) && shift != stop_shift {
                    // A child appeared under us: go down into it.
                    self.unlock();
                    self.path.push(Step { node, offset, base });
                    node = entry::word_node(word);
                    base = slot_first;
                    continue;
                }
                self.path.push(Step { node, offset, base });
                return Located {
                    slot: Slot::In(node, offset),
                    shift,
                    first: slot_first,
                    last: walk::slot_last(slot_first, shift),
                    word,
                    outside: false,
                };
            }
        }
    }

    /// The located slot `offset` of the locked node, with its word (for a cursor that
    /// goes on through the slots of the node it holds).
    pub(crate) fn sibling(&self, at: &Located<SLOTS>, offset: usize) -> Located<SLOTS> {
        let Slot::In(node, _) = at.slot else {
            unreachable!("the head has no siblings")
        };
        debug_assert_eq!(self.held, Held::Node(node));
        let n = Self::node(node);
        let base = self.path.last().expect("a locked node").base;
        let first = base + ((offset as u64) << at.shift);
        Located {
            slot: Slot::In(node, offset),
            shift: at.shift,
            first,
            last: walk::slot_last(first, at.shift),
            word: n.load(offset),
            outside: false,
        }
    }

    /// Moves the cursor's notion of the current slot to `offset` of the locked node
    /// (after [`Self::sibling`]), so that maintenance follows the right path.
    pub(crate) fn step_to(&mut self, offset: usize) {
        if let Some(step) = self.path.last_mut() {
            step.offset = offset;
        }
    }

    /// How many slots of the locked node lie inside the index space.
    pub(crate) fn slots_in_node(&self, at: &Located<SLOTS>) -> usize {
        Geometry::<SLOTS>::slots_in_range(at.shift)
    }

    // -----------------------------------------------------------------------------------
    // Writing slots (the owner's lock held)

    /// Replaces the word in `slot` with `new` (never a node) if it is `expected`; returns
    /// the old word, or the word found. Only a non-node head can differ from what the
    /// caller read under the lock (the lock layer's fast paths); other slots are checked
    /// in debug builds only.
    pub(crate) fn swap(
        &mut self,
        slot: Slot<SLOTS>,
        expected: usize,
        new: usize,
    ) -> Result<usize, usize> {
        debug_assert!(!entry::is_node(new));
        match slot {
            Slot::Head => {
                debug_assert!(self.held == Held::Head || self.held == Held::Many);
                self.xa.head.compare_exchange(
                    expected,
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )?;
                self.count_items(expected, new);
                Ok(expected)
            }
            Slot::In(..) => {
                let old = self.replace(slot, new);
                debug_assert_eq!(old, expected, "slots in nodes change only under the lock");
                Ok(old)
            }
        }
    }

    /// Stores `word` (never a node) in `slot` of the locked node and returns the old word,
    /// which the caller must hand to [`Self::dispose`]. Marks are left as they are.
    pub(crate) fn replace(&mut self, slot: Slot<SLOTS>, word: usize) -> usize {
        debug_assert!(!entry::is_node(word));
        let old = match slot {
            Slot::Head => {
                debug_assert!(self.held == Held::Head || self.held == Held::Many);
                self.xa.head.swap(word, Ordering::AcqRel)
            }
            Slot::In(node, offset) => {
                debug_assert!(self.held == Held::Node(node) || self.held == Held::Many);
                let n = Self::node(node);
                // SAFETY: we hold the node's lock and it is not obsolete (checked when
                // locked; only a holder of the lock marks it).
                let old = unsafe { n.replace(offset, word) };
                if word == EMPTY {
                    self.note_emptied(n);
                }
                old
            }
        };
        self.count_items(old, word);
        old
    }

    /// A slot of the locked node `n` was just emptied (see [`Self::note_change`]).
    fn note_emptied(&mut self, n: &Node<SLOTS>) {
        self.note_change(n, 0);
    }

    fn count_items(&self, old: usize, new: usize) {
        if entry::kind(new) == Kind::Item {
            self.xa.items.fetch_add(1, Ordering::Relaxed);
        }
        if entry::kind(old) == Kind::Item {
            self.xa.items.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Takes ownership of a word that was just unlinked: retires it through the epoch
    /// (an item, a subtree), frees it (a record) and returns it as an entry. An item
    /// comes back as a fresh `Arc` (the tree's own reference is dropped only after
    /// concurrent readers are done with it).
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
            Kind::Record => {
                let record = Self::record(old);
                let state = LockState::of(record.state());
                self.records().free(record);
                super::Entry::Locked {
                    mode: state.mode,
                    holders: state.holders,
                }
            }
            Kind::Value => super::Entry::Value(entry::word_value(old)),
            Kind::Item => {
                let ptr = entry::word_item::<T>(old);
                // SAFETY: the tree owned one strong reference to this item and retires it
                // below (after the epoch), so the count is at least 1 now.
                let item = unsafe {
                    crate::sync::ItemArc::increment_strong_count(ptr);
                    crate::sync::ItemArc::from_raw(ptr)
                };
                self.unlinked.push(old);
                super::Entry::Item(item)
            }
            Kind::Node => {
                let (nodes, items) = Self::census(old);
                self.xa.nodes.fetch_sub(nodes, Ordering::Relaxed);
                self.xa.items.fetch_sub(items, Ordering::Relaxed);
                self.unlinked.push(old);
                super::Entry::Empty
            }
        }
    }

    /// Counts the nodes and items of a subtree that was just unlinked (its nodes are
    /// obsolete: nobody changes them any more).
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

    // -----------------------------------------------------------------------------------
    // Marks

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
                if (before != 0) != (n.mark_bits(m) != 0) {
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
    fn propagate(&mut self, marks: u8) {
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
    fn recompute(&mut self, depth: usize, m: usize) -> Recompute {
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
        let before = p.set_slot_mark(m, offset, any(child));
        let changed = (before != 0) != (p.mark_bits(m) != 0);
        drop(lock);
        if changed {
            Recompute::Changed
        } else {
            Recompute::Unchanged
        }
    }

    /// Rebuilds `self.path` from the head down to `node` (covering `base..`); `false` if
    /// no slot links it any more.
    fn find_path(&mut self, node: *const Node<SLOTS>, base: u64) -> bool {
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

    // -----------------------------------------------------------------------------------
    // Structure

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

    fn create_with(&mut self, block: Block, locks_too: bool) -> Option<Slot<SLOTS>> {
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
    fn locks_block(&self, at: &Located<SLOTS>, block: Block) -> bool {
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
    fn root_for(&mut self, block: Block, at: &Located<SLOTS>) -> Option<Located<SLOTS>> {
        let head = self.xa.head.load(Ordering::Acquire);
        let root = match entry::kind(head) {
            Kind::Node => {
                let mut root = entry::word_node::<Node<SLOTS>>(head);
                loop {
                    let shift = Self::node(root).shift as u32;
                    if shift >= block.shift && Geometry::<SLOTS>::max_index(shift) >= block.first
                    {
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
                let root = Node::from_cache(&self.xa.node_cache, shift, EMPTY, 0);
                let root = self.publish_root(head, root)?;
                // Empty until the writer writes: unlinked again if it does not.
                self.pending_empty.push((root, 0));
                root
            }
            Kind::Value | Kind::Lock => {
                let marks = self.xa.root_marks.load(Ordering::Relaxed);
                let root =
                    Node::from_cache(&self.xa.node_cache, Geometry::<SLOTS>::TOP_SHIFT, head, marks);
                let root = self.publish_root(head, root)?;
                self.note_split(head, 0);
                root
            }
            Kind::Record => {
                // A head record never changes (`record.rs`), but its fast release may take
                // it out (and the record be reused, at this very head) while we read it.
                // Marking it busy first stops that: the fast release compares the plain
                // word. Then the record is ours to read and to free.
                if self
                    .xa
                    .head
                    .compare_exchange(head, entry::busy(head), Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
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
                let Some(root) = self.publish_root(entry::busy(head), root) else {
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
    pub(super) fn grow(&mut self, root: *const Node<SLOTS>) -> *const Node<SLOTS> {
        let shift = Self::node(root).shift as u32;
        let marks = summary(Self::node(root));
        let top = Node::from_cache(
            &self.xa.node_cache,
            shift + Geometry::<SLOTS>::BITS,
            EMPTY,
            0,
        );
        // SAFETY: `top` is not yet published; only this thread can reach it.
        unsafe { top.replace(0, entry::node_word(root)) };
        for m in 0..MARK_COUNT {
            if marks & (1 << m) != 0 {
                top.set_slot_mark(m, 0, true);
            }
        }
        let top = self
            .publish_root(entry::node_word(root), top)
            .expect("a head holding a node changes only under the head lock");
        self.reset_root_marks(top);
        top
    }

    /// With the head locked and holding the new root `root` (grown, or shrunk to a
    /// child): sets the head's marks to the root's summary. A writer whose recomputation
    /// of the old root's marks is still under way finds its path stale and recomputes from
    /// the new root; this covers the ones that had already recomputed the old root.
    pub(super) fn reset_root_marks(&self, root: *const Node<SLOTS>) {
        let marks = summary(Self::node(root));
        self.xa.root_marks.store(marks, Ordering::Release);
    }

    /// Publishes `root` as the head if the head is still `old` (which `root` already
    /// contains); otherwise gives `root` back unpublished and returns `None`.
    pub(super) fn publish_root(
        &mut self,
        old: usize,
        root: Box<Node<SLOTS>>,
    ) -> Option<*const Node<SLOTS>> {
        debug_assert!(self.held == Held::Head || self.held == Held::Many);
        let root = Box::into_raw(root) as *const Node<SLOTS>;
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
            // SAFETY: `root` came from `Box::into_raw` above and was never published; the
            // head word it was filled with is not a node (only non-node heads change
            // without the head lock), so it owns no children.
            unsafe { node::free_node::<SLOTS>(root) };
            return None;
        }
        self.xa.nodes.fetch_add(1, Ordering::Relaxed);
        Some(root)
    }

    /// A new node of `shift` (starting at `base`) holding a lock entry with `state` over
    /// `first..=last` (inside the node's span): inline entries in the slots it covers
    /// whole, lock records in the one or two it covers in part.
    pub(super) fn pieces(
        &self,
        shift: u32,
        base: u64,
        first: u64,
        last: u64,
        state: usize,
    ) -> Box<Node<SLOTS>> {
        let node = Node::from_cache(&self.xa.node_cache, shift, EMPTY, 0);
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
            Kind::Empty | Kind::Value | Kind::Lock => {
                self.note_split(at.word, at.first);
                Node::from_cache(&self.xa.node_cache, shift, at.word, p.slot_marks(offset))
            }
            Kind::Item | Kind::Node => unreachable!("items and nodes are not pushed down"),
        };
        let child = Box::into_raw(child) as *const Node<SLOTS>;
        let c = Self::node(child);
        c.lock_new().keep();
        // SAFETY: we hold the parent's lock (not obsolete); the child is fully built, and
        // `replace` publishes it with a Release swap.
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
    fn note_split(&mut self, word: usize, base: u64) {
        if entry::kind(word) == Kind::Lock && LockState::of(word).waiters {
            self.split_waiting.push(base);
        }
    }

    /// After slots of `node` (covering `base..`) were emptied: unlinks it if it is
    /// empty, and its ancestors that become empty, bottom up (each under its parent's
    /// lock, then its own). The root is replaced by an empty head when it empties. The
    /// path the cursor remembers may be stale (the root may have grown or shrunk since):
    /// each step finds the node's parent again from the head.
    pub(super) fn collapse_node(&mut self, node: *const Node<SLOTS>, base: u64) {
        let (mut node, mut base) = (node, base);
        loop {
            let shift = Self::node(node).shift as u32;
            match self.find_parent(node, base, shift) {
                None => return, // unlinked already
                Some(None) => {
                    let (head_lock, _) = SpinLock::lock(&self.xa.head_lock);
                    if self.xa.head.load(Ordering::Acquire) != entry::node_word(node) {
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
                        continue; // unlinked or replaced meanwhile: look again
                    };
                    if p.load(offset) != entry::node_word(node) {
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
    fn find_parent(
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

    /// [`Self::propagate`] from `node` (covering `base..`) up, finding its ancestors from
    /// the head.
    pub(super) fn propagate_from(&mut self, node: *const Node<SLOTS>, base: u64, marks: u8) {
        if self.find_path(node, base) {
            self.propagate(marks);
        }
        self.path.clear();
    }

    /// With the lock of `n`'s parent (or the head lock) held: if `n` is empty, marks it
    /// obsolete and queues it for retirement; the caller then empties the parent's slot.
    fn unlink_empty(&mut self, n: &Node<SLOTS>) -> bool {
        let Some(lock) = n.lock() else {
            return false;
        };
        // SAFETY: we hold the node's lock.
        if unsafe { n.count() } != 0 {
            return false;
        }
        n.make_obsolete();
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
            Self::node(node).make_obsolete();
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
    fn lock_subtree(
        node: *const Node<SLOTS>,
        base: u64,
        locked: &mut SmallVec<[*const Node<SLOTS>; 16]>,
    ) -> Result<(), u64> {
        let n = Self::node(node);
        // The parent is locked and links this node: it cannot be obsolete.
        n.lock().expect("a linked node below a locked parent").keep();
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

    /// Replaces the root by its slot-0 child while that child is all the root holds.
    pub(super) fn shrink(&mut self) {
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
            // The head's marks become the child's summary. (They were the root's slot-0
            // marks, but a writer may be between recomputing that slot and recomputing
            // `root_marks`: it finds the root obsolete and the child at the head, and
            // recomputes from there.) The old root is retired unchanged (its slot 0
            // still leads to the live child), so a reader inside it keeps walking; a
            // writer that locks it finds it obsolete and starts again.
            root.make_obsolete();
            self.xa.head.store(child, Ordering::Release);
            self.reset_root_marks(entry::word_node(child));
            drop(lock);
            drop(head_lock);
            self.xa.nodes.fetch_sub(1, Ordering::Relaxed);
            self.unlinked_nodes.push(head);
            self.path.clear();
        }
    }

    /// Retires what this cursor unlinked (no lock is held).
    fn retire(&mut self) {
        for word in self.unlinked_nodes.drain(..) {
            node::retire_node::<SLOTS>(&self.guard, &self.xa.node_cache, word);
        }
        for word in self.unlinked.drain(..) {
            node::retire_subtree::<T, SLOTS>(&self.guard, word);
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> Drop for WriteCursor<'_, T, SLOTS> {
    /// Lets go of the lock held and does the maintenance it owes (see
    /// [`WriteCursor::unlock`]).
    fn drop(&mut self) {
        self.unlock();
        self.retire();
    }
}
