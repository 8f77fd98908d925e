//! The page-cache waits as futures: `load_wait_async`, `get_or_fill_async` (a hit, a
//! fill, a fill queued behind a locked index, cancelled or panicking fills) and the
//! sealed acquisition of direct IO (`lock_range_sealed_async`).

use super::*;

/// Polls `future` once with a no-op waker.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// An entry as a comparable string (`Entry` has no `PartialEq`: items are `Arc`s).
fn shown(entry: &Entry<u64>) -> String {
    format!("{entry:?}")
}

#[test]
fn the_fill_futures_are_send() {
    let xa: XArray<u64> = XArray::new();
    assert_send(&xa.load_wait_async(3));
    assert_send(&xa.get_or_fill_async(3, async { Ok::<_, ()>(Arc::new(3)) }));
}

/// On an index that is not locked, `load_wait_async` is `load_wait`: an item, a value,
/// nothing, at the edges of the index space.
#[test]
fn load_wait_async_sees_what_load_wait_sees() {
    let xa: XArray<u64> = XArray::new();
    xa.store(0, Arc::new(7)).unwrap();
    xa.store_value(64, 9).unwrap();
    xa.store(u64::MAX, Arc::new(1)).unwrap();
    for i in [0, 63, 64, 4095, 4096, 1 << 32, u64::MAX - 1, u64::MAX] {
        let blocking = xa.load_wait(i).unwrap();
        let future = futures_block_on(xa.load_wait_async(i)).unwrap();
        assert_eq!(shown(&blocking), shown(&future), "index {i}");
    }
}

/// A locked index is waited for alone: the indices beside it resolve at once, and the
/// waiter sees what the holder left (the item it published, or nothing).
#[test]
fn load_wait_async_waits_on_its_index_alone() {
    let xa: XArray<u64> = XArray::new();
    // An item elsewhere (no head fast path); the locks in ascending order (lockdep).
    xa.store(100, Arc::new(100)).unwrap();
    let around = xa.lock_range(0..5, LockMode::Exclusive).unwrap();
    let fill = xa.lock_range(5..=5, LockMode::Exclusive).unwrap();
    let mut waiting = Box::pin(xa.load_wait_async(5));
    assert!(poll_once(&mut waiting).is_pending());
    for i in [6, 7, 64, 100] {
        let mut beside = Box::pin(xa.load_wait_async(i));
        assert!(poll_once(&mut beside).is_ready(), "index {i}");
    }
    drop(around); // another index's release: still waiting
    assert!(poll_once(&mut waiting).is_pending());
    fill.publish(Arc::new(55)).unwrap();
    match poll_once(&mut waiting) {
        Poll::Ready(Ok(Entry::Item(item))) => assert_eq!(*item, 55),
        other => panic!("{other:?}"),
    }
    // Released without a publish: the index is empty.
    let lock = xa.lock_range(5..=5, LockMode::Exclusive).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| {
            tx.send(()).unwrap();
            futures_block_on(xa.load_wait_async(5)).unwrap()
        });
        rx.recv().unwrap();
        thread::sleep(Duration::from_millis(10));
        drop(lock);
    });
    assert!(xa.get(5).is_empty());
    xa.check_invariants().unwrap();
}

/// A dropped `load_wait_async` leaves the queue: the release finds no record.
#[test]
fn a_dropped_load_wait_leaves_the_queue() {
    let table = Arc::new(WaitTable::new(1));
    let xa: XArray<u64> = XArray::new().with_wait_table(table.clone());
    xa.store(100, Arc::new(100)).unwrap();
    let lock = xa.lock_range(5..=9, LockMode::Shared).unwrap();
    let mut waiting = Box::pin(xa.load_wait_async(7));
    assert!(poll_once(&mut waiting).is_pending());
    assert_eq!(table.dump().len(), 1);
    drop(waiting);
    assert!(table.dump().is_empty());
    drop(lock);
    xa.check_invariants().unwrap();
}

/// `get_or_fill_async` returns what `get_or_fill` returns, index for index: a hit
/// without running the fill, a fill of an empty index and of a value (shadow) entry, a
/// failing fill that puts the value back with its marks.
#[test]
fn get_or_fill_async_matches_get_or_fill() {
    let blocking: XArray<u64> = XArray::new();
    let tasks: XArray<u64> = XArray::new();
    for xa in [&blocking, &tasks] {
        xa.store(0, Arc::new(1000)).unwrap();
        xa.store_value(64, 9).unwrap();
        xa.set_mark(64, Mark::M0);
        xa.store_value(4096, 10).unwrap();
    }
    for i in [0, 63, 64, 4095, 4096, 1 << 32, u64::MAX] {
        let fails = i == 4096 || i == 63;
        let b = blocking.get_or_fill(i, |i| if fails { Err(i) } else { Ok(Arc::new(i)) });
        let t = futures_block_on(tasks.get_or_fill_async(i, async move {
            if fails {
                Err(i)
            } else {
                Ok(Arc::new(i))
            }
        }));
        assert_eq!(b.map(|item| *item), t.map(|item| *item), "index {i}");
        assert_eq!(shown(&blocking.get(i)), shown(&tasks.get(i)), "index {i}");
        assert_eq!(
            blocking.get_mark(i, Mark::M0),
            tasks.get_mark(i, Mark::M0),
            "index {i}"
        );
    }
    assert_eq!(*tasks.load(0).unwrap(), 1000); // the hit did not fill
    assert!(matches!(tasks.get(4096), Entry::Value(10))); // the failed fill put it back
    assert_eq!(
        tasks.get_or_fill_async(0, async { Err(()) }).now(),
        Some(1000)
    );
    tasks.check_invariants().unwrap();
    let all = tasks.try_lock_range(.., LockMode::Exclusive).unwrap();
    assert_eq!(all.evicted().len(), 6);
}

/// `Future::now`: the output of a future that resolves on its first poll.
trait Now: Future + Sized {
    fn now(self) -> Option<u64>;
}

impl<F: Future<Output = Result<Arc<u64>, rangelock::FillError<()>>>> Now for F {
    fn now(self) -> Option<u64> {
        match poll_once(&mut Box::pin(self)) {
            Poll::Ready(Ok(item)) => Some(*item),
            _ => None,
        }
    }
}

/// A fill queued behind a locked index waits for that index alone, then takes the
/// published item without running its own fill; a fill of the index beside it runs
/// meanwhile.
#[test]
fn get_or_fill_async_waits_for_its_index_alone() {
    let xa: XArray<u64> = XArray::new();
    xa.store(100, Arc::new(100)).unwrap();
    let lock = xa.lock_range(5..=5, LockMode::Exclusive).unwrap();
    let ran = AtomicBool::new(false);
    let mut queued = Box::pin(xa.get_or_fill_async(5, async {
        ran.store(true, Ordering::SeqCst);
        Ok::<_, ()>(Arc::new(0))
    }));
    assert!(poll_once(&mut queued).is_pending());
    let beside = xa.get_or_fill_async(6, async { Ok(Arc::new(6)) }).now();
    assert_eq!(beside, Some(6));
    assert!(poll_once(&mut queued).is_pending());
    lock.publish(Arc::new(5)).unwrap();
    match poll_once(&mut queued) {
        Poll::Ready(Ok(item)) => assert_eq!(*item, 5),
        other => panic!("{other:?}"),
    }
    assert!(!ran.load(Ordering::SeqCst), "the fill ran on a hit");
    xa.check_invariants().unwrap();
}

/// Cancelled while its fill is pending, the fault releases the index and puts back the
/// value (with its marks) it was about to replace; a fault queued behind it then fills
/// the index itself. Cancelled while queued, it leaves the queue and the tree as found.
#[test]
fn a_cancelled_fill_puts_back_what_it_replaced() {
    let xa: XArray<u64> = XArray::new();
    xa.store_value(7, 70).unwrap();
    xa.set_mark(7, Mark::M1);
    let (tx, rx) = tokio::sync::oneshot::channel::<Arc<u64>>();
    let mut filling = Box::pin(xa.get_or_fill_async(7, async {
        rx.await.map_err(|_| "the device read was cancelled")
    }));
    assert!(poll_once(&mut filling).is_pending());
    assert!(matches!(xa.get(7), Entry::Locked { holders: 1, .. }));
    let mut behind = Box::pin(xa.get_or_fill_async(7, async { Ok::<_, &str>(Arc::new(77)) }));
    assert!(poll_once(&mut behind).is_pending());
    let mut cancelled_in_queue =
        Box::pin(xa.get_or_fill_async(7, async { Ok::<_, ()>(Arc::new(0)) }));
    assert!(poll_once(&mut cancelled_in_queue).is_pending());
    drop(cancelled_in_queue);
    drop(filling);
    drop(tx);
    // Put back, marks included, before the fault behind it filled the index.
    let (value, marked) = (xa.get(7), xa.get_mark(7, Mark::M1));
    assert!(matches!(value, Entry::Value(70)), "{value:?}");
    assert!(marked);
    match poll_once(&mut behind) {
        Poll::Ready(Ok(item)) => assert_eq!(*item, 77),
        other => panic!("{other:?}"),
    }
    xa.check_invariants().unwrap();
}

/// A fill that panics unwinds through the future: the index is released and the value
/// put back, as the blocking path does.
#[test]
fn a_panicking_async_fill_puts_back_what_it_replaced() {
    let xa: XArray<u64> = XArray::new();
    xa.store_value(3, 30).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        futures_block_on(xa.get_or_fill_async(3, async {
            panic!("intentional panic in a fill (test)");
            #[allow(unreachable_code)]
            Ok::<_, ()>(Arc::new(0))
        }))
    }));
    assert!(caught.is_err());
    assert!(matches!(xa.get(3), Entry::Value(30)));
    xa.check_invariants().unwrap();
    assert_eq!(
        xa.get_or_fill_async(3, async { Ok(Arc::new(3)) }).now(),
        Some(3)
    );
}

/// Faults, lookups and range locks (in the upper half) from tasks, each raced against a
/// short timer (cancelled at whatever await point it reached): afterwards nothing is
/// left locked, every index holds its value or an item filled for it, and the tree's
/// invariants hold.
#[test]
fn fill_cancellation_at_random_points_leaves_the_tree_consistent() {
    const SPACE: u64 = 24;
    let xa: Arc<XArray<u64, 4>> = Arc::new(XArray::with_slots());
    // Values in the lower half, which the range locks (which evict) never reach: a
    // value missing there was lost by a fill.
    for i in (0..SPACE / 2).step_by(3) {
        xa.store_value(i, i).unwrap();
        xa.set_mark(i, Mark::M0);
    }
    let rounds = iterations(3000);
    let finished = runtime(2).block_on(async {
        let mut tasks = Vec::new();
        for t in 0..6u64 {
            let xa = xa.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(0x5eed ^ ((t + 1) * 0x9e37_79b9));
                let mut completed = 0usize;
                for _ in 0..rounds {
                    let i = rng.below(SPACE);
                    let timer = tokio::time::sleep(Duration::from_micros(rng.below(100)));
                    let fill_for = Duration::from_micros(rng.below(150));
                    match rng.below(4) {
                        0 | 1 => {
                            let fails = rng.below(4) == 0;
                            let fault = xa.get_or_fill_async(i, async move {
                                tokio::time::sleep(fill_for).await;
                                if fails {
                                    Err(i)
                                } else {
                                    Ok(Arc::new(i + 1000))
                                }
                            });
                            tokio::select! {
                                r = fault => {
                                    if let Ok(item) = r {
                                        assert_eq!(*item, i + 1000);
                                    }
                                    completed += 1;
                                }
                                _ = timer => {}
                            }
                        }
                        2 => tokio::select! {
                            r = xa.load_wait_async(i) => {
                                let entry = r.unwrap();
                                assert!(!matches!(entry, Entry::Locked { .. }));
                                completed += 1;
                            }
                            _ = timer => {}
                        },
                        _ => {
                            let first = SPACE / 2 + i / 2;
                            let last = (first + rng.below(4)).min(SPACE - 1);
                            let mode = if rng.below(2) == 0 {
                                LockMode::Exclusive
                            } else {
                                LockMode::Shared
                            };
                            tokio::select! {
                                g = xa.lock_range_async(first..=last, mode) => {
                                    let g = g.unwrap();
                                    tokio::time::sleep(fill_for).await;
                                    drop(g);
                                    completed += 1;
                                }
                                _ = timer => {}
                            }
                        }
                    }
                }
                completed
            }));
        }
        tokio::time::timeout(Duration::from_secs(120), async {
            let mut completed = 0;
            for t in tasks {
                completed += t.await.unwrap();
            }
            completed
        })
        .await
        .expect("cancellations left a lock behind (the tasks hang)")
    });
    assert!(finished > 0);
    xa.check_invariants().unwrap();
    for i in 0..SPACE {
        match xa.get(i) {
            Entry::Item(item) => assert_eq!(*item, i + 1000),
            Entry::Value(v) => {
                assert_eq!((v, i % 3, i < SPACE / 2), (i, 0, true));
                assert!(xa.get_mark(i, Mark::M0), "index {i} lost its mark");
            }
            Entry::Empty => assert!(i % 3 != 0 || i >= SPACE / 2, "index {i} lost its value"),
            locked => panic!("index {i} left {locked:?}"),
        }
    }
    drop(xa.try_lock_range(.., LockMode::Exclusive).unwrap());
}

/// `lock_range_sealed_async`: the evicted entries stay closed to a Shared task until the
/// guard unseals (indices that held nothing are shared at once); cancelled while
/// queued, a sealed acquisition puts back what it evicted.
#[test]
fn a_sealed_async_lock_opens_at_unseal() {
    let xa: XArray<u64> = XArray::new();
    let dirty = Arc::new(1);
    xa.store(1, dirty.clone()).unwrap();
    let mut io = futures_block_on(xa.lock_range_sealed_async(0..4, LockMode::Shared)).unwrap();
    assert!(io.is_sealed());
    let mut empty_index = Box::pin(xa.lock_range_async(0..1, LockMode::Shared));
    assert!(poll_once(&mut empty_index).is_ready());
    let mut joiner = Box::pin(xa.lock_range_async(1..2, LockMode::Shared));
    assert!(poll_once(&mut joiner).is_pending());
    let evicted = io.take_evicted();
    assert_eq!(evicted.len(), 1);
    assert!(poll_once(&mut joiner).is_pending());
    io.unseal();
    assert!(!io.is_sealed());
    match poll_once(&mut joiner) {
        Poll::Ready(Ok(guard)) => assert_eq!(guard.range(), 1..=1),
        other => panic!("{other:?}"),
    }
    drop((io, joiner, empty_index));
    assert!(xa.is_empty());

    // Queued behind a holder at index 3, with index 1 evicted: dropped, it puts it back.
    xa.store(1, dirty.clone()).unwrap();
    let holder = xa.try_lock_range(3..=3, LockMode::Exclusive).unwrap();
    let mut queued = Box::pin(xa.lock_range_sealed_async(0..8, LockMode::Shared));
    assert!(poll_once(&mut queued).is_pending());
    assert!(matches!(xa.get(1), Entry::Locked { .. }));
    drop(queued);
    drop(holder);
    assert!(matches!(xa.get(1), Entry::Item(item) if Arc::ptr_eq(&item, &dirty)));
    xa.check_invariants().unwrap();
}
