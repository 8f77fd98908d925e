//! Lookups that wait for lock entries: `load_wait` and the fill protocol `get_or_fill`.

use core::task::Waker;

use super::acquire::Patience;
use super::claim::Claim;
use super::error::{FillError, LockError};
use super::guard::RangeGuard;
use super::held;
use super::lock_cursor::LockCursor;
use super::LockMode;
use crate::sync::ItemArc as Arc;
use crate::wait_table::Wants;
use crate::xarray::span::Inclusive;
use crate::xarray::{Entry, XArray};

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// The entry at `index`, waiting while it is locked: never [`Entry::Locked`].
    ///
    /// The lookup is lock-free when the index is not locked. Waiting on an index this
    /// thread holds itself fails with [`LockError::WouldDeadlock`].
    pub fn load_wait(&self, index: u64) -> Result<Entry<T>, LockError> {
        loop {
            let entry = self.get(index);
            if !matches!(entry, Entry::Locked { .. }) {
                return Ok(entry);
            }
            self.wait_unlocked(index)?;
        }
    }

    /// Waits until the lock entry at `index` (if there still is one) changes.
    fn wait_unlocked(&self, index: u64) -> Result<(), LockError> {
        if let Some((base, seq)) = self.watch_index(index, None)? {
            let table = self.wait_table();
            table.wait(self.id, base, seq, None);
            table.remove(self.id, base, seq);
        }
        Ok(())
    }

    /// Queues a watcher on the lock entry over `index`: a thread's (`waker` is `None`),
    /// which sleeps on the returned `(base, seq)` and then leaves the queue, or a task's,
    /// whose record carries `waker`. `None` if no lock entry covers `index` any more, or
    /// it changed already: look again. A thread that holds the index itself gets
    /// [`LockError::WouldDeadlock`]; a task is not checked (see `lock/future.rs`).
    pub(crate) fn watch_index(
        &self,
        index: u64,
        waker: Option<&Waker>,
    ) -> Result<Option<(u64, u64)>, LockError> {
        let tree = self.id;
        let mut lc = LockCursor::new(self);
        loop {
            let at = lc.cursor.lock_at(index, 0);
            let Some(e) =
                LockCursor::<T, SLOTS>::entry(&at).filter(|e| e.first <= index && index <= e.last)
            else {
                return Ok(None);
            };
            if waker.is_none() && held::mode_at(tree, index).is_some() {
                return Err(LockError::WouldDeadlock { index });
            }
            if e.is_head_record() {
                // A head record carries no flags: move it into a root node first.
                lc.push_down(&at, index);
                continue;
            }
            if !lc.set_waiters(&e) {
                return Ok(None); // it changed already
            }
            let seq = Self::queue_watcher(lc, e.first, waker);
            return Ok(Some((e.first, seq)));
        }
    }

    /// Registers a watcher record (with `waker`, for a task) on the lock entry based at
    /// `base`, whose `waiters` flag the caller set with the entry's owner locked in
    /// `lc`, then lets go of the lock: registering under the lock that the waker also
    /// holds is what rules out a lost wake-up. Returns the record's `seq`.
    fn queue_watcher(lc: LockCursor<'_, T, SLOTS>, base: u64, waker: Option<&Waker>) -> u64 {
        let table = lc.table;
        let seq = table.next_seq();
        table.register(lc.tree, base, Wants::Watch, seq, waker);
        drop(lc); // lets go of the lock, wakes the tasks it woke
        seq
    }

    /// Queues a watcher on the lock entry based at `base` (whose `waiters` flag the
    /// caller set with the entry's owner locked in `lc`), lets go of the lock, sleeps
    /// until the entry changes in a way watchers are woken for, and leaves the queue.
    /// `true` if it was woken only because the entry moved (`Wake::Moved`).
    fn watch(&self, lc: LockCursor<'_, T, SLOTS>, base: u64) -> bool {
        let table = lc.table;
        let tree = self.id;
        let seq = Self::queue_watcher(lc, base, None);
        table.wait(tree, base, seq, None);
        table.remove(tree, base, seq)
    }

    /// The item at `index`, filling a missing one: the page-fault protocol.
    ///
    /// * An item is returned at once (a lock-free lookup).
    /// * A locked index is waited for, in queue order with the range lockers (a fault
    ///   cannot be starved by a stream of direct IO from other threads; a thread that
    ///   keeps holding the index Shared while it takes it Shared again joins ahead of a
    ///   queued fault, the recursive-read rule, so a pipeline of overlapping direct IOs
    ///   from one thread should release each before the next, or detach it).
    /// * An empty index, or one holding a value (shadow) entry, is locked Exclusive for
    ///   this index alone; `fill(index)` runs with no internal lock held, and its item is
    ///   published in the lock entry's place, waking every waiter. If `fill` fails or
    ///   panics, the index is released (a value that was there is put back, marks
    ///   included) and the waiters try again.
    ///
    /// ```
    /// use rangelock::XArray;
    /// use std::sync::Arc;
    ///
    /// let cache: XArray<String> = XArray::new();
    /// let page = cache
    ///     .get_or_fill(3, |i| Ok::<_, std::io::Error>(Arc::new(format!("page {i}"))))
    ///     .unwrap();
    /// assert_eq!(*page, "page 3");
    /// // A second fault hits the cache; this fill never runs.
    /// let again = cache.get_or_fill(3, |_| Err("unreachable")).unwrap();
    /// assert!(Arc::ptr_eq(&page, &again));
    /// ```
    pub fn get_or_fill<E>(
        &self,
        index: u64,
        fill: impl FnOnce(u64) -> Result<Arc<T>, E>,
    ) -> Result<Arc<T>, FillError<E>> {
        if let Some(item) = self.load(index) {
            return Ok(item);
        }
        let range = Inclusive {
            first: index,
            last: index,
        };
        crate::lockdep::check(self, range, LockMode::Exclusive, true);
        let mut c = Claim::new(range, LockMode::Exclusive, true);
        if let Some(item) = self
            .run_claim(&mut c, Patience::Forever)
            .map_err(FillError::Lock)?
        {
            return Ok(item);
        }
        // A failing or panicking fill puts back the shadow entry it would have replaced.
        let guard = RangeGuard::new(self, index, index, LockMode::Exclusive, c.evicted)
            .restore_on_release();
        let item = fill(index).map_err(FillError::Fill)?;
        if guard.publish(Arc::clone(&item)).is_err() {
            unreachable!("a one-index Exclusive guard publishes");
        }
        Ok(item)
    }

    /// Locks `index` Exclusive for filling, without waiting, if it holds nothing or a
    /// value and no one holds or waits for it: readahead's claim. `None` if it holds an
    /// item, or is locked. A release without [`RangeGuard::publish`] puts a value back.
    pub(crate) fn try_fill_lock(&self, index: u64) -> Option<RangeGuard<'_, T, SLOTS>> {
        let range = Inclusive {
            first: index,
            last: index,
        };
        let mut c = Claim::new(range, LockMode::Exclusive, true);
        match self.run_claim(&mut c, Patience::None) {
            Ok(None) => Some(
                RangeGuard::new(self, index, index, LockMode::Exclusive, c.evicted)
                    .restore_on_release(),
            ),
            Ok(Some(_)) | Err(_) => None,
        }
    }

    /// Waits until no entry of `range` is `pending`: sealed by a direct IO or edit that
    /// is handing evicted pages over, or made by an acquisition that evicted and is still
    /// waiting further on. Every such entry found is waited for, once, until it opens, is
    /// released, or its evicted entries are put back; the scan then goes on after it.
    ///
    /// The range is scanned without locks (a lock-free iteration, so writers are never
    /// stalled); only a lock entry found makes it lock that entry's owner to read its
    /// `pending` flag. The cost is O(1) (one load of the tree's count of pending
    /// acquisitions) while nothing in the tree is pending, else one step per entry in
    /// the range. A thread
    /// that holds any range of this tree gets [`LockError::WouldDeadlock`] instead of
    /// sleeping: the pending entry's owner may be queued on that very range.
    pub(crate) fn wait_sealed(&self, range: Inclusive) -> Result<(), LockError> {
        // The common case in O(1): nothing pending anywhere. Every pending entry is
        // counted before it is stored, so an eviction that the caller's pass already saw
        // (a page gone from the tree) is counted here.
        if !self.waits.any_pending() {
            return Ok(());
        }
        let tree = self.id;
        let mut from = range.first;
        'scan: loop {
            let locked = self
                .iter(from..=range.last)
                .find(|(_, e)| matches!(e, Entry::Locked { .. }))
                .map(|(span, _)| span);
            let Some(span) = locked else {
                return Ok(());
            };
            let index = (*span.start()).max(from);
            let mut lc = LockCursor::new(self);
            let at = lc.cursor.lock_at(index, 0);
            let pending = LockCursor::<T, SLOTS>::entry(&at).filter(|e| e.lock_state().pending);
            let end = pending.map_or(at.last, |e| e.last);
            let Some(e) = pending else {
                // Not (or no longer) pending: go on after it.
                if end >= range.last {
                    return Ok(());
                }
                from = end + 1;
                continue 'scan;
            };
            if held::holds_any(tree) {
                return Err(LockError::WouldDeadlock { index });
            }
            if !lc.set_waiters(&e) {
                continue 'scan; // it changed already: look again
            }
            if self.watch(lc, e.first) {
                // Woken because the entry was split or pushed down, not because it
                // opened: look at it again.
                from = index;
                continue 'scan;
            }
            // Each entry is waited for once: a hand-off sealed there after this one
            // started after the call (waiting for it too could go on for ever). Watchers
            // are woken only when their entry changes or moves, never because another
            // waiter left (`Wake::Queue`).
            if end >= range.last {
                return Ok(());
            }
            from = end + 1;
        }
    }
}
