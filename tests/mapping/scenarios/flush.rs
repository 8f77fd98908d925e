//! The direct-IO hand-off (`flush`): a sealed hand-off holds back a second direct IO
//! and a write-back until it is done, and a failed one puts back a page dirtied meanwhile
//! with its DIRTY mark.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use rangelock::mapping::{DirectIoKind, MappingError};

use super::assert_locked;
use crate::support::mapping_fixture::{file, within, Data, Device, PS, SECTOR, SETTLE};

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
