//! The consistency oracle of `tests/mapping/oracle.rs`: threads drive a [`PageCache`]
//! over a [`Disk`] with a random mix of every operation; every read is checked for
//! staleness, sector by sector, and every write-back for a buffered write it left off
//! the disk (the rule and the checks are in `tests/support/oracle_checks.rs`).
//!
//! After the threads stop and a final write-back of everything, every sector of the
//! disk within the end of file is checked for a *lost write*. Cached pages within the
//! end of file must then equal the disk (*divergent* otherwise), and the cache must hold
//! no lock entry or page in write-back.
//!
//! # The threads
//!
//! Random threads draw from [`MIX`] over a small file ([`FILE_PAGES`] pages), so
//! operations collide. Focused pairs fault and direct-write the first [`HOT_PAGES`]
//! pages, sub-page, all the time: the race a page cache without lock entries loses.
//! Sync pairs write those pages and write them back in turn, so that one write-back
//! often meets another one in progress on its page, or a direct IO handing it over. A
//! watchdog aborts the process if no operation completes for [`STALL`].
//!
//! The test file declares `lock_harness`, `oracle_checks` and `page_cache` (this
//! module's siblings) at its root.
#![allow(dead_code)]

use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use super::lock_harness::{watchdog, Budget, Rng, STALL};
use super::oracle_checks::Oracle;
use super::page_cache::{page_sectors, pages_in, Disk, PageCache, PAGE, SECTOR, SECTORS};

/// Pages of the file the threads work on (offsets past it only through inserts).
pub const FILE_PAGES: u64 = 16;
/// Its size in bytes.
pub const FILE_BYTES: u64 = FILE_PAGES * PAGE;
/// The disk: room for inserts, which may push the end of file a few pages past
/// `FILE_BYTES` (and more when they overlap).
pub const DISK_PAGES: u64 = 4 * FILE_PAGES;
/// The pages the focused and sync pairs work on.
pub const HOT_PAGES: u64 = 2;

/// An operation kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fault,
    Read,
    ReadPages,
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
pub const MIX: [(Kind, u64); 13] = [
    (Kind::Fault, 22),
    (Kind::Read, 12),
    (Kind::ReadPages, 6),
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
    /// Pairs of threads that each write [`HOT_PAGES`] and write them back, in turn.
    pub sync_pairs: usize,
    /// Threads that each write one of [`HOT_PAGES`] and then direct-write it, in turn:
    /// every direct write hands a dirty page over (and, on a cache that injects
    /// failures, often fails to and evicts it again).
    pub hand_off_threads: usize,
    /// Yields before each sector of a page read from the disk (the fill window).
    pub delay: u32,
    /// Stop all threads at the first violation (the negative control).
    pub stop_at_violation: bool,
    /// When the threads stop.
    pub budget: Budget,
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
    /// Write-backs checked (they returned Ok), refused (an error), and that lost a
    /// buffered write (see `oracle_checks`).
    pub fsync_checks: u64,
    pub fsync_refused: u64,
    pub fsync_lost: u64,
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
        writeln!(
            f,
            "  fsync checks {} ({} refused), fsyncs that lost a write {}",
            self.fsync_checks, self.fsync_refused, self.fsync_lost
        )?;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Random,
    Faulter,
    DirectWriter,
    Syncer,
    HandOff,
}

struct Shared<C> {
    cache: C,
    disk: Disk,
    oracle: Oracle,
    config: Config,
    progress: AtomicU64,
    done: [AtomicU64; MIX.len()],
    skipped: [AtomicU64; MIX.len()],
    /// How long a run may go on past its budget while some kind of operation has not
    /// completed once (see [`Shared::worker`]).
    coverage_deadline: Instant,
}

/// The longest a run goes on past its budget for every kind of operation to complete
/// once: on a loaded machine a one-second run can end before a rare kind (weight 2 in
/// 100) comes up, and the callers assert that every kind ran.
const COVERAGE_CAP: Duration = Duration::from_secs(30);

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
        // Past the budget, random threads go on until every kind has completed once
        // (the callers assert it; not under Miri, which counts rounds instead), for at
        // most `COVERAGE_CAP`.
        let uncovered = || {
            role == Role::Random
                && !cfg!(miri)
                && self.done.iter().any(|d| d.load(SeqCst) == 0)
                && Instant::now() < self.coverage_deadline
        };
        while (self.config.budget.allows(round) || uncovered()) && !self.oracle.exhausted() {
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
                Role::Faulter => match rng.below(4) {
                    0 | 1 => (Kind::Fault, HOT_PAGES),
                    2 => (Kind::Read, HOT_PAGES),
                    _ => (Kind::ReadPages, HOT_PAGES),
                },
                Role::DirectWriter if rng.below(4) == 0 => (Kind::DirectRead, HOT_PAGES),
                Role::DirectWriter => (Kind::DirectWrite, HOT_PAGES),
                Role::Syncer if round % 2 == 0 => (Kind::Write, HOT_PAGES),
                Role::Syncer => (Kind::Writeback, HOT_PAGES),
                Role::HandOff if round % 2 == 0 => (Kind::Write, HOT_PAGES),
                Role::HandOff => (Kind::DirectWrite, HOT_PAGES),
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
            Kind::ReadPages => {
                // Up to 20 pages (more than one lookup batch), sometimes past the file.
                let first = rng.below(pages);
                let last = (first + rng.below(20)).min(DISK_PAGES - 1);
                let snaps: Vec<_> = (first..=last)
                    .map(|index| oracle.begin_read(page_sectors(index)))
                    .collect();
                let read = cache.buffered_read_pages(disk, first..=last);
                for (n, (index, data)) in read.iter().enumerate() {
                    assert_eq!(*index, first + n as u64, "read_pages out of order");
                    oracle.check_read(kind, thread, &snaps[n], data);
                }
                if read.is_empty() {
                    return false;
                }
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
                oracle.end_buffered_write(write, base + first..base + last + 1);
            }
            Kind::Writeback => {
                let first = rng.below(pages);
                let last = match rng.below(4) {
                    0 => u64::MAX,
                    _ => first + rng.below(8),
                };
                return self.fsync(thread, first..=last);
            }
            Kind::DirectRead => {
                let sectors = sector_range(rng, pages);
                let snap = oracle.begin_read(sectors.clone());
                let Some(data) = cache.direct_read(disk, bytes(&sectors)) else {
                    return false;
                };
                oracle.check_read(kind, thread, &snap, &data);
            }
            Kind::DirectWrite => {
                let sectors = sector_range(rng, pages);
                let write = oracle.begin_write();
                // A failed write never ends: its version is on no sector, and no read
                // or fsync is held to it.
                if !cache.direct_write(disk, bytes(&sectors), write.version) {
                    return false;
                }
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

    /// A write-back of `pages`, checked: `false` if it failed (then not checked).
    fn fsync(&self, thread: usize, pages: RangeInclusive<u64>) -> bool {
        let (cache, disk, oracle) = (&self.cache, &self.disk, &self.oracle);
        let end = pages.end().saturating_add(1).saturating_mul(SECTORS as u64);
        let snap = oracle.begin_fsync(pages.start() * SECTORS as u64..end);
        if cache.write_back(disk, pages).is_none() {
            oracle.fsync_refused();
            return false;
        }
        let on_disk: Vec<u64> = Oracle::sectors(&snap).map(|s| disk.sector(s)).collect();
        oracle.check_fsync(thread, &snap, &on_disk);
        true
    }

    /// After the threads: write everything back and check the disk and the cache.
    fn finish(&self) -> (u64, u64) {
        let (cache, disk, oracle) = (&self.cache, &self.disk, &self.oracle);
        cache
            .write_back(disk, 0..=u64::MAX)
            .expect("the final write-back failed");
        let size = cache.size();
        let mut lost = 0;
        for s in 0..size.div_ceil(SECTOR).min(disk.sectors()) {
            if let Some(what) = oracle.check_final(s, disk.sector(s)) {
                lost += 1;
                oracle.report_final(format!("lost write after the final write-back: {what}"));
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
                oracle.report_final(format!(
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
        coverage_deadline: Instant::now() + COVERAGE_CAP,
    };
    let mut roles = vec![Role::Random; config.random_threads];
    for _ in 0..config.focused_pairs {
        roles.extend([Role::Faulter, Role::DirectWriter]);
    }
    roles.extend(vec![Role::Syncer; 2 * config.sync_pairs]);
    roles.extend(vec![Role::HandOff; config.hand_off_threads]);
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
        elapsed = shared.oracle.began().elapsed();
        stop.store(true, SeqCst);
        results.into_iter().filter_map(Result::err).collect()
    });
    if let Some(panic) = panics.into_iter().next() {
        std::panic::resume_unwind(panic);
    }
    shared.cache.end_of_run();
    let stale_reads = shared.oracle.stale_reads();
    let (fsync_checks, fsync_refused, fsync_lost) = shared.oracle.fsyncs();
    let (lost_writes, divergent_pages) = shared.finish();
    let (page_reads, page_writes) = shared.disk.page_io();
    let details = shared.oracle.take_details();
    Report {
        name: name.to_string(),
        elapsed,
        ops: (MIX.iter().zip(shared.done.iter().zip(&shared.skipped)))
            .map(|(&(kind, _), (done, skipped))| (kind, done.load(SeqCst), skipped.load(SeqCst)))
            .collect(),
        page_reads,
        page_writes,
        stale_reads,
        fsync_checks,
        fsync_refused,
        fsync_lost,
        lost_writes,
        divergent_pages,
        first_violation: shared.oracle.first_violation(),
        details,
        quiescent: shared.cache.quiescent(),
        final_size: shared.cache.size(),
        cached_pages: shared.cache.cached().len(),
    }
}
