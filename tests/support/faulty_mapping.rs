//! [`FaultyMapping`]: the rangelock page cache driven through the oracle's [`PageCache`]
//! with failures injected into every callback the page cache runs: fills (faults,
//! buffered IO, readahead) that fail or panic, write-back callbacks that fail or panic,
//! and direct-IO hand-offs (`flush`) that fail or panic, after which the direct IO is
//! retried at once, so that the pages the failed hand-off put back are evicted again
//! while other threads write them back (the interleaving behind issue 11's lost fsync).
//! A retried hand-off that succeeds is slow on purpose (`flush_delay` yields before it
//! writes the disk), so that a write-back that returns without waiting for it is caught
//! by the oracle's fsync check.
//!
//! Injected panics carry an [`InjectedPanic`] payload, which the panic hook installed by
//! [`FaultyMapping::new`] keeps quiet; every other panic is reported as usual.
#![allow(dead_code)]

use std::cell::Cell;
use std::ops::{Range, RangeInclusive};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Once};
use std::thread;

use rangelock::mapping::{DirectIoKind, Mapping, MappingError};

use super::lock_harness::splitmix64;
use super::page_cache::{Disk, PageCache, PageData, SECTOR};

/// How often each callback fails, in parts per thousand, and how direct IO retries.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// A fill returns an error / panics.
    pub fill_fail: u64,
    pub fill_panic: u64,
    /// A write-back callback returns an error / panics.
    pub write_fail: u64,
    pub write_panic: u64,
    /// A direct IO's `flush` returns an error / panics.
    pub flush_fail: u64,
    pub flush_panic: u64,
    /// Attempts of a direct IO whose hand-off failed, before it gives up.
    pub attempts: u32,
    /// Yields in a hand-off before it writes the disk.
    pub flush_delay: u32,
}

impl Faults {
    /// Failures often enough that failed hand-offs meet write-backs many times a second.
    pub const OFTEN: Faults = Faults {
        fill_fail: 30,
        fill_panic: 10,
        write_fail: 60,
        write_panic: 20,
        flush_fail: 300,
        flush_panic: 100,
        attempts: 3,
        flush_delay: 8,
    };
}

/// The payload of an injected panic.
pub struct InjectedPanic;

/// What was injected, and how many direct IOs were retried after a failed hand-off.
#[derive(Debug, Default)]
pub struct Injected {
    pub fills: AtomicU64,
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
    pub re_evictions: AtomicU64,
}

/// The rangelock mapping with failures injected (see the module docs).
pub struct FaultyMapping<const S: usize> {
    pub mapping: Mapping<PageData, S>,
    pub faults: Faults,
    pub injected: Arc<Injected>,
    /// Cleared at the end of the run: the final checks run without failures.
    injecting: AtomicBool,
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut seed: u64 = 0x6661_756c_7473;
        for b in format!("{:?}", thread::current().id()).bytes() {
            seed = seed.rotate_left(8) ^ u64::from(b);
        }
        seed
    });
}

/// Whether an event of `per_mille` parts per thousand happens now.
fn chance(per_mille: u64) -> bool {
    per_mille > 0
        && RNG.with(|rng| {
            let mut state = rng.get();
            let draw = splitmix64(&mut state) % 1000;
            rng.set(state);
            draw < per_mille
        })
}

/// Why a callback failed.
#[derive(Debug)]
struct Injection;

impl<const S: usize> FaultyMapping<S> {
    pub fn new(mapping: Mapping<PageData, S>, faults: Faults) -> Self {
        static QUIET: Once = Once::new();
        QUIET.call_once(|| {
            let default = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !info.payload().is::<InjectedPanic>() {
                    default(info);
                }
            }));
        });
        FaultyMapping {
            mapping,
            faults,
            injected: Arc::default(),
            injecting: AtomicBool::new(true),
        }
    }

    /// Fails (`Err`) or panics as `fail` and `panic` say, counting it in `counter`.
    fn inject(&self, fail: u64, panic: u64, counter: &AtomicU64) -> Result<(), Injection> {
        if !self.injecting.load(SeqCst) {
            return Ok(());
        }
        if chance(panic) {
            counter.fetch_add(1, SeqCst);
            panic::panic_any(InjectedPanic);
        }
        if chance(fail) {
            counter.fetch_add(1, SeqCst);
            return Err(Injection);
        }
        Ok(())
    }

    /// A fill that may fail or panic.
    fn fill(&self, disk: &Disk, index: u64) -> Result<PageData, Injection> {
        let f = self.faults;
        self.inject(f.fill_fail, f.fill_panic, &self.injected.fills)?;
        Ok(disk.read_page(index))
    }

    /// A direct IO over `bytes` whose hand-offs may fail or panic, retried at once (the
    /// retry evicts again what the failed hand-off put back); runs `io` under the guard
    /// of the attempt that succeeds. `None` if every attempt failed.
    fn direct<R>(
        &self,
        disk: &Disk,
        bytes: &Range<u64>,
        kind: DirectIoKind,
        io: impl FnOnce() -> R,
    ) -> Option<R> {
        let f = self.faults;
        for attempt in 0..f.attempts {
            if attempt > 0 {
                self.injected.re_evictions.fetch_add(1, SeqCst);
            }
            let flush = |index: u64, data: &PageData| {
                self.inject(f.flush_fail, f.flush_panic, &self.injected.flushes)?;
                for _ in 0..f.flush_delay {
                    thread::yield_now();
                }
                disk.write_page(index, data);
                Ok::<_, Injection>(())
            };
            let started = panic::catch_unwind(AssertUnwindSafe(|| {
                self.mapping.direct_io(bytes.clone(), kind, flush)
            }));
            match started {
                Ok(Ok(guard)) => {
                    let result = io();
                    drop(guard);
                    return Some(result);
                }
                Ok(Err(MappingError::Io(Injection))) | Err(_) => continue,
                Ok(Err(error)) => panic!("direct IO: {error:?}"),
            }
        }
        None
    }
}

/// A call's result with injected errors and panics turned into `None`; any other error
/// but `BeyondEof` (also `None`) fails the test.
fn survived<T>(what: &str, call: impl FnOnce() -> Result<T, MappingError<Injection>>) -> Option<T> {
    match panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(t)) => Some(t),
        Ok(Err(MappingError::BeyondEof { .. } | MappingError::Io(Injection))) => None,
        Ok(Err(error)) => panic!("{what}: {error:?}"),
        Err(payload) if payload.is::<InjectedPanic>() => None,
        Err(payload) => panic::resume_unwind(payload),
    }
}

impl<const S: usize> PageCache for FaultyMapping<S> {
    fn size(&self) -> u64 {
        self.mapping.size()
    }

    fn grow(&self, size: u64) {
        self.mapping.set_size(size);
    }

    fn fault_page(&self, disk: &Disk, index: u64) -> Option<PageData> {
        let page = survived("fault", || {
            self.mapping.fault(index, |i| self.fill(disk, i))
        })?;
        Some(page.read(|data| *data))
    }

    fn buffered_read(&self, disk: &Disk, index: u64) -> Option<PageData> {
        survived("read", || {
            self.mapping
                .read(index, |i| self.fill(disk, i), |data| *data)
        })
    }

    fn buffered_read_pages(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Vec<(u64, PageData)> {
        let mut read = Vec::new();
        let fill = |i| self.fill(disk, i);
        // A failed or panicking fill ends the read; the pages before it were read.
        survived("read_pages", || {
            self.mapping
                .read_pages(pages, fill, |i, data| read.push((i, *data)))
        });
        read
    }

    fn read_ahead(&self, disk: &Disk, pages: RangeInclusive<u64>) -> usize {
        let fill = |indices: &[u64]| indices.iter().map(|&i| self.fill(disk, i)).collect();
        survived("readahead", || self.mapping.readahead(pages, fill)).unwrap_or(0)
    }

    fn buffered_write(&self, disk: &Disk, index: u64, sectors: Range<usize>, version: u64) -> bool {
        self.mapping
            .set_size(index * super::page_cache::PAGE + sectors.end as u64 * SECTOR);
        let write = |data: &mut PageData| data[sectors].fill(version);
        survived("write", || {
            self.mapping.write(index, |i| self.fill(disk, i), write)
        })
        .is_some()
    }

    fn write_back(&self, disk: &Disk, pages: RangeInclusive<u64>) -> Option<usize> {
        let f = self.faults;
        let write = |index: u64, data: &PageData| {
            self.inject(f.write_fail, f.write_panic, &self.injected.writes)?;
            disk.write_page(index, data);
            Ok(())
        };
        survived("writeback", || self.mapping.writeback(pages, write))
    }

    fn direct_read(&self, disk: &Disk, bytes: Range<u64>) -> Option<Vec<u64>> {
        let sectors = bytes.start / SECTOR..bytes.end / SECTOR;
        self.direct(disk, &bytes, DirectIoKind::Read, || {
            disk.read_sectors(sectors)
        })
    }

    fn direct_write(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        let sectors = bytes.start / SECTOR..bytes.end / SECTOR;
        let done = self
            .direct(disk, &bytes, DirectIoKind::Write, || {
                disk.write_sectors(sectors, version)
            })
            .is_some();
        if done {
            self.mapping.set_size(bytes.end);
        }
        done
    }

    fn truncate_to(&self, disk: &Disk, size: u64, version: u64) {
        self.mapping.truncate_to(disk, size, version)
    }

    fn punch(&self, disk: &Disk, bytes: Range<u64>, version: u64) {
        self.mapping.punch(disk, bytes, version)
    }

    fn collapse(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        self.mapping.collapse(disk, bytes, version)
    }

    fn insert(&self, disk: &Disk, bytes: Range<u64>, version: u64) -> bool {
        self.mapping.insert(disk, bytes, version)
    }

    fn cached(&self) -> Vec<(u64, PageData)> {
        self.mapping.cached()
    }

    fn quiescent(&self) -> Result<(), String> {
        self.mapping.quiescent()
    }

    fn end_of_run(&self) {
        self.injecting.store(false, SeqCst);
    }
}
