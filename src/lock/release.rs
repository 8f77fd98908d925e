//! The walks that change entries a guard holds: release, downgrade, publish, restore,
//! unseal.
//!
//! Every lock entry a guard holds lies inside the guard's range (claims cut entries down
//! to the claimer's range, never up), so these walks change whole entries and never
//! split one, except to reach a one-index entry inside a lock record (publish). Like a
//! claim, each step locks the owner of one slot and goes on through the slots of the
//! same node under the same lock; a node emptied by a release is unlinked when its lock
//! is let go (`xarray/cursor/collapse.rs`).

use super::evicted::Evicted;
use super::lock_cursor::{LockCursor, LockEntry};
use super::LockMode;
use crate::sync::ItemArc as Arc;
use crate::wait_table::Wake;
use crate::xarray::entry::{self, MARK_COUNT};
use crate::xarray::lock_word::LockState;
use crate::xarray::span::Block;
use crate::xarray::Entry;

impl<T: Send + Sync + 'static, const SLOTS: usize> LockCursor<'_, T, SLOTS> {
    /// Calls `f` on every lock entry of `first..=last` (all of them this guard's, whole),
    /// in ascending order. `f` returns `false` if the entry changed under it (a head
    /// entry and a fast path): the walk locates it again.
    fn for_each_held(
        &mut self,
        first: u64,
        last: u64,
        mut f: impl FnMut(&mut Self, &LockEntry<SLOTS>) -> bool,
    ) {
        let mut p = first;
        'walk: loop {
            let mut at = self.cursor.lock_at(p, 0);
            loop {
                let end = match Self::entry(&at) {
                    Some(e) => {
                        debug_assert!(
                            first <= e.first && e.last <= last,
                            "an entry a guard holds lies inside its range"
                        );
                        if !f(self, &e) {
                            continue 'walk;
                        }
                        e.last
                    }
                    // Put back already (a restore before a release), or not the guard's.
                    None => at.last,
                };
                if end >= last {
                    break 'walk;
                }
                p = end + 1;
                if at.last >= p {
                    continue 'walk;
                }
                match self.cursor.next_slot(&at) {
                    Some(next) => at = next,
                    None => continue 'walk,
                }
            }
        }
        self.cursor.unlock();
        self.flush_splits();
    }

    /// Drops one holder from every entry of `first..=last` (a guard's release). An entry
    /// whose last holder leaves is removed, or kept *reserved* (no holders) while
    /// acquirers are queued on it, and the front of its queue is woken.
    pub(crate) fn release(&mut self, first: u64, last: u64) {
        self.for_each_held(first, last, |lc, e| lc.release_entry(e));
    }

    /// [`Self::release`], putting `evicted` (ascending; entries this guard evicted and
    /// holds alone: made by eviction, pending since, or Exclusive) back in place of their
    /// lock entries on the way, with their marks. Each index is given back once, in the
    /// step that visits it: a restored index is never visited again, so an acquisition
    /// that takes it right after cannot have its entry released by this walk.
    pub(crate) fn release_restoring(
        &mut self,
        first: u64,
        last: u64,
        evicted: impl IntoIterator<Item = Evicted<T>>,
    ) {
        let mut evicted = evicted.into_iter().peekable();
        self.for_each_held(first, last, |lc, e| {
            let mine = |next: &Evicted<T>| {
                e.record.is_none()
                    && (next.block.first, next.block.shift) == (e.at.first, e.at.shift)
            };
            if evicted.peek().is_some_and(mine) {
                let next = evicted.next().expect("peeked");
                lc.put_back(e, next);
                return true;
            }
            lc.release_entry(e)
        });
        debug_assert!(
            evicted.next().is_none(),
            "evicted entries outside the range"
        );
    }

    /// Puts `evicted` back in place of its lock entry `e` (this claim's alone), with its
    /// marks, and wakes everybody waiting there.
    fn put_back(&mut self, e: &LockEntry<SLOTS>, evicted: Evicted<T>) {
        let state = e.lock_state();
        debug_assert!(
            e.record.is_none()
                && e.at.shift == evicted.block.shift
                && state.holders == 1
                && (state.pending || state.mode == LockMode::Exclusive),
            "evicted entries are held by their claim alone"
        );
        let word = match evicted.entry {
            Entry::Item(item) => entry::item_word(Arc::into_raw(item)),
            Entry::Value(value) => entry::value_word(value),
            _ => unreachable!("only items and values are evicted"),
        };
        if self.cursor.swap(e.at.slot, e.at.word, word).is_err() {
            unreachable!("a pending or Exclusive entry changes only under its owner");
        }
        for m in 0..MARK_COUNT {
            if evicted.marks & (1 << m) != 0 {
                self.cursor.set_mark(e.at.slot, m, true);
            }
        }
        if state.waiters {
            self.wake(e.first, Wake::All);
        }
    }

    fn release_entry(&mut self, e: &LockEntry<SLOTS>) -> bool {
        let state = e.lock_state();
        debug_assert!(
            state.holders >= 1,
            "releasing an entry this guard does not hold"
        );
        if state.holders > 1 {
            let fewer = LockState {
                holders: state.holders - 1,
                ..state
            };
            return self.set_state(e, fewer.word());
        }
        if !state.waiters {
            return self.remove(e);
        }
        match self.table.queued(self.tree, e.first) {
            (true, _) => {
                let reserved = LockState {
                    holders: 0,
                    pending: false,
                    ..state
                };
                if !self.set_state(e, reserved.word()) {
                    return false;
                }
                self.wake(e.first, Wake::Front);
            }
            (false, any) => {
                if !self.remove(e) {
                    return false;
                }
                if any {
                    self.wake(e.first, Wake::All);
                }
            }
        }
        true
    }

    /// Turns every (Exclusive, one holder) entry of `first..=last` Shared and wakes the
    /// Shared acquirers at the front of their queues.
    pub(crate) fn downgrade(&mut self, first: u64, last: u64) {
        self.for_each_held(first, last, |lc, e| {
            let state = e.lock_state();
            debug_assert_eq!((state.mode, state.holders), (LockMode::Exclusive, 1));
            if e.is_head_record() {
                // A head record never changes: move it into a root node, walk again.
                lc.push_down(&e.at, e.first);
                return false;
            }
            let shared = LockState {
                mode: LockMode::Shared,
                ..state
            };
            if !lc.set_state(e, shared.word()) {
                return false;
            }
            if state.waiters {
                lc.wake(e.first, Wake::SharedFront);
            }
            true
        });
    }

    /// Replaces the one-index Exclusive entry at `index` with `item` (owned by the tree
    /// from now on) and wakes everybody waiting for it. An entry inside a lock record is
    /// first pushed down to its own leaf slot.
    pub(crate) fn publish(&mut self, index: u64, item: Arc<T>) {
        let slot = self.cursor.create(Block {
            first: index,
            shift: 0,
        });
        let word = self.cursor.word(slot);
        let state = LockState::of(word);
        debug_assert_eq!((state.mode, state.holders), (LockMode::Exclusive, 1));
        let old = self
            .cursor
            .replace(slot, entry::item_word(Arc::into_raw(item)));
        debug_assert_eq!(old, word);
        self.cursor.unlock();
        self.flush_splits();
        if state.waiters {
            self.wake(index, Wake::All);
        }
    }

    /// Clears the `pending` flags of `blocks` (entries made by evicting, held by one claim
    /// alone) and wakes the Shared acquirers that were waiting to join them, and the
    /// watchers waiting for them to open (`wait_sealed`).
    pub(crate) fn unseal(&mut self, blocks: impl IntoIterator<Item = Block>) {
        for block in blocks {
            let at = self.cursor.lock_at(block.first, block.shift);
            let state = LockState::of(at.word);
            debug_assert!(at.shift == block.shift && state.holders == 1 && state.pending);
            let clear = LockState {
                pending: false,
                ..state
            };
            self.cursor.replace(at.slot, clear.word());
            self.cursor.unlock();
            if state.waiters {
                self.wake(block.first, Wake::Unsealed);
            }
        }
    }
}
