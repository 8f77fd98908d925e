//! Claiming: the walk that turns a range into lock entries, one slot at a time.
//!
//! [`LockCursor::claim`] walks the range in ascending index order. Each step locks the
//! owner of the slot that covers the first unclaimed index `p` (the walk descends through
//! nodes without locks, `xarray/cursor/mod.rs`) and takes the part of the range that slot
//! covers, then goes on to the next slot of the same node while it can, without letting
//! go of the lock. What a slot holds decides the step:
//!
//! | slot holds | the range covers the slot's span whole | the range covers part of it |
//! |---|---|---|
//! | nothing | an inline lock entry | a lock record with the part's bounds (one word, whatever the alignment) |
//! | an item (a leaf) | evicted into the claim, an inline entry made `pending` | (never: a leaf slot is one index) |
//! | a value | evicted likewise | the value is pushed down into a child node of copies, and the walk locates again |
//! | a lock entry it may take | joined (holder count + 1) | pushed down, located again |
//! | a lock entry it may not take | [`Step::Blocked`], the slot's owner still locked | the same |
//!
//! So a range over an empty region costs one slot (a record in the slot that contains
//! it), a range over many whole slots of a node one word per slot under one lock, and
//! the walk locks O(levels) nodes on each edge of the range. The first conflict stops
//! the walk; what was claimed before it stays claimed while the caller waits (ascending
//! order rules out deadlock between range lockers).
//!
//! # Who may take a lock entry
//!
//! A lock entry may be taken in mode `m` when its holders are compatible with `m` (or it
//! is reserved: no holders), it is not `pending`, and, if its `waiters` flag is set, no
//! acquirer queued on it earlier (smaller `seq`) conflicts with `m`
//! ([`LockCursor::may_take`]). Newcomers have no `seq` and so queue behind every waiter
//! they conflict with: a stream of Shared acquirers cannot starve a queued Exclusive
//! one, nor a stream of direct IO a fault. One exception: a thread that already holds
//! the index Shared may join its Shared holders even so (a recursive Shared acquisition
//! would otherwise wait for itself behind the queued Exclusive waiter).
//!
//! A reserved entry is taken whole or not at all: an acquisition that wants only part of
//! it dissolves it (everyone queued there walks again) rather than leave reserved pieces
//! behind that no waiter would ever come back for.
//!
//! # Nothing lost on failure
//!
//! An entry made by evicting is `pending` from the moment it is written: nobody may join
//! it. So if the acquisition fails later (a timeout, `try_lock` meeting a conflict; a
//! blocking acquisition cannot fail once it has claimed anything, since self-deadlock is
//! refused before it starts), it is still their only holder and can put the evicted
//! entries back, with the marks they had when evicted (`rollback`). On success the flags
//! are cleared (`clear_pending`), unless the acquisition is sealed, which leaves them
//! until the guard unseals.

use super::evicted::Evicted;
use super::lock_cursor::{LockCursor, LockEntry};
use super::LockMode;
use crate::sync::ItemArc as Arc;
use crate::xarray::cursor::{Located, Slot};
use crate::xarray::entry::{self, Kind, EMPTY};
use crate::xarray::lock_word::LockState;
use crate::xarray::span::{Block, Inclusive};
use crate::xarray::tree::clone_item;

/// An acquisition in progress.
pub(crate) struct Claim<T> {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) mode: LockMode,
    /// The first index not claimed yet (meaningless once `done`).
    pub(crate) next: u64,
    pub(crate) done: bool,
    /// The queue position, from the first time the acquisition had to wait.
    pub(crate) seq: Option<u64>,
    /// Stop at an item instead of evicting it (the fill protocol of a fault).
    pub(crate) keep_items: bool,
    /// Leave the entries made by evicting `pending` when the claim completes (a sealed
    /// acquisition: nobody joins them until the guard unseals).
    pub(crate) seal: bool,
    /// What the claim evicted; each of its entries is `pending` in the tree until
    /// `clear_pending` (or the guard's unseal).
    pub(crate) evicted: Vec<Evicted<T>>,
    /// Whether the claim counts in the tree's pending count (`TreeWaits`) (it evicted something and
    /// has not cleared it yet).
    pub(crate) pending: bool,
    /// An asynchronous acquisition: a task, not the polling thread, will hold the range,
    /// so the thread's held list says nothing about it (no self-deadlock check, no
    /// recursive-read exception; see `lock/future.rs`).
    pub(crate) task: bool,
}

impl<T> Claim<T> {
    pub(crate) fn new(range: Inclusive, mode: LockMode, keep_items: bool) -> Self {
        Claim {
            first: range.first,
            last: range.last,
            mode,
            next: range.first,
            done: false,
            seq: None,
            keep_items,
            seal: false,
            evicted: Vec::new(),
            pending: false,
            task: false,
        }
    }

    /// Whether any index has been claimed.
    pub(crate) fn claimed_any(&self) -> bool {
        self.done || self.next > self.first
    }

    /// The last claimed index (when `claimed_any`).
    pub(crate) fn claimed_last(&self) -> u64 {
        if self.done {
            self.last
        } else {
            self.next - 1
        }
    }

    /// Marks everything up to `q` claimed.
    fn advance(&mut self, q: u64) {
        if q >= self.last {
            self.done = true;
        } else {
            self.next = q + 1;
        }
    }
}

/// How far [`LockCursor::claim`] got.
pub(crate) enum Step<T, const SLOTS: usize> {
    /// The whole range is claimed.
    Done,
    /// `index` (the first index the claim wants of `entry`) is covered by a lock entry
    /// the claim may not take now. The entry's owner is still locked: the caller sets
    /// its `waiters` flag and queues before it lets go.
    Blocked { index: u64, entry: LockEntry<SLOTS> },
    /// `keep_items` found this item at the (single) index.
    Hit(Arc<T>),
}

/// What one slot step did.
enum SlotStep<T, const SLOTS: usize> {
    /// Claimed its part of the range.
    Claimed,
    /// Changed the structure (or met a fast path): locate again.
    Again,
    Blocked {
        index: u64,
        entry: LockEntry<SLOTS>,
    },
    Hit(Arc<T>),
}

impl<T: Send + Sync + 'static, const SLOTS: usize> LockCursor<'_, T, SLOTS> {
    /// Claims as much of `c`'s range as may be taken now, in ascending order.
    pub(crate) fn claim(&mut self, c: &mut Claim<T>) -> Step<T, SLOTS> {
        let step = 'walk: loop {
            if c.done {
                break Step::Done;
            }
            let mut at = self.cursor.lock_at(c.next, 0);
            if at.outside {
                self.cursor.reach(c.next);
                continue;
            }
            loop {
                let (p, q) = (c.next, at.last.min(c.last));
                match self.claim_slot(c, &at, p, q) {
                    SlotStep::Claimed => {}
                    SlotStep::Again => continue 'walk,
                    SlotStep::Blocked { index, entry } => {
                        break 'walk Step::Blocked { index, entry }
                    }
                    SlotStep::Hit(item) => break 'walk Step::Hit(item),
                }
                c.advance(q);
                if c.done {
                    break 'walk Step::Done;
                }
                // The next slot of the same node, under the same lock, if it holds no node.
                if q != at.last {
                    continue 'walk;
                }
                match self.cursor.next_slot(&at) {
                    Some(next) => at = next,
                    None => continue 'walk,
                }
            }
        };
        self.flush_splits();
        step
    }

    /// Takes `p..=q` (inside the slot's span) of the located slot for `c`.
    fn claim_slot(
        &mut self,
        c: &mut Claim<T>,
        at: &Located<SLOTS>,
        p: u64,
        q: u64,
    ) -> SlotStep<T, SLOTS> {
        let whole = p == at.first && q == at.last;
        match entry::kind(at.word) {
            Kind::Empty => {
                let single = LockState::single(c.mode).word();
                let (word, record) = if whole {
                    (single, None)
                } else {
                    let record = self.cursor.records().alloc(p, q, single);
                    (entry::record_word(record), Some(record))
                };
                if self.cursor.swap(at.slot, EMPTY, word).is_err() {
                    // A fast path took the empty head first.
                    if let Some(record) = record {
                        self.cursor.records().free(record);
                    }
                    return SlotStep::Again;
                }
                SlotStep::Claimed
            }
            Kind::Item if c.keep_items => {
                // SAFETY: an item word read under its owner's lock: the item is
                // reachable, so the tree's own reference keeps it alive.
                SlotStep::Hit(unsafe { clone_item(at.word) })
            }
            Kind::Item | Kind::Value if whole => self.evict(c, at),
            Kind::Value => {
                self.push_down(at, p);
                SlotStep::Again
            }
            Kind::Lock | Kind::Record => {
                let e = Self::entry(at).expect("a lock entry");
                if e.last < p || q < e.first {
                    // A record elsewhere in this slot: make room for this part.
                    self.push_down(at, p);
                    return SlotStep::Again;
                }
                let index = p.max(e.first);
                let Some(new) = self.may_take(&e, c.mode, c.seq, index, c.task) else {
                    if e.is_head_record() {
                        // Waiting needs a flag the head record cannot carry.
                        self.push_down(at, p);
                        return SlotStep::Again;
                    }
                    return SlotStep::Blocked { index, entry: e };
                };
                if e.lock_state().holders == 0 && !e.is(p, q) {
                    // Taking part of a reserved entry would leave reserved pieces that no
                    // waiter names: dissolve it instead (its waiters walk again), and take
                    // this part of the emptied slot at once, under the same lock. Were the
                    // lock let go in between, a waiter just woken (or a newcomer's fast
                    // path, which claims empty slots) could take the slot first, and the
                    // acquisition the reservation was for could lose it again and again.
                    if !self.dissolve(&e) {
                        return SlotStep::Again;
                    }
                    return match at.slot {
                        Slot::In(..) => {
                            let emptied = Located { word: EMPTY, ..*at };
                            self.claim_slot(c, &emptied, p, q)
                        }
                        // The head's whole-range entry: its empty head races with the
                        // fast paths; locate again.
                        Slot::Head => SlotStep::Again,
                    };
                }
                if !e.is(p, q) || e.is_head_record() {
                    self.push_down(at, p);
                    return SlotStep::Again;
                }
                if self.set_state(&e, new.word()) {
                    SlotStep::Claimed
                } else {
                    SlotStep::Again
                }
            }
            Kind::Item => unreachable!("a leaf slot is one index: claimed whole"),
            Kind::Node => unreachable!("a locate stops at a non-node word"),
        }
    }

    /// Evicts the item or value that fills the located slot into `c`, leaving a pending
    /// one-holder lock entry in its place.
    fn evict(&mut self, c: &mut Claim<T>, at: &Located<SLOTS>) -> SlotStep<T, SLOTS> {
        if !c.pending {
            self.pending_opened();
            c.pending = true;
        }
        let pending = LockState {
            pending: true,
            ..LockState::single(c.mode)
        };
        let Ok(old) = self.cursor.swap(at.slot, at.word, pending.word()) else {
            return SlotStep::Again; // the head, changed by a fast path
        };
        let marks = self.cursor.take_marks(at.slot);
        let entry = self.cursor.dispose(old);
        c.evicted.push(Evicted {
            block: Block {
                first: at.first,
                shift: at.shift,
            },
            entry,
            marks,
        });
        SlotStep::Claimed
    }

    /// Clears the `pending` flags of a completed claim's evictions and wakes the Shared
    /// acquirers that were waiting to join them.
    pub(crate) fn clear_pending(&mut self, c: &mut Claim<T>) {
        if !c.pending {
            return;
        }
        let blocks: Vec<Block> = c.evicted.iter().map(|e| e.block).collect();
        self.unseal(blocks);
        self.pending_closed();
        c.pending = false;
    }

    /// Undoes a failed claim: puts every evicted entry back (with its marks) and releases
    /// the rest of the claimed prefix.
    pub(crate) fn rollback(&mut self, c: &mut Claim<T>) {
        let evicted = core::mem::take(&mut c.evicted);
        if c.claimed_any() {
            let last = c.claimed_last();
            self.release_restoring(c.first, last, evicted);
        }
        if c.pending {
            self.pending_closed();
            c.pending = false;
        }
        c.done = false;
        c.next = c.first;
    }
}
