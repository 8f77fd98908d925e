//! The sectors edits clear, for the fsync check.
//!
//! A truncate or hole punch may discard dirty data (a completed buffered write) before it
//! writes its own version there, so a write-back that overlaps it in time is not checked
//! on those sectors. [`Edits`] logs the edits in progress and the latest ones; a
//! write-back takes an [`EditWindow`] when it begins and asks, when it ends, which
//! sectors edits overlapping it cleared.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// The edits in progress and those started lately, shared by a run's threads.
#[derive(Default)]
pub(super) struct Edits {
    log: Mutex<EditLog>,
}

/// The log behind [`Edits`]' mutex.
#[derive(Default)]
struct EditLog {
    /// Edits started so far (each one's number).
    started: u64,
    /// The edits in progress: number and cleared sectors.
    active: Vec<(u64, core::ops::Range<u64>)>,
    /// The latest edits, oldest first, at most [`EditLog::RECENT`].
    recent: VecDeque<(u64, core::ops::Range<u64>)>,
}

impl EditLog {
    const RECENT: usize = 1024;

    fn lock(log: &Mutex<EditLog>) -> MutexGuard<'_, EditLog> {
        log.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// What a write-back must not check: the edits in progress when it began, and the
/// number of the first edit that may start after.
pub(super) struct EditWindow {
    active: Vec<core::ops::Range<u64>>,
    next: u64,
}

impl Edits {
    /// Records an edit of `sectors` from now until the guard drops.
    pub(super) fn start(&self, sectors: core::ops::Range<u64>) -> EditInFlight<'_> {
        let mut log = EditLog::lock(&self.log);
        let number = log.started;
        log.started += 1;
        log.active.push((number, sectors.clone()));
        log.recent.push_back((number, sectors));
        if log.recent.len() > EditLog::RECENT {
            log.recent.pop_front();
        }
        EditInFlight {
            log: &self.log,
            number,
        }
    }

    /// The edits a write-back starting now overlaps so far.
    pub(super) fn window(&self) -> EditWindow {
        let log = EditLog::lock(&self.log);
        EditWindow {
            active: log.active.iter().map(|(_, r)| r.clone()).collect(),
            next: log.started,
        }
    }

    /// The sectors that edits overlapping `window` (a write-back that began then and
    /// ends now) cleared, or `None` if too many edits started meanwhile to know.
    pub(super) fn since(&self, window: EditWindow) -> Option<Vec<core::ops::Range<u64>>> {
        let log = EditLog::lock(&self.log);
        let known_from = log.recent.front().map_or(log.started, |(n, _)| *n);
        if window.next < known_from {
            return None;
        }
        let mut ranges = window.active;
        ranges.extend(
            log.recent
                .iter()
                .filter(|(n, _)| *n >= window.next)
                .map(|(_, r)| r.clone()),
        );
        Some(ranges)
    }
}

/// An edit in progress (see [`Edits::start`]).
pub(super) struct EditInFlight<'a> {
    log: &'a Mutex<EditLog>,
    number: u64,
}

impl Drop for EditInFlight<'_> {
    fn drop(&mut self) {
        let mut log = EditLog::lock(self.log);
        log.active.retain(|(n, _)| *n != self.number);
    }
}
