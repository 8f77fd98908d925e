//! Lock-free read walks: point lookups, mark lookups and `find`.
//!
//! # Why a reader is safe
//!
//! A reader pins the tree's epoch, then follows slot words from the head with `Acquire`
//! loads. Every node and item it can reach was published by a `Release` store after it
//! was fully initialised, so the reader sees its contents. A writer that unlinks a node
//! or an item retires it through the same epoch, which frees it only after every thread
//! pinned at that time has unpinned: the memory a reader walks stays valid for as long as
//! its guard lives.
//!
//! # What a reader sees
//!
//! Each slot read is one atomic load of one word, so a reader sees each index either
//! before or after any single-slot change. A walk that raced with a structural change
//! sees the tree as it was or as it is:
//!
//! * root growth publishes a new root whose slot 0 is the old root: a reader that loaded
//!   the old root finds everything that was under it;
//! * root shrink publishes the old root's only child as the head and retires the old
//!   root *unchanged*: a reader still in it walks into the same live child;
//! * a split publishes a child filled with copies of the entry it replaces;
//! * a node unlinked because it became empty holds only empty slots;
//! * a subtree replaced by a range store is never written again, so a reader still in it
//!   sees the entries it held just before the store.
//!
//! Walks over several indices (`find`, iteration) are not snapshots: each step is a fresh
//! walk from the head, entries changed meanwhile may or may not be seen, but each index
//! is reported at most once and in ascending order.
//!
//! # Lock records
//!
//! A slot may point to a lock record (`record.rs`): a lock entry over part of the slot's
//! span. Walks *resolve* it at once: for a point lookup, into the inline lock word with
//! the record's state if the index is inside its bounds, else into `EMPTY`; for a search,
//! into a [`Found`] with the record's bounds. So no caller of this module sees a record
//! word. Resolving reads the record with the validation of [`record::read`]: a record
//! that changed under the reader is read again, and a slot that became a node is walked
//! again from the head.

use crossbeam_epoch::Guard;

use super::entry::{self, EMPTY};
use super::node::{Geometry, Node};
use super::record;
use super::tree::XArray;
use crate::sync::atomic::{AtomicUsize, Ordering};

/// The node a node word points to, borrowed for as long as `guard` stays pinned.
///
/// The one place readers turn a node word into a reference: `word` must have been loaded
/// with `Acquire` from this tree (the head or a reachable node) under `guard`.
#[inline(always)]
pub(crate) fn node_at<const SLOTS: usize>(word: usize, _guard: &Guard) -> &Node<SLOTS> {
    debug_assert!(entry::is_node(word));
    // SAFETY: the word was loaded with Acquire under `guard`, a pinned guard of this
    // tree's collector: the node was fully initialised before the Release store that
    // published it, and it is retired (freed only after every guard pinned at its
    // unlinking has unpinned), so it stays allocated for as long as the guard is borrowed.
    let node = unsafe { &*entry::word_node::<Node<SLOTS>>(word) };
    node.visit();
    node
}

/// What a slot word means for a point lookup of `index`: the word itself, or, for a lock
/// record, its state if `index` is inside its bounds and `EMPTY` if not. `None` if the
/// slot no longer holds a record nor any other non-node word: walk again.
#[inline(always)]
fn resolve(slot: &AtomicUsize, word: usize, index: u64) -> Option<usize> {
    if !entry::is_record(word) {
        return Some(word);
    }
    resolve_record(slot, word, index)
}

#[cold]
fn resolve_record(slot: &AtomicUsize, mut word: usize, index: u64) -> Option<usize> {
    let mut spins = 0;
    loop {
        if !entry::is_record(word) {
            return (!entry::is_node(word)).then_some(word);
        }
        if let Some(seen) = record::read(slot, word) {
            return Some(if seen.first <= index && index <= seen.last {
                seen.state
            } else {
                EMPTY
            });
        }
        // A writer is changing the record: wait for it (a yield under loom).
        crate::sync::spin_wait(&mut spins);
        word = slot.load(Ordering::Acquire);
    }
}

impl<T, const SLOTS: usize> XArray<T, SLOTS> {
    /// The word covering `index` (a non-node word, never a record; `EMPTY` if nothing
    /// covers it).
    #[inline]
    pub(crate) fn lookup_word(&self, guard: &Guard, index: u64) -> usize {
        let mut spins = 0;
        loop {
            if let Some(word) = self.try_lookup_word(guard, index) {
                return word;
            }
            crate::sync::spin_wait(&mut spins);
        }
    }

    #[inline(always)]
    fn try_lookup_word(&self, guard: &Guard, index: u64) -> Option<usize> {
        let mut word = self.head.load(Ordering::Acquire);
        if !entry::is_node(word) {
            return resolve(&self.head, word, index);
        }
        let mut node = node_at::<SLOTS>(word, guard);
        // Only the root's header is read: a child's shift is its parent's minus BITS
        // (cursor invariant 2), which saves a dependent load of the header cache line
        // on every level below.
        let mut shift = node.shift as u32;
        if index > Geometry::<SLOTS>::max_index(shift) {
            return Some(EMPTY);
        }
        loop {
            let slot = &node.slots[Geometry::<SLOTS>::offset(index, shift)];
            word = slot.load(Ordering::Acquire);
            if !entry::is_node(word) {
                return resolve(slot, word, index);
            }
            node = node_at(word, guard);
            shift -= Geometry::<SLOTS>::BITS;
            debug_assert_eq!(node.shift as u32, shift);
        }
    }

    /// The words covering each of `indices`, as [`Self::lookup_word`] would return them,
    /// walked level by level in lockstep: at each level every unfinished lookup issues
    /// its slot load before any of them is used, so the cache misses of different
    /// indices overlap instead of queueing one chain of dependent loads behind another.
    ///
    /// Each lookup is an ordinary walk that starts from one shared read of the head,
    /// so each index is seen before or after any single-slot change, as with
    /// `lookup_word`; the lookups are not a snapshot of one moment. A lookup that meets
    /// a lock record being rewritten finishes alone through `lookup_word`.
    #[inline]
    pub(crate) fn lookup_words<const N: usize>(
        &self,
        guard: &Guard,
        indices: &[u64; N],
    ) -> [usize; N] {
        const { assert!(N <= 64, "at most 64 lookups walk in lockstep") };
        let mut words = [EMPTY; N];
        let head = self.head.load(Ordering::Acquire);
        if !entry::is_node(head) {
            for (word, &index) in words.iter_mut().zip(indices) {
                *word = resolve(&self.head, head, index)
                    .unwrap_or_else(|| self.lookup_word(guard, index));
            }
            return words;
        }
        let root = node_at::<SLOTS>(head, guard);
        let mut shift = root.shift as u32;
        let max = Geometry::<SLOTS>::max_index(shift);
        // Lanes still walking: bit `lane` set while `nodes[lane]` is the node to read.
        let mut walking = 0u64;
        let mut nodes = [root; N];
        for (lane, &index) in indices.iter().enumerate() {
            if index <= max {
                walking |= 1 << lane;
            }
        }
        while walking != 0 {
            let mut lanes = walking;
            while lanes != 0 {
                let lane = lanes.trailing_zeros() as usize;
                lanes &= lanes - 1;
                let index = indices[lane];
                let slot = &nodes[lane].slots[Geometry::<SLOTS>::offset(index, shift)];
                let word = slot.load(Ordering::Acquire);
                if entry::is_node(word) {
                    nodes[lane] = node_at(word, guard);
                } else {
                    walking &= !(1 << lane);
                    words[lane] = resolve(slot, word, index)
                        .unwrap_or_else(|| self.lookup_word(guard, index));
                }
            }
            // Every node one level down has its parent's shift minus BITS (cursor
            // invariant 2), whichever lane reached it.
            shift = shift.wrapping_sub(Geometry::<SLOTS>::BITS);
        }
        words
    }

    /// Whether the entry covering `index` carries mark `m`.
    pub(crate) fn lookup_mark(&self, guard: &Guard, index: u64, m: usize) -> bool {
        if self.root_marks.load(Ordering::Acquire) & (1 << m) == 0 {
            return false;
        }
        let mut word = self.head.load(Ordering::Acquire);
        if !entry::is_node(word) {
            return word != EMPTY;
        }
        let mut node = node_at::<SLOTS>(word, guard);
        if index > Geometry::<SLOTS>::max_index(node.shift as u32) {
            return false;
        }
        loop {
            let offset = Geometry::<SLOTS>::offset(index, node.shift as u32);
            if node.mark_bits(m) & (1 << offset) == 0 {
                return false;
            }
            word = node.load(offset);
            if !entry::is_node(word) {
                return word != EMPTY;
            }
            node = node_at(word, guard);
        }
    }

    /// The first entry (with mark `mark`, if given) whose span intersects
    /// `[first, last]`: its whole span, its word (never a node or a record: a record is
    /// resolved into its state and its bounds), and the node it was found in.
    pub(crate) fn find_word(
        &self,
        guard: &Guard,
        first: u64,
        last: u64,
        mark: Option<usize>,
    ) -> Option<Found<SLOTS>> {
        let mut spins = 0;
        loop {
            if let Some(found) = self.try_find_word(guard, first, last, mark) {
                return found;
            }
            crate::sync::spin_wait(&mut spins);
        }
    }

    /// One attempt of [`Self::find_word`]; `None`: a record changed into a node under
    /// it, walk again.
    fn try_find_word(
        &self,
        guard: &Guard,
        first: u64,
        last: u64,
        mark: Option<usize>,
    ) -> Option<Option<Found<SLOTS>>> {
        if let Some(m) = mark {
            if self.root_marks.load(Ordering::Acquire) & (1 << m) == 0 {
                return Some(None);
            }
        }
        let word = self.head.load(Ordering::Acquire);
        if word == EMPTY {
            return Some(None);
        }
        if !entry::is_node(word) {
            return Some(
                resolve_span(&self.head, word, 0, u64::MAX, first, last)?.map(
                    |(span_first, span_last, word)| Found {
                        first: span_first,
                        last: span_last,
                        word,
                        node: core::ptr::null(),
                        base: 0,
                        parent: core::ptr::null(),
                        parent_base: 0,
                    },
                ),
            );
        }
        let root = node_at::<SLOTS>(word, guard);
        if first > Geometry::<SLOTS>::max_index(root.shift as u32) {
            return Some(None);
        }
        find_in(guard, root, 0, first, last, mark)
    }
}

/// What a slot word covering `slot_first..=slot_last` holds of `first..=last`, for a
/// search: `Some(None)` nothing (empty, or a record outside the window), `Some(Some(..))`
/// the entry's span and word (a record resolved into its bounds and state), `None` the
/// slot became a node: walk again.
#[inline(always)]
fn resolve_span(
    slot: &AtomicUsize,
    mut word: usize,
    slot_first: u64,
    slot_last: u64,
    first: u64,
    last: u64,
) -> Option<Option<(u64, u64, usize)>> {
    let mut spins = 0;
    loop {
        if word == EMPTY {
            return Some(None);
        }
        if entry::is_node(word) {
            return None;
        }
        if !entry::is_record(word) {
            return Some(Some((slot_first, slot_last, word)));
        }
        if let Some(seen) = record::read(slot, word) {
            return Some(
                (seen.last >= first && seen.first <= last)
                    .then_some((seen.first, seen.last, seen.state)),
            );
        }
        // A writer is changing the record: wait for it (a yield under loom).
        crate::sync::spin_wait(&mut spins);
        word = slot.load(Ordering::Acquire);
    }
}

/// What [`XArray::find_word`] found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found<const SLOTS: usize> {
    /// The entry's whole span: its slot's block, or a record's bounds.
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// The entry's word (never a node or a record).
    pub(crate) word: usize,
    /// The node whose slot holds the entry (null for the head); valid while the guard
    /// the search ran under stays pinned.
    pub(crate) node: *const Node<SLOTS>,
    /// The first index `node` covers.
    pub(crate) base: u64,
    /// The node whose slot held `node`, if the search came down to `node` from it (null
    /// otherwise); valid as `node` is.
    pub(crate) parent: *const Node<SLOTS>,
    /// The first index `parent` covers.
    pub(crate) parent_base: u64,
}

/// The search of `find_word` below `node`, whose first index is `base`; requires
/// `base <= first <= last` and `first` inside the node, and `guard` pinned since the
/// node's word was read. `None`: a record changed into a node under it, walk again.
pub(crate) fn find_in<const SLOTS: usize>(
    guard: &Guard,
    node: &Node<SLOTS>,
    base: u64,
    first: u64,
    last: u64,
    mark: Option<usize>,
) -> Option<Option<Found<SLOTS>>> {
    let shift = node.shift as u32;
    let start = ((first - base) >> shift) as usize;
    let end = (((last - base) >> shift) as usize).min(Geometry::<SLOTS>::slots_in_range(shift) - 1);
    let mut candidates = range_bits(start, end);
    if let Some(m) = mark {
        candidates &= node.mark_bits(m);
    }
    while candidates != 0 {
        let offset = candidates.trailing_zeros() as usize;
        candidates &= candidates - 1;
        let slot = &node.slots[offset];
        let word = slot.load(Ordering::Acquire);
        if word == EMPTY {
            continue;
        }
        let slot_first = base + ((offset as u64) << shift);
        if entry::is_node(word) {
            let child = node_at::<SLOTS>(word, guard);
            if let Some(mut found) =
                find_in(guard, child, slot_first, first.max(slot_first), last, mark)?
            {
                if core::ptr::eq(found.node, child) {
                    found.parent = node;
                    found.parent_base = base;
                }
                return Some(Some(found));
            }
        } else {
            let slot_last = slot_last(slot_first, shift);
            if let Some((span_first, span_last, word)) =
                resolve_span(slot, word, slot_first, slot_last, first, last)?
            {
                return Some(Some(Found {
                    first: span_first,
                    last: span_last,
                    word,
                    node,
                    base,
                    parent: core::ptr::null(),
                    parent_base: 0,
                }));
            }
        }
    }
    Some(None)
}

/// The last index a node of `shift` starting at `base` covers.
pub(crate) fn node_last<const SLOTS: usize>(base: u64, shift: u32) -> u64 {
    let bits = shift + Geometry::<SLOTS>::BITS;
    if bits >= 64 {
        u64::MAX
    } else {
        base + ((1u64 << bits) - 1)
    }
}

/// The last index of the slot of shift `shift` that starts at `slot_first`.
#[inline(always)]
pub(crate) fn slot_last(slot_first: u64, shift: u32) -> u64 {
    if shift >= 64 {
        u64::MAX
    } else {
        slot_first + ((1u64 << shift) - 1)
    }
}

/// Bits `start..=end` of a `u64` (`end < 64`).
#[inline(always)]
pub(crate) fn range_bits(start: usize, end: usize) -> u64 {
    let upto = if end == 63 {
        u64::MAX
    } else {
        (1u64 << (end + 1)) - 1
    };
    upto & !((1u64 << start) - 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn range_bits_edges() {
        assert_eq!(super::range_bits(0, 63), u64::MAX);
        assert_eq!(super::range_bits(0, 0), 1);
        assert_eq!(super::range_bits(63, 63), 1 << 63);
        assert_eq!(super::range_bits(2, 4), 0b11100);
    }
}
