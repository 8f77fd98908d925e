//! The lock cursor: a tree's write cursor with the lock layer's state around it (the wait
//! table and the tree's key), and the steps every lock operation is made of.
//!
//! A lock entry is either inline in one slot (its bounds are the slot's span) or a lock
//! record (its own bounds, inside one slot's span; see `xarray/record.rs`). Whichever it
//! is, [`LockCursor::entry`] presents it as a [`LockEntry`]: the located slot, the
//! entry's bounds and its state word. Changing a state goes through
//! [`LockCursor::set_state`] and removing an entry through [`LockCursor::remove`], which
//! know that a head entry races with the lock fast paths (compare-exchange) and that a
//! node's entry does not (its node is locked).
//!
//! The operations themselves are `impl LockCursor` blocks: `claim.rs` (acquisition),
//! `release.rs` (release, downgrade, publish, restore, unseal). Every one of them runs
//! with at most one slot owner locked at a time (see `xarray/cursor/mod.rs`), never sleeps,
//! and never runs user code.

use super::held;
use super::LockMode;
use crate::wait_table::{WaitTable, Wake, Wakers};
use crate::xarray::cursor::{Located, Slot, WriteCursor};
use crate::xarray::entry::{self, Kind, EMPTY};
use crate::xarray::lock_word::{LockState, MAX_HOLDERS};
use crate::xarray::record::LockRecord;
use crate::xarray::XArray;

/// A tree's write cursor, its wait table and its key.
pub(crate) struct LockCursor<'a, T: Send + Sync + 'static, const SLOTS: usize> {
    pub(crate) cursor: WriteCursor<'a, T, SLOTS>,
    pub(crate) table: &'a WaitTable,
    /// The tree's id, which keys the wait table and the held lists.
    pub(crate) tree: u64,
    /// Wakers of task records this cursor's operations woke: woken by
    /// [`wake_deferred`](Self::wake_deferred) or on drop, with no lock held.
    wakers: Wakers,
}

/// A lock entry found under its owner's lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LockEntry<const SLOTS: usize> {
    /// The slot that holds it (the owner is locked).
    pub(crate) at: Located<SLOTS>,
    /// Its bounds: the slot's span, or the record's bounds. `first` keys its waiters.
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// Its state, as an inline lock word.
    pub(crate) state: usize,
    /// The record, for an entry kept out of line.
    pub(crate) record: Option<*const LockRecord>,
}

impl<const SLOTS: usize> LockEntry<SLOTS> {
    pub(crate) fn lock_state(&self) -> LockState {
        LockState::of(self.state)
    }

    /// Whether it is a lock record in the head. Such a record never changes (see
    /// `xarray/record.rs`): an operation that would change it (join it, wait on it,
    /// downgrade it) moves it into a root node first ([`LockCursor::push_down`]).
    pub(crate) fn is_head_record(&self) -> bool {
        self.record.is_some() && matches!(self.at.slot, Slot::Head)
    }

    /// Whether the entry's bounds are exactly `first..=last`.
    pub(crate) fn is(&self, first: u64, last: u64) -> bool {
        (self.first, self.last) == (first, last)
    }
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> LockCursor<'a, T, SLOTS> {
    pub(crate) fn new(xa: &'a XArray<T, SLOTS>) -> Self {
        LockCursor {
            cursor: WriteCursor::new(xa),
            table: xa.wait_table(),
            tree: xa.id,
            wakers: Wakers::new(),
        }
    }

    /// Wakes the chosen waiters of the entry based at `base` (see [`Wake`]): threads at
    /// once, tasks when this cursor lets go of its lock and calls
    /// [`wake_deferred`](Self::wake_deferred) (or is dropped).
    pub(crate) fn wake(&mut self, base: u64, which: Wake) {
        self.table.wake(self.tree, base, which, &mut self.wakers);
    }

    /// Lets go of the lock held, if any, and wakes the tasks whose records were woken.
    /// A waiter calls it before it sleeps: the tasks it woke must not wait for it.
    pub(crate) fn wake_deferred(&mut self) {
        if self.wakers.is_empty() {
            return;
        }
        self.cursor.unlock();
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }

    /// The tree.
    pub(crate) fn tree_ref(&self) -> &'a XArray<T, SLOTS> {
        self.cursor.tree()
    }

    /// The lock entry in the located slot, if it holds one.
    pub(crate) fn entry(at: &Located<SLOTS>) -> Option<LockEntry<SLOTS>> {
        if at.outside {
            return None;
        }
        match entry::kind(at.word) {
            Kind::Lock => Some(LockEntry {
                at: *at,
                first: at.first,
                last: at.last,
                state: at.word,
                record: None,
            }),
            Kind::Record => {
                let record = WriteCursor::<T, SLOTS>::record(at.word);
                let (first, last) = record.bounds();
                Some(LockEntry {
                    at: *at,
                    first,
                    last,
                    state: record.state(),
                    record: Some(record),
                })
            }
            _ => None,
        }
    }

    /// Gives the entry the state `new` (a lock word). `false` if a fast path changed a
    /// head entry meanwhile (the caller locates again). Not for a head record.
    pub(crate) fn set_state(&mut self, e: &LockEntry<SLOTS>, new: usize) -> bool {
        debug_assert_eq!(entry::kind(new), Kind::Lock);
        debug_assert!(!e.is_head_record(), "head records never change");
        match e.record {
            None => self.cursor.swap(e.at.slot, e.state, new).is_ok(),
            Some(record) => {
                // SAFETY: record memory is type-stable while the tree lives; its node is
                // locked, so nobody else changes it.
                unsafe { &*record }.set_state(new);
                true
            }
        }
    }

    /// Removes the entry (the slot becomes empty; a record goes back to its pool).
    /// `false` if a fast path changed the head meanwhile (locate again).
    pub(crate) fn remove(&mut self, e: &LockEntry<SLOTS>) -> bool {
        if self.cursor.swap(e.at.slot, e.at.word, EMPTY).is_err() {
            return false;
        }
        if let Some(record) = e.record {
            // SAFETY: record memory is type-stable while the tree lives; no slot
            // references it any more.
            self.cursor.records().free(unsafe { &*record });
        }
        true
    }

    /// Moves the entry in the located slot (a value, an inline lock entry over a bigger
    /// span than wanted, or a lock record) into a child node of its pieces, or a head
    /// entry into a root node. The caller locates again.
    pub(crate) fn push_down(&mut self, at: &Located<SLOTS>, index: u64) {
        match at.slot {
            Slot::Head => {
                self.cursor.push_down_head(index);
            }
            Slot::In(..) => {
                self.cursor.push_down(at, index);
            }
        }
        self.cursor.unlock();
    }

    /// Sets the entry's `waiters` flag. `false` if it changed meanwhile (locate again).
    pub(crate) fn set_waiters(&mut self, e: &LockEntry<SLOTS>) -> bool {
        let state = e.lock_state();
        if state.waiters {
            return true;
        }
        self.set_state(
            e,
            LockState {
                waiters: true,
                ..state
            }
            .word(),
        )
    }

    /// Removes the reserved entry `e` (no holders) and wakes everyone queued on it: they
    /// walk again and find the indices free.
    pub(crate) fn dissolve(&mut self, e: &LockEntry<SLOTS>) -> bool {
        debug_assert_eq!(e.lock_state().holders, 0);
        if !self.remove(e) {
            return false;
        }
        self.wake(e.first, Wake::All);
        true
    }

    /// Wakes the waiters of lock entries that were split or pushed down (they queued
    /// under the old entry's base, which may no longer name their entry).
    pub(crate) fn flush_splits(&mut self) {
        if self.cursor.split_waiting.is_empty() {
            return;
        }
        let split: smallvec::SmallVec<[u64; 2]> = core::mem::take(&mut self.cursor.split_waiting);
        for base in split {
            self.wake(base, Wake::Moved);
        }
    }

    /// The new state of lock entry `e` if an acquisition in `mode` (queued at `seq`, if it
    /// has waited) may take it now at `index`: its holders are compatible (or it is
    /// reserved), it is not pending, and no older queued acquirer conflicts with `mode`
    /// (except for a thread that holds `index` Shared already: the recursive-read rule,
    /// which a `task` acquisition does not get: the polling thread's list is not its).
    pub(crate) fn may_take(
        &self,
        e: &LockEntry<SLOTS>,
        mode: LockMode,
        seq: Option<u64>,
        index: u64,
        task: bool,
    ) -> Option<LockState> {
        let state = e.lock_state();
        if state.pending || (state.holders > 0 && !state.mode.is_compatible(mode)) {
            return None;
        }
        let mut waiters = state.waiters;
        if waiters {
            let (_, any) = self.table.queued(self.tree, e.first);
            if !any {
                waiters = false; // a stale flag (its waiters moved on): drop it
            } else if self.table.older_conflicting(
                self.tree,
                e.first,
                mode,
                seq.unwrap_or(u64::MAX),
            ) {
                let recursive =
                    state.holders > 0 && !task && held::mode_at(self.tree, index).is_some();
                if !recursive {
                    return None;
                }
            }
        }
        debug_assert!(state.holders < MAX_HOLDERS);
        Some(LockState {
            mode: if state.holders == 0 { mode } else { state.mode },
            holders: state.holders + 1,
            waiters,
            pending: false,
        })
    }

    /// A queued acquirer left for good (timed out or failed) after waiting under key
    /// `base`: wakes the others there (some may have deferred to it) and settles the key.
    pub(crate) fn depart(&mut self, base: u64) {
        self.wake(base, Wake::Queue);
        self.settle(base);
    }

    /// Called after a record under key `base` was removed (by its owner, before the
    /// owner's next walk): waiters there may have been deferring to the record that
    /// left. If the entry based at `base` is reserved: with no acquirer queued on it any
    /// more it is removed (watchers woken), otherwise the front of its queue is woken.
    /// If it is held Shared, the Shared acquirers at the front of its queue are woken
    /// (they may join now). Every reservation has an acquirer record and every record's
    /// owner removes it and settles, so reserved entries never outlive their waiters,
    /// and no queue is stranded behind a record that moved on.
    pub(crate) fn settle(&mut self, base: u64) {
        self.settle_locked(base);
        self.cursor.unlock();
    }

    fn settle_locked(&mut self, base: u64) {
        loop {
            let at = self.cursor.lock_at(base, 0);
            let Some(e) = Self::entry(&at) else {
                return;
            };
            if e.first != base {
                return;
            }
            let state = e.lock_state();
            if state.holders > 0 {
                // Held: Shared acquirers queued behind the record that left may join now.
                if state.mode == LockMode::Shared && !state.pending && state.waiters {
                    self.wake(base, Wake::SharedFront);
                }
                return;
            }
            let (acquirers, _) = self.table.queued(self.tree, base);
            if acquirers {
                self.wake(base, Wake::Front);
                return;
            }
            if self.dissolve(&e) {
                return;
            }
        }
    }

    /// Counts one more acquisition or guard with entries pending (the tree's
    /// `TreeWaits`): before the first pending entry is stored, so that anyone who sees
    /// that entry sees the count.
    pub(crate) fn pending_opened(&self) {
        self.tree_ref().waits.pending_opened();
    }

    /// Counts one fewer: after its last pending entry was cleared or removed.
    pub(crate) fn pending_closed(&self) {
        self.tree_ref().waits.pending_closed();
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> Drop for LockCursor<'_, T, SLOTS> {
    /// Lets go of the lock first, then wakes the tasks (see
    /// [`LockCursor::wake_deferred`]).
    fn drop(&mut self) {
        self.wake_deferred();
    }
}
