//! [`DioCount`]: a per-file count of direct IOs in flight, the alternative to range locks
//! proposed in the same discussion (Linux's `i_dio_count` with `inode_dio_wait`, used as
//! the exclusion between direct IO and page creation).
//!
//! # The protocol
//!
//! | who | takes | while |
//! |---|---|---|
//! | a direct IO (and an edit: truncate, hole punch) | [`DioCount::begin_dio`]: one more in flight | its whole IO |
//! | a page-in (fault miss, buffered read or write miss, readahead) | [`DioCount::page_in`]: waits until none is in flight | the insertion of its (locked, still unfilled) pages |
//!
//! * **Exclusion.** The count and the page-ins' insertions are ordered by one mutex: a
//!   page-in inserts only while it holds the mutex with the count at zero, and a direct
//!   IO counts itself under that mutex. So every page a direct IO can find in the index
//!   was inserted before it counted itself (it sees it, and waits on its page lock for
//!   the fill), and no page appears in the file while it is in flight.
//! * **No starvation of buffered IO.** A page-in that finds direct IOs in flight counts
//!   itself as waiting, and a new direct IO does not start while one waits: the direct
//!   IOs in flight drain, the page-in inserts, the new direct IOs go. Without this, a
//!   stream of overlapping direct IOs (the count never at zero) would hold every miss
//!   off for as long as it lasts: the two-state lock's behaviour in scenario b.
//! * **No lost wake-up.** Every waiter re-checks its condition under the mutex before it
//!   sleeps, and whoever changes a condition a waiter sleeps on (the last direct IO out,
//!   the last page-in waiter in) notifies under that mutex.
//!
//! What a page-in holds the mutex for is an index insertion, never a device read: the
//! fill runs after, under the page lock, which a direct IO that finds the page waits on.
//!
//! The module builds alone under loom (`compare/src/sync.rs`), and
//! `compare/tests/loom_dio_count.rs` checks the three claims above.

use core::fmt;

use crate::sync::{self, Condvar, Mutex, MutexGuard};

/// The count and its waiters.
#[derive(Debug, Default)]
pub struct State {
    /// Direct IOs (and edits) in flight.
    in_flight: u64,
    /// Page-ins waiting for `in_flight` to reach zero.
    page_ins_waiting: u64,
}

/// A per-file count of direct IOs in flight, with the page-in wait (see the
/// [module docs](self)).
pub struct DioCount {
    state: Mutex<State>,
    wake: Condvar,
}

impl Default for DioCount {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DioCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = sync::lock(&self.state);
        f.debug_struct("DioCount")
            .field("in_flight", &state.in_flight)
            .field("page_ins_waiting", &state.page_ins_waiting)
            .finish()
    }
}

/// A direct IO in flight; dropping it ends it.
#[derive(Debug)]
#[must_use = "the direct IO ends as soon as the guard is dropped"]
pub struct DioGuard<'a> {
    count: &'a DioCount,
}

/// A page-in's turn: no direct IO is in flight and none can start until it drops.
/// Insert the new pages, then drop it before filling them.
#[must_use = "the turn ends as soon as the guard is dropped"]
pub struct PageIn<'a> {
    _state: MutexGuard<'a, State>,
}

impl fmt::Debug for PageIn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageIn").finish_non_exhaustive()
    }
}

impl DioCount {
    /// No direct IO in flight.
    pub fn new() -> Self {
        DioCount {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    }

    /// Counts a direct IO in flight, first waiting while a page-in waits for the count
    /// to drain (the starvation tweak).
    pub fn begin_dio(&self) -> DioGuard<'_> {
        let mut state = sync::lock(&self.state);
        while state.page_ins_waiting > 0 {
            state = sync::wait(&self.wake, state);
        }
        state.in_flight += 1;
        DioGuard { count: self }
    }

    /// Waits until no direct IO is in flight and returns the page-in's turn.
    pub fn page_in(&self) -> PageIn<'_> {
        let mut state = sync::lock(&self.state);
        if state.in_flight > 0 {
            state.page_ins_waiting += 1;
            while state.in_flight > 0 {
                state = sync::wait(&self.wake, state);
            }
            state.page_ins_waiting -= 1;
            if state.page_ins_waiting == 0 {
                // Direct IOs held off by the tweak may start once this turn ends.
                self.wake.notify_all();
            }
        }
        PageIn { _state: state }
    }

    /// Direct IOs in flight now.
    pub fn in_flight(&self) -> u64 {
        sync::lock(&self.state).in_flight
    }

    /// Page-ins waiting now.
    pub fn page_ins_waiting(&self) -> u64 {
        sync::lock(&self.state).page_ins_waiting
    }
}

impl Drop for DioGuard<'_> {
    fn drop(&mut self) {
        let mut state = sync::lock(&self.count.state);
        state.in_flight -= 1;
        if state.in_flight == 0 && state.page_ins_waiting > 0 {
            self.count.wake.notify_all();
        }
    }
}
