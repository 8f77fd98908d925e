//! Issue 14: the page cache's direct IO and edits as futures (`direct_io_async`,
//! `truncate_async`, `punch_hole_async`, `collapse_range_async`, `insert_range_async`).
//! Their futures and guards are `Send`; a future dropped at any of its await points (the
//! range lock, each `flush`) loses no dirty data, leaves no page marked evicted and no
//! index locked; and under a multi-threaded runtime, direct IOs cancelled by a short
//! timer in a loop of thousands, beside buffered writers, lose no write.
//! (The answers of each operation against a sequential model are in `model`, which runs
//! every other step as a task; the concurrency oracle's task-driven run is in `oracle`.)
#![cfg(not(loom))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rangelock::mapping::{DirectIoKind, Mapping, Page, DIRTY};
use rangelock::{Entry, LockMode};

use crate::support::task_mapping::YieldOnce;

const PAGE: u64 = 4096;
/// The pages of the file of `direct_io_cancelled_by_a_timer_beside_writers_loses_no_write`.
const PAGES: u64 = 32;

fn assert_send<S: Send>(_: &S) {}

/// Compiles only if the futures and guards of the asynchronous direct IO and edits are
/// `Send` (given a `Send` flush): a task holding them can move between workers.
#[test]
fn the_futures_and_guards_are_send() {
    let file: Mapping<u64> = Mapping::new();
    file.set_size(8 * PAGE);
    let flush = |_: u64, _: Arc<Page<u64>>| async { Ok::<_, ()>(()) };
    let io = file.direct_io_async(0..PAGE, DirectIoKind::Write, flush);
    assert_send(&io);
    let io = rangelock_testkit::executor::block_on(io).unwrap();
    assert_send(&io);
    drop(io);
    let truncate = file.truncate_async(4 * PAGE);
    assert_send(&truncate);
    let edit = rangelock_testkit::executor::block_on(truncate).unwrap();
    assert_send(&edit);
    drop(edit);
    assert_send(&file.punch_hole_async(0..PAGE));
    assert_send(&file.collapse_range_async(0..PAGE));
    assert_send(&file.insert_range_async(0..PAGE));
    assert_send(&file.truncate(0).unwrap().detach());
}

/// Pages 0..8 of a file, every one cached and dirty (page `i` holds `100 + i`) except
/// page 5, which is not cached.
fn dirty_file() -> Mapping<u64, 4> {
    let file = Mapping::with_tree(rangelock::XArray::with_slots(), Default::default());
    file.set_size(8 * PAGE);
    for i in (0..8).filter(|&i| i != 5) {
        file.write(i, |_| Ok::<_, ()>(0), |d| *d = 100 + i).unwrap();
    }
    file
}

/// Nothing lost, nothing left behind: every page of `dirty_file` is cached with its
/// data (dirty unless `device` has it) or, gone from the cache, on `device`; cached
/// pages are not marked evicted, their DIRTY marks match their flags; no index is
/// locked, and the whole range can be taken.
fn assert_nothing_lost(file: &Mapping<u64, 4>, device: &[AtomicU64], at: &str) {
    for i in (0..8).filter(|&i| i != 5) {
        let on_device = device[i as usize].load(Ordering::SeqCst) == 100 + i;
        match file.pages().get(i) {
            Entry::Item(page) => {
                assert!(!page.is_evicted(), "{at}: page {i} left evicted");
                assert_eq!(page.read(|d| *d), 100 + i, "{at}: page {i}");
                assert!(
                    page.is_dirty() || on_device,
                    "{at}: page {i} cleaned, not flushed"
                );
                assert_eq!(
                    file.pages().get_mark(i, DIRTY),
                    page.is_dirty(),
                    "{at}: {i}"
                );
            }
            Entry::Empty => assert!(on_device, "{at}: page {i} dropped, not flushed"),
            other => panic!("{at}: page {i} is {other:?}"),
        }
    }
    file.pages().check_invariants().unwrap();
    let whole = file.pages().try_lock_range(.., LockMode::Exclusive);
    assert!(whole.is_ok(), "{at}: {:?}", whole.err());
}

/// A direct IO over pages 0..8 whose `flush` yields twice, polled `polls` times and then
/// dropped (or run to the end), while page 5 (empty) is locked by this thread until
/// poll `release_at` (`None`: never locked): cancellation while queued behind the lock
/// (holding the claimed prefix, pages 0..5 evicted), during a flush, between flushes,
/// and completion. Every case: nothing lost (`assert_nothing_lost`).
#[test]
fn a_direct_io_async_dropped_at_any_await_point_loses_nothing() {
    let (mut queued, mut in_flush, mut completed) = (0, 0, 0);
    // Under Miri, a sample of the drop points (each case builds a file).
    let drop_points: Vec<usize> = if cfg!(miri) {
        vec![1, 2, 3, 5, 8, 24]
    } else {
        (1..=24).collect()
    };
    for release_at in [None, Some(1), Some(3)] {
        for &polls in &drop_points {
            let at = format!("released at {release_at:?}, dropped after {polls} polls");
            let file = dirty_file();
            let device: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
            let flushes = AtomicU64::new(0);
            let mut blocker = release_at.map(|_| {
                file.pages()
                    .try_lock_range(5..=5, LockMode::Exclusive)
                    .unwrap()
            });
            let flush = |index: u64, page: Arc<Page<u64>>| {
                let (device, flushes) = (&device, &flushes);
                async move {
                    flushes.fetch_add(1, Ordering::SeqCst);
                    YieldOnce::new().await;
                    YieldOnce::new().await;
                    let data = page.read(|d| *d);
                    device[index as usize].store(data, Ordering::SeqCst);
                    Ok::<_, ()>(())
                }
            };
            let mut io = Box::pin(file.direct_io_async(0..8 * PAGE, DirectIoKind::Write, flush));
            let mut cx = Context::from_waker(Waker::noop());
            let mut done = None;
            for poll in 1..=polls {
                if release_at == Some(poll - 1) {
                    blocker = None;
                }
                if let Poll::Ready(out) = io.as_mut().poll(&mut cx) {
                    done = Some(out.unwrap());
                    break;
                }
            }
            match (&done, &blocker) {
                (Some(_), _) => completed += 1,
                (None, Some(_)) => queued += 1,
                (None, None) if flushes.load(Ordering::SeqCst) > 0 => in_flush += 1,
                (None, None) => {}
            }
            if let Some(io) = done {
                // Completed: every dirty page was handed over, then the pages left.
                assert_eq!(flushes.load(Ordering::SeqCst), 7, "{at}");
                drop(io);
            }
            drop(io); // the cancellation, if it had not resolved
            drop(blocker);
            assert_nothing_lost(&file, &device, &at);
        }
    }
    assert!(
        queued > 0 && in_flush > 0 && completed > 0,
        "{queued} {in_flush} {completed}"
    );
}

/// An edit dropped while it waits for its range (page 5 locked by this thread) puts
/// back the pages it had already evicted, dirty, and leaves the size alone.
#[test]
fn an_async_edit_dropped_while_queued_puts_its_prefix_back() {
    let file = dirty_file();
    let device: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
    let blocker = file
        .pages()
        .try_lock_range(5..=5, LockMode::Exclusive)
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let edits: [Pin<Box<dyn Future<Output = _>>>; 4] = [
        Box::pin(file.truncate_async(2 * PAGE)),
        Box::pin(file.punch_hole_async(PAGE..7 * PAGE)),
        Box::pin(file.collapse_range_async(2 * PAGE..3 * PAGE)),
        Box::pin(file.insert_range_async(2 * PAGE..3 * PAGE)),
    ];
    for mut edit in edits {
        assert!(edit.as_mut().poll(&mut cx).is_pending());
        // Queued behind page 5, holding (evicted) the pages before it.
        assert!(matches!(file.pages().get(2), Entry::Locked { .. }));
        drop(edit);
        assert_eq!(file.size(), 8 * PAGE);
        assert_eq!(file.dirty_pages(..), vec![0, 1, 2, 3, 4, 6, 7]);
    }
    drop(blocker);
    assert_nothing_lost(&file, &device, "edits dropped");
}

/// Tasks on a two-worker runtime do direct reads over random page ranges, each
/// cancelled by a timeout (at whatever await point it has reached: queued behind a
/// lock, in a flush, or done), while threads beside the runtime do buffered writes of
/// counters: each write adds 1 to its page (blocking calls stay off the runtime's
/// workers). After all are done and everything is written back, each page on the
/// device counts every write made to it (a write lost by a cancelled hand-off, or a page
/// refilled from stale device data, would leave it short), the cache agrees, and
/// nothing is left locked.
#[test]
fn direct_io_cancelled_by_a_timer_beside_writers_loses_no_write() {
    const WRITERS: u64 = 2;
    const TASKS: u64 = 4;
    let rounds = if cfg!(miri) { 10 } else { 4000 };
    let file: Arc<Mapping<u64>> = Arc::new(Mapping::new());
    file.set_size(PAGES * PAGE);
    let device: Arc<Vec<AtomicU64>> = Arc::new((0..PAGES).map(|_| AtomicU64::new(0)).collect());
    // The writes made to each page.
    let written: Vec<AtomicU64> = (0..PAGES).map(|_| AtomicU64::new(0)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (cancelled, finished) = std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (file, device, written, done) = (&file, &device, &written, &done);
            s.spawn(move || {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ w);
                // Until the tasks are done (at least one write).
                loop {
                    let page = rng.below(PAGES / WRITERS) * WRITERS + w;
                    let fill = |i: u64| Ok::<_, ()>(device[i as usize].load(Ordering::SeqCst));
                    file.write(page, fill, |d| *d += 1).unwrap();
                    written[page as usize].fetch_add(1, Ordering::SeqCst);
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                }
            });
        }
        // A batch of IOs can all find their ranges free before their timers fire when
        // the writers are starved (a loaded machine): another batch then, at most five.
        let mut totals = (0, 0);
        for batch in 0..5 {
            let (c, f) = rt.block_on(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let seed = t + batch * TASKS;
                        tokio::spawn(direct_reads(file.clone(), device.clone(), rounds, seed))
                    })
                    .collect();
                let mut totals = (0, 0);
                for task in tasks {
                    let (c, f) = task.await.unwrap();
                    totals = (totals.0 + c, totals.1 + f);
                }
                totals
            });
            totals = (totals.0 + c, totals.1 + f);
            if totals.0 > 0 || cfg!(miri) {
                break;
            }
        }
        done.store(true, Ordering::SeqCst);
        totals
    });
    // Every write reaches the device.
    let flushed = file.writeback(.., |i, d: &u64| {
        device[i as usize].store(*d, Ordering::SeqCst);
        Ok::<_, ()>(())
    });
    assert!(flushed.is_ok());
    let on_device: Vec<u64> = device.iter().map(|d| d.load(Ordering::SeqCst)).collect();
    let last: Vec<u64> = written.iter().map(|w| w.load(Ordering::SeqCst)).collect();
    assert_eq!(
        on_device, last,
        "device against the writes made to each page"
    );
    for page in 0..PAGES {
        if let Some(data) = file.get(page).map(|p| p.read(|d| *d)) {
            assert_eq!(data, last[page as usize], "page {page}: the cache is stale");
        }
    }
    file.pages().check_invariants().unwrap();
    assert!(file.pages().try_lock_range(.., LockMode::Exclusive).is_ok());
    eprintln!("{cancelled} direct IOs cancelled, {finished} finished");
    if !cfg!(miri) {
        assert!(
            cancelled > 0 && finished > 0,
            "{cancelled} cancelled, {finished} finished"
        );
    }
}

/// A xorshift generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One task of `direct_io_cancelled_by_a_timer_beside_writers_loses_no_write`: `rounds`
/// direct reads under timers; returns how many were cancelled and how many finished.
async fn direct_reads(
    file: Arc<Mapping<u64>>,
    device: Arc<Vec<AtomicU64>>,
    rounds: u64,
    t: u64,
) -> (u64, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ t);
    let (mut cancelled, mut finished) = (0, 0);
    for _ in 0..rounds {
        let first = rng.below(PAGES);
        let last = (first + rng.below(6)).min(PAGES - 1);
        let flush = |index: u64, page: Arc<Page<u64>>| {
            let device = device.clone();
            async move {
                tokio::task::yield_now().await; // the device write
                let data = page.read(|d| *d);
                device[index as usize].store(data, Ordering::SeqCst);
                Ok::<_, ()>(())
            }
        };
        let bytes = first * PAGE..(last + 1) * PAGE;
        let io = file.direct_io_async(bytes, DirectIoKind::Read, flush);
        // Half expire at the first await point that waits (tokio polls the IO first).
        let timer = Duration::from_micros(rng.below(2) * rng.below(2000));
        match tokio::time::timeout(timer, io).await {
            Ok(io) => {
                tokio::task::yield_now().await; // the device read
                drop(io.unwrap());
                finished += 1;
            }
            Err(_) => cancelled += 1,
        }
    }
    (cancelled, finished)
}
