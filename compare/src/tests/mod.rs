//! Unit tests of the baselines: each lock's own contract, each strategy's page-cache
//! contract, and a short oracle-checked workload per strategy (with the naive control
//! caught serving stale data).

use core::time::Duration;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::workload::{self, Latency, LatencyMode, Role, RoleSpec, Strategy, Workload, SCENARIOS};
use super::*;
use rangelock::lock::LockMode;
use rangelock::mapping::{DirectIoKind, Mapping, MappingError};

/// The interval lock is a correct range lock: overlapping Exclusive requests exclude
/// each other, disjoint ones and overlapping Shared ones do not, and a Shared request
/// queues behind an earlier waiting Exclusive one (FIFO).
#[test]
#[cfg_attr(miri, ignore = "2 x 2000 lock cycles with spinning waiters")]
fn interval_lock_excludes_shares_and_queues_fifo() {
    let lock = IntervalLock::new();

    // Disjoint Exclusive and overlapping Shared ranges are held together (one thread:
    // this would hang if they were refused).
    {
        let _a = lock.lock(0, 9, LockMode::Exclusive);
        let _b = lock.lock(10, 19, LockMode::Exclusive);
        let _c = lock.lock(20, 29, LockMode::Shared);
        let _d = lock.lock(25, 35, LockMode::Shared);
        let _e = lock.lock(u64::MAX, u64::MAX, LockMode::Exclusive);
    }

    // Mutual exclusion: two threads hammer overlapping Exclusive ranges; at most one may
    // be inside at a time.
    let inside = AtomicU32::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (lock, inside) = (&lock, &inside);
            s.spawn(move || {
                for i in 0..2000u64 {
                    let start = (i + t) % 8;
                    let _g = lock.lock(start, start + 8, LockMode::Exclusive);
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "overlap granted");
                    std::hint::spin_loop();
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
    });

    // FIFO: Shared held; an Exclusive waiter queues; a later Shared request that only
    // overlaps the Shared holder must queue behind the Exclusive waiter.
    let order = AtomicUsize::new(0);
    let (mut exclusive_at, mut shared_at) = (usize::MAX, usize::MAX);
    std::thread::scope(|s| {
        let held = lock.lock(0, 9, LockMode::Shared);
        let x = s.spawn(|| {
            let _g = lock.lock(0, 9, LockMode::Exclusive);
            order.fetch_add(1, Ordering::SeqCst)
        });
        while lock.waiting() < 1 {
            std::thread::yield_now();
        }
        let r = s.spawn(|| {
            let _g = lock.lock(5, 6, LockMode::Shared);
            order.fetch_add(1, Ordering::SeqCst)
        });
        while lock.waiting() < 2 {
            std::thread::yield_now();
        }
        drop(held);
        exclusive_at = x.join().expect("exclusive waiter");
        shared_at = r.join().expect("shared waiter");
    });
    assert_eq!(
        (exclusive_at, shared_at),
        (0, 1),
        "FIFO among conflicting requests"
    );

    assert!(lock.is_idle());
}

#[test]
fn two_state_lock_shares_a_state_and_excludes_the_other() {
    let lock = TwoStateLock::new();
    let a = lock.lock(TwoState::Add);
    let b = lock.try_lock(TwoState::Add).expect("add joins add");
    assert!(
        lock.try_lock(TwoState::Block).is_none(),
        "block waits for add"
    );
    assert_eq!(lock.holders(), 2);
    drop((a, b));
    let x = lock.lock(TwoState::Block);
    let y = lock.try_lock(TwoState::Block).expect("block joins block");
    assert!(
        lock.try_lock(TwoState::Add).is_none(),
        "add waits for block"
    );
    assert_eq!(lock.holders(), -2);
    drop((x, y));
    assert_eq!(lock.holders(), 0);
}

#[test]
#[cfg_attr(miri, ignore = "threads that sleep on a condvar")]
fn two_state_waiter_wakes_when_the_other_state_empties() {
    let lock = TwoStateLock::new();
    let inside = AtomicU32::new(0);
    std::thread::scope(|s| {
        let held = lock.lock(TwoState::Add);
        let waiter = s.spawn(|| {
            let _g = lock.lock(TwoState::Block);
            inside.fetch_add(1, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(inside.load(Ordering::SeqCst), 0, "block granted under add");
        drop(held);
        waiter.join().expect("waiter");
    });
    assert_eq!(inside.load(Ordering::SeqCst), 1);
    assert_eq!(lock.holders(), 0);
}

/// A device of `u64` pages that logs its writes.
#[derive(Default)]
struct LogDevice(Mutex<Vec<(u64, u64)>>);

impl Device<u64> for LogDevice {
    fn read_page(&self, index: u64) -> u64 {
        1000 + index
    }
    fn write_page(&self, index: u64, data: &u64) {
        self.0.lock().unwrap().push((index, *data));
    }
}

impl LogDevice {
    fn take(&self) -> Vec<(u64, u64)> {
        core::mem::take(&mut self.0.lock().unwrap())
    }
}

/// The page-cache contract every strategy keeps, single-threaded.
fn contract(cache: &dyn PageCache<u64>) {
    let dev = LogDevice::default();
    let name = cache.strategy();
    assert_eq!(cache.set_size(8 * 4096), 8 * 4096);
    // Faults fill from the device; past the end of file they are refused.
    let mut seen = 0;
    cache.fault(2, &dev, &mut |data| seen = *data).unwrap();
    assert_eq!(seen, 1002, "{name}");
    assert!(
        matches!(
            cache.fault(8, &dev, &mut |_| {}),
            Err(MappingError::BeyondEof { index: 8, .. })
        ),
        "{name}"
    );
    // Buffered writes dirty pages; write-back writes them once.
    for i in 0..4 {
        cache.write(i, &dev, &mut |d| *d = 7 + i).unwrap();
    }
    assert_eq!(cache.writeback(0..=1, &dev).unwrap(), 2, "{name}");
    assert_eq!(dev.take(), vec![(0, 7), (1, 8)], "{name}");
    assert_eq!(cache.writeback(0..=1, &dev).unwrap(), 0, "{name}");
    // Clean pages can be reclaimed, dirty ones cannot.
    assert!(cache.reclaim(0), "{name}");
    assert!(!cache.reclaim(2), "{name}: page 2 is dirty");
    assert!(!cache.reclaim(5), "{name}: page 5 is not cached");
    // A direct IO hands dirty pages over before its IO, and evicts the pages it covers.
    let mut io = 0;
    cache
        .direct_io(
            2 * 4096..3 * 4096 + 1,
            DirectIoKind::Write,
            &dev,
            &mut || io += 1,
        )
        .unwrap();
    assert_eq!((io, dev.take()), (1, vec![(2, 9), (3, 10)]), "{name}");
    let mut seen = 0;
    cache.read(3, &dev, &mut |d| seen = *d).unwrap();
    assert_eq!(seen, 1003, "{name}: page 3 read again from the device");
    // Readahead adds only missing pages within the file.
    assert_eq!(cache.readahead(4..=100, &dev).unwrap(), 4, "{name}");
    // A hole punch writes the partly covered dirty page and drops the rest.
    cache.write(4, &dev, &mut |d| *d = 44).unwrap();
    cache.write(5, &dev, &mut |d| *d = 55).unwrap();
    let mut edits = 0;
    cache
        .punch_hole(4 * 4096 + 100..6 * 4096, &dev, &mut || edits += 1)
        .unwrap();
    assert_eq!((edits, dev.take()), (1, vec![(4, 44)]), "{name}");
    // Truncate keeps the straddling dirty page's data, drops the rest, and refuses
    // faults past the new end.
    cache.write(6, &dev, &mut |d| *d = 66).unwrap();
    cache.write(7, &dev, &mut |d| *d = 77).unwrap();
    cache
        .truncate(6 * 4096 + 10, &dev, &mut || edits += 1)
        .unwrap();
    assert_eq!(
        (edits, dev.take(), cache.size()),
        (2, vec![(6, 66)], 6 * 4096 + 10),
        "{name}"
    );
    assert!(
        matches!(
            cache.fault(7, &dev, &mut |_| {}),
            Err(MappingError::BeyondEof { .. })
        ),
        "{name}"
    );
    // Bad input is refused, not a panic.
    assert!(
        matches!(
            cache.direct_io(10..10, DirectIoKind::Read, &dev, &mut || {}),
            Err(MappingError::InvalidRange { .. })
        ),
        "{name}"
    );
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 5..=4;
    assert!(
        matches!(
            cache.readahead(inverted, &dev),
            Err(MappingError::InvalidRange { .. })
        ),
        "{name}"
    );
    cache.check_quiescent().unwrap();
}

#[test]
fn every_strategy_keeps_the_page_cache_contract() {
    for cache in compared_caches() {
        contract(cache.as_ref());
    }
    contract(&UnlockedMapping::<u64>::new());
}

#[test]
fn strategies_are_named_and_found_by_name() {
    for s in Strategy::COMPARED.into_iter().chain([Strategy::Naive]) {
        assert_eq!(Strategy::from_name(s.name()), Some(s));
        assert_eq!(s.build().strategy(), s.name());
    }
    assert_eq!(Strategy::from_name("bogus"), None);
    assert_eq!(
        workload::Scenario::find("b").map(|s| s.name),
        Some("b-fairness")
    );
    assert!(workload::Scenario::find("z").is_none());
    let letters: Vec<char> = SCENARIOS
        .iter()
        .map(|s| s.name.chars().next().unwrap())
        .collect();
    assert_eq!(letters, vec!['a', 'b', 'c', 'd', 'e', 'f', 'g']);
}

/// An empty page cache of each compared strategy, over `u64` pages.
fn compared_caches() -> Vec<Box<dyn PageCache<u64>>> {
    vec![
        Box::new(Mapping::<u64>::new()),
        Box::new(RwLockMapping::<u64>::new()),
        Box::new(TwoStateMapping::<u64>::new()),
        Box::new(IntervalMapping::<u64>::new()),
        Box::new(DioCountMapping::<u64>::new()),
    ]
}

/// A device whose page writes wait at a gate until it opens.
#[derive(Default)]
struct GatedDevice {
    open: std::sync::atomic::AtomicBool,
    writing: AtomicUsize,
    written: Mutex<Vec<u64>>,
}

impl Device<u64> for GatedDevice {
    fn read_page(&self, _: u64) -> u64 {
        0
    }
    fn write_page(&self, index: u64, _: &u64) {
        self.writing.fetch_add(1, Ordering::SeqCst);
        while !self.open.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        self.written.lock().unwrap().push(index);
    }
}

/// An fsync must not return while another fsync's write of a page it found clean is
/// still on its way to the device (review: the baselines' write-back returned at once).
#[test]
#[cfg_attr(miri, ignore = "threads and a timed wait")]
fn an_fsync_waits_for_a_write_back_in_progress() {
    for cache in compared_caches() {
        let dev = GatedDevice::default();
        cache.set_size(4 * 4096);
        cache.write(1, &dev, &mut |d| *d = 1).unwrap();
        let second_done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| cache.writeback(0..=3, &dev).unwrap());
            while dev.writing.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            s.spawn(|| {
                cache.writeback(0..=3, &dev).unwrap();
                second_done.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(100));
            let returned_early = second_done.load(Ordering::SeqCst);
            dev.open.store(true, Ordering::SeqCst); // before asserting: the first must end
            assert!(
                !returned_early,
                "{}: an fsync returned before the page was on the device",
                cache.strategy()
            );
        });
        assert!(second_done.load(Ordering::SeqCst));
        assert_eq!(
            *dev.written.lock().unwrap(),
            vec![1],
            "{}",
            cache.strategy()
        );
    }
}

/// Readahead over pages that are all cached takes no lock: it returns at once while a
/// direct IO holds a page next to them (review: the baselines took their creation lock
/// over the whole window first and waited for the direct IO).
#[test]
#[cfg_attr(miri, ignore = "threads and a bounded wait")]
fn readahead_of_cached_pages_does_not_wait_for_direct_io() {
    use std::sync::atomic::AtomicBool;
    for cache in compared_caches() {
        let dev = LogDevice::default();
        cache.set_size(8 * 4096);
        for i in 0..8 {
            cache.fault(i, &dev, &mut |_| {}).unwrap();
        }
        let (in_io, open, done) = (
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
        );
        let mut added = None;
        std::thread::scope(|s| {
            s.spawn(|| {
                cache
                    .direct_io(5 * 4096..6 * 4096, DirectIoKind::Write, &dev, &mut || {
                        in_io.store(true, Ordering::SeqCst);
                        while !open.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                    })
                    .unwrap();
            });
            while !in_io.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let reader = s.spawn(|| {
                let n = cache.readahead(0..=4, &dev).unwrap();
                done.store(true, Ordering::SeqCst);
                n
            });
            let start = std::time::Instant::now();
            while !done.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(5) {
                std::thread::yield_now();
            }
            let returned = done.load(Ordering::SeqCst);
            open.store(true, Ordering::SeqCst); // before asserting: the IO must end
            added = Some(reader.join().unwrap());
            assert!(
                returned,
                "{}: readahead of cached pages waited for a direct IO",
                cache.strategy()
            );
        });
        assert_eq!(added, Some(0), "{}", cache.strategy());
    }
}

mod workloads;
