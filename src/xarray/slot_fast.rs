//! The range-lock fast paths inside a node: the claim of empty slots of one node, and
//! the release of one-holder entries there, each under that node's lock alone.
//!
//! The general claim (`lock/claim.rs`) and release (`lock/release.rs`) run through a
//! [`WriteCursor`](super::cursor::WriteCursor), which remembers its path, queues the
//! maintenance its writes ask for (unlinking emptied nodes, recomputing marks, shrinking
//! the root) and retires what it unlinked. On a tree that holds pages, most lock
//! operations need none of that. Take the deepest node whose slots cover a range with
//! no node among them (the walk towards the range's first index goes down while the
//! last index shares its slot and that slot holds a node). If every slot the range
//! spans there is *empty*, the claim writes one word into each: an inline entry where
//! the range covers the slot whole, a lock record with the part's bounds where it covers
//! part of it (the first and the last slot). The release of such entries, while each
//! still has one holder and no waiter and the node keeps another entry, empties those
//! slots. On a tree that keeps nodes for lockers (`kept.rs`), the claim may instead
//! build the nodes below one empty slot down to the range, and the release may leave
//! its node empty, or the root with only its first child, by marking it kept. These two
//! functions do exactly that, by the cursor's protocol (walk without
//! locks, lock the node, check that it is not obsolete, read the slots again), all or
//! nothing, and answer `false` for anything else, which the caller hands to the general
//! path: a range that reaches beyond the root or spans a node, a slot that holds
//! anything but what is expected, a head that is not a node (the head's own fast paths
//! are in `head.rs`).
//!
//! Why nothing else needs doing (each fact is read under the node's lock, which every
//! change of it takes):
//!
//! * a lock entry carries no marks and neither does an empty slot, so no mark summary
//!   changes (cursor invariant 4);
//! * the claim raises the node's count; the release leaves it above zero, and never
//!   leaves the root with one non-empty slot that is a child in slot 0 (the shape that
//!   `shrink` removes), so no node empties and the tree stays as short as it was
//!   (invariant 5), unless the node is kept, which excuses it from both (`kept.rs`);
//!   a chain the claim builds hangs from a slot that is not the root's slot 0 while the
//!   root holds nothing else, so it never makes the root shrinkable;
//! * no item or value changes hands, so nothing is retired and `items` does not move
//!   (`nodes` does, by the chain a claim builds);
//! * the claimed slots held nothing, so no index of them is held or waited for (a waiter
//!   waits on an entry, whose `waiters` flag it sets under the node's lock); each
//!   released entry covers exactly its slot's part of the caller's range with one holder
//!   in the caller's mode and no flag, and the caller holds that range, so the entry is
//!   the caller's and nobody is queued on it.
//!
//! The claim and the general claim make the same words for a range over empty slots;
//! so a guard's release may take this path whichever path acquired it.

use crossbeam_epoch::Guard;
use smallvec::SmallVec;

use super::entry::{self, EMPTY};
use super::lock_word::LockState;
use super::node::{Geometry, Node};
use super::record::LockRecord;
use super::tree::XArray;
use super::walk;
use crate::sync::atomic::Ordering;

/// The node whose slots alone cover a range, and the range of them that it spans.
struct Fit<'g, const SLOTS: usize> {
    node: &'g Node<SLOTS>,
    shift: u32,
    /// The offsets of the slots holding the range's first and last index.
    from: usize,
    to: usize,
}

/// One slot's part of a range: the slot, the part's bounds, and whether the part is the
/// slot's whole span.
#[derive(Clone, Copy)]
struct Part {
    offset: usize,
    first: u64,
    last: u64,
    whole: bool,
}

impl<const SLOTS: usize> Fit<'_, SLOTS> {
    /// The parts of `first..=last` in the slots it spans, in ascending order.
    fn parts(&self, first: u64, last: u64) -> impl Iterator<Item = Part> + '_ {
        let shift = self.shift;
        let from_first = Geometry::<SLOTS>::slot_base(first, shift);
        (self.from..=self.to).map(move |offset| {
            // The slots are consecutive in one node: no span wraps past `u64::MAX`.
            let slot_first = from_first + (((offset - self.from) as u64) << shift);
            let slot_last = walk::slot_last(slot_first, shift);
            let (p, q) = (first.max(slot_first), last.min(slot_last));
            Part {
                offset,
                first: p,
                last: q,
                whole: (p, q) == (slot_first, slot_last),
            }
        })
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// The node whose slots cover `first..=last` with no node among them: the walk
    /// towards `first` goes down while `last` shares its slot and that slot holds a
    /// node (read without locks: the caller locks the node and reads the slots again).
    /// `None` if the range reaches beyond the root or a slot it spans holds a node.
    fn fit<'g>(&self, guard: &'g Guard, first: u64, last: u64) -> Option<Fit<'g, SLOTS>> {
        let head = self.head.load(Ordering::Acquire);
        if !entry::is_node(head) {
            return None;
        }
        let mut node = walk::node_at::<SLOTS>(head, guard);
        // Only the root's header is read (a child's shift is its parent's minus BITS,
        // cursor invariant 2), as in the lookups' walk.
        let mut shift = node.shift as u32;
        if last > Geometry::<SLOTS>::max_index(shift) {
            return None;
        }
        loop {
            debug_assert_eq!(node.shift as u32, shift);
            let from = Geometry::<SLOTS>::offset(first, shift);
            // Both ends lie under `node`: they share a slot iff they agree above `shift`.
            if first >> shift == last >> shift {
                let word = node.load(from);
                if entry::is_node(word) {
                    node = walk::node_at(word, guard);
                    shift -= Geometry::<SLOTS>::BITS;
                    continue;
                }
                return Some(Fit {
                    node,
                    shift,
                    from,
                    to: from,
                });
            }
            let to = Geometry::<SLOTS>::offset(last, shift);
            if (from..=to).any(|offset| entry::is_node(node.load(offset))) {
                return None;
            }
            return Some(Fit {
                node,
                shift,
                from,
                to,
            });
        }
    }

    /// Locks `first..=last` in `state` (one holder, no flag) if every slot it spans in
    /// the deepest node that covers it is empty: each becomes an inline lock entry (the
    /// range covers the slot whole) or a lock record with its part's bounds. `false`:
    /// nothing was changed; take the general path.
    #[inline]
    pub(crate) fn try_lock_empty_slots(&self, first: u64, last: u64, state: LockState) -> bool {
        if !entry::is_node(self.head.load(Ordering::Relaxed)) {
            return false;
        }
        let guard = self.pin();
        let Some(fit) = self.fit(&guard, first, last) else {
            return false;
        };
        let empty = |fit: &Fit<'_, SLOTS>| (fit.from..=fit.to).all(|o| fit.node.load(o) == EMPTY);
        if !empty(&fit) {
            return false;
        }
        // `None`: the node was unlinked after the walk read it.
        let Some(lock) = fit.node.lock() else {
            return false;
        };
        if super::node::slots_reread() && !empty(&fit) {
            return false;
        }
        let single = state.word();
        if let Some(bottom) = self.build_down_shift(&fit, first, last) {
            self.claim_in_new_chain(&fit, bottom, first, last, single);
            drop(lock);
            return true;
        }
        for part in fit.parts(first, last) {
            let word = self.claim_word(part, single);
            // SAFETY: we hold the node's lock and it is not obsolete (`lock` checked it,
            // and only a holder of the lock marks a node obsolete).
            unsafe { fit.node.replace(part.offset, word) };
        }
        drop(lock);
        true
    }

    /// Whether `node` (its lock held) is kept for lockers (`kept.rs`), or is now: a
    /// place in the budget was free and it took it. Out of line: only a release that
    /// empties its node or would leave the root shrinkable asks.
    #[inline(never)]
    fn keep(&self, node: &Node<SLOTS>) -> bool {
        if node.is_kept() {
            return true;
        }
        if !self.kept.try_take() {
            return false;
        }
        node.mark_kept();
        true
    }

    /// The word a claim in `state` (its word `single`) puts in the slot of `part`: the
    /// inline entry if the part is the slot's whole span, else a lock record with the
    /// part's bounds. A slot of shift 0 spans one index, so a record lands only where
    /// records may live (slots of shift > 0, inside their span).
    #[inline]
    fn claim_word(&self, part: Part, single: usize) -> usize {
        if part.whole {
            single
        } else {
            entry::record_word(self.records().alloc(part.first, part.last, single))
        }
    }

    /// On a tree that keeps nodes for lockers (`kept.rs`): the shift of the deepest
    /// level whose one node covers `first..=last`, if this claim is to build the nodes
    /// down to it. It is when the range lies in one slot of `fit`'s node above that
    /// level, the slot is not the root's slot 0 while the root holds nothing else (the
    /// root would then have to shrink), and a place in the budget is free (taken here,
    /// for the bottom node). The caller holds `fit`'s node lock.
    #[inline]
    fn build_down_shift(&self, fit: &Fit<'_, SLOTS>, first: u64, last: u64) -> Option<u32> {
        if !self.kept.enabled() {
            return None;
        }
        self.build_down_shift_kept(fit, first, last)
    }

    /// [`Self::build_down_shift`] on a tree that keeps nodes: out of line, so that the
    /// fast path of every other tree stays as small as it was.
    #[inline(never)]
    fn build_down_shift_kept(&self, fit: &Fit<'_, SLOTS>, first: u64, last: u64) -> Option<u32> {
        if fit.from != fit.to || fit.shift == 0 {
            return None;
        }
        // SAFETY: the caller holds the node's lock (`count` is only touched under it).
        let alone = unsafe { fit.node.count() } == 0;
        if fit.from == 0
            && alone
            && self.head.load(Ordering::Acquire) == entry::node_word(fit.node as *const _)
        {
            return None;
        }
        let bits = Geometry::<SLOTS>::BITS;
        // The range lies in one slot of `fit`'s node, so in one node a level down; it
        // lies in one node a level further down while it lies in one slot of this one.
        let mut shift = fit.shift - bits;
        while shift >= bits && first >> shift == last >> shift {
            shift -= bits;
        }
        self.kept.try_take().then_some(shift)
    }

    /// Builds the nodes below `fit`'s slot down to shift `bottom`, with the range's
    /// entries in the bottom node, which is kept (its place taken by
    /// `build_down_shift`), and links the chain into the slot with one store. The
    /// caller holds `fit`'s node lock and read the slot empty under it.
    #[inline(never)]
    fn claim_in_new_chain(
        &self,
        fit: &Fit<'_, SLOTS>,
        bottom: u32,
        first: u64,
        last: u64,
        single: usize,
    ) {
        let bits = Geometry::<SLOTS>::BITS;
        let node = self.node_slab.alloc(bottom, EMPTY, 0);
        let low = Fit {
            node: &node,
            shift: bottom,
            from: Geometry::<SLOTS>::offset(first, bottom),
            to: Geometry::<SLOTS>::offset(last, bottom),
        };
        for part in low.parts(first, last) {
            let word = self.claim_word(part, single);
            // SAFETY: the node is not published: only this thread can reach it.
            unsafe { node.replace(part.offset, word) };
        }
        let unpublished = node.lock_new();
        node.mark_kept();
        drop(unpublished);
        let mut word = entry::node_word(node.into_raw());
        let mut built = 1;
        let mut shift = bottom + bits;
        while shift < fit.shift {
            let parent = self.node_slab.alloc(shift, EMPTY, 0);
            // SAFETY: as above.
            unsafe { parent.replace(Geometry::<SLOTS>::offset(first, shift), word) };
            word = entry::node_word(parent.into_raw());
            built += 1;
            shift += bits;
        }
        // SAFETY: the caller holds the node's lock and it is not obsolete. The store is
        // `Release`: a reader that loads the word sees the chain as built.
        unsafe { fit.node.replace(fit.from, word) };
        self.nodes.fetch_add(built, Ordering::Relaxed);
    }

    /// Releases the lock entries over exactly `first..=last` whose state is `state` (one
    /// holder, no flag: the caller's own entries) if they lie in the slots of one node
    /// that keeps another entry after them. `false`: nothing was changed; take the
    /// general path.
    #[inline]
    pub(crate) fn try_release_slots(&self, first: u64, last: u64, state: LockState) -> bool {
        if !entry::is_node(self.head.load(Ordering::Relaxed)) {
            return false;
        }
        let guard = self.pin();
        let Some(fit) = self.fit(&guard, first, last) else {
            return false;
        };
        let single = state.word();
        let ours = |part: Part| {
            let word = fit.node.load(part.offset);
            if part.whole {
                return word == single;
            }
            if !entry::is_record(word) {
                return false;
            }
            // SAFETY: record memory is type-stable for as long as the tree lives (see
            // `record.rs`), and a record referenced by a slot of a locked node changes
            // only under that lock, which we hold.
            let record = unsafe { &*entry::word_record::<LockRecord>(word) };
            record.bounds() == (part.first, part.last) && record.state() == single
        };
        // Read before the lock only by the loom control that skips the re-read.
        let unlocked = (!super::node::slots_reread()).then(|| fit.parts(first, last).all(ours));
        let Some(lock) = fit.node.lock() else {
            return false;
        };
        if !unlocked.unwrap_or_else(|| fit.parts(first, last).all(ours)) {
            return false;
        }
        let spanned = fit.to - fit.from + 1;
        // SAFETY: we hold the node's lock (`count` is only touched under it).
        let left = unsafe { fit.node.count() } - spanned;
        // A root left with one child, in slot 0, must shrink: the general path does that.
        // Any other node may be left so. If this node is not the root now, only a shrink
        // can make it the root later, and a shrink goes on down from the new root, under
        // its lock (so after this release) until the root is not of that shape.
        let root_to_shrink = left == 1
            && fit.from != 0
            && entry::is_node(fit.node.load(0))
            && self.head.load(Ordering::Acquire) == entry::node_word(fit.node as *const _);
        // A node this release empties, or a root it leaves with only its first child
        // (the shape `shrink` removes), stays as it is for the next locker if it has or
        // gets a place in the tree's budget (`kept.rs`); else the general path unlinks
        // or shrinks it.
        if (left == 0 || root_to_shrink) && !self.keep(fit.node) {
            return false;
        }
        let mut records: SmallVec<[usize; 2]> = SmallVec::new();
        for offset in fit.from..=fit.to {
            // SAFETY: as in `try_lock_empty_slots`.
            let old = unsafe { fit.node.replace(offset, EMPTY) };
            if entry::is_record(old) {
                records.push(old);
            }
        }
        drop(lock);
        for word in records {
            self.records().free(entry::word_record::<LockRecord>(word));
        }
        true
    }
}
