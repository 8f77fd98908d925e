//! Direct writes whose source buffer maps a file (`gup_*`): the buffered path when the
//! source overlaps the range, the direct one otherwise, `WouldDeadlock` for a fault on
//! the caller's own direct IO, and a cycle of three files that never deadlocks.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use rangelock::mapping::{DirectIoKind, MappedBuffer, MappingError, WritePath};
use rangelock::LockError;

use super::assert_locked;
use crate::support::mapping_fixture::{file, iterations, pattern, within, Data, Device, File, PS};

/// The three copied sectors of `source` with `stamp` in the fourth.
fn stamped(source: Data, stamp: u64) -> Data {
    [source[0], source[1], source[2], stamp]
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
