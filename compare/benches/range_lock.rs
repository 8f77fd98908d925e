//! Range locks made of lock entries ([`XArray::lock_range`], [`RangeLock`]) side by side
//! with the range lock a user would otherwise reach for, one criterion group per workload:
//!
//! | contender       | what it is                                                           |
//! |-----------------|----------------------------------------------------------------------|
//! | `xarray_*`      | [`XArray::lock_range`] on an `XArray<u64>` (the page-cache use)      |
//! | `range_lock*`   | [`RangeLock::lock`] (the same protocol over a tree of its own)       |
//! | `interval_lock*`| one `Mutex` around a `BTreeMap` of granted ranges, a `Condvar` for   |
//! |                 | waiters, FIFO among conflicting requests (`rangelock_compare::IntervalLock`) |
//! | `rwlock`        | `std::sync::RwLock<()>`: the floor for locking everything            |
//!
//! Each iteration is one lock plus its unlock (dropping the guard), so criterion's time
//! is per lock+unlock. Workloads (`cargo bench --bench range_lock`; `cargo test
//! --benches` runs each benchmark once):
//!
//! * `one_index`: uncontended Exclusive lock of index [`ONE`], on an empty tree (the
//!   lock entry needs a leaf, made and freed each time), on a tree whose leaf around it
//!   holds items (`xarray_populated`: nothing to allocate), and with a neighbouring
//!   index held by the same thread (`*_neighbour_held`: the leaf stays, and the
//!   interval lock's map holds one range);
//! * `whole_range`: Exclusive `..` on an idle lock (for ours: one compare-exchange of
//!   the head, and one back);
//! * `empty_range`: Shared `0..2^k` on an idle lock, k in [`EMPTY_RANGE_BITS`];
//! * `disjoint_threads`: 1 and 2 threads, each locking and unlocking indices of its own
//!   (`thread * 4096 + n % 63`) in a tight loop; throughput summed over threads.
//!
//! Before the groups, the bench checks the interval lock (it must exclude overlapping
//! Exclusive requests and queue FIFO) and prints the bytes each contender allocates per
//! lock+unlock, counted by a global allocator wrapper that counts only while a table row
//! is measured (so the timed runs pay one relaxed load per allocation, nothing shared).

use std::hint::black_box;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use rangelock::{Entry, LockMode, RangeLock, XArray};

use rangelock_compare::IntervalLock;

use rangelock_testkit::counting_alloc::{allocated, allocations, Counting};
use rangelock_testkit::threads::{disjoint, leaf_pins, on_threads, STRIDE, THREAD_COUNTS};

/// The index of `one_index`: inside the first leaf, not at its edge.
const ONE: u64 = 37;

/// The `k` of `empty_range`'s `0..2^k`.
const EMPTY_RANGE_BITS: [u32; 4] = [10, 20, 30, 40];

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Mean bytes and allocations per lock+unlock: `run(n)` performs `n` of them. A warm-up
/// first fills thread-locals, the wait table and the epoch machinery's own buffers.
fn measure_bytes(cycles: u64, mut run: impl FnMut(u64)) -> (f64, f64) {
    run(cycles.min(256));
    // Counted per thread: `run` does all its work on this one.
    let (bytes, calls) = (allocated(), allocations());
    run(cycles);
    let n = cycles as f64;
    (
        (allocated() - bytes) as f64 / n,
        (allocations() - calls) as f64 / n,
    )
}

/// `n` lock+unlock cycles of `range` in `mode` on `xa`.
fn cycle_xa(xa: &XArray<u64>, range: RangeInclusive<u64>, mode: LockMode, n: u64) {
    for _ in 0..n {
        drop(black_box(xa.lock_range(range.clone(), mode).expect("lock")));
    }
}

/// `n` lock+unlock cycles of `range` in `mode` on `lock`.
fn cycle_interval(lock: &IntervalLock, range: RangeInclusive<u64>, mode: LockMode, n: u64) {
    for _ in 0..n {
        drop(black_box(lock.lock(*range.start(), *range.end(), mode)));
    }
}

/// The tree nodes and the lock entries in `xa` while `range` is held in `mode`.
fn held_shape(xa: &XArray<u64>, range: RangeInclusive<u64>, mode: LockMode) -> String {
    let guard = xa.lock_range(range, mode).expect("lock");
    let entries = xa
        .iter(..)
        .filter(|(_, entry)| matches!(entry, Entry::Locked { .. }))
        .count();
    let shape = format!("{} / {}", xa.node_count(), entries);
    drop(guard);
    shape
}

/// Prints, per contender and workload, the bytes allocated per lock+unlock, and for
/// ours the tree nodes linked and the lock entries written while the lock is held.
fn bytes_table() {
    let cycles = if full_run() { 100_000 } else { 1_000 };
    println!("\nbytes allocated per lock+unlock (mean of {cycles} cycles, after warm-up)");
    println!(
        "{:<38} {:>11} {:>12} {:>22}",
        "case", "bytes/lock", "allocs/lock", "held: nodes / entries"
    );
    let row = |case: &str, (bytes, allocs): (f64, f64), shape: &str| {
        println!("{case:<38} {bytes:>11.1} {allocs:>12.3} {shape:>22}");
    };
    let (x, s) = (LockMode::Exclusive, LockMode::Shared);

    let xa: XArray<u64> = XArray::new();
    let shape = held_shape(&xa, ONE..=ONE, x);
    let bytes = measure_bytes(cycles, |n| cycle_xa(&xa, ONE..=ONE, x, n));
    row("one_index xarray_empty", bytes, &shape);

    let populated = populated_tree();
    let shape = held_shape(&populated, ONE..=ONE, x);
    let bytes = measure_bytes(cycles, |n| cycle_xa(&populated, ONE..=ONE, x, n));
    row("one_index xarray_populated", bytes, &shape);

    let interval = IntervalLock::new();
    let bytes = measure_bytes(cycles, |n| cycle_interval(&interval, ONE..=ONE, x, n));
    row("one_index interval_lock", bytes, "-");

    let shape = held_shape(&xa, 0..=u64::MAX, x);
    let bytes = measure_bytes(cycles, |n| cycle_xa(&xa, 0..=u64::MAX, x, n));
    row("whole_range xarray", bytes, &shape);

    for k in EMPTY_RANGE_BITS {
        let range = 0..=(1u64 << k) - 1;
        let shape = held_shape(&xa, range.clone(), s);
        let bytes = measure_bytes(cycles, |n| cycle_xa(&xa, range.clone(), s, n));
        row(&format!("empty_range k={k} xarray"), bytes, &shape);
    }
    for k in EMPTY_RANGE_BITS {
        let range = 0..=(1u64 << k) - 1;
        let bytes = measure_bytes(cycles, |n| cycle_interval(&interval, range.clone(), s, n));
        row(&format!("empty_range k={k} interval_lock"), bytes, "-");
    }

    // `disjoint_threads` at 2 threads, each on its own leaf (4096 apart). The counts are
    // per thread, so each worker adds up its own (after a warm-up of its own).
    let (bytes, calls) = (AtomicUsize::new(0), AtomicUsize::new(0));
    on_threads(2, cycles / 2, |thread, n| {
        let base = thread as u64 * STRIDE;
        let cycle = |i: u64| {
            let i = base + i % 63;
            drop(black_box(xa.lock_range(i..=i, x).expect("lock")));
        };
        (0..256).for_each(cycle);
        let (b, c) = (allocated(), allocations());
        (0..n).for_each(cycle);
        bytes.fetch_add(allocated() - b, Ordering::Relaxed);
        calls.fetch_add(allocations() - c, Ordering::Relaxed);
        Duration::ZERO
    });
    let per = |total: &AtomicUsize| total.load(Ordering::Relaxed) as f64 / cycles as f64;
    row(
        "disjoint_threads/2 xarray_empty",
        (per(&bytes), per(&calls)),
        "-",
    );
    println!();
}

// ---------------------------------------------------------------------------------------
// Fixtures and helpers.

/// Whether this is `cargo bench` (full sizes) rather than `cargo test --benches`.
fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Items at `0..64` except [`ONE`]: the first leaf exists and stays when `ONE` is
/// locked and unlocked.
fn populated_tree() -> XArray<u64> {
    let xa = XArray::new();
    for i in (0..64).filter(|&i| i != ONE) {
        xa.store(i, Arc::new(i)).expect("store");
    }
    xa
}

// ---------------------------------------------------------------------------------------
// The groups.

fn one_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_index");
    group.throughput(Throughput::Elements(1));

    let empty: XArray<u64> = XArray::new();
    group.bench_function("xarray_empty", |b| {
        b.iter(|| {
            drop(black_box(
                empty
                    .lock_range(ONE..=ONE, LockMode::Exclusive)
                    .expect("lock"),
            ))
        });
    });

    let populated = populated_tree();
    group.bench_function("xarray_populated", |b| {
        b.iter(|| {
            drop(black_box(
                populated
                    .lock_range(ONE..=ONE, LockMode::Exclusive)
                    .expect("lock"),
            ))
        });
    });

    let rl = RangeLock::new();
    group.bench_function("range_lock", |b| {
        b.iter(|| {
            drop(black_box(
                rl.lock(ONE..=ONE, LockMode::Exclusive).expect("lock"),
            ))
        });
    });
    {
        let _neighbour = rl
            .lock(ONE - 1..=ONE - 1, LockMode::Exclusive)
            .expect("lock");
        group.bench_function("range_lock_neighbour_held", |b| {
            b.iter(|| {
                drop(black_box(
                    rl.lock(ONE..=ONE, LockMode::Exclusive).expect("lock"),
                ))
            });
        });
    }

    let interval = IntervalLock::new();
    group.bench_function("interval_lock", |b| {
        b.iter(|| drop(black_box(interval.lock(ONE, ONE, LockMode::Exclusive))));
    });
    {
        let _neighbour = interval.lock(ONE - 1, ONE - 1, LockMode::Exclusive);
        group.bench_function("interval_lock_neighbour_held", |b| {
            b.iter(|| drop(black_box(interval.lock(ONE, ONE, LockMode::Exclusive))));
        });
    }
    group.finish();
}

fn whole_range(c: &mut Criterion) {
    let mut group = c.benchmark_group("whole_range");
    group.throughput(Throughput::Elements(1));

    let xa: XArray<u64> = XArray::new();
    group.bench_function("xarray", |b| {
        b.iter(|| {
            drop(black_box(
                xa.lock_range(.., LockMode::Exclusive).expect("lock"),
            ))
        });
    });

    let rwlock = RwLock::new(());
    group.bench_function("rwlock", |b| {
        b.iter(|| drop(black_box(rwlock.write())));
    });

    let rl = RangeLock::new();
    group.bench_function("range_lock", |b| {
        b.iter(|| drop(black_box(rl.lock(.., LockMode::Exclusive).expect("lock"))));
    });

    let interval = IntervalLock::new();
    group.bench_function("interval_lock", |b| {
        b.iter(|| drop(black_box(interval.lock(0, u64::MAX, LockMode::Exclusive))));
    });
    group.finish();
}

fn empty_range(c: &mut Criterion) {
    let mut group = c.benchmark_group("empty_range");
    group.throughput(Throughput::Elements(1));
    let xa: XArray<u64> = XArray::new();
    let interval = IntervalLock::new();
    for k in EMPTY_RANGE_BITS {
        let last = (1u64 << k) - 1;
        group.bench_with_input(BenchmarkId::new("xarray", k), &last, |b, &last| {
            b.iter(|| {
                drop(black_box(
                    xa.lock_range(0..=last, LockMode::Shared).expect("lock"),
                ))
            });
        });
        group.bench_with_input(BenchmarkId::new("interval_lock", k), &last, |b, &last| {
            b.iter(|| drop(black_box(interval.lock(0, last, LockMode::Shared))));
        });
    }
    group.finish();
}

fn disjoint_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("disjoint_threads");
    for threads in THREAD_COUNTS {
        group.throughput(Throughput::Elements(threads as u64));
        // A fresh empty tree per benchmark: each thread's leaf is made and freed by
        // every lock (and the tree grows and shrinks when it is the only leaf).
        let empty: XArray<u64> = XArray::new();
        // Every thread's leaf pinned by an item, at every count (`leaf_pins`): no
        // allocation, and one thread walks the same four levels as two.
        let populated: XArray<u64> = XArray::new();
        for pin in leaf_pins() {
            populated.store(pin, Arc::new(pin)).expect("store");
        }
        let interval = IntervalLock::new();
        let lock_xa = |xa: &XArray<u64>, i: u64| {
            drop(black_box(
                xa.lock_range(i..=i, LockMode::Exclusive).expect("lock"),
            ))
        };
        let id = |name| BenchmarkId::new(name, threads);
        group.bench_function(id("xarray_empty"), |b| {
            b.iter_custom(|iters| disjoint(threads, iters, |i| lock_xa(&empty, i)))
        });
        group.bench_function(id("xarray_populated"), |b| {
            b.iter_custom(|iters| disjoint(threads, iters, |i| lock_xa(&populated, i)))
        });
        group.bench_function(id("interval_lock"), |b| {
            b.iter_custom(|iters| {
                disjoint(threads, iters, |i| {
                    drop(black_box(interval.lock(i, i, LockMode::Exclusive)))
                })
            })
        });
    }
    group.finish();
}

/// The cost of the `lockdep` feature: the same two cases built without it and with it
/// (`cargo bench --bench range_lock -- lockdep` and again with `--features lockdep`),
/// compared by their medians. `nothing_held`: one uncontended lock+unlock of one index;
/// `outer_held`: the same while the thread holds a range of another lock (another
/// class), once the edge between them is known to the graph and the thread.
fn lockdep_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("lockdep");
    group.throughput(Throughput::Elements(1));
    let outer = RangeLock::new();
    let inner = RangeLock::new();
    group.bench_function("nothing_held", |b| {
        b.iter(|| {
            drop(black_box(
                inner.lock(ONE..=ONE, LockMode::Exclusive).expect("lock"),
            ))
        });
    });
    let _held = outer.lock(0..=0, LockMode::Shared).expect("lock");
    group.bench_function("outer_held", |b| {
        b.iter(|| {
            drop(black_box(
                inner.lock(ONE..=ONE, LockMode::Exclusive).expect("lock"),
            ))
        });
    });
    group.finish();
}

// Short runs (testkit's `bench::short_runs`): about 2 s per benchmark.

criterion_group! {
    name = benches;
    config = rangelock_testkit::bench::short_runs();
    targets = one_index, whole_range, empty_range, disjoint_threads, lockdep_cost
}

/// `criterion_main!`, with the bytes table first (the interval lock is checked by the
/// unit tests of `rangelock_compare`).
fn main() {
    bytes_table();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
