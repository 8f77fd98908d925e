//! Waiting helpers of the page-cache race tests (`tests/mapping/edits.rs`,
//! `tests/mapping/writeback.rs`): a watchdog limit, a `'static` file for spawned threads,
//! polling for a state with a deadline, whether a page is locked, running a scenario
//! under the watchdog, and holding a page lock with a blocked write-back.

#![allow(dead_code)]

use std::sync::mpsc;
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

/// Runs `f` on a thread; fails if it is not done within the watchdog.
pub fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(WATCHDOG).expect("hang (watchdog)")
}

/// Holds page `index`'s page lock on another thread (a write-back whose device write
/// blocks) until the returned sender is used. Returns once the lock is held.
pub fn hold_page_lock(file: &'static Mapping<u32>, index: u64) -> mpsc::Sender<()> {
    file.write(index, |_| Ok::<_, ()>(0), |d| *d = 7).unwrap();
    let (in_tx, in_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        file.writeback(index..=index, |_, _| {
            in_tx.send(()).unwrap();
            go_rx.recv_timeout(WATCHDOG).unwrap();
            Ok::<_, ()>(())
        })
        .unwrap();
    });
    in_rx.recv_timeout(WATCHDOG).unwrap();
    go_tx
}
