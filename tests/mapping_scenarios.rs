//! Multi-threaded scenarios of the page cache ([`Mapping`]), fstests-style: each test
//! names the race it pins down and checks the data that reaches the "device" (a map of
//! page index to four sectors, `[u64; 4]`, 64-byte pages).
//!
//! * `gup_*`: a direct write whose source buffer maps the same file (exactly the pages
//!   written, part of them, or none) completes, takes the buffered path after its
//!   retries when the source overlaps (`WritePath::Buffered`) and the direct one at once
//!   otherwise (`WritePath::Direct { retries: 0 }`), and writes the right data. A plain
//!   fault on a page of the caller's own direct IO fails with `WouldDeadlock`.
//! * `gup_cycle_of_three_files_*`: three threads, three files, each writing its file
//!   from a mapping of the next (F1 from F2, F2 from F3, F3 from F1): no deadlock, and
//!   each file ends with the copied sectors and its own last write's stamp.
//! * `sub_page_direct_writes_*`: two sub-page direct writes hold one page together
//!   (holder count 2); a fault on it waits for both, then reads both writes.
//! * `buffered_write_racing_*`: a buffered write racing a direct IO's eviction of its
//!   dirty page is handed to `flush` or lands after the IO, never lost.
//! * `truncate_*`: a fault past the new end of file fails once truncate has set the
//!   size; a fault in flight during a truncate completes first and its page is evicted.
//! * `sealed_hand_off_*`: a direct IO that evicted a dirty page is inside its `flush`; a
//!   second direct IO over part of that page does not return (and so cannot do its IO)
//!   before the flush is done, nor does a write-back of the file, while a direct IO over
//!   a page that held nothing returns at once.
//! * `failed_flush_*`: a direct IO whose `flush` fails puts back, with its DIRTY mark, a
//!   page that a buffered write dirtied while it was out of the tree (a regression test).
//!
//! Every test runs under a watchdog (`within`, in `tests/support/mapping_fixture.rs`
//! with the device): a hang fails the test instead of stalling the run. "Has not completed" is checked after [`SETTLE`], a generous margin:
//! a correctness check, not a timing measurement. Miri runs fewer iterations.
#![cfg(not(loom))]

#[path = "support/mapping_fixture.rs"]
mod mapping_fixture;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use mapping_fixture::{file, iterations, pattern, within, Data, Device, File, PS, SECTOR, SETTLE};
use rangelock::mapping::{DirectIoKind, MappedBuffer, MappingError, WritePath};
use rangelock::{Entry, LockError, LockMode};

/// The three copied sectors of `source` with `stamp` in the fourth.
fn stamped(source: Data, stamp: u64) -> Data {
    [source[0], source[1], source[2], stamp]
}

fn assert_locked(file: &File, index: u64, holders: u64) {
    let entry = file.pages().get(index);
    assert!(
        matches!(entry, Entry::Locked { mode: LockMode::Shared, holders: h } if h == holders),
        "page {index}: {entry:?}, expected {holders} shared holders"
    );
}

/// A direct write of target pages `target` of `file` from its own pages `source` (same
/// count), copying page `source[k]` to `target[k]` with `stamp`; `fills` counts the
/// source's fills. Returns the path taken.
fn write_from_self(file: &File, dev: &Device, target: [u64; 2], source: [u64; 2]) -> WritePath {
    const STAMP: u64 = 0xab;
    let fills = AtomicUsize::new(0);
    let fill = |i| {
        fills.fetch_add(1, Ordering::Relaxed);
        dev.reader()(i)
    };
    let cold = source.iter().filter(|&&i| file.get(i).is_none()).count();
    let mut buffer = MappedBuffer::new(file, source[0]..=source[1], fill);
    let retries = 3;
    let path = file
        .direct_write_from(
            target[0] * PS..(target[1] + 1) * PS,
            &mut buffer,
            retries,
            dev.writer(),
            |io, pinned| {
                assert_eq!(io.pages(), target[0]..=target[1]);
                for (k, page) in pinned.iter().enumerate() {
                    dev.write(target[0] + k as u64, stamped(page.read(|d| *d), STAMP));
                }
                Ok(())
            },
            |file| {
                // Page by page, as memmove goes: a source page is read before it is
                // overwritten.
                let mut order = vec![0, 1];
                if target[0] > source[0] {
                    order.reverse();
                }
                for k in order {
                    let s = file.read(source[k], dev.reader(), |d| *d)?;
                    file.write(target[k], dev.reader(), |d| *d = stamped(s, STAMP))?;
                }
                Ok(())
            },
        )
        .unwrap();
    // Each retry faulted in afresh the source pages that the lock had evicted.
    let overlap = source
        .iter()
        .filter(|&&s| target[0] <= s && s <= target[1])
        .count();
    let retried = if overlap > 0 { retries } else { 0 };
    assert_eq!(
        fills.load(Ordering::Relaxed),
        cold + overlap * retried,
        "{path:?}"
    );
    file.writeback(.., dev.writer::<Infallible>()).unwrap();
    assert!(file.dirty_pages(..).is_empty());
    path
}

#[test]
fn gup_source_mapping_the_same_range_takes_the_buffered_path() {
    within(|| {
        let (file, dev) = (file(8), Device::with((0..8).map(|i| (i, pattern(i)))));
        assert_eq!(
            write_from_self(&file, &dev, [0, 1], [0, 1]),
            WritePath::Buffered
        );
        assert_eq!(dev.read(0), stamped(pattern(0), 0xab));
        assert_eq!(dev.read(1), stamped(pattern(1), 0xab));
        assert_eq!(dev.read(2), pattern(2));
    });
}

#[test]
fn gup_source_overlapping_part_of_the_range_takes_the_buffered_path() {
    within(|| {
        let (file, dev) = (file(8), Device::with((0..8).map(|i| (i, pattern(i)))));
        assert_eq!(
            write_from_self(&file, &dev, [0, 1], [1, 2]),
            WritePath::Buffered
        );
        assert_eq!(dev.read(0), stamped(pattern(1), 0xab));
        assert_eq!(dev.read(1), stamped(pattern(2), 0xab));
        assert_eq!(dev.read(2), pattern(2));
        // And the other way round: pages 3..=4 from 2..=3.
        assert_eq!(
            write_from_self(&file, &dev, [3, 4], [2, 3]),
            WritePath::Buffered
        );
        assert_eq!(dev.read(3), stamped(pattern(2), 0xab));
        assert_eq!(dev.read(4), stamped(pattern(3), 0xab));
    });
}

#[test]
fn gup_source_elsewhere_in_the_file_goes_direct() {
    within(|| {
        let (file, dev) = (file(8), Device::with((0..8).map(|i| (i, pattern(i)))));
        let path = write_from_self(&file, &dev, [0, 1], [4, 5]);
        assert_eq!(path, WritePath::Direct { retries: 0 });
        assert_eq!(dev.read(0), stamped(pattern(4), 0xab));
        assert_eq!(dev.read(1), stamped(pattern(5), 0xab));
        assert_eq!(dev.read(4), pattern(4));
        // The source pages stay cached (they were only pinned), the target's are gone.
        assert!(file.get(4).is_some() && file.get(0).is_none());
    });
}

#[test]
fn gup_fault_on_a_page_of_its_own_direct_io_would_deadlock() {
    within(|| {
        let (file, dev) = (file(8), Device::with([]));
        let never = |_: u64, _: &Data| -> Result<(), Infallible> { unreachable!() };
        let io = file
            .direct_io(PS..3 * PS - 1, DirectIoKind::Write, never)
            .unwrap();
        for index in [1, 2] {
            let fault = file.fault(index, dev.reader()).map(drop);
            assert_eq!(
                fault,
                Err(MappingError::Lock(LockError::WouldDeadlock { index }))
            );
            let write = file.write(index, dev.reader(), |_| ());
            assert_eq!(
                write,
                Err(MappingError::Lock(LockError::WouldDeadlock { index }))
            );
        }
        // Pages outside the IO fault as usual; nothing was left locked by the refusals.
        // (Page 0 is below the held IO: lockdep would report the order, rightly.)
        rangelock::lockdep::unchecked(|| file.fault(0, dev.reader())).unwrap();
        file.fault(3, dev.reader()).unwrap();
        assert_locked(&file, 1, 1);
        drop(io);
        file.fault(1, dev.reader()).unwrap();
    });
}

#[test]
fn gup_cycle_of_three_files_never_deadlocks() {
    let n = iterations(1000) as u64;
    let paths = within(move || {
        let files: Arc<Vec<_>> = Arc::new((0..3).map(|_| file(2)).collect());
        let devs: Arc<Vec<_>> = Arc::new(
            (0..3)
                .map(|_| Device::with([(0, pattern(0)), (1, pattern(1))]))
                .collect(),
        );
        let start = Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let (files, devs) = (Arc::clone(&files), Arc::clone(&devs));
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    let (target, dev, src, src_dev) =
                        (&files[t], &devs[t], &files[(t + 1) % 3], &devs[(t + 1) % 3]);
                    let mut paths = [0; 3];
                    for it in 1..=n {
                        // Start together, so that the locks and pins of the cycle overlap.
                        start.wait();
                        let stamp = 1000 * t as u64 + it;
                        // The copied sectors are the pattern whatever the interleaving.
                        let check = |k: u64, d: Data| {
                            assert_eq!(d[..3], pattern(k)[..3], "file {t}, page {k}")
                        };
                        let mut buffer = MappedBuffer::new(&**src, 0..=1, src_dev.reader());
                        let path = target.direct_write_from(
                            0..2 * PS,
                            &mut buffer,
                            1,
                            dev.writer(),
                            |_, pinned| {
                                for (k, page) in (0..).zip(pinned) {
                                    let data = page.read(|d| *d);
                                    check(k, data);
                                    dev.write(k, stamped(data, stamp));
                                }
                                thread::sleep(Duration::from_micros(50)); // the IO takes a while
                                Ok(())
                            },
                            |target| {
                                for k in 0..2 {
                                    let data = src.read(k, src_dev.reader(), |d| *d)?;
                                    check(k, data);
                                    target.write(k, dev.reader(), |d| *d = stamped(data, stamp))?;
                                }
                                Ok(())
                            },
                        );
                        paths[match path.unwrap() {
                            WritePath::Direct { retries: 0 } => 0,
                            WritePath::Direct { .. } => 1,
                            WritePath::Buffered => 2,
                        }] += 1;
                    }
                    paths
                })
            })
            .collect();
        let paths: Vec<[usize; 3]> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        // Each file ends with the pattern and its own thread's last stamp, whichever path
        // the last write took (a buffered one is still dirty: write it back).
        for (t, (file, dev)) in files.iter().zip(devs.iter()).enumerate() {
            file.writeback(.., dev.writer::<Infallible>()).unwrap();
            for k in 0..2 {
                assert_eq!(
                    dev.read(k),
                    stamped(pattern(k), 1000 * t as u64 + n),
                    "file {t}"
                );
            }
        }
        paths
    });
    let total: usize = paths.iter().flatten().sum();
    let what = "writes per thread: direct at once, direct after a retry, buffered";
    assert_eq!(total as u64, 3 * n, "{what}: {paths:?}");
}

#[test]
fn sub_page_direct_writes_share_a_page_and_a_fault_waits_for_both() {
    within(|| {
        let (file, dev) = (file(4), Device::with([]));
        let held = Arc::new(Barrier::new(3));
        let (release_a, release_b) = (mpsc::channel::<()>(), mpsc::channel::<()>());
        // Writer `w` writes sector `2w` of page 0 (bytes 32w..32w + 16) and holds its IO.
        let writer = |w: u64, release: mpsc::Receiver<()>| {
            let (file, dev, held) = (Arc::clone(&file), Arc::clone(&dev), Arc::clone(&held));
            thread::spawn(move || {
                let never =
                    |_: u64, _: &Data| -> Result<(), Infallible> { unreachable!("nothing cached") };
                let bytes = 2 * w * SECTOR..(2 * w + 1) * SECTOR;
                let io = file.direct_io(bytes, DirectIoKind::Write, never).unwrap();
                dev.write_sector(0, 2 * w as usize, 0xa0 + w);
                held.wait();
                release.recv().unwrap();
                drop(io);
            })
        };
        let a = writer(0, release_a.1);
        let b = writer(1, release_b.1);
        held.wait();
        assert_locked(&file, 0, 2);
        let done = Arc::new(AtomicBool::new(false));
        let fault = {
            let (file, dev, done) = (Arc::clone(&file), Arc::clone(&dev), Arc::clone(&done));
            thread::spawn(move || {
                let data = file.fault(0, dev.reader()).unwrap().read(|d| *d);
                done.store(true, Ordering::SeqCst);
                data
            })
        };
        thread::sleep(SETTLE);
        assert!(
            !done.load(Ordering::SeqCst),
            "the fault got through two direct IOs"
        );
        release_a.0.send(()).unwrap();
        a.join().unwrap();
        assert_locked(&file, 0, 1);
        thread::sleep(SETTLE);
        assert!(
            !done.load(Ordering::SeqCst),
            "the fault got through a direct IO"
        );
        release_b.0.send(()).unwrap();
        b.join().unwrap();
        assert_eq!(fault.join().unwrap(), [0xa0, 0, 0xa1, 0]);
    });
}

#[test]
fn buffered_write_racing_a_direct_io_eviction_is_never_lost() {
    let n = iterations(1000) as u64;
    within(move || {
        let (file, dev) = (file(2), Device::with([]));
        for it in 1..=n {
            // Page 0 cached and dirty: sector 3 holds the iteration.
            file.write(0, dev.reader(), |d| d[3] = it).unwrap();
            let start = Barrier::new(2);
            thread::scope(|s| {
                s.spawn(|| {
                    start.wait();
                    file.write(0, dev.reader(), |d| d[1] = it).unwrap();
                });
                start.wait();
                // A direct write of sector 2: the eviction hands the dirty page over.
                let io = file
                    .direct_io(
                        2 * SECTOR..3 * SECTOR,
                        DirectIoKind::Write,
                        dev.writer::<Infallible>(),
                    )
                    .unwrap();
                dev.write_sector(0, 2, it + 1_000_000);
                drop(io);
            });
            file.writeback(.., dev.writer::<Infallible>()).unwrap();
            // The buffered write reached the device either through the flush (it landed
            // first) or through write-back (it landed after the direct IO, on a page
            // read back with the direct write in it).
            assert_eq!(dev.read(0)[1..], [it, it + 1_000_000, it], "iteration {it}");
        }
    });
}

#[test]
fn truncate_waits_for_a_fault_in_flight_and_evicts_its_page() {
    within(|| {
        let (file, dev) = (file(8), Device::with([(5, pattern(5))]));
        let (in_fill, release_fill) = (mpsc::channel(), mpsc::channel::<()>());
        let fault = {
            let (file, dev) = (Arc::clone(&file), Arc::clone(&dev));
            thread::spawn(move || {
                let page = file.fault(5, |i| {
                    in_fill.0.send(()).unwrap();
                    release_fill.1.recv().unwrap();
                    dev.reader()(i)
                });
                page.unwrap()
            })
        };
        in_fill.1.recv().unwrap();
        let (truncated, drop_edit) = (mpsc::channel(), mpsc::channel::<()>());
        let truncate = {
            let file = Arc::clone(&file);
            thread::spawn(move || {
                let edit = file.truncate(2 * PS).unwrap();
                truncated.0.send(edit.size()).unwrap();
                drop_edit.1.recv().unwrap();
                drop(edit);
            })
        };
        thread::sleep(SETTLE);
        assert!(
            truncated.1.try_recv().is_err(),
            "truncate did not wait for the fill"
        );
        release_fill.0.send(()).unwrap();
        let page = fault.join().unwrap();
        assert_eq!(truncated.1.recv().unwrap(), 2 * PS);
        // The fault completed first, and the truncate evicted its page.
        assert!(page.is_evicted() && file.get(5).is_none());
        assert_eq!(page.read(|d| *d), pattern(5));
        // While the truncate still holds its range, the size is already in place: a fault
        // past it fails at once instead of waiting; one below it is served.
        for index in [2, 5, 7] {
            let past = file.fault(index, dev.reader()).map(drop);
            assert_eq!(
                past,
                Err(MappingError::BeyondEof {
                    index,
                    size: 2 * PS
                })
            );
        }
        file.fault(1, dev.reader()).unwrap();
        drop_edit.0.send(()).unwrap();
        truncate.join().unwrap();
        let past = file.fault(2, dev.reader()).map(drop);
        assert_eq!(
            past,
            Err(MappingError::BeyondEof {
                index: 2,
                size: 2 * PS
            })
        );
    });
}

#[test]
fn truncate_racing_faults_leaves_no_page_past_the_end() {
    let n = iterations(300);
    within(move || {
        let (file, dev) = (file(8), Device::with([]));
        for it in 0..n {
            file.set_size(8 * PS);
            let cut = (it % 8) as u64; // the new size, in (whole) pages
            let start = Barrier::new(2);
            let faults: Vec<_> = thread::scope(|s| {
                let faults = s.spawn(|| {
                    start.wait();
                    let order = (0..8).map(|k| (k + it as u64) % 8);
                    order.map(|k| (k, file.fault(k, dev.reader()))).collect()
                });
                start.wait();
                let edit = file.truncate(cut * PS).unwrap();
                for index in cut..8 {
                    let past = file.fault(index, dev.reader()).map(drop);
                    assert_eq!(
                        past,
                        Err(MappingError::BeyondEof {
                            index,
                            size: cut * PS
                        })
                    );
                }
                drop(edit);
                faults.join().unwrap()
            });
            // A fault past the new end either failed (it came after) or came first and
            // its page was evicted; below the end every fault was served and stays cached.
            for (k, result) in faults {
                match result {
                    Ok(page) => assert_eq!(page.is_evicted(), k >= cut, "page {k}, cut {cut}"),
                    Err(e) => {
                        assert!(k >= cut, "page {k}, cut {cut}: {e:?}");
                        assert_eq!(
                            e,
                            MappingError::BeyondEof {
                                index: k,
                                size: cut * PS
                            }
                        );
                    }
                }
            }
            assert!(
                file.pages().iter(cut..).next().is_none(),
                "a page past the end"
            );
            assert_eq!(file.cached_pages(), cut as usize);
        }
    });
}

#[test]
fn sealed_hand_off_holds_back_a_second_direct_io_until_the_flush_is_done() {
    within(|| {
        let (file, dev) = (file(8), Device::with([]));
        file.write(0, dev.reader(), |d| d[0] = 7).unwrap();
        let flushed = Arc::new(AtomicBool::new(false));
        let (in_flush, end_flush) = (mpsc::channel(), mpsc::channel::<()>());
        let (a_started, release_a) = (mpsc::channel(), mpsc::channel::<()>());
        // A: a direct write of sector 1 over the dirty page; its flush blocks.
        let a = {
            let (file, dev, flushed) = (Arc::clone(&file), Arc::clone(&dev), Arc::clone(&flushed));
            thread::spawn(move || {
                let flush = |index, data: &Data| {
                    in_flush.0.send(()).unwrap();
                    end_flush.1.recv().unwrap();
                    dev.write(index, *data);
                    flushed.store(true, Ordering::SeqCst);
                    Ok::<_, Infallible>(())
                };
                let io = file
                    .direct_io(SECTOR..2 * SECTOR, DirectIoKind::Write, flush)
                    .unwrap();
                dev.write_sector(0, 1, 0xa);
                a_started.0.send(()).unwrap();
                release_a.1.recv().unwrap();
                drop(io);
            })
        };
        in_flush.1.recv().unwrap();
        // B: a direct write of sector 2 of the same page, while A is inside its flush.
        let (b_started, release_b) = (mpsc::channel(), mpsc::channel::<()>());
        let b = {
            let (file, dev, flushed) = (Arc::clone(&file), Arc::clone(&dev), Arc::clone(&flushed));
            thread::spawn(move || {
                let never = |_: u64, _: &Data| -> Result<(), Infallible> {
                    unreachable!("A took the page")
                };
                let io = file
                    .direct_io(2 * SECTOR..3 * SECTOR, DirectIoKind::Write, never)
                    .unwrap();
                // B may do its IO now: A's write-back must have reached the device.
                assert!(
                    flushed.load(Ordering::SeqCst),
                    "B got the page before A's flush"
                );
                dev.write_sector(0, 2, 0xb);
                b_started.0.send(()).unwrap();
                release_b.1.recv().unwrap();
                drop(io);
            })
        };
        // C: a write-back of the whole file. The page A took is in no tree, but the
        // write-back must not return before A's hand-off has reached the device.
        let c = {
            let (file, dev, flushed) = (Arc::clone(&file), Arc::clone(&dev), Arc::clone(&flushed));
            thread::spawn(move || {
                let written = file.writeback(.., dev.writer::<Infallible>()).unwrap();
                assert!(flushed.load(Ordering::SeqCst), "write-back returned first");
                written
            })
        };
        // A direct IO over a page that held nothing is not held back by A's flush.
        let never = |_: u64, _: &Data| -> Result<(), Infallible> { unreachable!() };
        drop(
            file.direct_io(5 * PS..5 * PS + SECTOR, DirectIoKind::Write, never)
                .unwrap(),
        );
        thread::sleep(SETTLE);
        assert!(
            b_started.1.try_recv().is_err(),
            "B returned while A was flushing"
        );
        assert!(!c.is_finished(), "write-back returned while A was flushing");
        assert!(!flushed.load(Ordering::SeqCst));
        end_flush.0.send(()).unwrap();
        assert_eq!(
            c.join().unwrap(),
            0,
            "A's flush wrote the page, not the write-back"
        );
        a_started.1.recv().unwrap();
        b_started.1.recv().unwrap();
        assert_locked(&file, 0, 2);
        release_a.0.send(()).unwrap();
        release_b.0.send(()).unwrap();
        a.join().unwrap();
        b.join().unwrap();
        // The flushed page, then both direct writes on top of it.
        assert_eq!(dev.read(0), [7, 0xa, 0xb, 0]);
        assert_eq!(
            file.fault(0, dev.reader()).unwrap().read(|d| *d),
            [7, 0xa, 0xb, 0]
        );
        assert!(file.dirty_pages(..).is_empty());
    });
}

/// A direct IO whose `flush` fails puts every evicted page back with its DIRTY mark
/// rebuilt from its flag, including a page after the failing one that a buffered write
/// dirtied while it was out of the tree (the writer had found the page before the
/// eviction and got its page lock after; its own `set_mark` was refused by the lock
/// entry). Without that, `dirty_pages` and `writeback` would never see the page.
/// (Fails against the `undo_eviction` of commit 78cca8b and before, which re-synced the
/// marks of the pages up to the failing one only.)
#[test]
fn failed_flush_restores_a_page_dirtied_meanwhile_with_its_mark() {
    within(|| {
        let (file, dev) = (file(4), Device::with([]));
        file.write(0, dev.reader(), |d| d[0] = 1).unwrap(); // dirty: handed to flush
        let page1 = file.fault(1, dev.reader()).unwrap(); // clean, after it in the range
        let held = page1.lock(); // the writer below will find page 1, then wait here
        let writer = {
            let (file, dev) = (Arc::clone(&file), Arc::clone(&dev));
            thread::spawn(move || file.write(1, dev.reader(), |d| d[0] = 2).unwrap())
        };
        thread::sleep(SETTLE); // the writer has its page and waits for the page lock
        let (in_flush, fail_flush) = (mpsc::channel(), mpsc::channel::<()>());
        let dio = {
            let file = Arc::clone(&file);
            thread::spawn(move || {
                let flush = |_: u64, _: &Data| {
                    in_flush.0.send(()).unwrap();
                    fail_flush.1.recv().unwrap();
                    Err("device error")
                };
                let io = file.direct_io(0..2 * PS, DirectIoKind::Write, flush);
                assert!(matches!(io, Err(MappingError::Io("device error"))));
            })
        };
        in_flush.1.recv().unwrap(); // pages 0 and 1 are out of the tree
        drop(held);
        writer.join().unwrap(); // the write lands on page 1, its mark is refused
        fail_flush.0.send(()).unwrap();
        dio.join().unwrap();
        let page1 = file.get(1).expect("page 1 was put back");
        assert!(page1.is_dirty() && page1.read(|d| d[0]) == 2);
        assert_eq!(
            file.dirty_pages(..),
            vec![0, 1],
            "page 1 is dirty without its mark"
        );
    });
}
