//! Range locks under concurrency: fairness, counted in grants.
//!
//! A queued Exclusive acquirer under a stream of Shared lockers, and a page fault under a
//! stream of direct-IO lockers. The bound is counted in grants, never in time: once the
//! conflicting request is *known* to be queued (a probe's `try_lock_range` starts failing
//! with `WouldBlock` because it would have to queue behind it), at most one grant per
//! stream thread (one already granted but not yet counted) may be counted before the
//! request's own grant. Each test runs at least 50 rounds, more while
//! `RANGELOCK_STRESS_SECS` (default 1) lasts, at most 20 000 (3 under Miri).

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use rangelock::{LockMode, XArray};

use crate::support::lock_harness::{until_queued, Budget, Rng};

/// Shared lockers that keep the index `AT` (or the DIO range) busy.
const STREAM: u64 = 3;

/// How many rounds a fairness test runs: at least 50, more while the stress budget lasts.
fn fairness_rounds() -> impl FnMut(u64) -> bool {
    let budget = Budget::new(3);
    move |round| {
        if cfg!(miri) {
            budget.allows(round)
        } else {
            round < 50 || (budget.allows(round) && round < 20_000)
        }
    }
}

/// (i) An Exclusive acquirer queued under a stream of Shared lockers whose ranges all
/// contain its index is granted before any of them is granted again: the Shared grants
/// counted between the moment it is known to be queued and its grant are at most one per
/// stream thread (grants that were made before, but counted after).
#[test]
fn fairness_exclusive_under_shared_stream() {
    const AT: u64 = 32;
    let xa: XArray<u64> = XArray::new();
    let grants = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (mut worst, mut worst_from_call, mut rounds) = (0, 0, 0);
    thread::scope(|s| {
        for t in 0..STREAM {
            let (xa, grants, stop) = (&xa, &grants, &stop);
            s.spawn(move || {
                let mut rng = Rng(0xfa1_0000 + t);
                while !stop.load(Ordering::Relaxed) {
                    let first = rng.below(AT + 1);
                    let last = AT + rng.below(40);
                    let g = xa.lock_range(first..=last, LockMode::Shared).unwrap();
                    grants.fetch_add(1, Ordering::SeqCst);
                    rng.pause();
                    drop(g);
                }
            });
        }
        let mut go_on = fairness_rounds();
        while go_on(rounds) {
            rounds += 1;
            // A detached Shared holder keeps `AT` busy until the Exclusive request is
            // queued (detached: the probe below runs on this thread and must not count
            // as a recursive Shared holder).
            let pin = xa.lock_range(AT..=AT, LockMode::Shared).unwrap().detach();
            let (xa_ref, grants_ref) = (&xa, &grants);
            let exclusive = s.spawn(move || {
                let called = grants_ref.load(Ordering::SeqCst);
                let g = xa_ref.lock_range(AT..=AT, LockMode::Exclusive).unwrap();
                let granted = grants_ref.load(Ordering::SeqCst);
                drop(g);
                (called, granted)
            });
            until_queued(&xa, AT, AT);
            let queued = grants.load(Ordering::SeqCst);
            drop(pin);
            let (called, granted) = exclusive.join().unwrap();
            let after_queued = granted - queued;
            worst = worst.max(after_queued);
            worst_from_call = worst_from_call.max(granted - called);
            assert!(
                after_queued <= STREAM,
                "round {rounds}: {after_queued} Shared grants overtook a queued Exclusive request"
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    println!(
        "Exclusive under {STREAM} Shared lockers, {rounds} rounds: at most {worst} Shared \
         grants counted after it was queued (bound {STREAM}); at most {worst_from_call} from \
         its call (includes the time before it queued)"
    );
    assert!(xa.is_empty());
}

/// (ii) A page fault (`get_or_fill`) on an index that a stream of direct-IO Shared
/// lockers (`lock_range(I..I + 8)`) keeps locked, and whose every fill they evict at
/// once: once the fault is known to be queued, at most one DIO grant per stream thread is
/// counted before the fault holds the index (measured inside its fill).
#[test]
fn fairness_fault_under_dio_stream() {
    const I: u64 = 40;
    let xa: XArray<u64> = XArray::new();
    let grants = AtomicU64::new(0);
    let evictions = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (mut worst, mut worst_from_call, mut rounds) = (0, 0, 0);
    thread::scope(|s| {
        for t in 0..STREAM {
            let (xa, grants, evictions, stop) = (&xa, &grants, &evictions, &stop);
            s.spawn(move || {
                let mut rng = Rng(0xd10_0000 + t);
                while !stop.load(Ordering::Relaxed) {
                    let g = xa.lock_range(I..I + 8, LockMode::Shared).unwrap();
                    grants.fetch_add(1, Ordering::SeqCst);
                    for e in g.evicted() {
                        assert_eq!(e.entry().item().map(|p| **p), Some(I));
                        evictions.fetch_add(1, Ordering::Relaxed);
                    }
                    rng.pause();
                    drop(g);
                }
            });
        }
        let mut go_on = fairness_rounds();
        while go_on(rounds) {
            rounds += 1;
            let pin = xa.lock_range(I..I + 8, LockMode::Shared).unwrap().detach();
            let (xa_ref, grants_ref) = (&xa, &grants);
            let fault = s.spawn(move || {
                let called = grants_ref.load(Ordering::SeqCst);
                let mut filled_at = None;
                let page = xa_ref
                    .get_or_fill(I, |i| {
                        filled_at = Some(grants_ref.load(Ordering::SeqCst));
                        Ok::<_, ()>(Arc::new(i))
                    })
                    .unwrap();
                assert_eq!(*page, I);
                (
                    called,
                    filled_at.expect("the pinned index had no page: the fault fills"),
                )
            });
            until_queued(&xa, I, I + 7);
            let queued = grants.load(Ordering::SeqCst);
            drop(pin);
            let (called, filled) = fault.join().unwrap();
            let after_queued = filled - queued;
            worst = worst.max(after_queued);
            worst_from_call = worst_from_call.max(filled - called);
            assert!(
                after_queued <= STREAM,
                "round {rounds}: {after_queued} DIO grants overtook a queued fault"
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    println!(
        "fault under {STREAM} DIO lockers, {rounds} rounds: at most {worst} DIO grants \
         counted after it was queued (bound {STREAM}); at most {worst_from_call} from its \
         call; {} filled pages evicted by DIO",
        evictions.load(Ordering::Relaxed)
    );
    // The last fill may still be cached; the DIO range evicts it.
    drop(xa.lock_range(I..I + 8, LockMode::Shared).unwrap());
    assert!(xa.is_empty());
}
