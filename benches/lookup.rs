//! `XArray` lookups, writes and iteration side by side with the maps a user would
//! otherwise reach for, one criterion group per workload:
//!
//! | contender               | what it is                                                     |
//! |-------------------------|----------------------------------------------------------------|
//! | `xarray_load`           | [`XArray::load`]: pin, walk, clone the `Arc`                   |
//! | `xarray_read_guard`     | one [`XArray::read`] guard per batch, `get` borrows (no count) |
//! | `xarray_get_many`       | the guard's [`ReadGuard::get_many`], [`LOCKSTEP`] indices a walk |
//! | `xarray_get_many_16`    | the same with [`LOCKSTEP_WIDE`] indices a walk: more misses in flight, more lane state |
//! | `xarray_guard_load`     | one guard per batch, [`ReadGuard::load`]: `load` without its pin |
//! | `vec`                   | `Vec<Option<Arc<T>>>` indexing: the physical limit, no sync    |
//! | `vec_arc`               | the same `Vec`, with an `Arc` clone per hit (what `load` does) |
//! | `rwlock_btreemap`       | `RwLock<BTreeMap<u64, Arc<T>>>`, read lock + `Arc` clone each  |
//! | `rwlock_btreemap_batch` | the same map, one read lock per batch, borrowing               |
//! | `mutex_hashmap`         | `Mutex<HashMap<u64, Arc<T>>>` (std hasher), lock + clone each  |
//! | `papaya`                | `papaya::HashMap<u64, Arc<T>>` (a lock-free hash map), a pin + clone each |
//!
//! Each iteration runs one batch of [`BATCH`] operations, so criterion's throughput is
//! operations per second. Indices come from a pre-drawn random stream of 1Mi indices
//! consumed a batch at a time, so successive batches land on different leaves and the
//! CPU caches see a random pattern, not the same 1024 indices again and again.
//!
//! Workloads (`cargo bench --bench lookup`; `cargo test --benches` runs each benchmark
//! once on small sets):
//!
//! * `lookup_hit_dense`: 1Mi items at indices `0..1Mi`, random hits;
//! * `lookup_hit_dense_hot`: the same set, hits among its first 64Ki indices only (a
//!   working set that stays in the CPU caches);
//! * `lookup_miss_dense`: 1Mi items at the even indices of `0..2Mi`, lookups of random
//!   odd indices, so every miss walks down to a leaf;
//! * `lookup_hit_sparse` / `lookup_miss_sparse`: 64Ki items at random indices below
//!   `2^32` (a six-level tree); no `vec` (it would need `2^32` slots);
//! * `lookup_hit_dense_threads`: the hit workload on 1, 2, 4, ... threads up to
//!   `available_parallelism`, throughput summed over threads;
//! * `store_overwrite_dense`, `erase_store_dense`, `store_overwrite_sparse`,
//!   `erase_store_sparse`: writes; an erase of a sparse index frees its leaf and the
//!   store allocates it again, an overwrite only walks to the slot and replaces it;
//! * `iterate_dense`: every entry of the 1Mi dense set, in order (`vec_arc_iter` clones
//!   each entry's `Arc` as `XArray::iter` does).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hint::black_box;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rangelock::xarray::ReadGuard;
use rangelock::XArray;

use rangelock_testkit::threads::on_threads;

/// Indices per [`ReadGuard::get_many`] call in the `xarray_get_many` contender.
const LOCKSTEP: usize = 8;

/// Indices per [`ReadGuard::get_many`] call in the `xarray_get_many_16` contender.
const LOCKSTEP_WIDE: usize = 16;

/// Operations per criterion iteration.
const BATCH: usize = 1024;

/// The hot set of `lookup_hit_dense_hot`: its tree nodes and `vec` slots fit in the CPU
/// caches, so that group measures instructions rather than memory latency.
const HOT: u64 = 1 << 16;

/// The item type: small, so that the cost measured is the map's, not the item's.
type Item = u64;

/// Workload sizes: full under `cargo bench`, tiny under `cargo test --benches`.
struct Sizes {
    /// Entries of the dense sets.
    dense: u64,
    /// Entries of the sparse set.
    sparse: usize,
    /// Length of each random index stream (a multiple of `BATCH`).
    stream: usize,
}

impl Sizes {
    fn get() -> Self {
        // `cargo bench` passes `--bench`; criterion's test mode (`cargo test --benches`)
        // runs each routine once, where 1Mi-entry fixtures would only cost time.
        if std::env::args().any(|arg| arg == "--bench") {
            Sizes {
                dense: 1 << 20,
                sparse: 1 << 16,
                stream: 1 << 20,
            }
        } else {
            Sizes {
                dense: 1 << 12,
                sparse: 1 << 8,
                stream: 4 * BATCH,
            }
        }
    }
}

/// SplitMix64: a tiny, good-enough generator, so the bench needs no `rand`.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// A pre-drawn index stream, consumed one batch at a time, wrapping around.
struct Stream<'a> {
    indices: &'a [u64],
    pos: usize,
}

impl<'a> Stream<'a> {
    /// Starts `part / parts` of the way in, so threads walk different stretches.
    fn new(indices: &'a [u64], part: usize, parts: usize) -> Self {
        debug_assert_eq!(indices.len() % BATCH, 0);
        let batches = indices.len() / BATCH;
        Stream {
            indices,
            pos: batches * part / parts * BATCH,
        }
    }

    fn batch(&mut self) -> &'a [u64] {
        let batch = &self.indices[self.pos..self.pos + BATCH];
        self.pos += BATCH;
        if self.pos == self.indices.len() {
            self.pos = 0;
        }
        batch
    }
}

/// The contenders of a group (see the module table).
#[derive(Clone, Copy, Debug)]
enum Contender {
    XaLoad,
    XaGuard,
    XaMany,
    XaManyWide,
    XaGuardLoad,
    Vec,
    VecArc,
    BTree,
    BTreeBatch,
    Hash,
    Papaya,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::XaLoad => "xarray_load",
            Contender::XaGuard => "xarray_read_guard",
            Contender::XaMany => "xarray_get_many",
            Contender::XaManyWide => "xarray_get_many_16",
            Contender::XaGuardLoad => "xarray_guard_load",
            Contender::Vec => "vec",
            Contender::VecArc => "vec_arc",
            Contender::BTree => "rwlock_btreemap",
            Contender::BTreeBatch => "rwlock_btreemap_batch",
            Contender::Hash => "mutex_hashmap",
            Contender::Papaya => "papaya",
        }
    }
}

/// The same entries in every contender; all hold clones of the same `Arc`s.
struct Maps {
    xa: XArray<Item>,
    /// Empty for sparse sets.
    vec: Vec<Option<Arc<Item>>>,
    btree: RwLock<BTreeMap<u64, Arc<Item>>>,
    hash: Mutex<HashMap<u64, Arc<Item>>>,
    papaya: papaya::HashMap<u64, Arc<Item>>,
}

impl Maps {
    /// Every contender holding one fresh item per key (`vec` sized `vec_len`, or empty).
    fn build(keys: &[u64], vec_len: usize) -> Self {
        let xa = XArray::new();
        let mut vec = vec![None; vec_len];
        let mut btree = BTreeMap::new();
        let mut hash = HashMap::with_capacity(keys.len());
        let papaya = papaya::HashMap::with_capacity(keys.len());
        for &key in keys {
            let item = Arc::new(key);
            xa.store(key, Arc::clone(&item)).expect("store");
            if vec_len != 0 {
                vec[key as usize] = Some(Arc::clone(&item));
            }
            btree.insert(key, Arc::clone(&item));
            papaya.pin().insert(key, Arc::clone(&item));
            hash.insert(key, item);
        }
        Maps {
            xa,
            vec,
            btree: RwLock::new(btree),
            hash: Mutex::new(hash),
            papaya,
        }
    }

    /// One batch of lookups, each result handed to `black_box` (and an owned `Arc`
    /// dropped right after, as a caller would).
    #[inline(always)]
    fn lookup_batch(&self, who: Contender, batch: &[u64]) {
        match who {
            Contender::XaLoad => {
                for &i in batch {
                    black_box(self.xa.load(i));
                }
            }
            Contender::XaGuard => {
                let guard = self.xa.read();
                for &i in batch {
                    black_box(guard.get(i));
                }
            }
            Contender::XaMany => get_many_batch::<LOCKSTEP>(&self.xa.read(), batch),
            Contender::XaManyWide => get_many_batch::<LOCKSTEP_WIDE>(&self.xa.read(), batch),
            Contender::XaGuardLoad => {
                let guard = self.xa.read();
                for &i in batch {
                    black_box(guard.load(i));
                }
            }
            Contender::Vec => {
                for &i in batch {
                    black_box(self.vec.get(i as usize).and_then(Option::as_deref));
                }
            }
            Contender::VecArc => {
                for &i in batch {
                    black_box(self.vec.get(i as usize).and_then(Option::clone));
                }
            }
            Contender::BTree => {
                for &i in batch {
                    black_box(self.btree.read().unwrap().get(&i).cloned());
                }
            }
            Contender::BTreeBatch => {
                let map = self.btree.read().unwrap();
                for &i in batch {
                    black_box(map.get(&i).map(|item| &**item));
                }
            }
            Contender::Hash => {
                for &i in batch {
                    black_box(self.hash.lock().unwrap().get(&i).cloned());
                }
            }
            Contender::Papaya => {
                for &i in batch {
                    black_box(self.papaya.pin().get(&i).cloned());
                }
            }
        }
    }

    /// One batch of overwrites (or erase-then-store cycles) with clones of `item`.
    #[inline(always)]
    fn write_batch(&mut self, who: Contender, batch: &[u64], item: &Arc<Item>, erase: bool) {
        match who {
            Contender::XaLoad
            | Contender::XaGuard
            | Contender::XaMany
            | Contender::XaManyWide
            | Contender::XaGuardLoad => {
                for &i in batch {
                    if erase {
                        black_box(self.xa.erase(i).unwrap());
                    }
                    black_box(self.xa.store(i, Arc::clone(item)).is_ok());
                }
            }
            Contender::Vec | Contender::VecArc => {
                for &i in batch {
                    let slot = &mut self.vec[i as usize];
                    if erase {
                        black_box(slot.take());
                    }
                    black_box(slot.replace(Arc::clone(item)));
                }
            }
            Contender::BTree | Contender::BTreeBatch => {
                for &i in batch {
                    if erase {
                        black_box(self.btree.write().unwrap().remove(&i));
                    }
                    black_box(self.btree.write().unwrap().insert(i, Arc::clone(item)));
                }
            }
            Contender::Hash => {
                for &i in batch {
                    if erase {
                        black_box(self.hash.lock().unwrap().remove(&i));
                    }
                    black_box(self.hash.lock().unwrap().insert(i, Arc::clone(item)));
                }
            }
            Contender::Papaya => {
                for &i in batch {
                    let map = self.papaya.pin();
                    if erase {
                        black_box(map.remove(&i).is_some());
                    }
                    black_box(map.insert(i, Arc::clone(item)).is_some());
                }
            }
        }
    }
}

/// `len` random draws from `keys`.
fn draw_from(rng: &mut SplitMix64, keys: &[u64], len: usize) -> Vec<u64> {
    (0..len)
        .map(|_| keys[rng.below(keys.len() as u64) as usize])
        .collect()
}

/// `len` random indices in `0..bound` that satisfy `keep`.
fn draw_where(
    rng: &mut SplitMix64,
    bound: u64,
    len: usize,
    keep: impl Fn(u64) -> bool,
) -> Vec<u64> {
    std::iter::repeat_with(|| rng.below(bound))
        .filter(|&i| keep(i))
        .take(len)
        .collect()
}

/// `n` distinct random keys below `2^32`, sorted.
fn sparse_keys(rng: &mut SplitMix64, n: usize) -> Vec<u64> {
    let mut keys = HashSet::with_capacity(n);
    while keys.len() < n {
        keys.insert(rng.below(1 << 32));
    }
    let mut keys: Vec<u64> = keys.into_iter().collect();
    keys.sort_unstable();
    keys
}

/// One group: a batch of lookups per iteration, each contender on its own copy of the
/// stream (so all see the same indices in the same order).
fn lookup_group(c: &mut Criterion, name: &str, maps: &Maps, stream: &[u64], who: &[Contender]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));
    for &contender in who {
        let mut indices = Stream::new(stream, 0, 1);
        group.bench_function(contender.name(), |b| {
            b.iter(|| maps.lookup_batch(contender, indices.batch()));
        });
    }
    group.finish();
}

/// `batch` looked up `N` indices a [`ReadGuard::get_many`] call.
#[inline(always)]
fn get_many_batch<const N: usize>(guard: &ReadGuard<'_, Item>, batch: &[u64]) {
    for chunk in batch.chunks_exact(N) {
        let indices: [u64; N] = chunk.try_into().expect("chunk");
        black_box(guard.get_many(indices));
    }
}

/// Thread counts 1, 2, 4, ... up to the machine's parallelism.
fn thread_counts() -> Vec<usize> {
    let max = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::iter::successors(Some(1), |&t| Some(t * 2))
        .take_while(|&t| t <= max)
        .collect()
}

const ALL_LOOKUPS: [Contender; 11] = [
    Contender::XaLoad,
    Contender::XaGuard,
    Contender::XaMany,
    Contender::XaManyWide,
    Contender::XaGuardLoad,
    Contender::Vec,
    Contender::VecArc,
    Contender::BTree,
    Contender::BTreeBatch,
    Contender::Hash,
    Contender::Papaya,
];
const SPARSE_LOOKUPS: [Contender; 8] = [
    Contender::XaLoad,
    Contender::XaGuard,
    Contender::XaMany,
    Contender::XaManyWide,
    Contender::BTree,
    Contender::BTreeBatch,
    Contender::Hash,
    Contender::Papaya,
];
const WRITERS: [Contender; 5] = [
    Contender::XaLoad,
    Contender::Vec,
    Contender::BTree,
    Contender::Hash,
    Contender::Papaya,
];

fn dense_lookups(c: &mut Criterion) {
    let sizes = Sizes::get();
    let mut rng = SplitMix64(1);
    let keys: Vec<u64> = (0..sizes.dense).collect();
    let maps = Maps::build(&keys, sizes.dense as usize);
    let hits = draw_where(&mut rng, sizes.dense, sizes.stream, |_| true);
    lookup_group(c, "lookup_hit_dense", &maps, &hits, &ALL_LOOKUPS);
    let hot = draw_where(&mut rng, sizes.dense.min(HOT), sizes.stream, |_| true);
    lookup_group(c, "lookup_hit_dense_hot", &maps, &hot, &ALL_LOOKUPS);

    let mut group = c.benchmark_group("lookup_hit_dense_threads");
    for threads in thread_counts() {
        group.throughput(Throughput::Elements((threads * BATCH) as u64));
        for contender in ALL_LOOKUPS {
            let id = BenchmarkId::new(contender.name(), threads);
            group.bench_with_input(id, &threads, |b, &threads| {
                b.iter_custom(|iters| {
                    on_threads(threads, iters, |thread, iters| {
                        let mut indices = Stream::new(&hits, thread, threads);
                        let start = Instant::now();
                        for _ in 0..iters {
                            maps.lookup_batch(contender, indices.batch());
                        }
                        start.elapsed()
                    })
                });
            });
        }
    }
    group.finish();
}

fn dense_misses(c: &mut Criterion) {
    let sizes = Sizes::get();
    let mut rng = SplitMix64(2);
    let keys: Vec<u64> = (0..sizes.dense).map(|i| 2 * i).collect();
    let maps = Maps::build(&keys, 2 * sizes.dense as usize);
    let misses = draw_where(&mut rng, 2 * sizes.dense, sizes.stream, |i| i % 2 == 1);
    lookup_group(c, "lookup_miss_dense", &maps, &misses, &ALL_LOOKUPS);
}

fn sparse_lookups(c: &mut Criterion) {
    let sizes = Sizes::get();
    let mut rng = SplitMix64(3);
    let keys = sparse_keys(&mut rng, sizes.sparse);
    let maps = Maps::build(&keys, 0);
    let hits = draw_from(&mut rng, &keys, sizes.stream);
    lookup_group(c, "lookup_hit_sparse", &maps, &hits, &SPARSE_LOOKUPS);
    let misses = draw_where(&mut rng, 1 << 32, sizes.stream, |i| {
        keys.binary_search(&i).is_err()
    });
    lookup_group(c, "lookup_miss_sparse", &maps, &misses, &SPARSE_LOOKUPS);
}

/// One write group over fresh maps built from `keys`, with random draws of `keys`.
fn write_group(c: &mut Criterion, name: &str, keys: &[u64], vec_len: usize, erase: bool) {
    let mut rng = SplitMix64(4);
    let stream = draw_from(&mut rng, keys, Sizes::get().stream);
    let mut maps = Maps::build(keys, vec_len);
    let item = Arc::new(Item::MAX);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));
    for contender in WRITERS {
        if vec_len == 0 && matches!(contender, Contender::Vec) {
            continue;
        }
        let mut indices = Stream::new(&stream, 0, 1);
        let name = match contender {
            Contender::XaLoad => "xarray",
            other => other.name(),
        };
        group.bench_function(name, |b| {
            b.iter(|| maps.write_batch(contender, indices.batch(), &item, erase));
        });
    }
    group.finish();
}

fn writes(c: &mut Criterion) {
    let sizes = Sizes::get();
    let dense: Vec<u64> = (0..sizes.dense).collect();
    write_group(c, "store_overwrite_dense", &dense, dense.len(), false);
    write_group(c, "erase_store_dense", &dense, dense.len(), true);
    let sparse = sparse_keys(&mut SplitMix64(5), sizes.sparse);
    write_group(c, "store_overwrite_sparse", &sparse, 0, false);
    write_group(c, "erase_store_sparse", &sparse, 0, true);
}

fn iteration(c: &mut Criterion) {
    let sizes = Sizes::get();
    let keys: Vec<u64> = (0..sizes.dense).collect();
    let maps = Maps::build(&keys, sizes.dense as usize);
    let mut group = c.benchmark_group("iterate_dense");
    // One pass over 1Mi entries takes milliseconds: flat sampling keeps the group short.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Elements(sizes.dense));
    group.bench_function("xarray_iter", |b| {
        b.iter(|| {
            for entry in maps.xa.iter(..) {
                black_box(entry);
            }
        });
    });
    group.bench_function("xarray_read_guard_iter", |b| {
        b.iter(|| {
            let guard = maps.xa.read();
            for entry in guard.iter(..) {
                black_box(entry);
            }
        });
    });
    group.bench_function("vec_iter", |b| {
        b.iter(|| {
            for (index, item) in maps.vec.iter().enumerate() {
                if let Some(item) = item {
                    black_box((index, &**item));
                }
            }
        });
    });
    // The floor of `xarray_iter`, which hands out an `Arc` per entry: the same clone (and
    // its drop) per entry of a flat array.
    group.bench_function("vec_arc_iter", |b| {
        b.iter(|| {
            for (index, item) in maps.vec.iter().enumerate() {
                if let Some(item) = item {
                    black_box((index, Arc::clone(item)));
                }
            }
        });
    });
    group.bench_function("rwlock_btreemap_range", |b| {
        b.iter(|| {
            let map = maps.btree.read().unwrap();
            for (index, item) in map.range(..) {
                black_box((index, &**item));
            }
        });
    });
    group.finish();
}

// Short runs (testkit's `bench::short_runs`): about 2 s per benchmark.

criterion_group! {
    name = benches;
    config = rangelock_testkit::bench::short_runs();
    targets = dense_lookups, dense_misses, sparse_lookups, writes, iteration
}
criterion_main!(benches);
