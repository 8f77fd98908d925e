//! The consistency oracle: every read is checked against the writes that completed
//! before it began.
//!
//! Each write takes a fresh version from one counter *while it holds the exclusion that
//! orders it with every other write of the same sector*: a buffered write inside its
//! callback (under the page lock), a direct write inside its IO (under the direct IO's
//! lock), an edit inside its on-disk edit. In a correct page cache the value a sector
//! shows (the cached page's if it is cached, the device's otherwise) therefore only ever
//! moves to higher versions. When a write returns, its version is folded into the
//! sector's *completed* maximum.
//!
//! A read snapshots the completed maximum of each sector it reads before it starts; if
//! it returns a lower version for any sector, it missed a write that had completed before
//! it began: a **stale read**. (The workload never runs two writes of one sector that
//! the cache lets overlap, such as two direct writes, so the rule has no false alarms.)
//!
//! When the threads have stopped, everything is written back and every sector on the
//! device must hold at least its completed maximum; a lower one is a **lost write**.

use std::sync::atomic::{AtomicU64, Ordering};

/// Per-sector completed versions and the version counter.
#[derive(Debug)]
pub struct Oracle {
    next: AtomicU64,
    completed: Box<[AtomicU64]>,
}

impl Oracle {
    /// An oracle for `sectors` sectors, nothing written.
    pub fn new(sectors: u64) -> Oracle {
        Oracle {
            next: AtomicU64::new(1),
            completed: (0..sectors).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, sector: u64) -> Option<&AtomicU64> {
        usize::try_from(sector)
            .ok()
            .and_then(|s| self.completed.get(s))
    }

    /// A fresh version (call under the write's exclusion).
    pub fn next_version(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// The completed maximum of `sector` (0 past the oracle's sectors).
    pub fn floor(&self, sector: u64) -> u64 {
        self.slot(sector).map_or(0, |s| s.load(Ordering::SeqCst))
    }

    /// Records that a write of `version` to `sectors` has returned.
    pub fn complete(&self, sectors: core::ops::Range<u64>, version: u64) {
        for s in sectors {
            if let Some(slot) = self.slot(s) {
                slot.fetch_max(version, Ordering::SeqCst);
            }
        }
    }

    /// How many of `seen` (versions of consecutive sectors from `first`) are below the
    /// `floors` snapshotted before the read began.
    pub fn stale(floors: &[u64], seen: &[u64]) -> u64 {
        floors.iter().zip(seen).filter(|(f, s)| s < f).count() as u64
    }

    /// The number of sectors.
    pub fn sectors(&self) -> u64 {
        self.completed.len() as u64
    }
}
