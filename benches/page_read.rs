//! Buffered reads of many pages, and readahead's scan, on a [`Mapping`] whose pages are
//! all cached (issue 16: "readahead and `Mapping::read` of a multi-page range use the
//! batched lookups"). Every contender reads the same windows, in the same order:
//!
//! | group / contender               | what it is                                              |
//! |---------------------------------|---------------------------------------------------------|
//! | `read_window/read_each`         | [`Mapping::read`] once per page of the window           |
//! | `read_window/read_pages`        | one [`Mapping::read_pages`] over the window             |
//! | `readahead_cached/load_each`    | a [`XArray::load`] per index: the scan readahead made before |
//! | `readahead_cached/readahead`    | [`Mapping::readahead`] over the window: its scan finds nothing to claim |
//! | `readahead_empty/<n>`           | [`Mapping::readahead`] of `n` pages on an empty file: `n` claims, one fill, `n` publishes |
//!
//! The file has 1Mi pages of `u64`, all cached; windows of [`WINDOW`] pages start at
//! random page indices (a pre-drawn stream, so consecutive windows land on different
//! leaves). Throughput is pages. `cargo test --benches` runs each once on 4Ki pages.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rangelock::mapping::Mapping;
use rangelock::XArray;

/// Pages per window: a 256 KiB read at 4 KiB pages.
const WINDOW: u64 = 64;

/// Windows drawn in advance.
const STREAM: usize = 1 << 14;

/// Pages in the file: 1Mi under `cargo bench`, 4Ki under `cargo test --benches`.
fn file_pages() -> u64 {
    if std::env::args().any(|arg| arg == "--bench") {
        1 << 20
    } else {
        1 << 12
    }
}

/// SplitMix64, so the bench needs no `rand`.
fn split_mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A file of `pages` pages, every one cached (page `i` holds `i`).
fn cached_file(pages: u64) -> Mapping<u64> {
    let file = Mapping::new();
    file.set_size(pages * file.geometry().page_size());
    // Windows of 256: readahead checks each claim against the thread's held list.
    for first in (0..pages).step_by(256) {
        let window = first..(first + 256).min(pages);
        let added = file
            .readahead(window.clone(), |indices| Ok::<_, ()>(indices.to_vec()))
            .expect("fill");
        assert_eq!(added as u64, window.end - window.start);
    }
    file
}

/// The first page of each window.
fn window_starts(pages: u64) -> Vec<u64> {
    let mut state = 7;
    (0..STREAM)
        .map(|_| split_mix(&mut state) % (pages - WINDOW))
        .collect()
}

/// A fill that must not run: every page is cached.
fn no_fill(index: u64) -> Result<u64, ()> {
    panic!("page {index} was not cached")
}

fn read_window(c: &mut Criterion) {
    let pages = file_pages();
    let file = cached_file(pages);
    let starts = window_starts(pages);
    let mut group = c.benchmark_group("read_window");
    group.throughput(Throughput::Elements(WINDOW));
    let mut next = starts.iter().cycle();
    group.bench_function("read_each", |b| {
        b.iter(|| {
            let first = *next.next().expect("cycle");
            for index in first..first + WINDOW {
                black_box(file.read(index, no_fill, |data| *data).expect("read"));
            }
        });
    });
    let mut next = starts.iter().cycle();
    group.bench_function("read_pages", |b| {
        b.iter(|| {
            let first = *next.next().expect("cycle");
            let read = file.read_pages(first..first + WINDOW, no_fill, |_, data| {
                black_box(*data);
            });
            assert_eq!(read, Ok(WINDOW));
        });
    });
    group.finish();
}

fn readahead_cached(c: &mut Criterion) {
    let pages = file_pages();
    let file = cached_file(pages);
    let starts = window_starts(pages);
    let tree: &XArray<_> = file.pages();
    let mut group = c.benchmark_group("readahead_cached");
    group.throughput(Throughput::Elements(WINDOW));
    let mut next = starts.iter().cycle();
    group.bench_function("load_each", |b| {
        b.iter(|| {
            let first = *next.next().expect("cycle");
            let missing = (first..first + WINDOW)
                .filter(|&index| tree.load(index).is_none())
                .count();
            assert_eq!(missing, 0);
        });
    });
    let mut next = starts.iter().cycle();
    group.bench_function("readahead", |b| {
        b.iter(|| {
            let first = *next.next().expect("cycle");
            let added = file.readahead(first..first + WINDOW, |_| -> Result<Vec<u64>, ()> {
                panic!("nothing to read ahead")
            });
            assert_eq!(added, Ok(0));
        });
    });
    group.finish();
}

fn readahead_empty(c: &mut Criterion) {
    let mut group = c.benchmark_group("readahead_empty");
    for window in [32, 1024, 4096] {
        group.throughput(Throughput::Elements(window));
        group.bench_function(BenchmarkId::from_parameter(window), |b| {
            b.iter_batched(
                || {
                    let file: Mapping<u64> = Mapping::new();
                    file.set_size(window * file.geometry().page_size());
                    file
                },
                |file| {
                    let added = file.readahead(0..window, |indices| Ok::<_, ()>(indices.to_vec()));
                    assert_eq!(added, Ok(window as usize));
                    file // dropped outside the measurement
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = rangelock_testkit::bench::short_runs();
    targets = read_window, readahead_cached, readahead_empty
}
criterion_main!(benches);
