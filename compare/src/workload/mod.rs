//! The workload driver: threads by role against any [`PageCache`] over a simulated
//! device, with latency statistics and the consistency oracle.
//!
//! A [`Workload`] is a file size, a [`Latency`], a duration and a list of [`RoleSpec`]s,
//! each a number of threads doing one kind of operation over a region of the file:
//!
//! | role | one operation |
//! |---|---|
//! | [`Role::Fault`] | with probability `1 - hit_ratio` reclaim the page first; fault it in and read it |
//! | [`Role::BufferedRead`] | the same through a buffered read |
//! | [`Role::BufferedWrite`] | a buffered write of one sector |
//! | [`Role::DirectRead`] | a direct read of `io_bytes`, aligned to its size |
//! | [`Role::DirectWrite`] | a direct write of `io_bytes`; thread `t` of `n` writes only the slots `k` with `k % n == t`, so direct writes never overlap one another |
//! | [`Role::Truncate`] | truncate to a random sector boundary in the region, then grow back |
//! | [`Role::Punch`] | punch a hole of `io_bytes` at a random sector boundary in the region |
//! | [`Role::Writeback`] | write back the region (an fsync), then check the device |
//! | [`Role::Mixed`] | fault, buffered read and write, direct read and write, an 8-page write-back (checked) and an 8-page readahead, in turn |
//!
//! [`run`] starts every thread at once (a barrier), stops them after the duration, and
//! returns a [`Report`]: per operation kind the calls, their latency percentiles and the
//! worst *wait* (latency minus the call's own time in the device), the oracle's stale
//! reads and lost writes (see [`oracle`]), the fsync check, and the quiescence check.
//!
//! The fsync check: right after a write-back of a region returns, every sector of the
//! region must hold on the device at least the version of every write that had returned
//! before the write-back began. Sectors cleared by a truncate or hole punch that
//! overlapped the write-back in time are left out (the edit may discard a dirty page
//! before it writes its own version there).
//!
//! [`Workload::validate`] refuses workloads whose direct writes could overlap (more
//! direct-writing threads in a role than IO slots in its region, or two direct-writing
//! roles over the same pages): concurrent direct writes of one sector have no defined
//! order, and the oracle would report it.

mod device;
mod disk;
mod file_device;
pub mod oracle;
mod scenario;
mod stats;

use core::time::Duration;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use crate::PageCache;
use rangelock::mapping::{DirectIoKind, MappingError};

pub use device::{device_time, Latency, LatencyMode, SimDevice};
pub use disk::{DeviceSpec, Disk};
pub use file_device::{direct_io_dir, FileDevice};
pub use oracle::Oracle;
pub use scenario::{empty_file_sweep, Scenario, Strategy, SweepRow, SCENARIOS};
pub use stats::{Histogram, OpStats};

/// Sectors per page (a page's data is one version per sector).
pub const SECTORS_PER_PAGE: usize = 8;

/// A page of the workload's file: the version of each sector.
pub type PageData = [u64; SECTORS_PER_PAGE];

/// What a thread does (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Faults with a hit ratio.
    Fault,
    /// Buffered reads with a hit ratio.
    BufferedRead,
    /// One-sector buffered writes.
    BufferedWrite,
    /// Direct reads.
    DirectRead,
    /// Direct writes, disjoint between threads.
    DirectWrite,
    /// Truncate and grow back.
    Truncate,
    /// Hole punches.
    Punch,
    /// Write-back of the region.
    Writeback,
    /// Fault, buffered read and write, direct read and write, write-back and readahead,
    /// in turn.
    Mixed,
}

/// The kinds of operation reported, in report order.
pub const OPS: [&str; 9] = [
    "fault",
    "read",
    "write",
    "direct-read",
    "direct-write",
    "truncate",
    "punch",
    "writeback",
    "readahead",
];

/// Threads with one role over one region.
#[derive(Clone, Debug)]
pub struct RoleSpec {
    /// What they do.
    pub role: Role,
    /// How many threads.
    pub threads: usize,
    /// The pages they work on (within the file).
    pub pages: core::ops::Range<u64>,
    /// For faults and buffered reads: the probability that the page is still cached.
    pub hit_ratio: f64,
    /// For direct IO and hole punches: bytes per call (a multiple of the sector size).
    pub io_bytes: u64,
}

impl RoleSpec {
    /// Whether its threads do direct IO or hole punches of `io_bytes`.
    fn uses_io(&self) -> bool {
        matches!(
            self.role,
            Role::DirectRead | Role::DirectWrite | Role::Punch | Role::Mixed
        )
    }

    /// Whether its threads read with a hit ratio.
    fn uses_hit_ratio(&self) -> bool {
        matches!(self.role, Role::Fault | Role::BufferedRead | Role::Mixed)
    }

    /// Whether its threads do direct writes.
    fn writes_directly(&self) -> bool {
        matches!(self.role, Role::DirectWrite | Role::Mixed)
    }
}

/// A workload (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Workload {
    /// File size in pages (the device stores this many).
    pub file_pages: u64,
    /// The device's latency.
    pub latency: Latency,
    /// How long the threads run (at most).
    pub duration: Duration,
    /// Stop once this many calls have completed, all threads together (criterion's
    /// iteration count); `None`: run for the whole duration.
    pub max_ops: Option<u64>,
    /// The threads.
    pub roles: Vec<RoleSpec>,
    /// Seed of the threads' random choices.
    pub seed: u64,
}

impl Workload {
    /// The largest file the driver simulates (16 GiB of 4 KiB pages: 512 MiB of
    /// device and oracle state).
    pub const MAX_FILE_PAGES: u64 = 1 << 22;

    /// Sets every direct IO and hole punch to `io_bytes`, and scales the file and every
    /// region up (by a whole factor, so the layout stays the same) until each region
    /// holds an IO and each direct-writing role a slot per thread.
    pub fn with_io_bytes(mut self, io_bytes: u64, page_size: u64) -> Workload {
        let mut factor = 1u64;
        for r in &mut self.roles {
            if !r.uses_io() {
                continue;
            }
            r.io_bytes = io_bytes;
            let region = (r.pages.end - r.pages.start)
                .saturating_mul(page_size)
                .max(1);
            let slots = if r.writes_directly() {
                r.threads as u64
            } else {
                1
            };
            let need = io_bytes.saturating_mul(slots.max(1));
            factor = factor.max(need.div_ceil(region));
        }
        if factor > 1 {
            self.file_pages = self.file_pages.saturating_mul(factor);
            for r in &mut self.roles {
                r.pages = r.pages.start.saturating_mul(factor)..r.pages.end.saturating_mul(factor);
            }
        }
        self
    }

    /// Sets the hit ratio of every role that reads with one.
    pub fn with_hit_ratio(mut self, hit_ratio: f64) -> Workload {
        for r in &mut self.roles {
            if r.uses_hit_ratio() {
                r.hit_ratio = hit_ratio;
            }
        }
        self
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.roles.iter().map(|r| r.threads).sum()
    }

    /// Refuses a workload the driver cannot run: a file over [`Self::MAX_FILE_PAGES`], an
    /// empty or outside region, a zero or unaligned IO size, a hit ratio outside 0..=1,
    /// direct writes that could overlap.
    pub fn validate(&self, page_size: u64) -> Result<(), String> {
        let sector = page_size / SECTORS_PER_PAGE as u64;
        if self.file_pages > Self::MAX_FILE_PAGES {
            return Err(format!(
                "a file of {} pages: the simulated device and the oracle keep 16 bytes per sector, so at most {} pages",
                self.file_pages,
                Self::MAX_FILE_PAGES
            ));
        }
        for r in &self.roles {
            if r.pages.is_empty() || r.pages.end > self.file_pages {
                return Err(format!(
                    "{:?}: pages {:?} not in the file's {}",
                    r.role, r.pages, self.file_pages
                ));
            }
            let region = (r.pages.end - r.pages.start) * page_size;
            if r.uses_io() && (r.io_bytes == 0 || r.io_bytes % sector != 0 || r.io_bytes > region) {
                return Err(format!(
                    "{:?}: io_bytes {} must be a non-zero multiple of {sector} within the region's {region} bytes",
                    r.role, r.io_bytes
                ));
            }
            if !(0.0..=1.0).contains(&r.hit_ratio) {
                return Err(format!(
                    "{:?}: hit ratio {} outside 0..=1",
                    r.role, r.hit_ratio
                ));
            }
            if r.writes_directly() && r.threads as u64 > region / r.io_bytes {
                return Err(format!(
                    "{:?}: {} threads but only {} slots of {} bytes in pages {:?}: their direct writes would overlap",
                    r.role,
                    r.threads,
                    region / r.io_bytes,
                    r.io_bytes,
                    r.pages
                ));
            }
        }
        let writers: Vec<&RoleSpec> = self.roles.iter().filter(|r| r.writes_directly()).collect();
        for (i, a) in writers.iter().enumerate() {
            for b in &writers[i + 1..] {
                if a.pages.start < b.pages.end && b.pages.start < a.pages.end {
                    return Err(format!(
                        "{:?} over {:?} and {:?} over {:?}: direct writes of two roles would overlap",
                        a.role, a.pages, b.role, b.pages
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One kind of operation's results.
#[derive(Clone, Debug)]
pub struct OpReport {
    /// Its name (one of [`OPS`]).
    pub op: &'static str,
    /// The statistics.
    pub stats: OpStats,
}

/// The results of a [`run`].
#[derive(Clone, Debug)]
pub struct Report {
    /// The strategy's name.
    pub strategy: &'static str,
    /// Threads.
    pub threads: usize,
    /// How long the threads ran.
    pub elapsed: Duration,
    /// Per operation kind that ran at least once.
    pub ops: Vec<OpReport>,
    /// Sectors read older than a write completed before the read began.
    pub stale_reads: u64,
    /// Sectors whose completed write is not on the device after the final write-back.
    pub lost_writes: u64,
    /// Write-backs checked against the device (see the [module docs](self)).
    pub fsync_checks: u64,
    /// Sectors a checked write-back left older on the device than a write completed
    /// before it began.
    pub fsync_lost: u64,
    /// Problems found by the quiescence check or unexpected errors (empty when clean).
    pub errors: Vec<String>,
}

impl Report {
    /// Every operation's statistics together.
    pub fn total(&self) -> OpStats {
        let mut total = OpStats::default();
        for op in &self.ops {
            total.merge(&op.stats);
        }
        total
    }

    /// Completed calls per second, all kinds together.
    pub fn ops_per_sec(&self) -> f64 {
        self.total().latency.count() as f64 / self.elapsed.as_secs_f64()
    }

    /// The statistics of operation `op`, if it ran.
    pub fn op(&self, op: &str) -> Option<&OpStats> {
        self.ops.iter().find(|o| o.op == op).map(|o| &o.stats)
    }
}

/// A small, fast, seedable generator (xorshift64*): the driver's random choices.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `range` (non-empty).
    fn in_range(&mut self, range: core::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// What one thread gathered.
#[derive(Default)]
struct ThreadResult {
    ops: [OpStats; OPS.len()],
    stale: u64,
    fsync_checks: u64,
    fsync_lost: u64,
    errors: Vec<String>,
}

/// The shared state of a run.
struct Run<'a> {
    cache: &'a dyn PageCache<PageData>,
    device: &'a dyn Disk,
    oracle: &'a Oracle,
    file_bytes: u64,
    page_size: u64,
    sector: u64,
    /// The edits in progress and those started lately (the fsync check skips the
    /// sectors of edits that overlap it in time).
    edits: Mutex<EditLog>,
}

/// The sectors edits clear, for the fsync check: a truncate or hole punch may discard
/// dirty data (a completed buffered write) before it writes its own version there, so
/// a write-back that overlaps it in time is not checked on those sectors.
#[derive(Default)]
struct EditLog {
    /// Edits started so far (each one's number).
    started: u64,
    /// The edits in progress: number and cleared sectors.
    active: Vec<(u64, core::ops::Range<u64>)>,
    /// The latest edits, oldest first, at most [`EditLog::RECENT`].
    recent: std::collections::VecDeque<(u64, core::ops::Range<u64>)>,
}

impl EditLog {
    const RECENT: usize = 1024;

    fn lock(log: &Mutex<EditLog>) -> std::sync::MutexGuard<'_, EditLog> {
        log.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// What a write-back must not check: the edits in progress when it began, and the
/// number of the first edit that may start after.
struct EditWindow {
    active: Vec<core::ops::Range<u64>>,
    next: u64,
}

impl Run<'_> {
    /// Records an edit of `sectors` from now until the guard drops.
    fn edit(&self, sectors: core::ops::Range<u64>) -> EditInFlight<'_> {
        let mut log = EditLog::lock(&self.edits);
        let number = log.started;
        log.started += 1;
        log.active.push((number, sectors.clone()));
        log.recent.push_back((number, sectors));
        if log.recent.len() > EditLog::RECENT {
            log.recent.pop_front();
        }
        EditInFlight {
            log: &self.edits,
            number,
        }
    }

    /// The edits a write-back starting now overlaps so far.
    fn edit_window(&self) -> EditWindow {
        let log = EditLog::lock(&self.edits);
        EditWindow {
            active: log.active.iter().map(|(_, r)| r.clone()).collect(),
            next: log.started,
        }
    }

    /// The sectors that edits overlapping `window` (a write-back that began then and
    /// ends now) cleared, or `None` if too many edits started meanwhile to know.
    fn edited_since(&self, window: EditWindow) -> Option<Vec<core::ops::Range<u64>>> {
        let log = EditLog::lock(&self.edits);
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

/// An edit in progress (see [`Run::edit`]).
struct EditInFlight<'a> {
    log: &'a Mutex<EditLog>,
    number: u64,
}

impl Drop for EditInFlight<'_> {
    fn drop(&mut self) {
        let mut log = EditLog::lock(self.log);
        log.active.retain(|(n, _)| *n != self.number);
    }
}

/// One thread's context.
struct Worker<'a> {
    run: &'a Run<'a>,
    spec: &'a RoleSpec,
    /// This thread's number among the threads of its role, and their count.
    slot: (u64, u64),
    rng: Rng,
    result: ThreadResult,
}

impl Worker<'_> {
    /// Times `call`, records it under `op` (or as beyond end of file), and keeps any
    /// other error.
    /// Returns whether the call succeeded.
    fn timed(
        &mut self,
        op: usize,
        call: impl FnOnce(&mut Self) -> Result<(), MappingError>,
    ) -> bool {
        let device = device_time();
        let start = Instant::now();
        let outcome = call(self);
        let latency = start.elapsed();
        let stats = &mut self.result.ops[op];
        match outcome {
            Ok(()) => {
                stats.record(latency, device_time() - device);
                return true;
            }
            Err(MappingError::BeyondEof { .. }) => stats.beyond_eof += 1,
            Err(error) => {
                if self.result.errors.len() < 8 {
                    self.result.errors.push(format!("{}: {error}", OPS[op]));
                }
            }
        }
        false
    }

    fn page(&mut self) -> u64 {
        self.rng.in_range(self.spec.pages.clone())
    }

    fn floors(&self, sectors: core::ops::Range<u64>) -> Vec<u64> {
        sectors.map(|s| self.run.oracle.floor(s)).collect()
    }

    fn read_page(&mut self, buffered: bool) {
        let index = self.page();
        if !self.rng.chance(self.spec.hit_ratio) {
            self.run.cache.reclaim(index);
        }
        let first = index * SECTORS_PER_PAGE as u64;
        let floors: PageData = core::array::from_fn(|i| self.run.oracle.floor(first + i as u64));
        let op = if buffered { 1 } else { 0 };
        let mut seen = PageData::default();
        let done = self.timed(op, |w| {
            let (cache, device) = (w.run.cache, w.run.device);
            if buffered {
                cache.read(index, device, &mut |data| seen = *data)
            } else {
                cache.fault(index, device, &mut |data| seen = *data)
            }
        });
        if done {
            self.result.stale += Oracle::stale(&floors, &seen);
        }
    }

    fn buffered_write(&mut self) {
        let index = self.page();
        let sector = self.rng.in_range(0..SECTORS_PER_PAGE as u64);
        let oracle = self.run.oracle;
        let mut version = 0;
        self.timed(2, |w| {
            w.run.cache.write(index, w.run.device, &mut |data| {
                version = oracle.next_version();
                data[sector as usize] = version;
            })
        });
        if version != 0 {
            let s = index * SECTORS_PER_PAGE as u64 + sector;
            oracle.complete(s..s + 1, version);
        }
    }

    /// The byte range of a direct IO: an `io_bytes`-aligned slot of the region (for
    /// writes, one of this thread's slots).
    fn direct_range(&mut self, write: bool) -> core::ops::Range<u64> {
        let io = self.spec.io_bytes;
        let region =
            self.spec.pages.start * self.run.page_size..self.spec.pages.end * self.run.page_size;
        let slots = (region.end - region.start) / io;
        let slot = if write {
            let (me, of) = self.slot;
            let mine = slots.saturating_sub(me).div_ceil(of).max(1);
            (me + self.rng.in_range(0..mine) * of).min(slots - 1)
        } else {
            self.rng.in_range(0..slots)
        };
        let start = region.start + slot * io;
        start..start + io
    }

    fn direct(&mut self, kind: DirectIoKind) {
        let bytes = self.direct_range(kind == DirectIoKind::Write);
        let sectors = bytes.start / self.run.sector..bytes.end / self.run.sector;
        let (device, oracle) = (self.run.device, self.run.oracle);
        match kind {
            DirectIoKind::Read => {
                let floors = self.floors(sectors.clone());
                let mut seen = Vec::new();
                let done = self.timed(3, |w| {
                    w.run.cache.direct_io(bytes, kind, device, &mut || {
                        seen = device.read_sectors(sectors.clone());
                    })
                });
                if done {
                    self.result.stale += Oracle::stale(&floors, &seen);
                }
            }
            DirectIoKind::Write => {
                let mut version = 0;
                self.timed(4, |w| {
                    w.run.cache.direct_io(bytes, kind, device, &mut || {
                        version = oracle.next_version();
                        device.write_sectors(sectors.clone(), version);
                    })
                });
                if version != 0 {
                    oracle.complete(sectors, version);
                }
            }
        }
    }

    fn truncate(&mut self) {
        let sector = self.run.sector;
        let region = self.spec.pages.start * self.run.page_size / sector
            ..self.spec.pages.end * self.run.page_size / sector;
        let size = self.rng.in_range(region) * sector;
        let (device, oracle) = (self.run.device, self.run.oracle);
        let cleared = size / sector..self.run.file_bytes / sector;
        let mut version = 0;
        let _edit = self.run.edit(cleared.clone());
        self.timed(5, |w| {
            w.run.cache.truncate(size, device, &mut || {
                version = oracle.next_version();
                device.edit(cleared.clone(), version);
            })
        });
        if version != 0 {
            oracle.complete(cleared, version);
        }
        self.run.cache.set_size(self.run.file_bytes);
    }

    fn punch(&mut self) {
        let sector = self.run.sector;
        let io = self.spec.io_bytes / sector;
        let region = self.spec.pages.start * self.run.page_size / sector
            ..self.spec.pages.end * self.run.page_size / sector - io + 1;
        let first = self.rng.in_range(region);
        let hole = first..first + io;
        let (device, oracle) = (self.run.device, self.run.oracle);
        let mut version = 0;
        let _edit = self.run.edit(hole.clone());
        self.timed(6, |w| {
            w.run
                .cache
                .punch_hole(hole.start * sector..hole.end * sector, device, &mut || {
                    version = oracle.next_version();
                    device.edit(hole.clone(), version);
                })
        });
        if version != 0 {
            oracle.complete(hole, version);
        }
    }

    /// Writes back `pages` (the role's whole region, or in the mixed role an 8-page
    /// window: `sync_file_range`) and checks the device.
    fn writeback(&mut self, pages: core::ops::Range<u64>) {
        let per_page = SECTORS_PER_PAGE as u64;
        let sectors = pages.start * per_page..pages.end * per_page;
        let pages = pages.start..=pages.end - 1;
        let window = self.run.edit_window();
        let floors = self.floors(sectors.clone());
        let done = self.timed(7, |w| w.run.cache.writeback(pages, w.run.device).map(drop));
        let Some(edited) = self.run.edited_since(window).filter(|_| done) else {
            return;
        };
        self.result.fsync_checks += 1;
        // What the device holds, read back (on a file device, with O_DIRECT: the disk's
        // contents, not the kernel's page cache nor anything this program recorded).
        let on_disk = self.run.device.check(sectors.clone());
        self.result.fsync_lost += sectors
            .zip(floors)
            .zip(on_disk)
            .filter(|((s, _), _)| !edited.iter().any(|r| r.contains(s)))
            .filter(|&((_, floor), held)| held < floor)
            .count() as u64;
    }

    /// Up to 8 pages from a random one, within the region.
    fn window(&mut self) -> core::ops::Range<u64> {
        let first = self.page();
        first..(first + 8).min(self.spec.pages.end)
    }

    fn readahead(&mut self) {
        let window = self.window();
        let (first, last) = (window.start, window.end - 1);
        self.timed(8, |w| {
            w.run.cache.readahead(first..=last, w.run.device).map(drop)
        });
    }

    fn step(&mut self, role: Role, turn: u64) {
        match role {
            Role::Fault => self.read_page(false),
            Role::BufferedRead => self.read_page(true),
            Role::BufferedWrite => self.buffered_write(),
            Role::DirectRead => self.direct(DirectIoKind::Read),
            Role::DirectWrite => self.direct(DirectIoKind::Write),
            Role::Truncate => self.truncate(),
            Role::Punch => self.punch(),
            Role::Writeback => self.writeback(self.spec.pages.clone()),
            Role::Mixed => {
                const TURNS: [Option<Role>; 7] = [
                    Some(Role::Fault),
                    Some(Role::BufferedRead),
                    Some(Role::BufferedWrite),
                    Some(Role::DirectRead),
                    Some(Role::DirectWrite),
                    None, // an 8-page write-back
                    None, // an 8-page readahead
                ];
                let turn = (turn % TURNS.len() as u64) as usize;
                match TURNS[turn] {
                    Some(role) => self.step(role, 0),
                    None if turn == 5 => {
                        let window = self.window();
                        self.writeback(window);
                    }
                    None => self.readahead(),
                }
            }
        }
    }
}

/// Runs `workload` against `cache` (an empty file: the driver sizes it) on the simulated
/// device and reports.
pub fn run(cache: &dyn PageCache<PageData>, workload: &Workload) -> Result<Report, String> {
    run_on(cache, workload, &DeviceSpec::Simulated)
}

/// [`run`] on the device `spec` names (a file device is created for the run and removed
/// after it).
pub fn run_on(
    cache: &dyn PageCache<PageData>,
    workload: &Workload,
    spec: &DeviceSpec,
) -> Result<Report, String> {
    let page_size = cache.page_size();
    workload.validate(page_size)?;
    let device = spec.open(workload.file_pages, page_size, workload.latency)?;
    let device = device.as_ref();
    let oracle = Oracle::new(device.sectors());
    let file_bytes = workload.file_pages * page_size;
    cache.set_size(file_bytes);
    let run = Run {
        cache,
        device,
        oracle: &oracle,
        file_bytes,
        page_size,
        sector: device.sector_size(),
        edits: Mutex::new(EditLog::default()),
    };
    let stop = AtomicBool::new(false);
    let started = AtomicU64::new(0);
    let main_thread = std::thread::current();
    let threads = workload.threads();
    let start_line = Barrier::new(threads + 1);
    let mut results = Vec::new();
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut seed = workload.seed;
        for spec in &workload.roles {
            for t in 0..spec.threads {
                seed = seed.wrapping_add(1);
                let (run, stop, start_line) = (&run, &stop, &start_line);
                let (started, main_thread, max_ops) = (&started, &main_thread, workload.max_ops);
                let mut worker = Worker {
                    run,
                    spec,
                    slot: (t as u64, spec.threads as u64),
                    rng: Rng::new(seed),
                    result: ThreadResult::default(),
                };
                handles.push(scope.spawn(move || {
                    start_line.wait();
                    let mut turn = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(max) = max_ops {
                            // Counted as it starts: at most `max` calls begin.
                            if started.fetch_add(1, Ordering::Relaxed) >= max {
                                stop.store(true, Ordering::Relaxed);
                                main_thread.unpark();
                                break;
                            }
                        }
                        worker.step(spec.role, turn);
                        turn += 1;
                    }
                    worker.result
                }));
            }
        }
        start_line.wait();
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match workload.duration.checked_sub(start.elapsed()) {
                Some(left) if !left.is_zero() => std::thread::park_timeout(left),
                _ => break,
            }
        }
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            match handle.join() {
                Ok(result) => results.push(result),
                Err(_) => results.push(ThreadResult {
                    errors: vec!["a worker thread panicked".into()],
                    ..ThreadResult::default()
                }),
            }
        }
        elapsed = start.elapsed();
    });
    let mut ops: [OpStats; OPS.len()] = Default::default();
    let (mut stale_reads, mut errors) = (0, Vec::new());
    let (mut fsync_checks, mut fsync_lost) = (0, 0);
    for result in results {
        for (total, mine) in ops.iter_mut().zip(&result.ops) {
            total.merge(mine);
        }
        stale_reads += result.stale;
        fsync_checks += result.fsync_checks;
        fsync_lost += result.fsync_lost;
        errors.extend(result.errors);
    }
    let lost_writes = final_check(&run, &mut errors);
    Ok(Report {
        strategy: cache.strategy(),
        threads,
        elapsed,
        ops: OPS
            .iter()
            .zip(ops)
            .filter(|(_, s)| s.latency.count() + s.beyond_eof > 0)
            .map(|(&op, stats)| OpReport { op, stats })
            .collect(),
        stale_reads,
        lost_writes,
        fsync_checks,
        fsync_lost,
        errors,
    })
}

/// After the threads stop: quiescence, a full write-back, then every sector on the
/// device at least its completed version, and every cached page equal to the device.
fn final_check(run: &Run<'_>, errors: &mut Vec<String>) -> u64 {
    run.device.quiet();
    if let Err(error) = run.cache.check_quiescent() {
        errors.push(format!("not quiescent: {error}"));
    }
    if let Err(error) = run.cache.writeback(0..=u64::MAX, run.device) {
        errors.push(format!("final write-back: {error}"));
    }
    let on_disk = run.device.check(0..run.oracle.sectors());
    let lost = on_disk
        .iter()
        .enumerate()
        .filter(|&(s, &held)| held < run.oracle.floor(s as u64))
        .count() as u64;
    let pages = run.file_bytes / run.page_size;
    for index in 0..pages {
        let mut cached = PageData::default();
        if run
            .cache
            .fault(index, run.device, &mut |data| cached = *data)
            .is_ok()
        {
            let first = index * SECTORS_PER_PAGE as u64;
            let on_disk: PageData = core::array::from_fn(|i| on_disk[first as usize + i]);
            if cached != on_disk && errors.len() < 16 {
                errors.push(format!(
                    "page {index}: cached {cached:?}, device {on_disk:?}"
                ));
            }
        }
    }
    lost
}
