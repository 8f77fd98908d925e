//! The consistency oracle of `tests/mapping_oracle.rs`: threads drive a [`PageCache`]
//! over a [`Disk`] with a random mix of every operation, and every read is checked for
//! staleness, sector by sector.
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
//! After the threads stop and a final write-back of everything, the same rule, with `M`
//! over all completed writes, checks every sector of the disk within the end of file:
//! a sector holding data older than a completed write is a *lost write*. Cached pages
//! within the end of file must then equal the disk (*divergent* otherwise), and the
//! cache must hold no lock entry or page in write-back.
//!
//! # The threads
//!
//! Random threads draw from [`MIX`] over a small file ([`FILE_PAGES`] pages), so
//! operations collide. Focused pairs fault and direct-write the first [`HOT_PAGES`]
//! pages, sub-page, all the time: the race a page cache without lock entries loses. A
//! watchdog aborts the process if no operation completes for [`STALL`].
//!
//! The test file declares `lock_harness` and `page_cache` (this module's siblings) at
//! its root.
#![allow(dead_code)]

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::lock_harness::{watchdog, Budget, Rng, STALL};
use crate::page_cache::{page_sectors, pages_in, Disk, PageCache, PAGE, SECTOR, SECTORS};

/// Pages of the file the threads work on (offsets past it only through inserts).
pub const FILE_PAGES: u64 = 16;
/// Its size in bytes.
pub const FILE_BYTES: u64 = FILE_PAGES * PAGE;
/// The disk: room for inserts, which may push the end of file a few pages past
/// `FILE_BYTES` (and more when they overlap).
pub const DISK_PAGES: u64 = 4 * FILE_PAGES;
/// The pages the focused pairs work on.
pub const HOT_PAGES: u64 = 2;
/// How many violations are described in full.
const DETAILS: usize = 8;

/// An operation kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fault,
    Read,
    Readahead,
    Write,
    Writeback,
    DirectRead,
    DirectWrite,
    Grow,
    Truncate,
    Punch,
    Collapse,
    Insert,
}

/// The random threads' mix: each kind with its weight (out of 100). Edits are rare
/// enough that most reads still hit.
pub const MIX: [(Kind, u64); 12] = [
    (Kind::Fault, 22),
    (Kind::Read, 18),
    (Kind::Readahead, 6),
    (Kind::Write, 16),
    (Kind::Writeback, 6),
    (Kind::DirectRead, 7),
    (Kind::DirectWrite, 10),
    (Kind::Grow, 4),
    (Kind::Truncate, 2),
    (Kind::Punch, 4),
    (Kind::Collapse, 2),
    (Kind::Insert, 3),
];

/// How a run is shaped.
#[derive(Clone, Copy)]
pub struct Config {
    /// Threads drawing from [`MIX`] over the whole file.
    pub random_threads: usize,
    /// Pairs of threads, one faulting and reading [`HOT_PAGES`], one direct-writing
    /// (and sometimes direct-reading) them.
    pub focused_pairs: usize,
    /// Yields before each sector of a page read from the disk (the fill window).
    pub delay: u32,
    /// Stop all threads at the first violation (the negative control).
    pub stop_at_violation: bool,
    /// When the threads stop.
    pub budget: Budget,
}

// ---------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------

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

/// What a read knew when it started.
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
    max_start: Box<[AtomicU64]>,
    /// Stale reads, lost writes and divergent pages found so far.
    violations: AtomicU64,
    details: Mutex<Vec<String>>,
    began: Instant,
    first_violation: OnceLock<Duration>,
}

impl Oracle {
    fn new(sectors: u64) -> Self {
        Oracle {
            clock: AtomicU64::new(0),
            next_version: AtomicU64::new(1),
            versions: Versions::new(),
            max_start: (0..sectors).map(|_| AtomicU64::new(0)).collect(),
            violations: AtomicU64::new(0),
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
    fn exhausted(&self) -> bool {
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
        let end = self.tick();
        self.versions
            .times(write.version)
            .1
            .store(end as u32, SeqCst);
        let last = sectors.end.min(self.max_start.len() as u64);
        for s in sectors.start..last {
            self.max_start[s as usize].fetch_max(write.start, SeqCst);
        }
    }

    pub fn begin_read(&self, sectors: Range<u64>) -> Snapshot {
        let start = self.tick();
        Snapshot {
            start,
            first: sectors.start,
            max_start: sectors
                .map(|s| self.max_start[s as usize].load(SeqCst))
                .collect(),
        }
    }

    /// The end tick of `version` if its write has completed (0 for version 0).
    fn end_of(&self, version: u64) -> Option<u64> {
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

    fn report(&self, what: String) {
        if self.violations.fetch_add(1, SeqCst) == 0 {
            let _ = self.first_violation.set(self.began.elapsed());
        }
        let mut details = self.details.lock().unwrap_or_else(|p| p.into_inner());
        if details.len() < DETAILS {
            details.push(what);
        }
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
                self.report(format!(
                    "stale {kind:?} by thread {thread}, begun at t{}: {what} before it began",
                    snap.start
                ));
            }
        }
    }

    pub fn violations(&self) -> u64 {
        self.violations.load(SeqCst)
    }
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

/// What a run found, and what it did.
#[derive(Debug)]
pub struct Report {
    pub name: String,
    pub elapsed: Duration,
    /// Per kind: (completed, skipped: past the end of file or refused).
    pub ops: Vec<(Kind, u64, u64)>,
    pub page_reads: u64,
    pub page_writes: u64,
    pub stale_reads: u64,
    pub lost_writes: u64,
    pub divergent_pages: u64,
    pub first_violation: Option<Duration>,
    pub details: Vec<String>,
    pub quiescent: Result<(), String>,
    pub final_size: u64,
    pub cached_pages: usize,
}

impl Report {
    pub fn total_ops(&self) -> u64 {
        self.ops
            .iter()
            .map(|&(_, done, skipped)| done + skipped)
            .sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} ops in {:.2?} ({} page reads from disk, {} page writes)",
            self.name,
            self.total_ops(),
            self.elapsed,
            self.page_reads,
            self.page_writes
        )?;
        let ops: Vec<String> = (self.ops.iter())
            .map(|(kind, done, skipped)| format!("{kind:?} {done} (+{skipped} skipped)"))
            .collect();
        writeln!(f, "  ops: {}", ops.join(", "))?;
        write!(
            f,
            "  stale reads {}, lost writes {}, divergent pages {}, first violation after {:?}; \
             final size {} bytes, {} pages cached, quiescent: {:?}",
            self.stale_reads,
            self.lost_writes,
            self.divergent_pages,
            self.first_violation,
            self.final_size,
            self.cached_pages,
            self.quiescent
        )?;
        for detail in &self.details {
            write!(f, "\n  {detail}")?;
        }
        Ok(())
    }
}

/// What a thread does.
#[derive(Clone, Copy, Debug)]
enum Role {
    Random,
    Faulter,
    DirectWriter,
}

struct Shared<C> {
    cache: C,
    disk: Disk,
    oracle: Oracle,
    config: Config,
    progress: AtomicU64,
    done: [AtomicU64; MIX.len()],
    skipped: [AtomicU64; MIX.len()],
}

/// A sector-aligned range of sectors within the first `pages` pages: mostly sub-page,
/// sometimes over two or three pages.
fn sector_range(rng: &mut Rng, pages: u64) -> Range<u64> {
    let all = pages * SECTORS as u64;
    let first = rng.below(all);
    let len = 1 + match rng.below(4) {
        0 | 1 => rng.below(SECTORS as u64),
        2 => rng.below(2 * SECTORS as u64),
        _ => rng.below(3 * SECTORS as u64),
    };
    first..(first + len).min(all)
}

fn bytes(sectors: &Range<u64>) -> Range<u64> {
    sectors.start * SECTOR..sectors.end * SECTOR
}

impl<C: PageCache> Shared<C> {
    fn worker(&self, thread: usize, role: Role) {
        let mut rng = Rng(0x6f72_6163_6c65 ^ ((thread as u64) << 40));
        let mut round = 0;
        while self.config.budget.allows(round) && !self.oracle.exhausted() {
            if self.config.stop_at_violation && self.oracle.violations() > 0 {
                break;
            }
            let (kind, pages) = match role {
                Role::Random => {
                    let mut pick = rng.below(100);
                    let at = MIX.iter().position(|&(_, w)| {
                        let hit = pick < w;
                        pick = pick.saturating_sub(w);
                        hit
                    });
                    (MIX[at.expect("weights sum to 100")].0, FILE_PAGES)
                }
                Role::Faulter if rng.below(2) == 0 => (Kind::Fault, HOT_PAGES),
                Role::Faulter => (Kind::Read, HOT_PAGES),
                Role::DirectWriter if rng.below(4) == 0 => (Kind::DirectRead, HOT_PAGES),
                Role::DirectWriter => (Kind::DirectWrite, HOT_PAGES),
            };
            let at = MIX.iter().position(|&(k, _)| k == kind).expect("in MIX");
            let counter = if self.op(thread, kind, pages, &mut rng) {
                &self.done[at]
            } else {
                &self.skipped[at]
            };
            counter.fetch_add(1, SeqCst);
            self.progress.fetch_add(1, SeqCst);
            rng.pause();
            round += 1;
        }
    }

    /// One operation of `kind` within the first `pages` pages; `false` if it was skipped
    /// (past the end of file, or refused).
    fn op(&self, thread: usize, kind: Kind, pages: u64, rng: &mut Rng) -> bool {
        let (cache, disk, oracle) = (&self.cache, &self.disk, &self.oracle);
        match kind {
            Kind::Fault | Kind::Read => {
                // Sometimes one page past the file.
                let index = rng.below(pages + u64::from(pages == FILE_PAGES));
                let snap = oracle.begin_read(page_sectors(index));
                let data = match kind {
                    Kind::Fault => cache.fault_page(disk, index),
                    _ => cache.buffered_read(disk, index),
                };
                let Some(data) = data else { return false };
                oracle.check_read(kind, thread, &snap, &data);
            }
            Kind::Readahead => {
                let first = rng.below(pages);
                cache.read_ahead(disk, first..=first + rng.below(8));
            }
            Kind::Write => {
                let index = rng.below(pages);
                let first = rng.below(SECTORS as u64);
                let last = rng.within(first, SECTORS as u64 - 1);
                let write = oracle.begin_write();
                let sectors = first as usize..last as usize + 1;
                if !cache.buffered_write(disk, index, sectors, write.version) {
                    return false;
                }
                let base = index * SECTORS as u64;
                oracle.end_write(write, base + first..base + last + 1);
            }
            Kind::Writeback => {
                let first = rng.below(pages);
                let last = match rng.below(4) {
                    0 => u64::MAX,
                    _ => first + rng.below(8),
                };
                cache.write_back(disk, first..=last);
            }
            Kind::DirectRead => {
                let sectors = sector_range(rng, pages);
                let snap = oracle.begin_read(sectors.clone());
                let data = cache.direct_read(disk, bytes(&sectors));
                oracle.check_read(kind, thread, &snap, &data);
            }
            Kind::DirectWrite => {
                let sectors = sector_range(rng, pages);
                let write = oracle.begin_write();
                cache.direct_write(disk, bytes(&sectors), write.version);
                oracle.end_write(write, sectors);
            }
            Kind::Grow => {
                let all = FILE_BYTES / SECTOR;
                let size = match rng.below(2) {
                    0 => all,
                    _ => rng.within(all / 2, all),
                };
                cache.grow(size * SECTOR);
            }
            Kind::Truncate => {
                let all = FILE_BYTES / SECTOR;
                let size = rng.within(all / 2, all);
                let write = oracle.begin_write();
                cache.truncate_to(disk, size * SECTOR, write.version);
                oracle.end_write(write, size..u64::MAX);
            }
            Kind::Punch => {
                let sectors = sector_range(rng, pages);
                let write = oracle.begin_write();
                cache.punch(disk, bytes(&sectors), write.version);
                oracle.end_write(write, sectors);
            }
            Kind::Collapse | Kind::Insert => {
                let len = (1 + rng.below(2)) * PAGE;
                let size = cache.size();
                let start = rng.below(pages_in(size).min(pages).max(1)) * PAGE;
                if kind == Kind::Insert && size + len > FILE_BYTES + 4 * PAGE {
                    return false; // keeps the file within the disk
                }
                let write = oracle.begin_write();
                let range = start..start + len;
                let done = match kind {
                    Kind::Collapse => cache.collapse(disk, range, write.version),
                    _ => cache.insert(disk, range, write.version),
                };
                if !done {
                    return false;
                }
                oracle.end_write(write, start / SECTOR..u64::MAX);
            }
        }
        true
    }

    /// After the threads: write everything back and check the disk and the cache.
    fn finish(&self) -> (u64, u64) {
        let (cache, disk, oracle) = (&self.cache, &self.disk, &self.oracle);
        cache.write_back(disk, 0..=u64::MAX);
        let size = cache.size();
        let mut lost = 0;
        for s in 0..size.div_ceil(SECTOR).min(disk.sectors()) {
            let version = disk.sector(s);
            let max_start = oracle.max_start[s as usize].load(SeqCst);
            let what = match oracle.end_of(version) {
                None => Some(format!(
                    "sector {s} holds version {version}, never completed"
                )),
                Some(_) => oracle.is_stale(s, version, max_start),
            };
            if let Some(what) = what {
                lost += 1;
                oracle.report(format!("lost write after the final write-back: {what}"));
            }
        }
        let mut divergent = 0;
        for (index, data) in cache.cached() {
            if index >= pages_in(size) {
                continue;
            }
            let on_disk: Vec<u64> = page_sectors(index).map(|s| disk.sector(s)).collect();
            if data[..] != on_disk[..] {
                divergent += 1;
                oracle.report(format!(
                    "page {index} cached as {data:?} after the final write-back, \
                     disk holds {on_disk:?}"
                ));
            }
        }
        (lost, divergent)
    }
}

/// Runs the oracle on `cache` (an empty file, grown to [`FILE_BYTES`]) under `config`.
pub fn run<C: PageCache>(name: &str, cache: C, config: Config) -> Report {
    let disk = Disk::new(DISK_PAGES, config.delay);
    cache.grow(FILE_BYTES);
    let shared = Shared {
        cache,
        oracle: Oracle::new(disk.sectors()),
        disk,
        config,
        progress: AtomicU64::new(0),
        done: Default::default(),
        skipped: Default::default(),
    };
    let mut roles = vec![Role::Random; config.random_threads];
    for _ in 0..config.focused_pairs {
        roles.extend([Role::Faulter, Role::DirectWriter]);
    }
    let stop = AtomicBool::new(false);
    let mut elapsed = Duration::ZERO;
    let panics: Vec<_> = thread::scope(|s| {
        let shared = &shared;
        s.spawn(|| {
            watchdog(&shared.progress, &stop, STALL, |n| {
                format!("mapping oracle ({name}): no operation completed for {STALL:?} after {n}")
            })
        });
        let workers: Vec<_> = (roles.iter().enumerate())
            .map(|(thread, &role)| s.spawn(move || shared.worker(thread, role)))
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        elapsed = shared.oracle.began.elapsed();
        stop.store(true, SeqCst);
        results.into_iter().filter_map(Result::err).collect()
    });
    if let Some(panic) = panics.into_iter().next() {
        std::panic::resume_unwind(panic);
    }
    let stale_reads = shared.oracle.violations();
    let (lost_writes, divergent_pages) = shared.finish();
    let (page_reads, page_writes) = shared.disk.page_io();
    let details = std::mem::take(&mut *shared.oracle.details.lock().unwrap());
    Report {
        name: name.to_string(),
        elapsed,
        ops: (MIX.iter().zip(shared.done.iter().zip(&shared.skipped)))
            .map(|(&(kind, _), (done, skipped))| (kind, done.load(SeqCst), skipped.load(SeqCst)))
            .collect(),
        page_reads,
        page_writes,
        stale_reads,
        lost_writes,
        divergent_pages,
        first_violation: shared.oracle.first_violation.get().copied(),
        details,
        quiescent: shared.cache.quiescent(),
        final_size: shared.cache.size(),
        cached_pages: shared.cache.cached().len(),
    }
}
