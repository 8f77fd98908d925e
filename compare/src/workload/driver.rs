//! A run: the threads started together, stopped after the duration, their results
//! gathered, and the final check of the device and the cache.

use core::time::Duration;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use crate::PageCache;

use super::edits::Edits;
use super::rng::Rng;
use super::worker::{ThreadResult, Worker};
use super::{
    DeviceSpec, Disk, OpReport, OpStats, Oracle, PageData, Report, Workload, OPS, SECTORS_PER_PAGE,
};

/// The shared state of a run.
pub(super) struct Run<'a> {
    pub(super) cache: &'a dyn PageCache<PageData>,
    pub(super) device: &'a dyn Disk,
    pub(super) oracle: &'a Oracle,
    pub(super) file_bytes: u64,
    pub(super) page_size: u64,
    pub(super) sector: u64,
    /// The edits in progress and those started lately (the fsync check skips the
    /// sectors of edits that overlap it in time).
    pub(super) edits: Edits,
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
        edits: Edits::default(),
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
