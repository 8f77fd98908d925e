//! Range writes: `store_range` and `erase_range` as one step.
//!
//! A range store or erase must not leave half of its range written when it meets a lock
//! entry, and readers must see each index go from its old entry to its new one directly.
//! Without a tree-wide lock, [`WriteCursor::write_range`] gets that by locking, before it
//! writes anything, the head and every node whose span meets the range, top-down and in
//! ascending order (the order every other writer's locks respect: no deadlock). While
//! they are held no other writer can change any slot that meets the range, so it checks
//! the range for lock entries and then writes every block of the range's decomposition,
//! making whatever nodes it needs (locked by it from the start). Only the head, when
//! empty, can change under it: a lock fast path may take it, and then the write is
//! refused as if the lock had come first (nothing else has been written).
//!
//! The cost is one lock per node that meets the range, which a write of the range's
//! entries needs to visit anyway.

use super::cursor::{Held, Slot, WriteCursor};
use super::entry::{self, Kind, EMPTY};
use super::node::{Geometry, Node};
use super::node_slab::NewNode;
use super::record;
use super::span::{self, Block, Inclusive};
use crate::sync::atomic::Ordering;
use crate::sync::SpinLock;

impl<T: Send + Sync + 'static, const SLOTS: usize> WriteCursor<'_, T, SLOTS> {
    /// Writes `word` (a value, or `EMPTY`) over every index of `range` as one step, or
    /// nothing: `Err(index)` names the first locked index of the range.
    pub(crate) fn write_range(&mut self, range: Inclusive, word: usize) -> Result<(), u64> {
        self.unlock();
        SpinLock::lock(&self.xa.head_lock).0.keep();
        self.held = Held::Many;
        let result = self.write_range_locked(range, word);
        self.unlock(); // every lock, then the maintenance the writes asked for
        result
    }

    fn write_range_locked(&mut self, range: Inclusive, word: usize) -> Result<(), u64> {
        let head = self.xa.head.load(Ordering::Acquire);
        match entry::kind(head) {
            Kind::Node => self.lock_meeting(entry::word_node(head), 0, range)?,
            Kind::Lock => return Err(range.first),
            Kind::Record => {
                if let Some(seen) = record::read(&self.xa.head, head) {
                    if seen.first <= range.last && range.first <= seen.last {
                        return Err(range.first.max(seen.first));
                    }
                }
            }
            _ => {}
        }
        for block in span::blocks::<SLOTS>(range) {
            let slot = self.slot_for(block, range)?;
            let old = self.word(slot);
            let old = match entry::kind(old) {
                Kind::Node => {
                    // The subtree lies inside the range: all its nodes are ours.
                    self.obsolete_subtree(entry::word_node(old));
                    self.replace_node_word(slot, word)
                }
                Kind::Lock | Kind::Record => {
                    // Only the fast path changes the (empty) head under the head lock.
                    return Err(block.first);
                }
                _ => match self.swap(slot, old, word) {
                    Ok(old) => old,
                    Err(_) => return Err(block.first),
                },
            };
            if word == EMPTY {
                self.clear_marks(slot);
            }
            self.dispose(old);
        }
        Ok(())
    }

    /// Locks `node` (covering `base..`) and, below it, every node whose span meets
    /// `range`, in pre-order; refuses a lock entry or record that meets the range.
    fn lock_meeting(
        &mut self,
        node: *const Node<SLOTS>,
        base: u64,
        range: Inclusive,
    ) -> Result<(), u64> {
        let n = Self::node(node);
        // Its parent (or the head) is locked by us and links it: it is not obsolete.
        n.lock()
            .expect("a linked node below a locked parent")
            .keep();
        self.many.push((node, base));
        let shift = n.shift as u32;
        let in_range = Geometry::<SLOTS>::slots_in_range(shift);
        let lo = if range.first <= base {
            0
        } else {
            (((range.first - base) >> shift) as usize).min(in_range)
        };
        for offset in lo..in_range {
            let first = base + ((offset as u64) << shift);
            if first > range.last {
                break;
            }
            let word = n.load(offset);
            match entry::kind(word) {
                Kind::Lock => return Err(range.first.max(first)),
                Kind::Record => {
                    let (a, b) = Self::record(word).bounds();
                    if a <= range.last && range.first <= b {
                        return Err(range.first.max(a));
                    }
                }
                Kind::Node => self.lock_meeting(entry::word_node(word), first, range)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The slot covering exactly `block` (inside `range`), every node on the way locked
    /// by this write: the ones that meet the range already are, the ones it makes here
    /// (a root, a grown root, the children of pushed-down entries) are locked before
    /// they are published.
    fn slot_for(&mut self, block: Block, range: Inclusive) -> Result<Slot<SLOTS>, u64> {
        if block.shift == Geometry::<SLOTS>::HEAD_SHIFT {
            return Ok(Slot::Head);
        }
        let root = self.root_for_range(block, range)?;
        let mut node = root;
        loop {
            let n = Self::node(node);
            let shift = n.shift as u32;
            let offset = Geometry::<SLOTS>::offset(block.first, shift);
            if shift == block.shift {
                return Ok(Slot::In(node, offset));
            }
            let word = n.load(offset);
            let child_base = Geometry::<SLOTS>::slot_base(block.first, shift);
            let child = if entry::is_node(word) {
                entry::word_node(word)
            } else {
                // A value (or nothing, or a record outside the range) over a bigger span:
                // its pieces go into a child of ours.
                let child_shift = shift - Geometry::<SLOTS>::BITS;
                let child = if entry::is_record(word) {
                    let r = Self::record(word);
                    let (first, last) = r.bounds();
                    self.pieces(child_shift, child_base, first, last, r.state())
                } else {
                    self.xa
                        .node_slab
                        .alloc(child_shift, word, n.slot_marks(offset))
                };
                let child = self.lock_unpublished(child, child_base);
                if word == EMPTY {
                    self.pending_empty.push((child, child_base));
                }
                // SAFETY: we hold this node's lock and it is not obsolete; the child is
                // fully built, and `replace` publishes it with a Release store.
                let old = unsafe { n.replace(offset, entry::node_word(child)) };
                self.xa.nodes.fetch_add(1, Ordering::Relaxed);
                if entry::is_record(old) {
                    self.records().free(Self::record(old));
                }
                child
            };
            node = child;
        }
    }

    /// The root, made to reach `block` (and able to hold the range's part there).
    fn root_for_range(
        &mut self,
        block: Block,
        range: Inclusive,
    ) -> Result<*const Node<SLOTS>, u64> {
        let head = self.xa.head.load(Ordering::Acquire);
        let mut root = match entry::kind(head) {
            Kind::Node => entry::word_node(head),
            Kind::Empty => {
                let mut shift = block.shift;
                while Geometry::<SLOTS>::max_index(shift) < range.last {
                    shift += Geometry::<SLOTS>::BITS;
                }
                let root = self.xa.node_slab.alloc(shift, EMPTY, 0);
                let root = self.lock_unpublished(root, 0);
                // The one race: a fast path may lock the empty head first.
                if self
                    .xa
                    .head
                    .compare_exchange(
                        EMPTY,
                        entry::node_word(root),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_err()
                {
                    let (mine, _) = self.many.pop().expect("just pushed");
                    debug_assert_eq!(mine, root);
                    Self::node(root).unlock();
                    // SAFETY: built here, never published: only this thread reaches it.
                    unsafe { self.xa.node_slab.give(root) };
                    // Whatever took the head (a whole-range lock, or a record that may
                    // lie outside the range) is judged as if it had been there first.
                    return self.root_for_range(block, range);
                }
                self.xa.nodes.fetch_add(1, Ordering::Relaxed);
                self.pending_empty.push((root, 0));
                root
            }
            Kind::Value => {
                let marks = self.xa.root_marks.load(Ordering::Relaxed);
                let root = self
                    .xa
                    .node_slab
                    .alloc(Geometry::<SLOTS>::TOP_SHIFT, head, marks);
                let root = self.lock_unpublished(root, 0);
                self.publish_root(head, root)
                    .expect("a head holding a value changes only under the head lock")
            }
            // A whole-range lock that took the empty head after `write_range_locked`
            // looked at it: refused, and nothing has been written yet (the head is
            // still not a node, so this is the range's first block).
            Kind::Lock => return Err(range.first),
            Kind::Record => {
                // A record: outside the range if `write_range_locked` saw it, but a fast
                // path may have put it in the empty head (or replaced the one seen)
                // since. Take it apart as `root_for` does, then judge it.
                if !self.xa.take_head_record(head) {
                    // Its fast release came first: the head is empty now.
                    return self.root_for_range(block, range);
                }
                let r = Self::record(head);
                let (first, last) = r.bounds();
                let mut shift = block.shift;
                while Geometry::<SLOTS>::max_index(shift) < last.max(range.last) {
                    shift += Geometry::<SLOTS>::BITS;
                }
                let root = self.pieces(shift, 0, first, last, r.state());
                let root = self.lock_unpublished(root, 0);
                let root = self
                    .publish_root(entry::busy(head), root)
                    .expect("a busy head changes only under the head lock");
                self.records().free(r);
                if first <= range.last && range.first <= last {
                    // Refused before anything was written (this is the first block);
                    // the record now lives in the root's slots, which the holder's
                    // release finds as it finds any lock taken apart by a slow path.
                    return Err(range.first.max(first));
                }
                root
            }
            Kind::Item => unreachable!("an item is never in the head"),
        };
        while Geometry::<SLOTS>::max_index(Self::node(root).shift as u32) < range.last
            || (Self::node(root).shift as u32) < block.shift
        {
            let shift = Self::node(root).shift as u32;
            let marks = super::cursor::summary(Self::node(root));
            let top = self
                .xa
                .node_slab
                .alloc(shift + Geometry::<SLOTS>::BITS, EMPTY, 0);
            // SAFETY: `top` is not yet published; only this thread can reach it.
            unsafe { top.replace(0, entry::node_word(root)) };
            for m in 0..entry::MARK_COUNT {
                if marks & (1 << m) != 0 {
                    top.set_slot_mark(m, 0, true);
                }
            }
            let top = self.lock_unpublished(top, 0);
            root = self
                .publish_root(entry::node_word(root), top)
                .expect("a head holding a node changes only under the head lock");
            self.reset_root_marks(root);
        }
        Ok(root)
    }

    /// Locks a node this write has built and not yet published, and keeps it with the
    /// write's other locks.
    fn lock_unpublished(&mut self, node: NewNode<'_, SLOTS>, base: u64) -> *const Node<SLOTS> {
        let node = node.into_raw();
        Self::node(node).lock_new().keep();
        self.many.push((node, base));
        node
    }

    /// Marks every node of a subtree obsolete (all locked by this write: they meet the
    /// range).
    fn obsolete_subtree(&self, node: *const Node<SLOTS>) {
        let n = Self::node(node);
        self.obsolete(n);
        for offset in 0..SLOTS {
            let word = n.load(offset);
            if entry::is_node(word) {
                self.obsolete_subtree(entry::word_node(word));
            }
        }
    }

    /// Replaces the node word in `slot` (a subtree made obsolete) with `word`.
    fn replace_node_word(&mut self, slot: Slot<SLOTS>, word: usize) -> usize {
        match slot {
            Slot::Head => self.xa.head.swap(word, Ordering::AcqRel),
            Slot::In(node, offset) => {
                let n = Self::node(node);
                // SAFETY: we hold the node's lock and it is not obsolete.
                let old = unsafe { n.replace(offset, word) };
                if word == EMPTY {
                    self.note_change(n, 0);
                }
                if entry::kind(word) == Kind::Item {
                    self.xa.items.fetch_add(1, Ordering::Relaxed);
                }
                old
            }
        }
    }
}
