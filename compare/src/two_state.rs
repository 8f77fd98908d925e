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
//! The lock is compiled in loom builds too (alone: the rest of `baseline` is not), and
//! `tests/loom_two_state.rs` checks those two claims. As the comparison's `FileLock` it
//! is `TwoStateFileLock` (`file_lock.rs`), which adds the inode lock.

use core::fmt;

use crate::sync::atomic::{AtomicI64, Ordering};
use crate::sync::{self, Condvar, Mutex};

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
/// holders and exclusive with the other; no queue and no fairness.
pub struct TwoStateLock {
    /// Positive: add holders; negative: block holders; zero: free.
    count: AtomicI64,
    sleepers: Mutex<()>,
    wake: Condvar,
}

impl Default for TwoStateLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TwoStateLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoStateLock")
            .field("holders", &self.holders())
            .finish_non_exhaustive()
    }
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
        TwoStateLock {
            count: AtomicI64::new(0),
            sleepers: Mutex::new(()),
            wake: Condvar::new(),
        }
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
        let mut sleepers = sync::lock(&self.sleepers);
        loop {
            if let Some(guard) = self.try_lock(state) {
                return guard;
            }
            sleepers = sync::wait(&self.wake, sleepers);
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
            drop(sync::lock(&self.lock.sleepers));
            self.lock.wake.notify_all();
        }
    }
}
