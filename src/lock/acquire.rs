//! `lock_range` and friends: the fast path, and the claim-wait loop of the slow path.

use core::ops::RangeBounds;
use core::task::Waker;
use std::time::{Duration, Instant};

use super::claim::{Claim, Step};
use super::error::LockError;
use super::guard::RangeGuard;
use super::lock_cursor::LockCursor;
use super::{held, LockMode};
use crate::sync::ItemArc as Arc;
use crate::wait_table::{WaitTable, Wants};
use crate::xarray::entry::{self, Kind};
use crate::xarray::lock_word::LockState;
use crate::xarray::span::{self, Inclusive};
use crate::xarray::XArray;

/// How long an acquisition may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Patience {
    /// Not at all (`try_lock_range`).
    None,
    /// Until this instant.
    Until(Instant),
    /// Forever.
    Forever,
}

/// Normalises a lock range, refusing an empty or inverted one.
pub(crate) fn lock_span(range: &impl RangeBounds<u64>) -> Result<Inclusive, LockError> {
    span::inclusive(range).ok_or_else(|| LockError::InvalidRange {
        start: range.start_bound().cloned(),
        end: range.end_bound().cloned(),
    })
}

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// Locks every index of `range` in `mode`, waiting as long as it takes.
    ///
    /// Items and values found in the range are evicted into the guard
    /// ([`RangeGuard::evicted`]); lookups of a locked index see [`Entry::Locked`], plain
    /// stores and erases there fail with [`XaError::Locked`]. Overlapping Shared locks
    /// share entries and count their holders. A range with nothing in it costs
    /// O(levels x SLOTS) whatever its length; the whole range of an empty tree is one
    /// compare-exchange.
    ///
    /// Several ranges of one tree must be acquired in ascending order (and trees in one
    /// global order) by a thread that holds more than one at a time; then no set of
    /// range lockers can deadlock. A wait on an index that this thread itself holds in a
    /// conflicting mode fails with [`LockError::WouldDeadlock`] instead of hanging.
    ///
    /// ```
    /// use rangelock::{Entry, LockMode, XArray};
    ///
    /// let file: XArray<Vec<u8>> = XArray::new();
    /// let a = file.lock_range(0..4096, LockMode::Shared).unwrap();
    /// let b = file.lock_range(100..200, LockMode::Shared).unwrap(); // sub-page DIOs share
    /// assert!(matches!(file.get(150), Entry::Locked { holders: 2, .. }));
    /// assert!(matches!(file.get(3000), Entry::Locked { holders: 1, .. }));
    /// assert!(file.try_lock_range(0..1, LockMode::Exclusive).is_err());
    /// drop((a, b));
    /// assert!(file.is_empty());
    /// ```
    ///
    /// [`Entry::Locked`]: crate::Entry::Locked
    /// [`XaError::Locked`]: crate::XaError::Locked
    #[inline]
    pub fn lock_range(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
    ) -> Result<RangeGuard<'_, T, SLOTS>, LockError> {
        self.acquire(lock_span(&range)?, mode, Patience::Forever)
    }

    /// Like [`lock_range`](Self::lock_range), but fails with [`LockError::WouldBlock`]
    /// instead of waiting (also when it would have to queue behind a waiter), or with
    /// [`LockError::WouldDeadlock`] when the conflicting holder is this thread.
    #[inline]
    pub fn try_lock_range(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
    ) -> Result<RangeGuard<'_, T, SLOTS>, LockError> {
        self.acquire(lock_span(&range)?, mode, Patience::None)
    }

    /// Like [`lock_range`](Self::lock_range), but gives up with [`LockError::TimedOut`]
    /// after `timeout`, leaving the tree as it found it (evicted entries are put back).
    pub fn lock_range_timeout(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<RangeGuard<'_, T, SLOTS>, LockError> {
        let patience = match Instant::now().checked_add(timeout) {
            Some(deadline) => Patience::Until(deadline),
            None => Patience::Forever,
        };
        self.acquire(lock_span(&range)?, mode, patience)
    }

    /// Like [`lock_range`](Self::lock_range), but the entries this acquisition makes by
    /// evicting items and values stay *sealed* (no other acquirer may join them, not even
    /// a compatible one) until [`RangeGuard::unseal`] or the guard's release.
    ///
    /// This is what a direct-IO writer needs to hand the evicted dirty pages over without
    /// a race: with a plain Shared lock, a second sub-page direct write could join the
    /// entry of an evicted dirty page and write the device before the first writer has
    /// written that page back, and the write-back would then overwrite the newer data.
    /// Sealed, the second writer waits until the write-back is done; indices that held
    /// nothing are shared at once.
    ///
    /// ```
    /// use rangelock::{LockError, LockMode, XArray};
    /// use std::sync::Arc;
    ///
    /// let pages: XArray<&str> = XArray::new();
    /// pages.store(1, Arc::new("dirty")).unwrap();
    /// let mut first = pages.lock_range_sealed(0..4, LockMode::Shared).unwrap();
    /// let other_thread = |range: std::ops::Range<u64>| {
    ///     std::thread::scope(|s| {
    ///         s.spawn(|| pages.try_lock_range(range, LockMode::Shared).map(drop)).join().unwrap()
    ///     })
    /// };
    /// // Index 0 held nothing: another direct IO joins it. Index 1 is sealed.
    /// assert_eq!(other_thread(0..1), Ok(()));
    /// assert_eq!(other_thread(1..2), Err(LockError::WouldBlock));
    /// // This thread cannot join its own sealed entry either: it would wait for itself.
    /// assert_eq!(
    ///     pages.try_lock_range(1..2, LockMode::Shared).unwrap_err(),
    ///     LockError::WouldDeadlock { index: 1 }
    /// );
    /// let dirty = first.take_evicted(); // write it back here, then:
    /// assert_eq!(dirty.len(), 1);
    /// first.unseal();
    /// assert_eq!(other_thread(1..2), Ok(()));
    /// drop(first);
    /// assert!(pages.is_empty());
    /// ```
    pub fn lock_range_sealed(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
    ) -> Result<RangeGuard<'_, T, SLOTS>, LockError> {
        let range = lock_span(&range)?;
        crate::lockdep::check(self, range, mode, true);
        if let Some(guard) = self.lock_fast(range, mode) {
            // Nothing evicted: nothing to seal (a direct IO over a region with no pages).
            return Ok(guard);
        }
        let mut c = Claim::new(range, mode, false);
        c.seal = true;
        match self.run_claim(&mut c, Patience::Forever)? {
            None => {
                let sealed = c.evicted.iter().map(|e| e.block).collect();
                Ok(RangeGuard::new(self, c.first, c.last, mode, c.evicted).with_sealed(sealed))
            }
            Some(_) => unreachable!("only a fill keeps items"),
        }
    }

    /// The first index of `first..=last` at which an acquisition in `mode` would wait
    /// for this thread itself: one it holds in a conflicting mode, or a pending entry of
    /// a sealed guard of its own. Exact: a pending entry inside a range this thread holds
    /// has this thread as its one holder, and only this thread can unseal it, so the
    /// lock-free look at the entries cannot race with a change that matters.
    pub(crate) fn self_conflict(&self, first: u64, last: u64, mode: LockMode) -> Option<u64> {
        let found = held::self_conflicts(self.id, first, last, mode);
        let mut index = found.conflict;
        for (lo, hi) in found.sealed {
            if let Some(pending) = self.first_pending(lo, hi) {
                index = Some(index.map_or(pending, |i| i.min(pending)));
            }
        }
        index
    }

    /// The first index of `first..=last` covered by a `pending` lock entry.
    fn first_pending(&self, first: u64, last: u64) -> Option<u64> {
        let guard = self.pin();
        let mut from = first;
        loop {
            let found = self.find_word(&guard, from, last, None)?;
            if entry::kind(found.word) == Kind::Lock && LockState::of(found.word).pending {
                return Some(found.first.max(from));
            }
            from = found.last.checked_add(1)?;
            if from > last {
                return None;
            }
        }
    }

    /// The wait table this tree's waiters sleep in.
    #[inline]
    pub(crate) fn wait_table(&self) -> &WaitTable {
        self.waits.table()
    }

    #[inline]
    fn acquire(
        &self,
        range: Inclusive,
        mode: LockMode,
        patience: Patience,
    ) -> Result<RangeGuard<'_, T, SLOTS>, LockError> {
        crate::lockdep::check(self, range, mode, patience != Patience::None);
        if let Some(guard) = self.lock_fast(range, mode) {
            return Ok(guard);
        }
        self.acquire_slow(range, mode, patience)
    }

    /// [`try_lock_fast`](Self::try_lock_fast), and the guard of what it locked.
    #[inline]
    fn lock_fast(&self, range: Inclusive, mode: LockMode) -> Option<RangeGuard<'_, T, SLOTS>> {
        self.try_lock_fast(range, mode)
            .then(|| RangeGuard::new(self, range.first, range.last, mode, Vec::new()))
    }

    /// The fast paths: an empty tree's head becomes the lock entry (the whole range) or a
    /// lock record with the range's bounds, by one compare-exchange; or the empty slots
    /// of the node that covers the range become its entries, under that node's lock.
    /// Either finds nothing in the range, so it conflicts with nobody (this thread's
    /// locks included), evicts nothing and seals nothing.
    #[inline]
    pub(crate) fn try_lock_fast(&self, range: Inclusive, mode: LockMode) -> bool {
        let state = LockState::single(mode);
        self.try_lock_empty_head(range.first, range.last, state)
            || self.try_lock_empty_slots(range.first, range.last, state)
    }

    #[inline(never)]
    fn acquire_slow(
        &self,
        range: Inclusive,
        mode: LockMode,
        patience: Patience,
    ) -> Result<RangeGuard<'_, T, SLOTS>, LockError> {
        let mut c = Claim::new(range, mode, false);
        match self.run_claim(&mut c, patience)? {
            None => Ok(RangeGuard::new(self, c.first, c.last, mode, c.evicted)),
            Some(_) => unreachable!("only a fill keeps items"),
        }
    }

    /// Claims `c`'s range, waiting (as `patience` allows) at each conflict. `Ok(None)`:
    /// all claimed; `Ok(Some(item))`: a `keep_items` claim found an item.
    ///
    /// A range that this thread holds in part, in a conflicting mode or under a guard
    /// that is still sealed, is refused with `WouldDeadlock` before anything is claimed
    /// or evicted (`held.rs`): so a blocking acquisition that has evicted something never
    /// fails, and nothing it evicted is ever put back by a failure.
    ///
    /// An acquisition that may not wait (`Patience::None`) asks only once it has failed:
    /// it fails anyway if this thread holds a conflicting part of its range (this
    /// thread's own entries are in the tree, and it conflicts with them), it gives back
    /// what it evicted whichever error it returns, and this thread's list cannot change
    /// in between, so the answer is the same as asking first, and a try that succeeds
    /// (each claim of a readahead batch, with the batch's earlier claims in the list)
    /// does not scan the list.
    pub(crate) fn run_claim(
        &self,
        c: &mut Claim<T>,
        patience: Patience,
    ) -> Result<Option<Arc<T>>, LockError> {
        if patience != Patience::None {
            if let Some(index) = self.self_conflict(c.first, c.last, c.mode) {
                return Err(LockError::WouldDeadlock { index });
            }
        }
        let mut lc = LockCursor::new(self);
        let table = lc.table;
        let mut q = Queued::default();
        loop {
            let (base, seq) = match lc.walk(c, &mut q, patience, None) {
                Walked::Done => return Ok(None),
                Walked::Hit(item) => return Ok(Some(item)),
                Walked::Failed(LockError::WouldBlock) => {
                    return Err(match self.self_conflict(c.first, c.last, c.mode) {
                        Some(index) => LockError::WouldDeadlock { index },
                        None => LockError::WouldBlock,
                    })
                }
                Walked::Failed(error) => return Err(error),
                Walked::Waiting { base, seq } => (base, seq),
            };
            // The tasks this walk woke must not wait for this thread's sleep.
            lc.wake_deferred();
            let deadline = match patience {
                Patience::Until(deadline) => Some(deadline),
                _ => None,
            };
            if !table.wait(self.id, base, seq, deadline) {
                lc.abandon(c, &mut q);
                return Err(LockError::TimedOut);
            }
        }
    }
}

/// Where an acquisition stands in the wait table between two walks.
#[derive(Debug, Default)]
pub(crate) struct Queued {
    /// The key where it last waited: others may defer to it there.
    pub(crate) queued: Option<u64>,
    /// The key of its record while the record is in the table.
    pub(crate) registered: Option<u64>,
}

/// How one walk of [`LockCursor::walk`] ended.
pub(crate) enum Walked<T> {
    /// Everything claimed; the queue is left.
    Done,
    /// A `keep_items` claim found an item; what it claimed is given back.
    Hit(Arc<T>),
    /// It may not wait (or would wait for itself); what it claimed is given back.
    Failed(LockError),
    /// Its record is queued (and its entry's `waiters` flag set) under `base`: wait
    /// until the record is woken, then walk again.
    Waiting { base: u64, seq: u64 },
}

impl<T: Send + Sync + 'static, const SLOTS: usize> LockCursor<'_, T, SLOTS> {
    /// One walk of the claim-wait loop, shared by the blocking acquisition (which sleeps
    /// on the bucket after [`Walked::Waiting`]) and the asynchronous one (which registers
    /// `waker` with its record and returns `Pending`). Returns with no lock held.
    pub(crate) fn walk(
        &mut self,
        c: &mut Claim<T>,
        q: &mut Queued,
        patience: Patience,
        waker: Option<&Waker>,
    ) -> Walked<T> {
        let tree = self.tree;
        let table = self.table;
        loop {
            // This acquisition's record stays queued while it walks: an entry reserved for
            // it stays reserved (a newcomer would find no waiter and take it), and the
            // walk defers only to records older than its own. It leaves the queue after
            // the walk, with the entry it stopped at still locked (if it stopped).
            let left = q.registered.take();
            let step = self.claim(c);
            if let (Some(base), Some(seq)) = (left, c.seq) {
                table.remove(tree, base, seq);
            }
            let (index, e) = match step {
                Step::Done => {
                    self.cursor.unlock();
                    if let Some(base) = left {
                        self.settle(base);
                    }
                    if !c.seal {
                        self.clear_pending(c);
                    }
                    return Walked::Done;
                }
                Step::Hit(item) => {
                    self.give_up(c, q, left);
                    return Walked::Hit(item);
                }
                Step::Blocked { index, entry } => (index, entry),
            };
            let mine = if c.task {
                None // the polling thread's held list is not the task's
            } else {
                held::mode_at(tree, index)
            };
            let failure = match mine {
                // A pending entry has one holder; if this thread holds the index, it is
                // that holder (a sealed guard of its own). Refused before the claim
                // started (`self_conflict`); kept as a guard against a wait for itself.
                Some(mine) if !mine.is_compatible(c.mode) || e.lock_state().pending => {
                    Some(LockError::WouldDeadlock { index })
                }
                _ => match patience {
                    Patience::None => Some(LockError::WouldBlock),
                    Patience::Until(deadline) if Instant::now() >= deadline => {
                        Some(LockError::TimedOut)
                    }
                    _ => None,
                },
            };
            if let Some(error) = failure {
                self.give_up(c, q, left);
                return Walked::Failed(error);
            }
            if !self.set_waiters(&e) {
                // The head changed under a fast path: look again.
                self.cursor.unlock();
                if let Some(base) = left {
                    self.settle(base);
                }
                continue;
            }
            // Register while the entry's owner is locked: its releaser, which needs that
            // lock, sees the `waiters` flag and then this record (and takes its waker).
            let base = e.first;
            let seq = *c.seq.get_or_insert_with(|| table.next_seq());
            table.register(tree, base, Wants::Acquire(c.mode), seq, waker);
            q.registered = Some(base);
            q.queued = Some(base);
            self.cursor.unlock();
            if let Some(left) = left {
                // After this walk, so that a reservation it took is not woken for.
                self.settle(left);
            }
            return Walked::Waiting { base, seq };
        }
    }

    /// Ends a walk that stopped with the claim's last entry locked and will not wait:
    /// lets go of the lock, settles the key the walk's record just left, leaves the
    /// queue for good and gives back what was claimed.
    fn give_up(&mut self, c: &mut Claim<T>, q: &mut Queued, left: Option<u64>) {
        self.cursor.unlock();
        if let Some(base) = left {
            self.settle(base);
        }
        if let Some(base) = q.queued.take() {
            self.depart(base);
        }
        self.rollback(c);
    }

    /// Gives up an acquisition that is waiting ([`Walked::Waiting`]): withdraws its
    /// record, wakes those that deferred to it (a grant already made to it, a reserved
    /// entry, passes to the next in its queue, or the entry is removed), and gives back
    /// what it claimed, putting back what it evicted. A timeout and a dropped future end
    /// this way alike.
    pub(crate) fn abandon(&mut self, c: &mut Claim<T>, q: &mut Queued) {
        if let (Some(base), Some(seq)) = (q.registered.take(), c.seq) {
            self.table.remove(self.tree, base, seq);
        }
        if let Some(base) = q.queued.take() {
            self.depart(base);
        }
        self.rollback(c);
    }
}
