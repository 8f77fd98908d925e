//! The head's lock fast paths: the only changes of a slot word made without a lock.
//!
//! An uncontended range lock on a tree with nothing in it, and its release, are one
//! compare-exchange of the head each (see `cursor/mod.rs`, "The words changed without a
//! lock"): an empty head becomes a lock entry over all of `u64` or a lock record with
//! the range's bounds, and back. Writers under `head_lock` change a non-node head only by
//! compare-exchange too, so either side that loses a race looks again. These functions
//! are the whole of that protocol; the lock layer calls them and never touches the head.

use super::entry::{self, EMPTY};
use super::lock_word::LockState;
use super::record::LockRecord;
use super::tree::XArray;
use crate::sync::atomic::Ordering;

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// Makes an empty head the lock entry `state` over `first..=last`: inline for the
    /// whole of `u64`, else a lock record (taken from the tree's pool, returned to it if
    /// the head was not empty). `false`: the head holds something; take the slow path.
    #[inline]
    pub(crate) fn try_lock_empty_head(&self, first: u64, last: u64, state: LockState) -> bool {
        if self.head.load(Ordering::Relaxed) != EMPTY {
            return false;
        }
        let single = state.word();
        if first == 0 && last == u64::MAX {
            return self
                .head
                .compare_exchange(EMPTY, single, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        }
        let record = self.records().alloc(first, last, single);
        let won = self
            .head
            .compare_exchange(
                EMPTY,
                entry::record_word(record),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if !won {
            self.records().free(record);
        }
        won
    }

    /// Empties the head if it holds the caller's lock and nothing else: for the whole
    /// range, the one-holder entry `state`; for any other range, a lock record that is
    /// not being moved into a root node (a record in the head is the tree's only entry,
    /// and the caller holds its range, so it is the caller's). `false`: take the slow
    /// path (the lock lives in the tree's nodes, or is shared).
    #[inline]
    pub(crate) fn try_release_head(&self, whole: bool, state: LockState) -> bool {
        let head = self.head.load(Ordering::Acquire);
        let ours = if whole {
            head == state.word()
        } else {
            entry::is_record(head) && !entry::is_busy(head)
        };
        if !ours
            || self
                .head
                .compare_exchange(head, EMPTY, Ordering::Release, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        if entry::is_record(head) {
            self.records().free(entry::word_record::<LockRecord>(head));
        }
        true
    }

    /// Marks the lock record `head` in the head busy (the caller holds `head_lock` and is
    /// about to move the record into a root node): a head record never changes, but its
    /// fast release may take it out (and the record be reused at this very head) while
    /// it is read; the fast release compares the plain word, so once busy the record is
    /// the caller's to read and to free. `false`: the head changed (the fast release
    /// came first and the head is empty).
    pub(crate) fn take_head_record(&self, head: usize) -> bool {
        debug_assert!(entry::is_record(head) && !entry::is_busy(head));
        self.head
            .compare_exchange(head, entry::busy(head), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Changes an inline whole-range lock entry in the head from `from` to `to` (a
    /// downgrade); `false` if the head holds anything else.
    #[inline]
    pub(crate) fn try_change_head_state(&self, from: LockState, to: LockState) -> bool {
        self.head
            .compare_exchange(from.word(), to.word(), Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }
}
