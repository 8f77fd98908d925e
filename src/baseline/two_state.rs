//! bcachefs's two-state lock (`two_state_shared_lock`), as its page cache uses it.
//!
//! One signed counter: positive, that many holders of the *add* state (faults, readahead:
//! anything that adds pages); negative, that many holders of the *block* state (direct
//! IO, truncate: anything that must keep pages from being added). Each state is shared
//! among its own holders and exclusive with the other. A request whose state is held, or
//! that finds the lock free, joins at once with one compare-exchange; otherwise it sleeps
//! until the counter returns to zero and tries again. There is no queue and no fairness:
//! a stream of overlapping holders of one state starves the other for as long as it
//! lasts, which is the behaviour the comparison measures (scenario b).
//!
//! Wake-ups cannot be lost: a sleeper re-tries under the wait mutex before it sleeps, and
//! the release that brings the counter to zero takes that mutex before it notifies.
//!
//! As a [`FileLock`], the block state is shared by direct IO with direct IO, as in
//! bcachefs; truncate and hole punch also take the inode's rw lock (`i_rwsem`) exclusive
//! and direct IO takes it shared, since two-state alone would let an edit run beside a
//! direct write or another edit over the same blocks.

use core::ops::RangeInclusive;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Condvar, Mutex, RwLock};

use super::file_lock::{Access, FileLock, RwFileGuard};

/// The two states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwoState {
    /// Adding pages (faults, readahead).
    Add,
    /// Blocking page additions (direct IO, truncate).
    Block,
}

impl TwoState {
    /// The counter step of one holder.
    fn step(self) -> i64 {
        match self {
            TwoState::Add => 1,
            TwoState::Block => -1,
        }
    }
}

/// bcachefs's two-state shared lock: one signed counter, positive for holders of the
/// add state, negative for holders of the block state; each state shared among its own
/// holders and exclusive with the other; no queue and no fairness. As a [`FileLock`]
/// it also carries the inode rw lock that orders edits with direct IO.
#[derive(Debug, Default)]
pub struct TwoStateLock {
    /// Positive: add holders; negative: block holders; zero: free.
    count: AtomicI64,
    sleepers: Mutex<()>,
    wake: Condvar,
    /// The inode lock that orders edits with direct IO (the [`FileLock`] use only).
    inode: RwLock<()>,
}

/// A [`TwoStateLock`] held as a [`FileLock`]: the state, and the inode lock where the
/// access needs it.
#[derive(Debug)]
pub struct TwoStateFileGuard<'a> {
    // Field order is drop order: the state goes first, then the inode lock.
    _state: Option<TwoStateGuard<'a>>,
    _inode: RwFileGuard<'a>,
}

/// A held state of a [`TwoStateLock`]; dropping it releases.
#[derive(Debug)]
#[must_use = "the state is released as soon as the guard is dropped"]
pub struct TwoStateGuard<'a> {
    lock: &'a TwoStateLock,
    state: TwoState,
}

impl TwoStateLock {
    /// A free lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins `state` if it is held or the lock is free.
    pub fn try_lock(&self, state: TwoState) -> Option<TwoStateGuard<'_>> {
        let step = state.step();
        let mut count = self.count.load(Ordering::Relaxed);
        loop {
            if count != 0 && count.signum() != step {
                return None;
            }
            match self.count.compare_exchange_weak(
                count,
                count + step,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(TwoStateGuard { lock: self, state }),
                Err(now) => count = now,
            }
        }
    }

    /// Joins `state`, sleeping while the other state is held.
    pub fn lock(&self, state: TwoState) -> TwoStateGuard<'_> {
        if let Some(guard) = self.try_lock(state) {
            return guard;
        }
        // The mutex guards no data: a poisoned one is as good as a clean one.
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(guard) = self.try_lock(state) {
                return guard;
            }
            sleepers = self.wake.wait(sleepers).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The holders now: positive for the add state, negative for the block state.
    pub fn holders(&self) -> i64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for TwoStateGuard<'_> {
    fn drop(&mut self) {
        let step = self.state.step();
        if self.lock.count.fetch_sub(step, Ordering::Release) == step {
            // The last holder of its state: the other state may go now.
            drop(self.lock.sleepers.lock().unwrap_or_else(|p| p.into_inner()));
            self.lock.wake.notify_all();
        }
    }
}

impl FileLock for TwoStateLock {
    const NAME: &'static str = "two-state";
    type Guard<'a> = TwoStateFileGuard<'a>;

    fn acquire(&self, _pages: RangeInclusive<u64>, access: Access) -> Self::Guard<'_> {
        // The inode lock first (it is the outer lock in Linux), then the state.
        let inode = match access {
            Access::Read | Access::Write | Access::Create => RwFileGuard::Free,
            Access::Block => {
                RwFileGuard::Shared(self.inode.read().unwrap_or_else(|p| p.into_inner()))
            }
            Access::Edit => {
                RwFileGuard::Exclusive(self.inode.write().unwrap_or_else(|p| p.into_inner()))
            }
        };
        let state = match access {
            Access::Read | Access::Write => None,
            Access::Create => Some(self.lock(TwoState::Add)),
            Access::Block | Access::Edit => Some(self.lock(TwoState::Block)),
        };
        TwoStateFileGuard {
            _state: state,
            _inode: inode,
        }
    }
}
