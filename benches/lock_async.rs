//! What asynchronous acquisition costs (issue 14's measure): `lock_range_async` against
//! the blocking `lock_range` on the same range, and 1,000 tokio tasks over overlapping
//! ranges against `tokio::sync::RwLock`, side by side in one run.
//!
//! Groups:
//!
//! * `uncontended`: one acquisition and its release, nobody else about; the future is
//!   polled once by a minimal executor with a no-op waker (`block_on` below), so the
//!   difference from `blocking` is the future itself (its state, the detached guard).
//!   Ranges: 256 indices of an empty tree (the head fast path), one index inside a
//!   populated leaf (the walk), the whole range of an empty tree. The target: async
//!   within 1.2x of blocking.
//! * `tasks_1000`: 1,000 tasks on a 2-worker multi-threaded runtime, each taking 8 locks
//!   in turn and holding each across one `yield_now` (so holders and waiters
//!   interleave): `whole` is the whole range Exclusive against a `tokio::sync::RwLock`
//!   write lock; `overlapping` is 64-index ranges at random offsets of `0..1024`, one in
//!   four Exclusive, against the same `RwLock` (read for Shared, write for Exclusive:
//!   what one lock over the file would give). Throughput is acquisitions per second;
//!   every run asserts that every task completed.
//!
//! Run: `cargo bench --bench lock_async`.

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use rangelock::{LockMode, XArray};
use rangelock_testkit::executor::block_on;

/// Items at every index of `0..4096` but those `≡ 7 (mod 64)`: a one-index lock there
/// walks into a populated leaf (no head fast path).
fn populated() -> XArray<u64> {
    let xa = XArray::new();
    for i in (0..4096).filter(|i| i % 64 != 7) {
        xa.store(i, Arc::new(i)).unwrap();
    }
    xa
}

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended");
    group.throughput(Throughput::Elements(1));
    let empty: XArray<u64> = XArray::new();
    let full = populated();
    let mode = LockMode::Exclusive;
    group.bench_function(BenchmarkId::new("blocking", "empty_256"), |b| {
        b.iter(|| drop(black_box(empty.lock_range(1000..1256, mode).unwrap())))
    });
    group.bench_function(BenchmarkId::new("async", "empty_256"), |b| {
        b.iter(|| {
            drop(black_box(
                block_on(empty.lock_range_async(1000..1256, mode)).unwrap(),
            ))
        })
    });
    let mut n = 0u64;
    group.bench_function(BenchmarkId::new("blocking", "populated_one"), |b| {
        b.iter(|| {
            n = (n + 1) % 64;
            let i = n * 64 + 7;
            drop(black_box(full.lock_range(i..=i, mode).unwrap()))
        })
    });
    group.bench_function(BenchmarkId::new("async", "populated_one"), |b| {
        b.iter(|| {
            n = (n + 1) % 64;
            let i = n * 64 + 7;
            drop(black_box(
                block_on(full.lock_range_async(i..=i, mode)).unwrap(),
            ))
        })
    });
    group.bench_function(BenchmarkId::new("blocking", "whole"), |b| {
        b.iter(|| drop(black_box(empty.lock_range(.., mode).unwrap())))
    });
    group.bench_function(BenchmarkId::new("async", "whole"), |b| {
        b.iter(|| {
            drop(black_box(
                block_on(empty.lock_range_async(.., mode)).unwrap(),
            ))
        })
    });
    group.finish();
}

const TASKS: usize = 1000;
const ROUNDS: u64 = 8;

/// The `round`th range of task `task` in the `overlapping` workload, and its mode.
fn overlapping(task: usize, round: u64) -> (u64, LockMode) {
    let mut x = (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round;
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 32;
    let mode = if x % 4 == 0 {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    };
    ((x >> 8) % (1024 - 64), mode)
}

/// Runs `iters` times: 1,000 tasks each doing `ROUNDS` rounds of `round(task, n)` on
/// `rt`; asserts that every task completed, and returns the time of all runs.
fn thousand_tasks<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, round: F) -> Duration
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let completed = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS)
                .map(|task| {
                    let (round, completed) = (round.clone(), completed.clone());
                    tokio::spawn(async move {
                        for n in 0..ROUNDS {
                            round(task, n).await;
                        }
                        completed.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("a bench task panicked");
            }
        });
        total += start.elapsed();
        assert_eq!(
            completed.load(Ordering::Relaxed),
            TASKS,
            "a task did not complete"
        );
    }
    total
}

fn tasks_1000(c: &mut Criterion) {
    let mut group = c.benchmark_group("tasks_1000");
    group.throughput(Throughput::Elements(TASKS as u64 * ROUNDS));
    group.sample_size(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let xa: Arc<XArray<u64>> = Arc::new(XArray::new());
    // An item outside the ranges: no head fast path, real lock entries and queues.
    xa.store(1 << 20, Arc::new(0)).unwrap();
    let rw = Arc::new(tokio::sync::RwLock::new(()));

    group.bench_function(BenchmarkId::new("rangelock", "whole"), |b| {
        b.iter_custom(|iters| {
            let xa = xa.clone();
            thousand_tasks(&rt, iters, move |_, _| {
                let xa = xa.clone();
                async move {
                    let guard = xa.lock_range_async(.., LockMode::Exclusive).await.unwrap();
                    tokio::task::yield_now().await;
                    drop(guard);
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("tokio_rwlock", "whole"), |b| {
        b.iter_custom(|iters| {
            let rw = rw.clone();
            thousand_tasks(&rt, iters, move |_, _| {
                let rw = rw.clone();
                async move {
                    let guard = rw.write().await;
                    tokio::task::yield_now().await;
                    drop(guard);
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("rangelock", "overlapping"), |b| {
        b.iter_custom(|iters| {
            let xa = xa.clone();
            thousand_tasks(&rt, iters, move |task, n| {
                let xa = xa.clone();
                async move {
                    let (first, mode) = overlapping(task, n);
                    let guard = xa.lock_range_async(first..first + 64, mode).await.unwrap();
                    tokio::task::yield_now().await;
                    drop(guard);
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("tokio_rwlock", "overlapping"), |b| {
        b.iter_custom(|iters| {
            let rw = rw.clone();
            thousand_tasks(&rt, iters, move |task, n| {
                let rw = rw.clone();
                async move {
                    match overlapping(task, n).1 {
                        LockMode::Exclusive => {
                            let guard = rw.write().await;
                            tokio::task::yield_now().await;
                            drop(guard);
                        }
                        LockMode::Shared => {
                            let guard = rw.read().await;
                            tokio::task::yield_now().await;
                            drop(guard);
                        }
                    }
                }
            })
        })
    });
    group.finish();
    assert!(xa.get(0).is_empty(), "a range was left locked");
}

criterion_group! {
    name = benches;
    config = rangelock_testkit::bench::short_runs();
    targets = uncontended, tasks_1000
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
