//! Races over cached pages: sub-page direct writes sharing a page, a buffered write
//! racing a direct IO's eviction, and truncate racing faults.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use rangelock::mapping::{DirectIoKind, MappingError};

use super::assert_locked;
use crate::support::mapping_fixture::{
    file, iterations, pattern, within, Data, Device, PS, SECTOR, SETTLE,
};

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
