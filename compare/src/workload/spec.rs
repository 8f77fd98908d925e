//! What a workload is: the roles its threads play, the regions they work on, and the
//! checks that refuse a workload the driver cannot run.

use core::time::Duration;

use super::{Latency, SECTORS_PER_PAGE};

/// What a thread does (see the [module docs](super)).
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

/// A workload (see the [module docs](super)).
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
