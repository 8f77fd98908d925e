//! A classic interval range lock, one mutex around
//! the set of granted ranges, in the style of Bueso's Linux `range_lock` and ZFS's
//! `zfs_rangelock` (a spinlock or mutex protecting an interval tree or AVL tree of
//! granted segments, waiters sleeping until the ranges they overlap are released).
//!
//! * **State**: one [`Mutex`] around the granted ranges, a `BTreeMap` keyed by
//!   `(start, ticket)` (the ticket makes equal starts distinct), and the waiting requests
//!   in ticket order. A [`Condvar`] is where waiters sleep.
//! * **Acquire**: lock the mutex, take the next ticket; the request is granted when no
//!   granted range overlaps it in a conflicting mode *and* no earlier waiter (smaller
//!   ticket) does: FIFO among overlapping conflicting requests, so a stream of Shared
//!   requests cannot starve a queued Exclusive one. Otherwise it queues and waits on the
//!   condvar, re-checking at every wake-up.
//! * **Release**: lock the mutex, remove the range, `notify_all` when anyone waits (every
//!   waiter re-checks; no state change other than a release can unblock a waiter: a
//!   waiter that gets granted goes on conflicting with the same later waiters).
//! * **Overlap search**: the map is ordered by start, and the longest granted range is
//!   tracked (reset when the map empties), so the ranges that may overlap `[s, e]` are
//!   those starting in `[s - longest, e]`: a `BTreeMap::range` scan, O(log n + k) when
//!   ranges are short, like an augmented interval tree.
//!
//! The uncontended cost is one mutex round trip to acquire, one to release, a B-tree
//! insert and a remove. The map keeps its (emptied) root leaf, so a steady stream of
//! lock/unlock on an idle lock does not allocate.
//!
//! It is the `interval` strategy of the comparison (as a [`FileLock`]: page creation
//! Exclusive, direct IO Shared, edits Exclusive, over their pages) and the peer of
//! `compare/benches/range_lock.rs`.

use core::ops::RangeInclusive;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::file_lock::{Access, FileLock};
use rangelock::lock::LockMode;

/// A requested or granted range `[start, end]` (inclusive).
#[derive(Clone, Copy, Debug)]
struct Request {
    start: u64,
    end: u64,
    mode: LockMode,
}

impl Request {
    /// Whether `self` and `other` cannot be held at the same time.
    fn conflicts(&self, other: &Request) -> bool {
        self.start <= other.end && other.start <= self.end && !self.mode.is_compatible(other.mode)
    }
}

#[derive(Debug, Default)]
struct State {
    next_ticket: u64,
    /// Granted ranges by `(start, ticket)`, with their end and mode.
    granted: BTreeMap<(u64, u64), (u64, LockMode)>,
    /// An upper bound of `end - start` over `granted` (0 when it is empty).
    longest: u64,
    /// Waiting requests in arrival (ticket) order.
    waiting: BTreeMap<u64, Request>,
}

impl State {
    /// Whether the request with `ticket` may be granted now: no conflicting granted range,
    /// no conflicting waiter that arrived before it.
    fn grantable(&self, ticket: u64, req: &Request) -> bool {
        let from = (req.start.saturating_sub(self.longest), 0);
        let blocked_by_holder = self
            .granted
            .range(from..=(req.end, u64::MAX))
            .any(|(&(start, _), &(end, mode))| req.conflicts(&Request { start, end, mode }));
        if blocked_by_holder {
            return false;
        }
        !self
            .waiting
            .range(..ticket)
            .any(|(_, earlier)| req.conflicts(earlier))
    }

    fn grant(&mut self, ticket: u64, req: Request) {
        self.granted
            .insert((req.start, ticket), (req.end, req.mode));
        self.longest = self.longest.max(req.end - req.start);
    }
}

/// A mutex + ordered-map interval range lock over `u64` indices.
#[derive(Debug, Default)]
pub struct IntervalLock {
    state: Mutex<State>,
    wake: Condvar,
}

/// A granted range of an [`IntervalLock`]; dropping it releases the range.
#[derive(Debug)]
#[must_use = "the range is unlocked as soon as the guard is dropped"]
pub struct IntervalGuard<'a> {
    lock: &'a IntervalLock,
    key: (u64, u64),
}

impl IntervalLock {
    /// A lock with nothing granted.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state completes before anything in it can panic.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Locks `[start, end]` in `mode`, waiting as long as it takes (behind every earlier
    /// request that conflicts with it).
    ///
    /// # Panics
    ///
    /// If `start > end`.
    pub fn lock(&self, start: u64, end: u64, mode: LockMode) -> IntervalGuard<'_> {
        assert!(start <= end, "empty range");
        let req = Request { start, end, mode };
        let mut state = self.state();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        if !state.grantable(ticket, &req) {
            state.waiting.insert(ticket, req);
            while !state.grantable(ticket, &req) {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(|poison| poison.into_inner());
            }
            state.waiting.remove(&ticket);
        }
        state.grant(ticket, req);
        IntervalGuard {
            lock: self,
            key: (start, ticket),
        }
    }

    /// Requests queued now.
    pub fn waiting(&self) -> usize {
        self.state().waiting.len()
    }

    /// Whether nothing is granted or queued.
    pub fn is_idle(&self) -> bool {
        let state = self.state();
        state.granted.is_empty() && state.waiting.is_empty() && state.longest == 0
    }
}

impl Drop for IntervalGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.lock.state();
        let removed = state.granted.remove(&self.key);
        debug_assert!(removed.is_some(), "a guard's range is granted");
        if state.granted.is_empty() {
            state.longest = 0;
        }
        let wake = !state.waiting.is_empty();
        drop(state);
        if wake {
            self.lock.wake.notify_all();
        }
    }
}

impl FileLock for IntervalLock {
    const NAME: &'static str = "interval";
    type Guard<'a> = Option<IntervalGuard<'a>>;

    fn acquire(&self, pages: RangeInclusive<u64>, access: Access) -> Self::Guard<'_> {
        let (start, end) = pages.into_inner();
        match access {
            // Hits and changes to cached pages: the page lock orders them.
            Access::Read | Access::Write => None,
            // Two modes only: creation conflicts with direct IO, so one of them is
            // Exclusive; direct IO shares with direct IO, as lock entries let it.
            Access::Create | Access::Edit => Some(self.lock(start, end, LockMode::Exclusive)),
            Access::Block => Some(self.lock(start, end, LockMode::Shared)),
        }
    }
}
