//! The rule of the consistency oracle of `tests/mapping/oracle.rs`, and its checks: the
//! logical clock, the versions, the per-sector history, stale reads and fsyncs that lost
//! a write. The threads that drive it are in `tests/support/oracle.rs`.
//!
//! # The rule
//!
//! A global logical clock ticks at the start and at the end of every operation. Every
//! write (direct or buffered; truncate and hole punch write their "zeroes", collapse and
//! insert write every sector from the range's start to the end of the disk, since data
//! moves) has a fresh version and records, when it has completed, its end tick, and per
//! sector `max_start[s]`, the latest start tick of a completed write to `s`. A read
//! (fault, buffered read, direct read) takes `M = max_start[s]` of each of its sectors
//! when it starts. If it returns version `U` for sector `s`, it is *stale* iff `U`'s
//! write has completed and ended before `M`: a write to `s` that started after `U` had
//! finished completed before the read began, so every linearization orders that write
//! between `U` and the read. Version 0 (never written) ended at tick 0. Writes that
//! overlap the read, or each other, never count against it, so the rule holds with any
//! number of concurrent writers per sector.
//!
//! # Fsync
//!
//! A write-back of a page range promises that every buffered write that completed before
//! it began is on the device when it returns. So it takes, when it starts, `M_buf[s]`:
//! the latest start tick of a completed *buffered* write to `s`, for each sector of its
//! range within the disk. When it returns, the sectors are read off the disk at once; a
//! sector holding a version `U` whose write ended before `M_buf[s]` is an *fsync that
//! lost a write*. Why no legitimate interleaving is flagged: once the buffered write `W`
//! behind `M_buf[s]` has reached the device, nothing puts data older than `W` back on
//! `s`. Page writes (write-back, hand-offs, an edit's surviving pages) write a page
//! that holds `W` or newer (a page at that index filled later reads the disk after `W`'s
//! page was flushed or discarded); direct writes and edits (whose "zeroes" stand for
//! whatever they did to `W`'s data: discard it, move it) write their own version, which
//! is either still in progress (never counted) or ended after `W` started (it overlapped
//! `W`, or followed it). That holds past the end of file too: a truncate that dropped
//! `W`'s page wrote its "zeroes" there. The direct and edit writes are left out of
//! `M_buf` only because they are on the device by their own doing, not by the
//! write-back's. A write-back that fails is counted and not checked.
//!
//! After the threads stop and a final write-back of everything, the rule, with `M` over
//! all completed writes, checks every sector of the disk within the end of file: a
//! sector holding data older than a completed write is a *lost write*.
#![allow(dead_code)]

use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::oracle::Kind;
use super::page_cache::SECTORS;

/// How many violations are described in full.
const DETAILS: usize = 8;
const CHUNK_BITS: u32 = if cfg!(miri) { 8 } else { 16 };
const CHUNKS: usize = 1 << 12;

/// Start and end tick of every version, in chunks allocated on first use (lock-free, so
/// the oracle does not serialise the threads it watches). Ticks fit in 32 bits.
struct Versions {
    chunks: Box<[OnceLock<Box<[AtomicU32]>>]>,
}

impl Versions {
    const CAPACITY: u64 = (CHUNKS as u64) << CHUNK_BITS;

    fn new() -> Self {
        Versions {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The (start, end) ticks of `version`; 0 while unset.
    fn times(&self, version: u64) -> (&AtomicU32, &AtomicU32) {
        let chunk = self.chunks[(version >> CHUNK_BITS) as usize]
            .get_or_init(|| (0..2 << CHUNK_BITS).map(|_| AtomicU32::new(0)).collect());
        let at = 2 * (version & ((1 << CHUNK_BITS) - 1)) as usize;
        (&chunk[at], &chunk[at + 1])
    }
}

/// A write in progress.
pub struct Write {
    pub version: u64,
    start: u64,
}

/// What a read or a write-back knew when it started.
pub struct Snapshot {
    start: u64,
    first: u64,
    max_start: Vec<u64>,
}

/// The clock, the versions and the per-sector history (see the module docs).
pub struct Oracle {
    clock: AtomicU64,
    next_version: AtomicU64,
    versions: Versions,
    /// Per sector: the latest start tick of a completed write.
    max_start: Box<[AtomicU64]>,
    /// Per sector: the latest start tick of a completed buffered write.
    max_start_buffered: Box<[AtomicU64]>,
    /// Violations of every kind found so far.
    violations: AtomicU64,
    stale_reads: AtomicU64,
    /// Write-backs checked, refused (an error: not checked), and that lost a write.
    fsync_checks: AtomicU64,
    fsync_refused: AtomicU64,
    fsync_lost: AtomicU64,
    details: Mutex<Vec<String>>,
    began: Instant,
    first_violation: OnceLock<Duration>,
}

impl Oracle {
    pub fn new(sectors: u64) -> Self {
        let history = || (0..sectors).map(|_| AtomicU64::new(0)).collect();
        Oracle {
            clock: AtomicU64::new(0),
            next_version: AtomicU64::new(1),
            versions: Versions::new(),
            max_start: history(),
            max_start_buffered: history(),
            violations: AtomicU64::new(0),
            stale_reads: AtomicU64::new(0),
            fsync_checks: AtomicU64::new(0),
            fsync_refused: AtomicU64::new(0),
            fsync_lost: AtomicU64::new(0),
            details: Mutex::new(Vec::new()),
            began: Instant::now(),
            first_violation: OnceLock::new(),
        }
    }

    fn tick(&self) -> u64 {
        let tick = self.clock.fetch_add(1, SeqCst) + 1;
        assert!(tick < u64::from(u32::MAX), "the oracle's clock ran out");
        tick
    }

    /// Whether the versions or the clock are about to run out (the run stops early).
    pub fn exhausted(&self) -> bool {
        self.next_version.load(SeqCst) + 1024 > Versions::CAPACITY
            || self.clock.load(SeqCst) > u64::from(u32::MAX) - (1 << 20)
    }

    pub fn begin_write(&self) -> Write {
        let version = self.next_version.fetch_add(1, SeqCst);
        let start = self.tick();
        self.versions.times(version).0.store(start as u32, SeqCst);
        Write { version, start }
    }

    /// Records that `write` completed, over `sectors` (clipped to the disk).
    pub fn end_write(&self, write: Write, sectors: Range<u64>) {
        self.end(write, sectors, false);
    }

    /// Records that the buffered `write` completed, over `sectors`: a write-back that
    /// begins from now on must put it on the device.
    pub fn end_buffered_write(&self, write: Write, sectors: Range<u64>) {
        self.end(write, sectors, true);
    }

    fn end(&self, write: Write, sectors: Range<u64>, buffered: bool) {
        let end = self.tick();
        self.versions
            .times(write.version)
            .1
            .store(end as u32, SeqCst);
        let last = sectors.end.min(self.max_start.len() as u64);
        for s in sectors.start as usize..last as usize {
            self.max_start[s].fetch_max(write.start, SeqCst);
            if buffered {
                self.max_start_buffered[s].fetch_max(write.start, SeqCst);
            }
        }
    }

    /// `sectors` (clipped to the disk) with their history in `history`, as of now.
    fn snapshot(&self, history: &[AtomicU64], sectors: Range<u64>) -> Snapshot {
        let start = self.tick();
        let last = sectors.end.min(history.len() as u64);
        Snapshot {
            start,
            first: sectors.start,
            max_start: (sectors.start..last)
                .map(|s| history[s as usize].load(SeqCst))
                .collect(),
        }
    }

    pub fn begin_read(&self, sectors: Range<u64>) -> Snapshot {
        self.snapshot(&self.max_start, sectors)
    }

    /// What a write-back over `sectors` (clipped to the disk) must put on the device.
    pub fn begin_fsync(&self, sectors: Range<u64>) -> Snapshot {
        self.snapshot(&self.max_start_buffered, sectors)
    }

    /// The sectors of `snap`.
    pub fn sectors(snap: &Snapshot) -> Range<u64> {
        snap.first..snap.first + snap.max_start.len() as u64
    }

    /// The end tick of `version` if its write has completed (0 for version 0).
    pub fn end_of(&self, version: u64) -> Option<u64> {
        if version == 0 {
            return Some(0);
        }
        match self.versions.times(version).1.load(SeqCst) {
            0 => None,
            end => Some(u64::from(end)),
        }
    }

    /// Whether `version`, found in `sector`, is older than a write to it that started at
    /// `max_start` and completed; then a description of it.
    fn is_stale(&self, sector: u64, version: u64, max_start: u64) -> Option<String> {
        let end = self.end_of(version)?;
        if end >= max_start {
            return None;
        }
        let start = match version {
            0 => 0,
            v => self.versions.times(v).0.load(SeqCst),
        };
        let (page, at) = (sector / SECTORS as u64, sector % SECTORS as u64);
        Some(format!(
            "sector {sector} (page {page} sector {at}) held version {version} (written \
             t{start}..t{end}), but a write that started at t{max_start} had completed"
        ))
    }

    /// Counts a violation (in `counter` too, if any) and keeps the first few described.
    fn report(&self, counter: Option<&AtomicU64>, what: String) {
        if let Some(counter) = counter {
            counter.fetch_add(1, SeqCst);
        }
        if self.violations.fetch_add(1, SeqCst) == 0 {
            let _ = self.first_violation.set(self.began.elapsed());
        }
        let mut details = self.details.lock().unwrap_or_else(|p| p.into_inner());
        if details.len() < DETAILS {
            details.push(what);
        }
    }

    /// Reports `what`, found by the final checks (which count it themselves).
    pub fn report_final(&self, what: String) {
        self.report(None, what);
    }

    /// Checks what a read that began with `snap` returned.
    pub fn check_read(&self, kind: Kind, thread: usize, snap: &Snapshot, found: &[u64]) {
        assert_eq!(
            found.len(),
            snap.max_start.len(),
            "{kind:?} read the wrong length"
        );
        for (i, (&version, &max_start)) in found.iter().zip(&snap.max_start).enumerate() {
            let sector = snap.first + i as u64;
            if let Some(what) = self.is_stale(sector, version, max_start) {
                let what = format!(
                    "stale {kind:?} by thread {thread}, begun at t{}: {what} before it began",
                    snap.start
                );
                self.report(Some(&self.stale_reads), what);
            }
        }
    }

    /// Checks what the disk held over [`sectors`](Self::sectors)`(snap)` just after a
    /// write-back that began with `snap` returned.
    pub fn check_fsync(&self, thread: usize, snap: &Snapshot, on_disk: &[u64]) {
        assert_eq!(on_disk.len(), snap.max_start.len(), "fsync: wrong length");
        self.fsync_checks.fetch_add(1, SeqCst);
        for (i, (&version, &max_start)) in on_disk.iter().zip(&snap.max_start).enumerate() {
            let sector = snap.first + i as u64;
            if let Some(what) = self.is_stale(sector, version, max_start) {
                let what = format!(
                    "fsync lost a write: write-back by thread {thread}, begun at t{}, \
                     returned; {what} (buffered) before it began",
                    snap.start
                );
                self.report(Some(&self.fsync_lost), what);
            }
        }
    }

    /// A write-back that failed (not checked).
    pub fn fsync_refused(&self) {
        self.fsync_refused.fetch_add(1, SeqCst);
    }

    /// The final lost-write check of sector `s`, holding `version` on the disk: `None`
    /// if it is up to date, or what is wrong.
    pub fn check_final(&self, s: u64, version: u64) -> Option<String> {
        let max_start = self.max_start[s as usize].load(SeqCst);
        match self.end_of(version) {
            None => Some(format!(
                "sector {s} holds version {version}, never completed"
            )),
            Some(_) => self.is_stale(s, version, max_start),
        }
    }

    /// Violations of every kind so far.
    pub fn violations(&self) -> u64 {
        self.violations.load(SeqCst)
    }

    pub fn stale_reads(&self) -> u64 {
        self.stale_reads.load(SeqCst)
    }

    /// (write-backs checked, refused, that lost a write) so far.
    pub fn fsyncs(&self) -> (u64, u64, u64) {
        (
            self.fsync_checks.load(SeqCst),
            self.fsync_refused.load(SeqCst),
            self.fsync_lost.load(SeqCst),
        )
    }

    pub fn began(&self) -> Instant {
        self.began
    }

    pub fn first_violation(&self) -> Option<Duration> {
        self.first_violation.get().copied()
    }

    /// The violations described so far.
    pub fn take_details(&self) -> Vec<String> {
        std::mem::take(&mut *self.details.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
