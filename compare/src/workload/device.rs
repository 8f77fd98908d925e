//! The simulated device: one version number per sector, and a latency per transfer.
//!
//! A sector holds no bytes, only the *version* of the write that last wrote it (0: never
//! written), so the [oracle](super::oracle) can tell which write a read sees. Every
//! transfer costs `base + bytes * per_mib / 1 MiB`, slept or spun ([`LatencyMode`]).
//! With sleeps, threads that wait on the device do not use a core, so thread counts above
//! the number of cores are meaningful (a 16-thread run on 2 cores measures the locks, not
//! the scheduler); spins model a device as fast as the CPU.
//!
//! Each thread's time inside the device is added to a thread-local counter, so the
//! driver can tell the time an operation spent waiting for locks from the time it spent
//! on its own IO.

use core::cell::Cell;
use core::time::Duration;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::{PageData, SECTORS_PER_PAGE};
use crate::Device;

/// How a transfer's latency is spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyMode {
    /// `thread::sleep`: the thread gives up its core (an IO wait).
    Sleep,
    /// A busy loop on `Instant::now`: the device is as fast as the CPU.
    Spin,
}

/// The cost of one transfer: `base + bytes * per_mib / 1 MiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Sleep or spin.
    pub mode: LatencyMode,
    /// Per transfer.
    pub base: Duration,
    /// Per MiB transferred.
    pub per_mib: Duration,
}

impl Latency {
    /// No latency at all (the lock overhead alone).
    pub const NONE: Latency = Latency {
        mode: LatencyMode::Spin,
        base: Duration::ZERO,
        per_mib: Duration::ZERO,
    };

    /// The time a transfer of `bytes` takes.
    pub fn of(&self, bytes: u64) -> Duration {
        let per_byte = self.per_mib.as_nanos() as f64 / (1u64 << 20) as f64;
        self.base + Duration::from_nanos((per_byte * bytes as f64) as u64)
    }

    /// Spends the time a transfer of `bytes` takes.
    pub fn spend(&self, bytes: u64) {
        let time = self.of(bytes);
        if time.is_zero() {
            return;
        }
        match self.mode {
            LatencyMode::Sleep => std::thread::sleep(time),
            LatencyMode::Spin => {
                let start = Instant::now();
                while start.elapsed() < time {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

std::thread_local! {
    static DEVICE_TIME: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// The time this thread has spent inside a [`SimDevice`] so far.
pub fn device_time() -> Duration {
    DEVICE_TIME.with(Cell::get)
}

/// Runs `f`, adding its time to this thread's [`device_time`].
pub(super) fn timed<R>(f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let result = f();
    DEVICE_TIME.with(|t| t.set(t.get() + start.elapsed()));
    result
}

/// The simulated device: one version per sector (0: never written), every transfer
/// costing its [`Latency`], each thread's time inside it counted ([`device_time`]).
#[derive(Debug)]
pub struct SimDevice {
    sectors: Box<[AtomicU64]>,
    sector_size: u64,
    latency: Latency,
    /// Set once the threads have stopped: the final checks run at memory speed.
    quiet: AtomicBool,
}

impl SimDevice {
    /// A device of `pages` pages of `page_size` bytes, every sector at version 0.
    pub fn new(pages: u64, page_size: u64, latency: Latency) -> SimDevice {
        SimDevice {
            sectors: (0..pages * SECTORS_PER_PAGE as u64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            sector_size: page_size / SECTORS_PER_PAGE as u64,
            latency,
            quiet: AtomicBool::new(false),
        }
    }

    /// Drops the latency from now on (for the checks after a run).
    pub fn quiet(&self) {
        self.quiet.store(true, Ordering::Relaxed);
    }

    fn spend(&self, bytes: u64) {
        if !self.quiet.load(Ordering::Relaxed) {
            self.latency.spend(bytes);
        }
    }

    /// The number of sectors it stores (transfers past them cost time and store nothing).
    pub fn sectors(&self) -> u64 {
        self.sectors.len() as u64
    }

    /// Bytes per sector.
    pub fn sector_size(&self) -> u64 {
        self.sector_size
    }

    /// The version of `sector` (0 past the end).
    pub fn sector(&self, sector: u64) -> u64 {
        self.slot(sector).map_or(0, |s| s.load(Ordering::SeqCst))
    }

    fn slot(&self, sector: u64) -> Option<&AtomicU64> {
        usize::try_from(sector)
            .ok()
            .and_then(|s| self.sectors.get(s))
    }

    fn store(&self, sector: u64, version: u64) {
        if let Some(slot) = self.slot(sector) {
            slot.store(version, Ordering::SeqCst);
        }
    }

    /// A direct read of `sectors`: their versions, after the transfer's latency.
    pub fn read_sectors(&self, sectors: core::ops::Range<u64>) -> Vec<u64> {
        timed(|| {
            self.spend((sectors.end - sectors.start) * self.sector_size);
            sectors.map(|s| self.sector(s)).collect()
        })
    }

    /// A direct write of `version` to `sectors`, after the transfer's latency.
    pub fn write_sectors(&self, sectors: core::ops::Range<u64>, version: u64) {
        timed(|| {
            self.spend((sectors.end - sectors.start) * self.sector_size);
            for s in sectors {
                self.store(s, version);
            }
        });
    }

    /// An on-disk edit (truncate, hole punch): `version` to every stored sector of
    /// `sectors`, after one base latency.
    pub fn edit(&self, sectors: core::ops::Range<u64>, version: u64) {
        timed(|| {
            self.spend(0);
            for s in sectors.start..sectors.end.min(self.sectors()) {
                self.store(s, version);
            }
        });
    }
}

impl Device<PageData> for SimDevice {
    fn read_page(&self, index: u64) -> PageData {
        timed(|| {
            self.spend(self.sector_size * SECTORS_PER_PAGE as u64);
            let first = index * SECTORS_PER_PAGE as u64;
            core::array::from_fn(|i| self.sector(first + i as u64))
        })
    }

    fn write_page(&self, index: u64, data: &PageData) {
        timed(|| {
            self.spend(self.sector_size * SECTORS_PER_PAGE as u64);
            let first = index * SECTORS_PER_PAGE as u64;
            for (i, &version) in data.iter().enumerate() {
                self.store(first + i as u64, version);
            }
        });
    }
}

impl super::Disk for SimDevice {
    fn sectors(&self) -> u64 {
        SimDevice::sectors(self)
    }

    fn sector_size(&self) -> u64 {
        SimDevice::sector_size(self)
    }

    fn read_sectors(&self, sectors: core::ops::Range<u64>) -> Vec<u64> {
        SimDevice::read_sectors(self, sectors)
    }

    fn write_sectors(&self, sectors: core::ops::Range<u64>, version: u64) {
        SimDevice::write_sectors(self, sectors, version)
    }

    fn edit(&self, sectors: core::ops::Range<u64>, version: u64) {
        SimDevice::edit(self, sectors, version)
    }

    fn check(&self, sectors: core::ops::Range<u64>) -> Vec<u64> {
        sectors.map(|s| self.sector(s)).collect()
    }

    fn quiet(&self) {
        SimDevice::quiet(self)
    }
}
