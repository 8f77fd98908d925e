//! Resident memory under sustained lock churn (issue 12): a million lock and unlock
//! cycles of the worst-aligned ranges, of unaligned 256-index ranges and of single
//! indices, on one tree, must leave the process's resident set within a few MB of what
//! it was after the first thousand. Nodes and lock records that a lock builds are
//! recycled (the tree's node slab, the record pool) instead of piling up behind the
//! epoch.
//!
//! Linux only (the resident set is read from `/proc/self/statm`); elsewhere the test
//! says so and passes.
//!
//! A binary of its own, not a module of `tests/lock/`: the resident set is the whole
//! process's, and any test running beside this one would move it.

#![cfg(not(loom))]

use rangelock::{LockMode, XArray};

/// Resident bytes of this process, if the platform says.
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// How far the resident set may grow after warm-up.
const SLACK: u64 = 4 << 20;

/// Lock and unlock cycles per tree: a million in an optimised build, a tenth of that in
/// a debug one (CI's `cargo test`; a leak of the size this test was written against, a
/// node or more per cycle, still shows as tens of MB). `RANGELOCK_RSS_CYCLES` overrides.
fn cycles() -> u64 {
    std::env::var("RANGELOCK_RSS_CYCLES")
        .ok()
        .map(|s| s.parse().expect("RANGELOCK_RSS_CYCLES must be a number"))
        .unwrap_or(if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        })
}

/// One cycle `n`: a worst-aligned range, an unaligned 256-index range or one high index,
/// in turn; none of them covers index 0 or `u64::MAX`.
fn cycle(xa: &XArray<u64>, n: u64) {
    let i = 1 + 2 * (n % 1000);
    let range = match n % 3 {
        0 => i..=u64::MAX - i,
        1 => {
            let first = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) | 1;
            first..=first + 255
        }
        _ => {
            let at = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 1) | 1;
            at..=at
        }
    };
    drop(xa.lock_range(range, LockMode::Exclusive).unwrap());
}

/// Runs the cycles on a tree holding `items`, and checks the resident set.
fn churn(items: &[u64]) {
    let Some(_) = rss() else {
        eprintln!("skipped: no /proc/self/statm on this platform");
        return;
    };
    let xa: XArray<u64> = XArray::new();
    for &i in items {
        xa.store(i, std::sync::Arc::new(i)).unwrap();
    }
    for n in 0..1_000 {
        cycle(&xa, n);
    }
    let warm = rss().unwrap();
    let total = cycles();
    for n in 1_000..total {
        cycle(&xa, n);
    }
    let after = rss().unwrap();
    eprintln!(
        "items {items:?}: resident set after 1,000 cycles {} KiB, after {total} {} KiB; \
         tree nodes {}, cached {}",
        warm >> 10,
        after >> 10,
        xa.node_count(),
        xa.cached_nodes()
    );
    assert!(
        after <= warm + SLACK,
        "the resident set grew by {} KiB over {total} lock cycles",
        (after - warm) >> 10
    );
    xa.check_invariants().unwrap();
    assert_eq!(xa.len(), items.len());
}

/// Three trees in turn, in one test (the resident set is the process's: tests running
/// beside it would blur it): a root that is one leaf, so that every lock beyond its reach
/// grows the tree to full height and its release shrinks it again (about ten nodes built
/// and retired per cycle); items at both ends, a full-height tree that locks build and
/// free nodes below; and an empty tree, where locks are head records or push down into
/// fresh roots.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads /proc/self/status, which Miri's isolation forbids (and the resident set \
              of the interpreter would say nothing about the crate); tests/lock_memory.rs \
              covers the lock paths' allocations under Miri"
)]
fn lock_churn_keeps_the_resident_set_flat() {
    churn(&[0]);
    churn(&[0, u64::MAX]);
    churn(&[]);
}
