//! The standard scenarios of `examples/mixed_io/` under criterion: every strategy in
//! each group, so the report compares them side by side.
//!
//! * `mixed_io_<scenario>/<strategy>/<threads>` for scenarios a, b, c, d at 1, 2, 4, 8
//!   and 16 threads, and f at 1 thread: one iteration is one completed call of any
//!   operation (the workload stops after criterion's iteration count), so criterion's
//!   time per iteration is the inverse of the throughput and its throughput line is
//!   calls per second. The device sleeps (50 µs per transfer plus 200 µs per MiB) in a–d,
//!   so thread counts above the number of cores measure lock waits, not the scheduler.
//! * `mixed_io_e_empty_file/<strategy>/<file size>`: one iteration is one direct write
//!   over all of an empty file of 4 KiB .. 1 TiB (lock, evict nothing, unlock).
//!
//! `cargo bench --bench mixed_io` measures (about 5 minutes); `cargo test --benches` runs
//! each benchmark once. The consistency oracle runs in every iteration: a benchmark
//! panics if a strategy serves a stale read or loses a write.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rangelock::mapping::DirectIoKind;
use rangelock_compare::workload::{self, Latency, Scenario, SimDevice, Strategy};

const THREADS: [usize; 5] = [1, 2, 4, 8, 16];

fn scenarios(c: &mut Criterion) {
    for letter in ["a", "b", "c", "d", "f", "g"] {
        let scenario = Scenario::find(letter).expect("a standard scenario");
        let mut group = c.benchmark_group(format!("mixed_io_{}", scenario.name.replace('-', "_")));
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(1));
        let counts: &[usize] = if letter == "f" { &[1] } else { &THREADS };
        for &threads in counts {
            for strategy in Strategy::COMPARED {
                let id = BenchmarkId::new(strategy.name(), threads);
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let mut work = scenario
                            .workload(threads, Duration::from_secs(120))
                            .expect("a workload scenario");
                        work.max_ops = Some(iters);
                        let cache = strategy.build();
                        let report = workload::run(cache.as_ref(), &work).expect("valid");
                        assert!(
                            report.stale_reads == 0
                                && report.lost_writes == 0
                                && report.fsync_lost == 0
                                && report.errors.is_empty(),
                            "{} is inconsistent: {report:?}",
                            strategy.name()
                        );
                        // Calls that hit the end of file (a truncate's window) are not
                        // counted: scale to the calls that completed.
                        let done = report.total().latency.count().max(1);
                        report.elapsed.mul_f64(iters as f64 / done as f64)
                    })
                });
            }
        }
        group.finish();
    }
}

fn empty_file(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixed_io_e_empty_file");
    for size in [4u64 << 10, 1 << 20, 1 << 30, 1 << 40] {
        for strategy in Strategy::COMPARED {
            let cache = strategy.build();
            cache.set_size(size);
            let device = SimDevice::new(0, cache.page_size(), Latency::NONE);
            group.bench_function(BenchmarkId::new(strategy.name(), size), |b| {
                b.iter(|| {
                    cache
                        .direct_io(0..black_box(size), DirectIoKind::Write, &device, &mut || {})
                        .expect("direct write")
                })
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = scenarios, empty_file
}
criterion_main!(benches);
