//! `RangeLock`: the lock-entry range lock without pages, for any `u64` space.

use core::fmt;
use core::ops::RangeBounds;
use std::time::Duration;

use super::error::LockError;
use super::future::LockRangeFuture;
use super::guard::RangeGuard;
use super::LockMode;
use crate::xarray::{Entry, XArray};

/// A range lock over `u64` (byte ranges, key ranges, VMA ranges), made of lock entries in
/// a radix tree of its own: the same protocol as [`XArray::lock_range`] (modes, holder
/// counts, fairness, deadlock detection), with nothing to evict.
///
/// ```
/// use rangelock::{LockMode, RangeLock};
///
/// let bytes = RangeLock::new();
/// let w = bytes.lock(0..4096, LockMode::Exclusive).unwrap();
/// let r = bytes.lock(4096..8192, LockMode::Shared).unwrap(); // disjoint: no wait
/// assert!(bytes.try_lock(4000..4100, LockMode::Shared).is_err());
/// drop((w, r));
/// let all = bytes.lock(.., LockMode::Exclusive).unwrap(); // one compare-exchange
/// # drop(all);
/// ```
#[derive(Default)]
pub struct RangeLock {
    tree: XArray<()>,
}

/// A granted [`RangeLock`] range.
pub type RangeLockGuard<'a> = RangeGuard<'a, ()>;

impl RangeLock {
    /// An unlocked range lock.
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn new() -> Self {
        RangeLock {
            tree: XArray::new(),
        }
    }

    /// Locks `range` in `mode`, waiting as long as it takes.
    pub fn lock(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
    ) -> Result<RangeLockGuard<'_>, LockError> {
        self.tree.lock_range(range, mode)
    }

    /// Locks `range` in `mode` as a future (see [`XArray::lock_range_async`]): the guard
    /// is `Send`, and dropping the future before it resolves undoes its wait.
    pub fn lock_async(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
    ) -> LockRangeFuture<'_, ()> {
        self.tree.lock_range_async(range, mode)
    }

    /// This lock, in the lock class `name` (see [`XArray::with_class`]).
    pub fn with_class(self, name: &'static str) -> Self {
        RangeLock {
            tree: self.tree.with_class(name),
        }
    }

    /// Like [`lock`](Self::lock), at nesting level `subclass` of this lock's class (see
    /// [`XArray::lock_range_nested`]).
    pub fn lock_nested(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
        subclass: u8,
    ) -> Result<RangeLockGuard<'_>, LockError> {
        self.tree.lock_range_nested(range, mode, subclass)
    }

    /// Locks `range` in `mode` if that needs no waiting.
    pub fn try_lock(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
    ) -> Result<RangeLockGuard<'_>, LockError> {
        self.tree.try_lock_range(range, mode)
    }

    /// Locks `range` in `mode`, waiting at most `timeout`.
    pub fn lock_timeout(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<RangeLockGuard<'_>, LockError> {
        self.tree.lock_range_timeout(range, mode, timeout)
    }

    /// How `index` is held: `None` if unlocked, else the mode and the holder count. A
    /// count of 0 means *reserved*: its holders left while acquirers were queued on it,
    /// and it is kept for them (newcomers queue behind them).
    pub fn holders(&self, index: u64) -> Option<(LockMode, u64)> {
        match self.tree.get(index) {
            Entry::Locked { mode, holders } => Some((mode, holders)),
            _ => None,
        }
    }

    /// Whether no index is locked (and no waiter holds a reservation).
    pub fn is_unlocked(&self) -> bool {
        self.tree.is_empty()
    }

    /// Bytes of tree nodes in use (lock entries of short ranges live in nodes).
    pub fn memory_usage(&self) -> usize {
        self.tree.memory_usage()
    }
}

impl fmt::Debug for RangeLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeLock")
            .field("unlocked", &self.is_unlocked())
            .finish_non_exhaustive()
    }
}
