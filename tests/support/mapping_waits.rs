//! Waiting helpers of the page-cache race tests (`tests/mapping_edits.rs`,
//! `tests/mapping_writeback.rs`): a watchdog limit, a `'static` file for spawned threads,
//! polling for a state with a deadline, and whether a page is locked.

#![allow(dead_code)]

use std::thread;
use std::time::{Duration, Instant};

use rangelock::mapping::Mapping;
use rangelock::Entry;

/// How long a scenario may take before it counts as a hang.
pub const WATCHDOG: Duration = Duration::from_secs(20);

/// A file that spawned (unscoped) threads can share.
pub fn leak<P: Send + Sync + 'static>() -> &'static Mapping<P> {
    Box::leak(Box::new(Mapping::new()))
}

/// Polls `f` until it holds; fails after [`WATCHDOG`].
pub fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Whether page `index` holds a lock entry.
pub fn locked<P: Send + Sync + 'static>(file: &Mapping<P>, index: u64) -> bool {
    matches!(file.pages().get(index), Entry::Locked { .. })
}
