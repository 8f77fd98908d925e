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
//!    Walks (readers', `lock_at`'s and the lock fast path's) read only the root's header
//!    and derive each child's shift from its parent's, so a level costs one cache line.
//! 3. A node is published (one `Release` store of its word) only when fully initialised,
//!    and after it is unlinked (marked obsolete under its lock) no writer touches it
//!    again; then it is retired, and reused once the epoch has passed it.
//! 4. A node's mark bit `m` for slot `i` is set iff the entry in slot `i` (or an entry
//!    somewhere below it) carries mark `m`; the head's marks are `root_marks`. An empty
//!    slot carries no mark. (Between a change and the end of its cursor's maintenance, an
//!    ancestor's bit may lag; every change is followed by a recomputation of each
//!    ancestor bit under that ancestor's lock, from the child's current bits, so the
//!    last recomputation wins and the invariant holds once writers are done.) A set
//!    mark is visible from the head when its call returns: a writer that changes a
//!    node's summary counts itself in the node's propagation count until it has
//!    recomputed every ancestor, and a writer stops its own recomputation early (at a
//!    node whose summary it left as it was) only where that count is zero, i.e. where
//!    no ancestor bit can still lag the node. A cleared mark may stay visible above
//!    until the writer whose recomputation is under way finishes; readers always
//!    confirm a mark at the slot itself.
//! 5. Every node reachable from the head other than the root has at least one non-empty
//!    slot, and the root is not a node whose only non-empty slot is a child node in
//!    slot 0 (the tree is as short as its contents allow), once writers are done; except
//!    the nodes a tree that keeps nodes for lockers has kept (`kept.rs`): a kept node
//!    may be empty, a kept root may hold only its first child.
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
//! The range-lock fast paths (`head.rs`, called by `src/lock/`) change the *head*
//! without `head_lock`: an empty head becomes a lock entry over everything or a lock record, and
//! back, and a whole-range entry is downgraded, each by one compare-exchange. So a
//! writer under `head_lock` changes a non-node head only by compare-exchange against the
//! word it based its decision on ([`WriteCursor::swap`]) and treats a failure as "look
//! again"; a head record's state is changed by compare-exchange too (`record.rs`). A
//! head holding a node changes only under `head_lock`.

mod collapse;
mod grow;
mod locate;
mod marks;

use crossbeam_epoch::Guard;
use smallvec::SmallVec;

use super::entry::{self, Kind, EMPTY, MARK_COUNT};
use super::lock_word::LockState;
use super::node::{self, Geometry, Node};
use super::node_slab::{self, NewNode};
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
    pub(super) many: SmallVec<[(*const Node<SLOTS>, u64); 4]>,
    /// Nodes whose last slot this cursor emptied, and nodes whose mark summary it
    /// changed (marks as bits), each with its base: unlinked, or their ancestors' bits
    /// recomputed, once the cursor lets go of its locks (top-down lock order: the
    /// ancestors are locked after).
    pub(super) pending_empty: SmallVec<[(*const Node<SLOTS>, u64); 4]>,
    pending_marks: SmallVec<[(*const Node<SLOTS>, u64, u8); 4]>,
    /// Nodes whose in-flight propagation count this cursor raised
    /// ([`Node::begin_propagation`]), lowered again at the end of its maintenance.
    propagating: SmallVec<[*const Node<SLOTS>; 8]>,
    /// (node, offset, base) from the root down to the locked slot's node.
    path: SmallVec<[Step<SLOTS>; 12]>,
    /// The root's slot 0 was pushed down: the root may now hold nothing but that child.
    maybe_shrink: bool,
    /// This cursor unlinks empty nodes kept for lockers too (`XArray::trim`); others
    /// leave them linked (`kept.rs`).
    pub(in crate::xarray) trimming: bool,
    /// Nodes unlinked by this cursor, retired (through the epoch, back to the node slab)
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
            propagating: SmallVec::new(),
            path: SmallVec::new(),
            maybe_shrink: false,
            trimming: false,
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
        for node in self.propagating.drain(..) {
            Self::node(node).end_propagation();
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
            n.begin_propagation();
            self.propagating.push(ptr);
            self.pending_marks.push((ptr, base, marks));
        }
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
}

impl<T: Send + Sync + 'static, const SLOTS: usize> Drop for WriteCursor<'_, T, SLOTS> {
    /// Lets go of the lock held and does the maintenance it owes (see
    /// [`WriteCursor::unlock`]).
    fn drop(&mut self) {
        self.unlock();
        self.retire();
    }
}
