//! Locating: the walk from the head to the slot a write wants, the lock of its owner,
//! and the steps to the next slot of the same node (see the module docs of `cursor` for
//! the protocol: walk without locks, lock the owner, check it is not obsolete, re-read).

use super::*;

impl<T: Send + Sync + 'static, const SLOTS: usize> WriteCursor<'_, T, SLOTS> {
    /// Walks from the head towards `index` and locks the owner of the first slot that
    /// holds a non-node word, or of the slot of shift `stop_shift` (64: the head) on the
    /// way. Lets go of any lock held before. The slot's word is read under the lock.
    pub(crate) fn lock_at(&mut self, index: u64, stop_shift: u32) -> Located<SLOTS> {
        self.unlock();
        // Retries wait a little (a yield under loom): the writer that made the walk
        // stale holds a lock this one needs to see its change through.
        let mut spins = 0;
        'walk: loop {
            self.path.clear();
            let head = self.xa.head.load(Ordering::Acquire);
            let to_head = !entry::is_node(head) || stop_shift >= Geometry::<SLOTS>::HEAD_SHIFT;
            let root_shift = if entry::is_node(head) {
                Self::node(entry::word_node(head)).shift as u32
            } else {
                0
            };
            let outside = entry::is_node(head) && index > Geometry::<SLOTS>::max_index(root_shift);
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
                    sync::spin_wait(&mut spins);
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
            // Only the root's header is read: a child's shift is its parent's minus BITS
            // (invariant 2; the nodes this pinned walk reaches cannot have been reused),
            // so each level costs the load of its slot, not also of its header's line.
            let mut shift = root_shift;
            loop {
                let n = Self::node(node);
                debug_assert_eq!(n.shift as u32, shift);
                let offset = Geometry::<SLOTS>::offset(index, shift);
                let word = n.load(offset);
                let slot_first = Geometry::<SLOTS>::slot_base(index, shift);
                if entry::is_node(word) && shift != stop_shift {
                    self.path.push(Step { node, offset, base });
                    node = entry::word_node(word);
                    base = slot_first;
                    shift -= Geometry::<SLOTS>::BITS;
                    continue;
                }
                let Some(lock) = n.lock() else {
                    sync::spin_wait(&mut spins);
                    continue 'walk; // unlinked meanwhile
                };
                lock.keep();
                self.held = Held::Node(node);
                let word = if node::slots_reread() {
                    n.load(offset)
                } else {
                    word
                };
                if entry::is_node(word) && shift != stop_shift {
                    // A child appeared under us: go down into it.
                    self.unlock();
                    self.path.push(Step { node, offset, base });
                    node = entry::word_node(word);
                    base = slot_first;
                    shift -= Geometry::<SLOTS>::BITS;
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
    fn sibling(&self, at: &Located<SLOTS>, offset: usize) -> Located<SLOTS> {
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
    fn step_to(&mut self, offset: usize) {
        if let Some(step) = self.path.last_mut() {
            step.offset = offset;
        }
    }

    /// The next slot of the locked node after `at`, made the cursor's slot, if it lies
    /// inside the index space and holds no node (a walk that goes on through one node
    /// under the same lock); `None`: walk again from the head.
    pub(crate) fn next_slot(&mut self, at: &Located<SLOTS>) -> Option<Located<SLOTS>> {
        let Slot::In(_, offset) = at.slot else {
            return None;
        };
        if offset + 1 >= self.slots_in_node(at) {
            return None;
        }
        let next = self.sibling(at, offset + 1);
        if entry::is_node(next.word) {
            return None;
        }
        self.step_to(offset + 1);
        Some(next)
    }

    /// How many slots of the locked node lie inside the index space.
    fn slots_in_node(&self, at: &Located<SLOTS>) -> usize {
        Geometry::<SLOTS>::slots_in_range(at.shift)
    }
}
