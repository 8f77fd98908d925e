//! Thread helpers shared by the benches (`benches/lookup.rs`, `benches/lock_cost.rs`,
//! and `compare/benches/range_lock.rs`). Each bench uses a part of it.

use std::sync::Barrier;
use std::time::Duration;

/// Runs `work(thread, iters)` on `threads` threads released together by a barrier, and
/// returns the slowest thread's own timing.
pub fn on_threads(
    threads: usize,
    iters: u64,
    work: impl Fn(usize, u64) -> Duration + Sync,
) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (start, work) = (&start, &work);
                scope.spawn(move || {
                    start.wait();
                    work(thread, iters)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("bench thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

/// Far enough apart that two threads' indices share no leaf of the tree.
pub const STRIDE: u64 = 1 << 20;

/// The thread counts of the disjoint-lockers benches, in ascending order.
pub const THREAD_COUNTS: [usize; 2] = [1, 2];

/// Where to store an item that keeps each thread's leaf in a tree for [`disjoint`]: slot
/// 63 of the leaf of `thread * STRIDE`, for every thread of the largest count. A tree
/// built so has the same shape at every count (a four-level walk to each leaf); with
/// only the leaves of the threads that run, one thread's tree would be its leaf alone,
/// and its shorter walks would make two threads look slower than they are.
pub fn leaf_pins() -> impl Iterator<Item = u64> {
    let most = THREAD_COUNTS[THREAD_COUNTS.len() - 1] as u64;
    (0..most).map(|thread| thread * STRIDE + 63)
}

/// Times `lock(i)` on `threads` threads at once, each over its own 63 indices
/// `thread * STRIDE + 0..63` in turn (`iters` calls each): the disjoint-lockers workload.
/// Returns the slowest thread's time.
pub fn disjoint(threads: usize, iters: u64, lock: impl Fn(u64) + Sync) -> Duration {
    on_threads(threads, iters, |thread, iters| {
        let base = thread as u64 * STRIDE;
        let start = std::time::Instant::now();
        for n in 0..iters {
            lock(base + n % 63);
        }
        start.elapsed()
    })
}
