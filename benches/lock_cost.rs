//! What one range lock costs next to the locks a user would otherwise reach for
//! (issue 12's measure): `rangelock`'s lock entries against the `range-mutex` crate (a
//! mutex around a sorted list of locked ranges) and `std::sync::RwLock`, side by side in
//! one run.
//!
//! Groups (each a lock and an unlock):
//!
//! * `one_index`: one index, a different one each time, on an empty tree and inside a
//!   populated leaf (items at every index of `0..4096` but the one locked);
//! * `unaligned_256`: 256 indices at a random unaligned offset (a 1 MiB direct IO at a
//!   random page), on an empty tree and over populated leaves;
//! * `worst_aligned`: `0..u64::MAX` and `i..=u64::MAX - i`, the ranges whose aligned
//!   decomposition is longest;
//! * `whole`: `..` against an `RwLock` write lock;
//! * `disjoint_threads`: every thread locks its own index, 1 and 2 threads, on an empty
//!   tree, on an empty tree that keeps nodes for lockers (`with_kept_nodes(16)`), and on
//!   a tree with a leaf per thread (the same tree at both counts); the
//!   throughput is per run of all threads, so 2 threads at twice the elements per second
//!   of 1 is perfect scaling.
//!
//! Before the groups, a table of bytes allocated per lock and unlock in steady state
//! (after a warm-up), for every range shape above.
//!
//! Run: `cargo bench --bench lock_cost`.

use std::hint::black_box;
use std::ops::RangeInclusive;
use std::sync::{Arc, RwLock};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use range_mutex::RangeMutex;
use rangelock::{LockMode, XArray};

use rangelock_testkit::counting_alloc::{allocated, Counting};
use rangelock_testkit::threads::{disjoint, leaf_pins, THREAD_COUNTS};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Mean bytes allocated per cycle of `run` after `warm` cycles of warm-up.
fn bytes_per_cycle(warm: u64, cycles: u64, mut run: impl FnMut(u64)) -> f64 {
    for n in 0..warm {
        run(n);
    }
    // Counted per thread: `run` does all its work on this one.
    let before = allocated();
    for n in warm..warm + cycles {
        run(n);
    }
    (allocated() - before) as f64 / cycles as f64
}

// ---------------------------------------------------------------------------------------
// Workload shapes.

/// A different index in `0..4096` each time (a multiplicative walk, no RNG state).
fn spread(n: u64) -> u64 {
    n.wrapping_mul(2_654_435_761) % 4096
}

/// A random unaligned 256-index range inside `0..1 << 20`.
fn unaligned(n: u64) -> RangeInclusive<u64> {
    let first = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 44) | 1;
    first..=first + 255
}

/// A random unaligned 256-index range inside one 4096-block of `0..1 << 20`, never on
/// the block's first index.
fn in_block(n: u64) -> RangeInclusive<u64> {
    let block = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) * 4096;
    let first = block + (n % 15) * 256 + 1 + (n % 7);
    first..=first + 255
}

/// `i..=u64::MAX - i` for a small odd `i`: the longest aligned decomposition.
fn worst(n: u64) -> RangeInclusive<u64> {
    let i = 1 + 2 * (n % 64);
    i..=u64::MAX - i
}

/// Items at every index of `0..1 << 12` (the `one_index` and `unaligned_256` trees).
fn populated() -> XArray<u64> {
    let xa = XArray::new();
    for i in 0..1u64 << 12 {
        xa.store(i, Arc::new(i)).expect("store");
    }
    xa
}

/// A `RangeMutex` over `usize::MAX` zero-sized slots: only its bookkeeping costs.
fn range_mutex() -> RangeMutex<(), Vec<()>> {
    RangeMutex::new(vec![(); usize::MAX])
}

fn rm_range(r: RangeInclusive<u64>) -> RangeInclusive<usize> {
    *r.start() as usize..=*r.end() as usize
}

fn lock_xa(xa: &XArray<u64>, r: RangeInclusive<u64>) {
    drop(black_box(
        xa.lock_range(r, LockMode::Exclusive).expect("lock"),
    ));
}

/// One lock and unlock of shape `n`, for the bytes table.
type Cycle<'a> = Box<dyn FnMut(u64) + 'a>;

fn bytes_table() {
    let empty: XArray<u64> = XArray::new();
    let full = populated();
    let sparse: XArray<u64> = XArray::new();
    for i in (0..1u64 << 20).step_by(4096) {
        sparse.store(i, Arc::new(i)).expect("store");
    }
    let rm = range_mutex();
    let rows: [(&str, Cycle); 9] = [
        (
            "one index, empty tree",
            Box::new(|n| lock_xa(&empty, spread(n)..=spread(n))),
        ),
        (
            "one index, populated leaf",
            Box::new(|n| {
                // A leaf whose other 63 slots hold items: `populated()` minus one index.
                let i = spread(n) & !63;
                if full.get(i).item().is_some() {
                    full.erase(i).expect("erase");
                }
                lock_xa(&full, i..=i)
            }),
        ),
        (
            "256 unaligned, empty tree",
            Box::new(|n| lock_xa(&empty, unaligned(n))),
        ),
        (
            "256 unaligned, sparse tree",
            Box::new(|n| lock_xa(&sparse, in_block(n))),
        ),
        (
            "0..u64::MAX",
            Box::new(|_| lock_xa(&empty, 0..=u64::MAX - 1)),
        ),
        ("i..=u64::MAX - i", Box::new(|n| lock_xa(&empty, worst(n)))),
        ("..", Box::new(|_| lock_xa(&empty, 0..=u64::MAX))),
        (
            "range-mutex, 256 unaligned",
            Box::new(|n| drop(black_box(rm.lock(rm_range(unaligned(n)))))),
        ),
        (
            // The control: the counter must see this allocation.
            "control: a 64-byte Vec",
            Box::new(|_| drop(black_box(Vec::<u8>::with_capacity(64)))),
        ),
    ];
    println!("bytes allocated per lock and unlock (after 10,000 warm-up cycles):");
    for (name, mut run) in rows {
        let bytes = bytes_per_cycle(10_000, 100_000, &mut run);
        println!("  {name:<28} {bytes:>8.2}");
    }
}

// ---------------------------------------------------------------------------------------
// The groups.

fn one_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_index");
    group.throughput(Throughput::Elements(1));
    let empty: XArray<u64> = XArray::new();
    let mut n = 0u64;
    group.bench_function("rangelock_empty", |b| {
        b.iter(|| {
            n += 1;
            let i = spread(n);
            lock_xa(&empty, i..=i)
        })
    });
    // Lock an index whose leaf holds items: erase one item per leaf slot used, so the
    // locked index is empty but its leaf stays.
    let full = populated();
    for i in (0..1u64 << 12).step_by(64) {
        full.erase(i).expect("erase");
    }
    group.bench_function("rangelock_populated_leaf", |b| {
        b.iter(|| {
            n += 1;
            let i = spread(n) & !63;
            lock_xa(&full, i..=i)
        })
    });
    let rm = range_mutex();
    group.bench_function("range_mutex", |b| {
        b.iter(|| {
            n += 1;
            let i = spread(n) as usize;
            drop(black_box(rm.lock(i..=i)))
        })
    });
    group.finish();
}

fn unaligned_256(c: &mut Criterion) {
    let mut group = c.benchmark_group("unaligned_256");
    group.throughput(Throughput::Elements(1));
    let empty: XArray<u64> = XArray::new();
    let mut n = 0u64;
    group.bench_function("rangelock_empty", |b| {
        b.iter(|| {
            n += 1;
            lock_xa(&empty, unaligned(n))
        })
    });
    // Items at every 4096th index of `0..1 << 20`: the upper nodes over the range exist,
    // the range itself (inside one 4096-block, never on its first index) holds nothing.
    let sparse: XArray<u64> = XArray::new();
    for i in (0..1u64 << 20).step_by(4096) {
        sparse.store(i, Arc::new(i)).expect("store");
    }
    group.bench_function("rangelock_sparse_tree", |b| {
        b.iter(|| {
            n += 1;
            lock_xa(&sparse, in_block(n))
        })
    });
    let rm = range_mutex();
    group.bench_function("range_mutex", |b| {
        b.iter(|| {
            n += 1;
            drop(black_box(rm.lock(rm_range(unaligned(n)))))
        })
    });
    group.finish();
}

fn worst_aligned(c: &mut Criterion) {
    let mut group = c.benchmark_group("worst_aligned");
    group.throughput(Throughput::Elements(1));
    let empty: XArray<u64> = XArray::new();
    group.bench_function("rangelock_0..u64::MAX", |b| {
        b.iter(|| lock_xa(&empty, 0..=u64::MAX - 1))
    });
    let mut n = 0u64;
    group.bench_function("rangelock_i..=MAX-i", |b| {
        b.iter(|| {
            n += 1;
            lock_xa(&empty, worst(n))
        })
    });
    let rm = range_mutex();
    group.bench_function("range_mutex_0..u64::MAX", |b| {
        b.iter(|| drop(black_box(rm.lock(0..usize::MAX))))
    });
    group.finish();
}

fn whole(c: &mut Criterion) {
    let mut group = c.benchmark_group("whole");
    group.throughput(Throughput::Elements(1));
    let empty: XArray<u64> = XArray::new();
    group.bench_function("rangelock", |b| b.iter(|| lock_xa(&empty, 0..=u64::MAX)));
    let rw = RwLock::new(());
    group.bench_function("rwlock_write", |b| {
        b.iter(|| drop(black_box(rw.write().expect("rwlock"))))
    });
    group.finish();
}

fn disjoint_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("disjoint_threads");
    for threads in THREAD_COUNTS {
        group.throughput(Throughput::Elements(threads as u64));
        let empty: XArray<u64> = XArray::new();
        // Every thread's leaf kept by an item, at every count (see `leaf_pins`: with only
        // its own leaf, one thread's shorter walks made 2 threads look 1.1-1.3x of 1
        // where the same tree gives 1.8-1.9x).
        let pinned: XArray<u64> = XArray::new();
        for pin in leaf_pins() {
            pinned.store(pin, Arc::new(pin)).expect("store");
        }
        // The same empty tree keeping nodes for lockers (`XArray::with_kept_nodes`): after
        // the first rounds each thread's index lies in a leaf of its own.
        let kept: XArray<u64> = XArray::new().with_kept_nodes(16);
        let rm = range_mutex();
        let id = |name| BenchmarkId::new(name, threads);
        group.bench_function(id("rangelock_empty"), |b| {
            b.iter_custom(|iters| disjoint(threads, iters, |i| lock_xa(&empty, i..=i)))
        });
        group.bench_function(id("rangelock_empty_kept"), |b| {
            b.iter_custom(|iters| disjoint(threads, iters, |i| lock_xa(&kept, i..=i)))
        });
        group.bench_function(id("rangelock_populated"), |b| {
            b.iter_custom(|iters| disjoint(threads, iters, |i| lock_xa(&pinned, i..=i)))
        });
        group.bench_function(id("range_mutex"), |b| {
            b.iter_custom(|iters| {
                disjoint(threads, iters, |i| {
                    drop(black_box(rm.lock(i as usize..=i as usize)))
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = rangelock_testkit::bench::short_runs();
    targets = one_index, unaligned_256, worst_aligned, whole, disjoint_threads
}

fn main() {
    if std::env::args().any(|arg| arg == "--bench") {
        bytes_table();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
