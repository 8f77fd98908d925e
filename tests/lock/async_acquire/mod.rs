//! Asynchronous acquisition (`lock_range_async`, `RangeLock::lock_async`): mutual
//! exclusion under tokio's multi-threaded runtime, cancellation at random points, the
//! one queue that blocking and async waiters share, a grant to a dropped future handed
//! on, wakers woken outside every internal lock, and a minimal hand-written executor.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
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

/// The future holds the tree, the range, the mode and its state; the claim lives out
/// of line only while it waits (`lock/future.rs`). Executors move futures: 48 bytes,
/// where the claim inline made it 128.
#[test]
fn the_lock_future_is_small() {
    assert_eq!(
        std::mem::size_of::<rangelock::LockRangeFuture<'static, u64>>(),
        48
    );
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

// A minimal executor: polls on this thread, parks it between polls, and the waker
// unparks it (and counts its wakes).
use rangelock_testkit::executor::{
    park_on as futures_block_on, park_on_counting as block_on_counting, Unpark,
};

#[test]
fn a_minimal_executor_is_woken_by_the_release() {
    let lock = RangeLock::new();
    let held = lock.try_lock(0..100, LockMode::Exclusive).unwrap().detach();
    let (tx, rx) = mpsc::channel();
    let (range, wakes) = thread::scope(|s| {
        s.spawn(move || {
            rx.recv().unwrap();
            drop(held);
        });
        block_on_counting(async {
            let mut future = pin!(lock.lock_async(50..150, LockMode::Shared));
            // One poll by hand: the range is held, so the future queues (its waker
            // registered); only then does the holder release (no timing involved).
            let first = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
            assert!(first.is_pending(), "granted while the range was held");
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
    let woken = Unpark::for_current_thread();
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
    assert_eq!(woken.wakes(), 1);
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
#[cfg_attr(
    miri,
    ignore = "its liveness bound is 30 s of wall-clock time, which 5 rounds under Miri's \
              interpreter with 8 tasks on 2 workers overran (the sibling test below runs)"
)]
fn a_blocking_waiter_is_not_starved_by_tasks() {
    let xa: Arc<XArray<u64>> = Arc::new(XArray::new());
    xa.store(100, Arc::new(0)).unwrap(); // no head fast path
    let stop = Arc::new(AtomicBool::new(false));
    // Grants to the tasks so far: the blocking rounds start only once the tasks contend
    // (a round on an uncontended range takes well under a microsecond, so they could all
    // be over before the runtime has polled a task).
    let granted = Arc::new(AtomicU64::new(0));
    let rt = runtime(2);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (xa, stop, granted) = (xa.clone(), stop.clone(), granted.clone());
        tasks.push(rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let g = xa
                    .lock_range_async(0..8, LockMode::Exclusive)
                    .await
                    .unwrap();
                granted.fetch_add(1, Ordering::Relaxed);
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
        while granted.load(Ordering::Relaxed) == 0 {
            thread::yield_now();
        }
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
    // Grants to the threads so far: the task's rounds start only once they contend.
    let granted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (xa, stop, granted) = (xa.clone(), stop.clone(), granted.clone());
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = xa.lock_range(0..8, LockMode::Exclusive).unwrap();
                    granted.fetch_add(1, Ordering::Relaxed);
                    thread::yield_now();
                    drop(g);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let rounds = iterations(200);
    while granted.load(Ordering::Relaxed) == 0 {
        thread::yield_now();
    }
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

mod fill;
