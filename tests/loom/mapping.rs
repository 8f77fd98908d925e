//! Loom models of the page-cache protocol (`src/mapping/`): a fault, a buffered write, a
//! direct IO, a truncate and a write-back, each raced against another by two threads
//! (the main thread and one spawned), over a real [`Mapping`] and a modelled device.
//!
//! Run them with `ci/loom.sh`, which sets both cfgs:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test --release --test loom -- mapping::
//! ```
//!
//! # What makes a bug visible
//!
//! * The device is two loom atomics (one per sector of the one page a model uses),
//!   accessed `Relaxed`: only the mapping's own protocol (its range locks and page locks)
//!   orders a fill's device read after a direct write, or a write-back's device write
//!   before a later direct write. Each model checks the final state against what the
//!   protocol promises: the cached page, if any, is at least as new as the device, a
//!   completed buffered write is in the cache or on the device, a direct write is never
//!   overwritten by an older write-back, no page is cached past the end of file.
//! * A lost wake-up is a loom deadlock; page data lives behind the page's loom mutex, so
//!   a data race on it is a causality violation.
//! * Each tree gets its own [`WaitTable`] (`with_wait_table`), whose visit counter says
//!   whether anybody queued, and each model asserts that its iterations together reached
//!   every side of its race (same style as `tests/loom/lock.rs`), so a model cannot pass
//!   by never exploring the race.
//! * Mutation checks (done by hand, see the end of this file): each model fails when the
//!   protocol step it covers is broken.
//!
//! The trees have 4-slot nodes and the models use page 1 of a file of 4096-byte pages; a
//! page is two 2048-byte sectors.

#![cfg(loom)]

// Std atomics observe the models (loom runs all of a model's threads on one OS thread,
// so they are exact and add no scheduling points); the protocol and the device run on
// loom's.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use loom::sync::atomic::{AtomicU64, Ordering::Relaxed};
use rangelock::mapping::{DirectIoKind, Mapping, MappingError, Page, PageGeometry};
use rangelock::{WaitTable, XArray};

use crate::support::loom_harness::{model_reaching, model_reaching_capped};

/// A page: two sectors.
type Data = [u64; 2];

/// A file of 4-slot nodes.
type File = Mapping<Data, 4>;

const PAGE: u64 = 4096;
const SECTOR: u64 = 2048;
/// The page every model races on.
const INDEX: u64 = 1;
/// Its bytes, and those of its two sectors.
const PAGE_BYTES: std::ops::Range<u64> = INDEX * PAGE..(INDEX + 1) * PAGE;
const SECTOR_0: std::ops::Range<u64> = INDEX * PAGE..INDEX * PAGE + SECTOR;
const SECTOR_1: std::ops::Range<u64> = INDEX * PAGE + SECTOR..(INDEX + 1) * PAGE;

/// A fresh file of `pages` pages, shareable between loom threads, with its own wait
/// table (returned too, to count visits: zero means that nobody ever queued).
fn file(pages: u64) -> (loom::sync::Arc<File>, Arc<WaitTable>) {
    let table = Arc::new(WaitTable::new(4));
    let tree = XArray::<Page<Data>, 4>::with_slots().with_wait_table(Arc::clone(&table));
    let file = Mapping::with_tree(tree, PageGeometry::default());
    file.set_size(pages * PAGE);
    (loom::sync::Arc::new(file), table)
}

/// The device under page [`INDEX`]: one loom atomic per sector, `Relaxed` (see the
/// module docs).
struct Device([AtomicU64; 2]);

impl Device {
    fn new(data: Data) -> loom::sync::Arc<Self> {
        loom::sync::Arc::new(Device([AtomicU64::new(data[0]), AtomicU64::new(data[1])]))
    }

    /// A fill: reads the page from the device.
    fn read(&self) -> Data {
        [self.0[0].load(Relaxed), self.0[1].load(Relaxed)]
    }

    /// A direct write of one sector.
    fn write_sector(&self, sector: usize, value: u64) {
        self.0[sector].store(value, Relaxed);
    }

    /// A write-back of the whole page.
    fn write_page(&self, data: &Data) {
        self.write_sector(0, data[0]);
        self.write_sector(1, data[1]);
    }
}

/// Caches page [`INDEX`] from `device` (clean), before the model's threads start.
fn cache(file: &File, device: &Device) -> Arc<Page<Data>> {
    file.fault(INDEX, |_| Ok::<_, ()>(device.read())).unwrap()
}

/// A flush callback that must never run: the page it would hand over is clean.
fn no_flush(_: u64, _: &Data) -> Result<(), ()> {
    panic!("a clean page was handed over for write-back")
}

/// Asserts that `file` is a consistent cache of `device` at page [`INDEX`], and returns
/// the file's data there as a reader sees it: the cached page if any (which must be in
/// the mapping, up to date, equal to the device unless it is dirty, with the dirty mark
/// mirroring the flag), else the device.
#[track_caller]
fn contents(file: &File, device: &Device) -> Data {
    file.pages().check_invariants().unwrap();
    let on_device = device.read();
    match file.get(INDEX) {
        None => {
            assert!(file.dirty_pages(..).is_empty());
            on_device
        }
        Some(page) => {
            assert!(
                page.is_uptodate() && !page.is_evicted(),
                "{page:?} in the tree"
            );
            let data = page.read(|d| *d);
            if page.is_dirty() {
                assert_eq!(file.dirty_pages(..), vec![INDEX], "dirty flag without mark");
            } else {
                assert!(
                    file.dirty_pages(..).is_empty(),
                    "dirty mark on a clean page"
                );
                assert_eq!(
                    data, on_device,
                    "a clean cached page differs from the device"
                );
            }
            data
        }
    }
}

/// (1) Fault vs direct write on one page. Thread A faults page 1 in (its fill reads the
/// device); the main thread, B, starts a direct write over the page (evicting it if
/// A's fill was published), writes both sectors of the device while it holds the
/// guard, and drops it. A's fill runs under the page's one-index Exclusive lock, so it
/// either completes before B's lock (B evicts the page, which is clean: no flush) or
/// waits for B and reads B's data. Never: a page filled with the old data stays cached
/// after B's write (a reader would see data older than a completed direct write).
#[test]
fn fault_vs_direct_write() {
    const OLD: Data = [10, 11];
    const NEW: Data = [20, 21];
    model_reaching(
        &[
            "A filled OLD, B evicted it",
            "A filled NEW, after queueing behind B",
            "A filled NEW, without queueing",
        ],
        |outcomes| {
            let (file, table) = file(2);
            let device = Device::new(OLD);

            let a = {
                let (file, device) = (file.clone(), device.clone());
                loom::thread::spawn(move || {
                    file.fault(INDEX, |_| Ok::<_, ()>(device.read())).unwrap()
                })
            };

            let dio = file
                .direct_io(PAGE_BYTES, DirectIoKind::Write, no_flush)
                .unwrap();
            assert!(file.get(INDEX).is_none(), "a page cached under a direct IO");
            device.write_page(&NEW);
            drop(dio);
            let page = a.join().unwrap();

            let data = page.read(|d| *d);
            if data == OLD {
                assert!(
                    page.is_evicted(),
                    "a page filled before B's write survived it"
                );
                assert!(file.get(INDEX).is_none());
                outcomes.saw("A filled OLD, B evicted it");
            } else {
                assert_eq!(data, NEW, "A's fill read a torn page");
                let cached = file.get(INDEX).expect("A's page is cached");
                assert!(Arc::ptr_eq(&cached, &page), "another page at 1");
                outcomes.saw(if table.visits() > 0 {
                    "A filled NEW, after queueing behind B"
                } else {
                    "A filled NEW, without queueing"
                });
            }
            assert_eq!(contents(&file, &device), NEW);
            // A fault now (a hit, or a fill from the device) returns B's data.
            let again = file.fault(INDEX, |_| Ok::<_, ()>(device.read())).unwrap();
            assert_eq!(again.read(|d| *d), NEW);
        },
    );
}

/// (2) Buffered write vs eviction by a direct write. Page 1 is cached clean. Thread A
/// writes sector 0 of it (`Mapping::write`); the main thread, B, starts a direct write
/// of sector 1 (evicting the page, handing a dirty page's data to its flush, which
/// writes the page to the device), writes sector 1 of the device while it holds the
/// guard, and drops it. A's write must never be lost: either it lands before B takes the
/// page lock (B finds the page dirty and its flush carries A's data to the device,
/// before B's own write), or A finds the page evicted (or the lock entry in its place),
/// faults it in again after B, from the device with B's sector, and the cached page is
/// dirty with both. Either way the file reads A's sector 0 and B's sector 1. (A that
/// holds the page when B evicts it and retries is not told apart, in the outcomes, from
/// A whose first fault finds B's lock entry: both fault the page in again; the mutation
/// table shows that the retry is reached.)
#[test]
fn buffered_write_vs_direct_write_eviction() {
    const OLD: Data = [10, 11];
    const A_NEW: u64 = 20;
    const B_NEW: u64 = 31;
    model_reaching(
        &[
            "B's flush carried A's write",
            "A wrote after B, after queueing",
            "A wrote after B, without queueing",
        ],
        |outcomes| {
            let (file, table) = file(2);
            let device = Device::new(OLD);
            let first = cache(&file, &device);
            let fills = loom::sync::Arc::new(AtomicUsize::new(0));

            let a = {
                let (file, device, fills) = (file.clone(), device.clone(), fills.clone());
                loom::thread::spawn(move || {
                    let fill = |_| {
                        fills.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, ()>(device.read())
                    };
                    file.write(INDEX, fill, |d| d[0] = A_NEW).unwrap();
                })
            };

            let mut flushed = Vec::new();
            let dio = file
                .direct_io(SECTOR_1, DirectIoKind::Write, |index, data: &Data| {
                    assert_eq!(index, INDEX);
                    flushed.push(*data);
                    device.write_page(data);
                    Ok::<_, ()>(())
                })
                .unwrap();
            device.write_sector(1, B_NEW);
            drop(dio);
            a.join().unwrap();

            assert!(first.is_evicted(), "B left the page it evicted usable");
            assert_eq!(
                contents(&file, &device),
                [A_NEW, B_NEW],
                "a write was lost (flushed: {flushed:?})"
            );
            let refaulted = fills.load(Ordering::Relaxed);
            match flushed.as_slice() {
                [] => {
                    // A wrote after the eviction, into a page faulted in again.
                    assert_eq!(refaulted, 1, "A's write did not fault the page in again");
                    let page = file.get(INDEX).expect("A's write is cached");
                    assert!(page.is_dirty());
                    outcomes.saw(if table.visits() > 0 {
                        "A wrote after B, after queueing"
                    } else {
                        "A wrote after B, without queueing"
                    });
                }
                [data] => {
                    assert_eq!(*data, [A_NEW, OLD[1]]);
                    assert_eq!(refaulted, 0);
                    assert!(file.get(INDEX).is_none());
                    outcomes.saw("B's flush carried A's write");
                }
                more => panic!("{} flushes of one page", more.len()),
            }
        },
    );
}

/// (3) The sealed hand-off vs a second sub-page direct write. Page 1 is cached dirty
/// (sector 0 written, not yet on the device). Thread A starts a direct write of sector
/// 0, the main thread, B, one of sector 1: both lock page 1 Shared and may hold it
/// together, and whichever evicts the page hands its dirty data to its flush, which
/// writes the whole page (both sectors) to the device. Then each writes its own sector
/// of the device while it holds its guard. The evicting writer's lock entry stays sealed
/// until its flush is done, so the other writer joins only after it: the flush of the
/// old sector 1 never lands after B's direct write of it (nor the old sector 0 after
/// A's). The device ends with A's sector 0 and B's sector 1, flushed exactly once.
#[test]
fn sealed_hand_off_vs_sub_page_direct_write() {
    const OLD: Data = [10, 11];
    const DIRTY_0: u64 = 15;
    const A_NEW: u64 = 40;
    const B_NEW: u64 = 31;
    model_reaching(
        &[
            "A evicted, B waited for the hand-off",
            "A evicted, B came after it",
            "B evicted, A waited for the hand-off",
            "B evicted, A came after it",
        ],
        |outcomes| {
            let (file, table) = file(2);
            let device = Device::new(OLD);
            file.write(INDEX, |_| Ok::<_, ()>(device.read()), |d| d[0] = DIRTY_0)
                .unwrap();
            // Write-back to the device: what an evicting writer hands over.
            fn flush<'a>(
                device: &'a Device,
                flushes: &'a AtomicUsize,
            ) -> impl FnMut(u64, &Data) -> Result<(), ()> + 'a {
                move |index, data| {
                    assert_eq!((index, *data), (INDEX, [DIRTY_0, OLD[1]]));
                    flushes.fetch_add(1, Ordering::Relaxed);
                    device.write_page(data);
                    Ok(())
                }
            }

            let a = {
                let (file, device) = (file.clone(), device.clone());
                loom::thread::spawn(move || {
                    let flushes = AtomicUsize::new(0);
                    let dio = file
                        .direct_io(SECTOR_0, DirectIoKind::Write, flush(&device, &flushes))
                        .unwrap();
                    device.write_sector(0, A_NEW);
                    drop(dio);
                    flushes.into_inner()
                })
            };

            let flushes = AtomicUsize::new(0);
            let dio = file
                .direct_io(SECTOR_1, DirectIoKind::Write, flush(&device, &flushes))
                .unwrap();
            device.write_sector(1, B_NEW);
            drop(dio);
            let b_flushes = flushes.into_inner();
            let a_flushes = a.join().unwrap();

            assert_eq!(
                device.read(),
                [A_NEW, B_NEW],
                "a direct write was overwritten by a write-back"
            );
            assert_eq!(a_flushes + b_flushes, 1, "the dirty page was flushed twice");
            assert!(file.get(INDEX).is_none());
            assert!(file.pages().is_empty(), "a lock entry left behind");
            let queued = table.visits() > 0;
            outcomes.saw(match (a_flushes == 1, queued) {
                (true, true) => "A evicted, B waited for the hand-off",
                (true, false) => "A evicted, B came after it",
                (false, true) => "B evicted, A waited for the hand-off",
                (false, false) => "B evicted, A came after it",
            });
        },
    );
}

/// (4) Truncate vs a fault past the new end of file. The file has pages 0 and 1; thread
/// A faults page 1 in; the main thread truncates the file to nothing (which locks the
/// whole index space Exclusive, evicts, sets the size) and drops the edit. The fault
/// either finishes first (its page is evicted by the truncate) or fails with
/// `BeyondEof`: at its lock-free check, or at the check under its index lock (it waited
/// for the truncate, or came after it had released). Never: a page cached past the end
/// of file once both are done.
///
/// Truncating to 0 and one preemption keep the model small. A truncate locks from its
/// page to the end of the index space; with 4-slot nodes a lock reaching `u64::MAX`
/// from anywhere but 0 is a 32-level tree, built under loom's eyes: truncating to one
/// page (locking 1..=u64::MAX) ran for over 10 minutes with two preemptions and over 2
/// with one, and was stopped. Locking 0..=u64::MAX is one head entry, except while it
/// waits on the fault's entry (it then claims the rest of the index space): with two
/// preemptions that took 144,539 interleavings and 75 s (166 s beside other builds),
/// with one 5,952 and under 3 s, reaching every outcome. Raise the cap to soak it.
#[test]
fn truncate_vs_fault_past_eof() {
    const DATA: Data = [10, 11];
    model_reaching_capped(
        Some(1),
        &[
            "A filled, truncate evicted it",
            "A refused, after queueing",
            "A refused, without queueing",
        ],
        |outcomes| {
            let (file, table) = file(2);
            let fills = loom::sync::Arc::new(AtomicUsize::new(0));

            let a = {
                let (file, fills) = (file.clone(), fills.clone());
                loom::thread::spawn(move || {
                    file.fault(INDEX, |_| {
                        fills.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, ()>(DATA)
                    })
                })
            };

            let edit = file.truncate(0).unwrap();
            assert!(edit.dirty().is_empty(), "a clean page handed over");
            assert!(file.get(INDEX).is_none());
            drop(edit);
            let faulted = a.join().unwrap();

            assert_eq!(file.size(), 0);
            assert!(
                file.get(INDEX).is_none(),
                "a page cached past the end of file"
            );
            assert_eq!(file.cached_pages(), 0);
            file.pages().check_invariants().unwrap();
            match faulted {
                Ok(page) => {
                    assert_eq!(fills.load(Ordering::Relaxed), 1);
                    assert!(page.is_evicted(), "the truncate left A's page usable");
                    outcomes.saw("A filled, truncate evicted it");
                }
                Err(MappingError::BeyondEof { index, size }) => {
                    assert_eq!((index, size), (INDEX, 0));
                    assert_eq!(fills.load(Ordering::Relaxed), 0, "a fill past EOF ran");
                    outcomes.saw(if table.visits() > 0 {
                        "A refused, after queueing"
                    } else {
                        "A refused, without queueing"
                    });
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
            assert!(matches!(
                file.fault(INDEX, |_| Ok::<_, ()>(DATA)),
                Err(MappingError::BeyondEof { .. })
            ));
        },
    );
}

/// (5) Write-back (fsync) vs a direct write's hand-off of a dirty page. Page 1 is cached
/// dirty (sector 0 written, not on the device) before the threads start. Thread A starts
/// a direct write of sector 1: it evicts the page, hands the dirty data to its flush
/// (which writes the whole page to the device), unseals, writes its sector and drops the
/// guard. The main thread, B, writes back the whole file. Whatever the interleaving, the
/// buffered write completed before B began, so when `writeback` returns it is on the
/// device: B wrote it itself, or found the page gone and waited for A's sealed hand-off
/// (the `wait_sealed` step, whose O(1) path reads the tree's count of pending
/// acquisitions under the write lock), or A had flushed it already.
#[test]
fn writeback_vs_direct_write_hand_off() {
    const OLD: Data = [10, 11];
    const DIRTY: u64 = 15;
    const A_NEW: u64 = 31;
    model_reaching(
        &[
            "B wrote the page",
            "A's flush wrote it while B waited",
            "A's flush wrote it before B looked",
        ],
        |outcomes| {
            let (file, table) = file(2);
            let device = Device::new(OLD);
            file.write(INDEX, |_| Ok::<_, ()>(device.read()), |d| d[0] = DIRTY)
                .unwrap();
            let flushes = loom::sync::Arc::new(AtomicUsize::new(0));

            let a = {
                let (file, device, flushes) = (file.clone(), device.clone(), flushes.clone());
                loom::thread::spawn(move || {
                    let dio = file
                        .direct_io(SECTOR_1, DirectIoKind::Write, |index, data: &Data| {
                            assert_eq!(index, INDEX);
                            flushes.fetch_add(1, Ordering::Relaxed);
                            device.write_page(data);
                            Ok::<_, ()>(())
                        })
                        .unwrap();
                    device.write_sector(1, A_NEW);
                    drop(dio);
                })
            };

            let written = file
                .writeback(.., |_, data: &Data| {
                    device.write_page(data);
                    Ok::<_, ()>(())
                })
                .unwrap();
            assert_eq!(
                device.read()[0],
                DIRTY,
                "write-back returned before a completed buffered write reached the device"
            );
            let waited = table.visits() > 0;
            let flushed_by_then = flushes.load(Ordering::Relaxed);
            a.join().unwrap();

            assert_eq!(contents(&file, &device), [DIRTY, A_NEW]);
            match (written, flushed_by_then) {
                (1, 0) => outcomes.saw("B wrote the page"),
                (0, 1) if waited => outcomes.saw("A's flush wrote it while B waited"),
                (0, 1) => outcomes.saw("A's flush wrote it before B looked"),
                other => panic!("written by B, flushed by A: {other:?}"),
            }
        },
    );
}

// Mutation checks, done by hand in a scratch copy of the crate (each breaks one protocol
// step; the listed model then fails, as it must; `LOOM_MAX_PREEMPTIONS=2`):
//
// | mutation (src/mapping/)                                    | failing model: how |
// |------------------------------------------------------------|--------------------|
// | `fault` calls `fill` before `get_or_fill` locks the index  | 1: "a page filled before B's write survived it" |
// | `write` does not re-check `is_evicted` under the page lock | 2: "a write was lost": reads `[10, 31]` |
// | `direct_io` reads `is_dirty` before taking the page lock   | 2: the same |
// | `direct_io` calls `guard.unseal()` before the hand-off     | 3: "a direct write was overwritten": `[15, 31]` |
// | `direct_io` takes `lock_range`, not `lock_range_sealed`    | 3: the same |
// | `fault` does not re-check the size under the index lock    | 4: "a page cached past the end of file" |
// | `pending_opened`/`pending_closed` (src/lock/claim.rs) do nothing: the count stays 0 and `wait_sealed` returns at once | 5: "write-back returned before a completed buffered write reached the device" |
