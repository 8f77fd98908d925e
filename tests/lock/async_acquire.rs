//! Asynchronous acquisition (`lock_range_async`, `RangeLock::lock_async`): mutual
//! exclusion under tokio's multi-threaded runtime, cancellation at random points, the
//! one queue that blocking and async waiters share, a grant to a dropped future handed
//! on, wakers woken outside every internal lock, and a minimal hand-written executor.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use rangelock::{Entry, LockMode, Mark, RangeLock, WaitTable, XArray};

/// A small xorshift generator: reproducible random ranges without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .unwrap()
}

fn iterations(n: usize) -> usize {
    if cfg!(miri) {
        n / 50 + 1
    } else {
        n
    }
}

/// One counter per index: -1 while held Exclusive, the number of Shared holders
/// otherwise. Entering checks that nobody holds the index in a conflicting mode.
struct Oracle(Vec<AtomicI64>);

impl Oracle {
    fn new(len: usize) -> Self {
        Oracle((0..len).map(|_| AtomicI64::new(0)).collect())
    }

    fn enter(&self, first: u64, last: u64, mode: LockMode) {
        for i in first..=last {
            let c = &self.0[i as usize];
            match mode {
                LockMode::Exclusive => {
                    let was = c.swap(-1, Ordering::SeqCst);
                    assert_eq!(was, 0, "index {i} taken Exclusive while held ({was})");
                }
                LockMode::Shared => {
                    let was = c.fetch_add(1, Ordering::SeqCst);
                    assert!(was >= 0, "index {i} taken Shared while held Exclusive");
                }
            }
        }
    }

    fn leave(&self, first: u64, last: u64, mode: LockMode) {
        for i in first..=last {
            let c = &self.0[i as usize];
            match mode {
                LockMode::Exclusive => assert_eq!(c.swap(0, Ordering::SeqCst), -1),
                LockMode::Shared => assert!(c.fetch_sub(1, Ordering::SeqCst) > 0),
            }
        }
    }
}

fn assert_send<S: Send>(_: &S) {}

#[test]
fn the_future_and_its_guard_are_send() {
    let xa: XArray<u64> = XArray::new();
    let future = xa.lock_range_async(0..4, LockMode::Shared);
    assert_send(&future);
    let guard = futures_block_on(future).unwrap();
    assert_send(&guard);
    let lock = RangeLock::new();
    let future = lock.lock_async(.., LockMode::Exclusive);
    assert_send(&future);
}

#[test]
fn tasks_over_overlapping_ranges_exclude_each_other() {
    const SPACE: u64 = 48;
    let xa: Arc<XArray<u64, 4>> = Arc::new(XArray::with_slots());
    let oracle = Arc::new(Oracle::new(SPACE as usize));
    let done = Arc::new(AtomicUsize::new(0));
    let tasks = iterations(200);
    let rounds = iterations(50);
    runtime(4).block_on(async {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (xa, oracle, done) = (xa.clone(), oracle.clone(), done.clone());
            handles.push(tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9 ^ ((t as u64 + 1) * 0x1234_5677));
                for _ in 0..rounds {
                    let first = rng.below(SPACE);
                    let last = (first + rng.below(8)).min(SPACE - 1);
                    let mode = if rng.below(3) == 0 {
                        LockMode::Exclusive
                    } else {
                        LockMode::Shared
                    };
                    let guard = xa.lock_range_async(first..=last, mode).await.unwrap();
                    oracle.enter(first, last, mode);
                    tokio::task::yield_now().await;
                    oracle.leave(first, last, mode);
                    drop(guard);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(done.load(Ordering::Relaxed), tasks);
    assert!(xa.is_empty());
    xa.check_invariants().unwrap();
}

/// Items at the even indices (which acquisitions evict and must put back when they are
/// cancelled); holders keep odd indices locked so that the cancelled futures queue.
fn cancellation_fixture(space: u64) -> (Arc<XArray<u64, 4>>, Vec<Arc<u64>>) {
    let xa: Arc<XArray<u64, 4>> = Arc::new(XArray::with_slots());
    let mut items = Vec::new();
    for i in (0..space).step_by(2) {
        let item = Arc::new(i);
        xa.store(i, item.clone()).unwrap();
        items.push(item);
    }
    (xa, items)
}

fn assert_put_back(xa: &XArray<u64, 4>, items: &[Arc<u64>]) {
    for item in items {
        match xa.get(**item) {
            Entry::Item(found) => assert!(Arc::ptr_eq(&found, item), "index {item}"),
            other => panic!("index {item}: {other:?}, not the item put back"),
        }
    }
    xa.check_invariants().unwrap();
    let all = xa.try_lock_range(.., LockMode::Exclusive).unwrap();
    assert_eq!(all.evicted().len(), items.len());
}

#[test]
fn a_dropped_future_puts_back_what_it_evicted() {
    let (xa, items) = cancellation_fixture(8);
    let blocker = xa.try_lock_range(5..=5, LockMode::Shared).unwrap();
    let mut future = Box::pin(xa.lock_range_async(0..8, LockMode::Exclusive));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    // The prefix before index 5 is claimed: its items are evicted into the future.
    assert!(matches!(xa.get(2), Entry::Locked { .. }));
    drop(future);
    assert!(matches!(xa.get(5), Entry::Locked { holders: 1, .. }));
    drop(blocker);
    assert_put_back(&xa, &items);
}

#[test]
fn cancellation_at_random_points_leaves_the_tree_as_found() {
    const SPACE: u64 = 32;
    let (xa, items) = cancellation_fixture(SPACE);
    // The last index stays locked until the end: every future below is cancelled, after
    // it queued at an odd index held by a holder task, or behind another future, or
    // here, with whatever prefix it had claimed (evicting items) at that moment.
    let blocker = xa.try_lock_range(SPACE - 1.., LockMode::Exclusive).unwrap();
    let rounds = iterations(2000);
    let cancelled = runtime(4).block_on(async {
        // A leaked claim would hang the holders: fail instead.
        tokio::time::timeout(Duration::from_secs(60), cancel_rounds(&xa, rounds))
            .await
            .expect("cancellations left a lock behind (the tasks hang)")
    });
    assert_eq!(cancelled, 6 * rounds);
    drop(blocker);
    assert_put_back(&xa, &items);
}

/// Two holder tasks and six cancelling tasks (see the test above); the number of
/// futures cancelled.
async fn cancel_rounds(xa: &Arc<XArray<u64, 4>>, rounds: usize) -> usize {
    const SPACE: u64 = 32;
    {
        let stop = Arc::new(AtomicBool::new(false));
        let mut holders = Vec::new();
        for h in 0..2u64 {
            let (xa, stop) = (xa.clone(), stop.clone());
            holders.push(tokio::spawn(async move {
                let mut rng = Rng(77 + h);
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.below(SPACE / 2 - 1) * 2 + 1;
                    let mode = if rng.below(2) == 0 {
                        LockMode::Exclusive
                    } else {
                        LockMode::Shared
                    };
                    let g = xa.lock_range_async(i..=i, mode).await.unwrap();
                    tokio::time::sleep(Duration::from_micros(rng.below(300))).await;
                    drop(g);
                }
            }));
        }
        let mut cancellers = Vec::new();
        for t in 0..6u64 {
            let xa = xa.clone();
            cancellers.push(tokio::spawn(async move {
                let mut rng = Rng(1000 + t);
                for round in 0..rounds {
                    let first = rng.below(SPACE);
                    let mode = if rng.below(2) == 0 {
                        LockMode::Exclusive
                    } else {
                        LockMode::Shared
                    };
                    let future = xa.lock_range_async(first.., mode);
                    if round % 2 == 0 {
                        // A timer: cancellation wherever the future happens to be.
                        tokio::select! {
                            _ = future => unreachable!("the last index is never free"),
                            _ = tokio::time::sleep(Duration::from_micros(rng.below(200))) => {}
                        }
                    } else {
                        // A chosen number of polls, then drop: every await point.
                        let mut future = pin!(future);
                        for _ in 0..rng.below(4) {
                            let poll =
                                std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx)))
                                    .await;
                            assert!(poll.is_pending(), "the last index is never free");
                            tokio::task::yield_now().await;
                        }
                    }
                }
                rounds
            }));
        }
        let mut cancelled = 0;
        for c in cancellers {
            cancelled += c.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for h in holders {
            h.await.unwrap();
        }
        cancelled
    }
}

/// A minimal executor: polls on this thread, parks it between polls, and the waker
/// unparks it (and counts its wakes).
struct Unpark {
    thread: thread::Thread,
    wakes: AtomicUsize,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn block_on_counting<F: Future>(future: F) -> (F::Output, usize) {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return (out, unpark.wakes.load(Ordering::SeqCst));
        }
        thread::park();
    }
}

fn futures_block_on<F: Future>(future: F) -> F::Output {
    block_on_counting(future).0
}

#[test]
fn a_minimal_executor_is_woken_by_the_release() {
    let lock = RangeLock::new();
    let held = lock.try_lock(0..100, LockMode::Exclusive).unwrap().detach();
    let (tx, rx) = mpsc::channel();
    let (range, wakes) = thread::scope(|s| {
        s.spawn(move || {
            rx.recv().unwrap();
            thread::sleep(Duration::from_millis(20));
            drop(held);
        });
        block_on_counting(async {
            let future = lock.lock_async(50..150, LockMode::Shared);
            tx.send(()).unwrap();
            future.await.map(|g| g.range())
        })
    });
    assert_eq!(range.unwrap(), 50..=149);
    // Parked until the release woke it (spurious unparks aside, at least once).
    assert!(wakes >= 1, "granted without a wake: {wakes}");
    assert!(lock.is_unlocked());
}

/// `Wake::Front` to a future that is dropped before it polls again: the reservation
/// passes to the thread queued behind it.
#[test]
fn a_grant_to_a_dropped_future_is_handed_on() {
    let table = Arc::new(WaitTable::new(1));
    let xa: Arc<XArray<u64>> = Arc::new(XArray::new().with_wait_table(table.clone()));
    xa.store(0, Arc::new(0)).unwrap(); // no head fast path: a real lock entry
    let holder = xa.try_lock_range(10..20, LockMode::Exclusive).unwrap();
    let mut future = Box::pin(xa.lock_range_async(10..20, LockMode::Exclusive));
    let woken = Arc::new(Unpark {
        thread: thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(woken.clone());
    assert!(future
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let (tx, rx) = mpsc::channel();
    let xa2 = xa.clone();
    let thread = thread::spawn(move || {
        let g = xa2.lock_range(10..20, LockMode::Exclusive).unwrap();
        tx.send(g.range()).unwrap();
    });
    // Let the thread queue behind the future.
    let start = Instant::now();
    while table.dump().len() < 2 && start.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(1));
    }
    drop(holder); // reserved for the future, the front of the queue: its waker runs
    assert_eq!(woken.wakes.load(Ordering::SeqCst), 1);
    assert!(rx.try_recv().is_err(), "the thread jumped the queue");
    drop(future); // handed on
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 10..=19);
    thread.join().unwrap();
    xa.check_invariants().unwrap();
}

/// A waker that calls back into the tree it waits on. Woken under a bucket mutex or a
/// node's spin lock, its lookup would deadlock; the release must wake it after both.
struct Reentrant {
    xa: Arc<XArray<u64>>,
    calls: AtomicUsize,
}

impl Wake for Reentrant {
    fn wake(self: Arc<Self>) {
        // Both visit the entry's owner; the try_lock also its wait-table bucket.
        let _ = self.xa.try_lock_range(10..20, LockMode::Exclusive);
        let _ = self.xa.get(15);
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn wakers_run_outside_every_internal_lock() {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let table = Arc::new(WaitTable::new(1));
        let xa: Arc<XArray<u64>> = Arc::new(XArray::new().with_wait_table(table));
        xa.store(0, Arc::new(0)).unwrap();
        let holder = xa.try_lock_range(10..20, LockMode::Exclusive).unwrap();
        let reentrant = Arc::new(Reentrant {
            xa: xa.clone(),
            calls: AtomicUsize::new(0),
        });
        let waker = Waker::from(reentrant.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = Box::pin(xa.lock_range_async(10..20, LockMode::Exclusive));
        assert!(future.as_mut().poll(&mut cx).is_pending());
        drop(holder);
        let calls = reentrant.calls.load(Ordering::SeqCst);
        let granted = future.as_mut().poll(&mut cx).is_ready();
        tx.send((calls, granted)).unwrap();
    });
    let (calls, granted) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a waker ran under an internal lock and deadlocked");
    assert_eq!(calls, 1);
    assert!(granted);
}

/// A thread that wants an entry that tasks keep taking gets it: tasks queue behind it.
#[test]
fn a_blocking_waiter_is_not_starved_by_tasks() {
    let xa: Arc<XArray<u64>> = Arc::new(XArray::new());
    xa.store(100, Arc::new(0)).unwrap(); // no head fast path
    let stop = Arc::new(AtomicBool::new(false));
    let rt = runtime(2);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (xa, stop) = (xa.clone(), stop.clone());
        tasks.push(rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let g = xa
                    .lock_range_async(0..8, LockMode::Exclusive)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                drop(g);
                n += 1;
            }
            n
        }));
    }
    let (tx, rx) = mpsc::channel();
    let xa2 = xa.clone();
    let rounds = iterations(200);
    thread::spawn(move || {
        for _ in 0..rounds {
            drop(xa2.lock_range(2..4, LockMode::Exclusive).unwrap());
        }
        tx.send(()).unwrap();
    });
    let finished = rx.recv_timeout(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let taken: u64 = rt.block_on(async {
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    finished.expect("the blocking waiter was starved");
    assert!(taken > 0);
    xa.check_invariants().unwrap();
}

/// A task that wants an entry that threads keep taking gets it: threads queue behind it.
#[test]
fn a_task_is_not_starved_by_blocking_waiters() {
    let xa: Arc<XArray<u64>> = Arc::new(XArray::new());
    xa.store(100, Arc::new(0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (xa, stop) = (xa.clone(), stop.clone());
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = xa.lock_range(0..8, LockMode::Exclusive).unwrap();
                    thread::yield_now();
                    drop(g);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let rounds = iterations(200);
    let finished = runtime(2).block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            for _ in 0..rounds {
                drop(
                    xa.lock_range_async(2..4, LockMode::Exclusive)
                        .await
                        .unwrap(),
                );
            }
        })
        .await
    });
    stop.store(true, Ordering::Relaxed);
    let taken: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    finished.expect("the task was starved");
    assert!(taken > 0);
    xa.check_invariants().unwrap();
}

// `load_wait_async` and `get_or_fill_async`: the blocking versions' behaviour, waiting
// on one index alone, and cancellation at each await point.

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
