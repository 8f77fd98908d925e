//! One thread of a run: its role's operations, each timed and checked against the
//! oracle.

use std::time::Instant;

use rangelock::mapping::{DirectIoKind, MappingError};

use super::driver::Run;
use super::rng::Rng;
use super::{device_time, OpStats, Oracle, PageData, Role, RoleSpec, OPS, SECTORS_PER_PAGE};

/// What one thread gathered.
#[derive(Default)]
pub(super) struct ThreadResult {
    pub(super) ops: [OpStats; OPS.len()],
    pub(super) stale: u64,
    pub(super) fsync_checks: u64,
    pub(super) fsync_lost: u64,
    pub(super) errors: Vec<String>,
}

/// One thread's context.
pub(super) struct Worker<'a> {
    pub(super) run: &'a Run<'a>,
    pub(super) spec: &'a RoleSpec,
    /// This thread's number among the threads of its role, and their count.
    pub(super) slot: (u64, u64),
    pub(super) rng: Rng,
    pub(super) result: ThreadResult,
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
        let _edit = self.run.edits.start(cleared.clone());
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
        let _edit = self.run.edits.start(hole.clone());
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
        let window = self.run.edits.window();
        let floors = self.floors(sectors.clone());
        let done = self.timed(7, |w| w.run.cache.writeback(pages, w.run.device).map(drop));
        let Some(edited) = self.run.edits.since(window).filter(|_| done) else {
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

    pub(super) fn step(&mut self, role: Role, turn: u64) {
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
