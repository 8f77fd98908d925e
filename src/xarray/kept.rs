//! Empty nodes kept linked for the next locker (opt-in: [`XArray::with_kept_nodes`]),
//! and the budget that bounds them.
//!
//! # Why
//!
//! A range lock over a region that holds no page lives in the slots of the nodes that
//! cover it, as high in the tree as its range allows (a lock record in the deepest node
//! that exists there). For one locker on an empty tree that is the head, but two lockers
//! of disjoint ranges force a root: every round, one of them moves the other's head
//! entry into a new root, both write that root's lock and count, and the last release
//! unlinks it again. Disjoint lockers of a file without pages so serialise on the head
//! and the root's cache lines (issue 12: two threads ran at 0.07x to 0.18x the
//! throughput of one). Keeping emptied nodes alone does not help: the lockers' records
//! then land in the kept root, and both threads write its lock on every operation (two
//! threads measured 1.7x slower per round than with the churn). What helps is for each
//! locker to own the nodes of its region, so that nothing it writes is written by a
//! locker of another region. That costs nodes that hold nothing between two locks,
//! which is why it is a setting of the tree, off by default.
//!
//! # What
//!
//! On a tree built with `with_kept_nodes(n)`:
//!
//! * **Build down.** The claim fast path (`slot_fast.rs`), when the range lies in one
//!   empty slot of the deepest node there and a place in the budget is free, builds the
//!   nodes below that slot down to the deepest level whose one node covers the range,
//!   puts the entries there (inline for whole slots, records for the ends), marks that
//!   bottom node *kept* (it takes the place), and links the chain with one store, under
//!   the lock of the node it hangs from. It skips the root's slot 0 while the root holds
//!   nothing else (the root would then need shrinking).
//! * **Keep.** The release fast path, when it would leave its node empty, or leave the
//!   root holding only its first child (the shape the root's shrink removes), leaves the
//!   node as it is if it is kept, or if a place is free (it then marks it kept).
//! * **Stay.** A kept node stays linked whatever empties it (a store, an erase, a lock
//!   operation on the general path), and a kept root is not shrunk, until
//!   [`XArray::trim`] unlinks the empty nodes and shrinks the root, or a write replaces
//!   the whole subtree (a lock or a range store over it).
//!
//! So a locker that comes back to its region finds its node and claims and releases
//! there under that node's lock alone, writing no line another region's locker writes.
//!
//! # Invariants
//!
//! 1. A linked node with no entry is kept, once no writer runs (an empty node that is
//!    not kept is unlinked by the writer that emptied it, when it lets go of its
//!    locks), and so is a root that holds only its first child. The self-check
//!    (`check.rs`) verifies both.
//! 2. A node's kept bit is set only by a writer that took a place in the budget first,
//!    under the node's lock or before the node is published, and is cleared only when
//!    the node is unlinked: whoever marks it obsolete gives the place back
//!    ([`Node::make_obsolete`] says whether to). So, once no writer runs, the budget's
//!    count equals the number of linked kept nodes and is at most the tree's limit.
//! 3. A kept node is an ordinary node to every walk: readers see empty slots, a claim
//!    locks it and checks that it is not obsolete, `trim`'s unlinker locks its parent
//!    and then it and checks that it is still empty. A built chain is published by one
//!    `Release` store of its top into an empty slot, whose node's lock the builder holds
//!    and which it read again under that lock, as every fast claim does.
//!
//! Why a root is kept rather than shrunk: two lockers, one at index 5 (the root's slot
//! 0) and one far above. The first builds its nodes under slot 0; when the second's
//! release leaves the root with only that child, a shrink would make the first
//! locker's chain the root, and from then on every lock of the second lies beyond the
//! root: it grows the tree by three levels and its release shrinks it again, every
//! round (measured: 400-600 ns a round, against 45-65 once each has its nodes).
//!
//! # Cost
//!
//! At most `n` kept nodes, each keeping at most its ancestors linked (which hold it, so
//! they are not empty): with 64 slots and indices below `2^24` (a 64 GiB file of 4 KiB
//! pages, four levels), 16 kept nodes hold at most 16 x 4 nodes of 544 bytes, 34 KiB.
//! [`XArray::node_count`] and [`XArray::memory_usage`] count them; [`XArray::is_empty`]
//! and every read see the tree as empty as it is. A locker that finds a kept node pays
//! the in-node fast path (a pin and a walk) where, alone on an empty tree, it would pay
//! one compare-exchange of the head.

use crossbeam_epoch::Guard;
use smallvec::SmallVec;

use super::cursor::WriteCursor;
use super::entry::{self, EMPTY};
use super::node::{Geometry, Node};
use super::tree::XArray;
use super::walk;
use crate::sync::atomic::{AtomicU8, Ordering};

/// The most nodes a tree can be asked to keep ([`XArray::with_kept_nodes`]).
pub const MAX_KEPT_NODES: usize = 64;

/// A tree's limit of kept nodes and the places taken (invariant 2).
pub(crate) struct KeptBudget {
    taken: AtomicU8,
    limit: u8,
}

impl KeptBudget {
    /// A budget of no place: the tree keeps nothing.
    pub(crate) fn new() -> Self {
        KeptBudget {
            taken: AtomicU8::new(0),
            limit: 0,
        }
    }

    /// Whether the tree keeps nodes at all.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.limit != 0
    }

    /// Takes a place in the budget; `false` if none is free. (Relaxed: the count orders
    /// nothing; the node's lock, or its publication, orders the kept bit.)
    pub(crate) fn try_take(&self) -> bool {
        self.taken
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |taken| {
                (taken < self.limit).then_some(taken + 1)
            })
            .is_ok()
    }

    /// Gives back the place of a kept node that was just unlinked.
    pub(crate) fn give_back(&self) {
        let before = self.taken.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(before != 0, "a kept node gave back a place nobody took");
    }

    /// The places taken.
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed) as usize
    }

    /// The most places there are.
    pub(crate) fn limit(&self) -> usize {
        self.limit as usize
    }
}

impl<T, const SLOTS: usize> XArray<T, SLOTS> {
    /// This tree, keeping up to `nodes` empty nodes (at most [`MAX_KEPT_NODES`]; more is
    /// taken as that many) linked for the lockers of regions that hold no page, so that
    /// lockers of disjoint regions each claim and release in nodes of their own instead
    /// of all in the root (see `src/xarray/kept.rs`). Call it before the tree is shared.
    ///
    /// Off (0) by default: a tree then links no node that holds nothing once its
    /// writers are done. With it on, [`node_count`](Self::node_count) and
    /// [`memory_usage`](Self::memory_usage) count the kept nodes and the ancestors that
    /// hold them (at most `nodes` times the tree's height), [`is_empty`](Self::is_empty)
    /// looks through them, and [`trim`](Self::trim) unlinks them.
    ///
    /// ```
    /// use rangelock::{LockMode, XArray};
    ///
    /// let xa: XArray<u64> = XArray::new().with_kept_nodes(16);
    /// let first = xa.lock_range(5..=5, LockMode::Exclusive).unwrap();
    /// let second = xa.lock_range(1 << 20..=1 << 20, LockMode::Exclusive).unwrap();
    /// drop((first, second));
    /// // Another round: the second locker's region now has a node of its own, kept.
    /// drop(xa.lock_range(1 << 20..=1 << 20, LockMode::Exclusive).unwrap());
    /// assert!(xa.is_empty());
    /// assert!(xa.node_count() > 0);
    /// xa.trim();
    /// assert_eq!(xa.node_count(), 0);
    /// ```
    pub fn with_kept_nodes(mut self, nodes: usize) -> Self {
        self.kept.limit = nodes.min(MAX_KEPT_NODES) as u8;
        self
    }

    /// The most empty nodes this tree keeps ([`with_kept_nodes`](Self::with_kept_nodes);
    /// 0 by default).
    pub fn kept_nodes_limit(&self) -> usize {
        self.kept.limit()
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// Unlinks the empty nodes kept linked for the next locker (see
    /// [`with_kept_nodes`](Self::with_kept_nodes)), and the ancestors that empty with
    /// them. Their memory goes back to the tree's node cache once no reader can still
    /// see them. It walks the whole tree: a call for an idle tree, not for a hot path.
    ///
    /// A tree never needs this for correctness or to stay bounded; call it to give the
    /// last few nodes of an idle tree back (a memory shrinker's hook), or before
    /// checking that a tree without guards holds no node. It runs beside other readers
    /// and writers; what they lock or store meanwhile may keep nodes.
    ///
    /// ```
    /// use rangelock::{LockMode, XArray};
    /// use std::sync::Arc;
    ///
    /// let xa: XArray<u64> = XArray::new().with_kept_nodes(16);
    /// xa.store(4992, Arc::new(4992)).unwrap();
    /// let guard = xa.lock_range(5000..=5000, LockMode::Exclusive).unwrap();
    /// xa.erase(4992).unwrap();
    /// drop(guard); // its release empties the leaf over 4992..5056, which stays
    /// assert!(xa.is_empty());
    /// assert_eq!(xa.node_count(), 3);
    /// xa.trim();
    /// assert_eq!(xa.node_count(), 0);
    /// ```
    pub fn trim(&self) {
        if self.kept.taken() == 0 {
            return;
        }
        let mut cursor = WriteCursor::new(self);
        cursor.trimming = true;
        let mut empty: SmallVec<[(*const Node<SLOTS>, u64); 16]> = SmallVec::new();
        let head = self.head.load(Ordering::Acquire);
        if entry::is_node(head) {
            let root = walk::node_at(head, cursor.pinned());
            if !holds_entry(root, 0, cursor.pinned(), Some(&mut empty)) {
                empty.push((root as *const Node<SLOTS>, 0));
            }
        }
        // Children before parents: each unlink may empty the parent, which
        // `collapse_node` then unlinks too, and finds gone when its own turn comes.
        for (node, base) in empty {
            cursor.collapse_node(node, base);
        }
        cursor.shrink();
    }
}

/// Whether the subtree of `node` (which covers `base..`) holds an entry, not only empty
/// nodes; read without locks. With `empty`, every node below `node` that holds none is
/// pushed onto it, children before parents (for `trim`, whose unlinker checks again
/// under the locks); without, the walk stops at the first entry (for `is_empty`).
pub(super) fn holds_entry<const SLOTS: usize>(
    node: &Node<SLOTS>,
    base: u64,
    guard: &Guard,
    mut empty: Option<&mut SmallVec<[(*const Node<SLOTS>, u64); 16]>>,
) -> bool {
    let shift = node.shift as u32;
    let mut holds = false;
    for offset in 0..Geometry::<SLOTS>::slots_in_range(shift) {
        let word = node.load(offset);
        holds |= if entry::is_node(word) {
            let child = walk::node_at::<SLOTS>(word, guard);
            let child_base = base + ((offset as u64) << shift);
            let below = holds_entry(child, child_base, guard, empty.as_deref_mut());
            if let (false, Some(out)) = (below, empty.as_deref_mut()) {
                out.push((child as *const Node<SLOTS>, child_base));
            }
            below
        } else {
            word != EMPTY
        };
        if holds && empty.is_none() {
            return true;
        }
    }
    holds
}
