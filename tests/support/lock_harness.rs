//! Tools shared by the concurrency tests (`tests/lock/stress.rs`, `tests/lock/fairness.rs`,
//! `tests/lock/safety/`, `tests/lock/wait_table.rs`, and `tests/xarray/stress.rs` for the
//! generator, budget, watchdog and value signatures): a small deterministic generator,
//! the run-time budget taken from `RANGELOCK_STRESS_SECS`, a watchdog, values that name
//! the range store that wrote them, and waits that give up after [`STALL`] instead of
//! hanging.
//!
//! Mounted by `tests/support/mod.rs`; each test binary uses only part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rangelock::{LockError, LockMode, XArray};

/// The stress watchdog aborts, and [`wait_for`] and [`until_queued`] give up, after this
/// long without progress.
pub const STALL: Duration = Duration::from_secs(20);
/// Stress ranges mostly lie in `0..WINDOW`.
pub const WINDOW: u64 = 256;

/// One step of splitmix64, a small deterministic generator: advances `state` and returns
/// the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64: a small deterministic generator, one per thread.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn mode(&mut self) -> LockMode {
        if self.below(3) == 0 {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        }
    }

    /// A random index of `first..=last`.
    pub fn within(&mut self, first: u64, last: u64) -> u64 {
        match (last - first).checked_add(1) {
            Some(len) => first + self.below(len),
            None => self.next(),
        }
    }

    /// Mostly a short range of the window; sometimes a huge one, or all of `u64`.
    pub fn range(&mut self) -> (u64, u64) {
        match self.below(64) {
            0 => (0, u64::MAX),
            1 => (0, (1 << 40) - 1),
            2 => (WINDOW / 2, u64::MAX),
            3 => (0, WINDOW - 1),
            _ => {
                let first = self.below(WINDOW);
                let len = match self.below(4) {
                    0 => 0,
                    1 => self.below(8),
                    2 => self.below(64),
                    _ => self.below(WINDOW),
                };
                (first, (first + len).min(WINDOW - 1))
            }
        }
    }

    /// A short busy pause, sometimes a yield, rarely a sleep.
    pub fn pause(&mut self) {
        match self.below(16) {
            0..=7 => {}
            8..=12 => {
                for _ in 0..self.below(256) {
                    std::hint::spin_loop();
                }
            }
            13..=14 => thread::yield_now(),
            _ => thread::sleep(Duration::from_micros(50)),
        }
    }
}

/// When the threads stop: at a deadline, or after a fixed number of rounds under Miri.
#[derive(Clone, Copy)]
pub enum Budget {
    Until(Instant),
    Rounds(u64),
}

impl Budget {
    pub fn new(rounds_under_miri: u64) -> Budget {
        if cfg!(miri) {
            return Budget::Rounds(rounds_under_miri);
        }
        Budget::Until(Instant::now() + Duration::from_secs_f64(stress_secs()))
    }

    /// Whether round `round` (counted from 0) should run.
    pub fn allows(&self, round: u64) -> bool {
        match *self {
            Budget::Until(deadline) => round == 0 || Instant::now() < deadline,
            Budget::Rounds(rounds) => round < rounds,
        }
    }
}

pub fn stress_secs() -> f64 {
    std::env::var("RANGELOCK_STRESS_SECS")
        .ok()
        .map(|s| s.parse().expect("RANGELOCK_STRESS_SECS must be a number"))
        .unwrap_or(1.0)
}

/// Aborts the process, after printing `report(progress so far)`, if `progress` stops
/// moving for `stall` before `done` is set: a deadlock, livelock or lost wake-up would
/// otherwise hang the test run.
pub fn watchdog(
    progress: &AtomicU64,
    done: &AtomicBool,
    stall: Duration,
    report: impl Fn(u64) -> String,
) {
    let mut last = progress.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while !done.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(50));
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() > stall {
            eprintln!("{}", report(now));
            std::process::abort();
        }
    }
}

/// The value a range store over `first..=last` writes (both below 2^32), so a reader
/// can check that an index holding it lies in that range.
pub fn signature(first: u64, last: u64) -> u64 {
    first << 32 | last
}

/// Asserts that `value` was written by a store whose range contains `first..=last`.
#[track_caller]
pub fn check_value(value: u64, first: u64, last: u64) {
    let (from, to) = (value >> 32, value & 0xffff_ffff);
    assert!(
        from <= first && last <= to,
        "indices {first}..={last} hold value {value:#x}, written over {from}..={to}"
    );
}

/// Polls `done` (with short sleeps) until it holds; panics after [`STALL`]. Only a
/// guard against hanging: the tests never assert on how long anything took.
#[track_caller]
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < STALL, "gave up waiting for {what}");
        thread::sleep(Duration::from_micros(200));
    }
}

/// Spins (yielding) until a Shared `try_lock_range` of `first..=last` fails with
/// `WouldBlock`: a conflicting acquirer is queued there (the caller makes sure nothing
/// else can make it fail). Panics after [`STALL`].
#[track_caller]
pub fn until_queued<const S: usize>(xa: &XArray<u64, S>, first: u64, last: u64) {
    let start = Instant::now();
    loop {
        match xa.try_lock_range(first..=last, LockMode::Shared) {
            Ok(probe) => drop(probe),
            Err(LockError::WouldBlock) => return,
            Err(e) => panic!("probe of {first}..={last}: {e}"),
        }
        assert!(
            start.elapsed() < STALL,
            "no conflicting acquirer queued at {first}..={last}"
        );
        thread::yield_now();
    }
}
