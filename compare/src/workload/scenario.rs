//! The standard scenarios of the comparison ([`SCENARIOS`], [`empty_file_sweep`]) and
//! the strategies they compare ([`Strategy`]).

use core::time::Duration;
use std::time::Instant;

use super::{Latency, LatencyMode, PageData, Role, RoleSpec, SimDevice, Workload};
use crate::{
    DioCountMapping, IntervalMapping, PageCache, RwLockMapping, TwoStateMapping, UnlockedMapping,
};
use rangelock::mapping::{DirectIoKind, Mapping};

/// A page-cache strategy of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// [`Mapping`]: lock entries.
    RangeLock,
    /// [`RwLockMapping`].
    RwLock,
    /// [`TwoStateMapping`].
    TwoState,
    /// [`IntervalMapping`].
    Interval,
    /// [`DioCountMapping`]: a count of direct IOs in flight.
    DioCount,
    /// [`UnlockedMapping`]: the negative control.
    Naive,
}

impl Strategy {
    /// The five strategies compared (the naive control is run on request).
    pub const COMPARED: [Strategy; 5] = [
        Strategy::RangeLock,
        Strategy::RwLock,
        Strategy::TwoState,
        Strategy::Interval,
        Strategy::DioCount,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RangeLock => "rangelock",
            Strategy::RwLock => "rwlock",
            Strategy::TwoState => "two-state",
            Strategy::Interval => "interval",
            Strategy::DioCount => "dio-count",
            Strategy::Naive => "naive",
        }
    }

    /// The strategy called `name`.
    pub fn from_name(name: &str) -> Option<Strategy> {
        [Strategy::Naive]
            .into_iter()
            .chain(Strategy::COMPARED)
            .find(|s| s.name() == name)
    }

    /// An empty file's page cache under this strategy.
    pub fn build(self) -> Box<dyn PageCache<PageData>> {
        match self {
            Strategy::RangeLock => Box::new(Mapping::<PageData>::new()),
            Strategy::RwLock => Box::new(RwLockMapping::<PageData>::new()),
            Strategy::TwoState => Box::new(TwoStateMapping::<PageData>::new()),
            Strategy::Interval => Box::new(IntervalMapping::<PageData>::new()),
            Strategy::DioCount => Box::new(DioCountMapping::<PageData>::new()),
            Strategy::Naive => Box::new(UnlockedMapping::<PageData>::new()),
        }
    }
}

/// A standard scenario (see [`SCENARIOS`]).
#[derive(Debug)]
pub struct Scenario {
    /// Its name, its letter first.
    pub name: &'static str,
    /// One line on what it measures.
    pub title: &'static str,
    /// Threads by default.
    pub default_threads: usize,
    /// The workload at a thread count (`None` for the sweep, scenario e).
    build: Option<fn(usize) -> Workload>,
}

impl Scenario {
    /// The workload with `threads` threads running for `duration`; `None` for scenario e,
    /// which is [`empty_file_sweep`].
    pub fn workload(&self, threads: usize, duration: Duration) -> Option<Workload> {
        let mut workload = (self.build?)(threads.max(1));
        workload.duration = duration;
        Some(workload)
    }

    /// Whether it is the sweep of scenario e ([`empty_file_sweep`]), not a workload.
    pub fn is_sweep(&self) -> bool {
        self.build.is_none()
    }

    /// The scenario whose name is `name` or starts with `name` (a letter will do).
    pub fn find(name: &str) -> Option<&'static Scenario> {
        SCENARIOS
            .iter()
            .find(|s| s.name == name || (!name.is_empty() && s.name.starts_with(name)))
    }
}

/// The device latency of scenarios a–d.
const SLEEPING: Latency = Latency {
    mode: LatencyMode::Sleep,
    base: Duration::from_micros(50),
    per_mib: Duration::from_micros(200),
};

fn role(
    role: Role,
    threads: usize,
    pages: core::ops::Range<u64>,
    hit_ratio: f64,
    io_bytes: u64,
) -> RoleSpec {
    RoleSpec {
        role,
        threads,
        pages,
        hit_ratio,
        io_bytes,
    }
}

fn workload(file_pages: u64, latency: Latency, roles: Vec<RoleSpec>) -> Workload {
    Workload {
        file_pages,
        latency,
        duration: Duration::from_secs(1),
        max_ops: None,
        roles: roles.into_iter().filter(|r| r.threads > 0).collect(),
        seed: 0x5eed,
    }
}

fn split(n: usize) -> Workload {
    let writers = n / 2;
    let faulters = (n - writers) / 2;
    let readers = n - writers - faulters;
    // 16-page (64 KiB) slots: at least one per direct writer.
    let half = (writers as u64 * 16).max(512);
    workload(
        2 * half,
        SLEEPING,
        vec![
            role(Role::BufferedRead, readers, 0..half, 0.9, 0),
            role(Role::Fault, faulters, 0..half, 0.9, 0),
            role(Role::DirectWrite, writers, half..2 * half, 0.0, 64 << 10),
        ],
    )
}

fn fairness(n: usize) -> Workload {
    let writers = n / 2;
    let pages = (writers as u64).max(16);
    workload(
        pages.max(64),
        SLEEPING,
        vec![
            role(Role::Fault, n - writers, 0..pages, 0.5, 0),
            role(Role::DirectWrite, writers, 0..pages, 0.0, 4096),
        ],
    )
}

fn truncate(n: usize) -> Workload {
    let truncaters = usize::from(n >= 2);
    let punchers = usize::from(n >= 3);
    workload(
        1024,
        SLEEPING,
        vec![
            role(
                Role::BufferedRead,
                n - truncaters - punchers,
                0..1024,
                0.9,
                0,
            ),
            role(Role::Truncate, truncaters, 512..1024, 0.0, 0),
            role(Role::Punch, punchers, 0..1024, 0.0, 64 << 10),
        ],
    )
}

fn subpage(n: usize) -> Workload {
    // Eight 512-byte slots per page: at least one per thread.
    let pages = (n as u64).div_ceil(8).max(4);
    workload(
        pages.max(16),
        SLEEPING,
        vec![role(Role::DirectWrite, n, 0..pages, 0.0, 512)],
    )
}

fn uncontended(n: usize) -> Workload {
    let pages = (n as u64).max(256);
    workload(
        pages,
        Latency::NONE,
        vec![role(Role::Mixed, n, 0..pages, 0.9, 4096)],
    )
}

fn cpu_bound(n: usize) -> Workload {
    // At least one direct writer (the scenario is about them), then faulters.
    let writers = n.div_ceil(2);
    let faulters = n - writers;
    // 16-page (64 KiB) slots: at least one per direct writer, as in `split`.
    let half = (writers as u64 * 16).max(512);
    workload(
        2 * half,
        Latency::NONE,
        vec![
            role(Role::Fault, faulters, 0..half, 0.9, 0),
            role(Role::DirectWrite, writers, half..2 * half, 0.0, 64 << 10),
        ],
    )
}

/// The standard scenarios, in order.
///
/// | scenario | threads (of `n`) | what it shows |
/// |---|---|---|
/// | `a-split` | `n/2` direct writers (64 KiB) on the second half of a 4 MiB file; the rest fault and read the first half (90% hits) | a whole-file lock makes IO on one half wait for IO on the other |
/// | `b-fairness` | `n/2` direct writers (4 KiB) and `n/2` faulters (half of the faults miss) on the same 16 pages | whether a direct write waits a bounded time or starves |
/// | `c-truncate` | one truncater (in the second half, then grow back), one hole puncher (64 KiB), the rest buffered readers (90% hits) over the whole file | size changes under a read load |
/// | `d-subpage` | `n` direct writers of 512 bytes on the same 4 pages (each thread its own sectors) | sub-page direct IO sharing pages |
/// | `e-empty-file` | one thread: a direct write over all of an empty file of 4 KiB, 1 MiB, 1 GiB, 1 TiB | the cost of one lock against the size it covers ([`empty_file_sweep`]) |
/// | `f-uncontended` | one thread doing every operation in turn, no device latency | the lock's own overhead |
/// | `g-cpu` | half the threads (rounded up) direct writers (64 KiB) on the second half of the file, the rest faulting the first half (90% hits), on a device that costs only the copy of the data | the locks' own cost and contention when disjoint IO is CPU-bound |
///
/// Past 64 threads (a), 32 (b), 32 (d) or 256 (f) the regions grow so that every direct
/// writer keeps slots of its own.
///
/// Scenarios a–d use a sleeping device of 50 µs per transfer plus 200 µs per MiB, so
/// thread counts above the number of cores are meaningful. Scenario g's device costs
/// nothing but the copy: its thread counts are meaningful up to the number of cores.
pub static SCENARIOS: [Scenario; 7] = [
    Scenario {
        name: "a-split",
        title: "cached reads + faults on one half, direct writes on the other",
        default_threads: 16,
        build: Some(split),
    },
    Scenario {
        name: "b-fairness",
        title: "faults and direct writes on the same pages",
        default_threads: 16,
        build: Some(fairness),
    },
    Scenario {
        name: "c-truncate",
        title: "truncate and hole punch under a read load",
        default_threads: 16,
        build: Some(truncate),
    },
    Scenario {
        name: "d-subpage",
        title: "512-byte direct writes to the same 4 pages",
        default_threads: 16,
        build: Some(subpage),
    },
    Scenario {
        name: "e-empty-file",
        title: "one direct write over all of an empty file, 4 KiB .. 1 TiB",
        default_threads: 1,
        build: None,
    },
    Scenario {
        name: "f-uncontended",
        title: "every operation in turn, one thread, no device latency",
        default_threads: 1,
        build: Some(uncontended),
    },
    Scenario {
        name: "g-cpu",
        title: "disjoint direct writes + faults, a device as fast as a copy",
        default_threads: 2,
        build: Some(cpu_bound),
    },
];

/// One size of [`empty_file_sweep`].
#[derive(Clone, Copy, Debug)]
pub struct SweepRow {
    /// The file size, all of it covered by the direct write.
    pub file_bytes: u64,
    /// Calls per second.
    pub ops_per_sec: f64,
    /// The slowest call.
    pub worst: Duration,
    /// Bytes allocated per call, by `allocated` (0 without a counter).
    pub bytes_per_lock: u64,
}

/// Scenario e: for each size, `calls` direct writes over the whole of an empty file of
/// that size (no device time), timed, with `allocated()` (bytes allocated by this thread
/// so far, say from a counting global allocator) read around them.
///
/// Each size's first call is a warm-up outside the timing and the count: it pays what a
/// thread pays once (its thread-locals, a strategy's first pool chunk, the allocator's
/// first pages), which with a few hundred calls of a tenth of a microsecond each would
/// otherwise decide the rate of whichever strategy ran first.
pub fn empty_file_sweep(
    strategy: Strategy,
    sizes: &[u64],
    calls: u32,
    allocated: &dyn Fn() -> u64,
) -> Result<Vec<SweepRow>, String> {
    let mut rows = Vec::new();
    for &size in sizes {
        let cache = strategy.build();
        cache.set_size(size);
        let device = SimDevice::new(0, cache.page_size(), Latency::NONE);
        let write = || {
            cache
                .direct_io(0..size, DirectIoKind::Write, &device, &mut || {})
                .map_err(|e| format!("{} over {size} bytes: {e}", strategy.name()))
        };
        write()?;
        let mut worst = Duration::ZERO;
        let before = allocated();
        let start = Instant::now();
        for _ in 0..calls.max(1) {
            let call = Instant::now();
            write()?;
            worst = worst.max(call.elapsed());
        }
        let elapsed = start.elapsed();
        let bytes = allocated() - before;
        cache.check_quiescent()?;
        rows.push(SweepRow {
            file_bytes: size,
            ops_per_sec: f64::from(calls.max(1)) / elapsed.as_secs_f64(),
            worst,
            bytes_per_lock: bytes / u64::from(calls.max(1)),
        });
    }
    Ok(rows)
}
