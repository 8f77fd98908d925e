//! Tree identity: a number that names one tree for the life of the process.
//!
//! The lock layer keys its per-thread held list and its wait table by tree. An address
//! would be reused: a tree dropped while a guard of it was forgotten (`mem::forget` is
//! safe) would leave that guard's record behind, and a new tree allocated at the same
//! address would look held by the thread (a fresh, empty mapping refusing a truncate with
//! `WouldDeadlock`). Ids come from a process-wide counter and are never reused, so a
//! leaked guard leaks its own lock, as a forgotten `MutexGuard` does, and nothing else.
//!
//! A tree dropped while lock entries were still in it (only a forgotten guard leaves
//! one behind) is recorded in a registry of *dead* ids, so that threads can drop the
//! records their forgotten guards left in their held lists (`lock/held.rs`). The registry
//! costs 8 bytes per such tree; trees dropped without lock entries (every tree whose
//! guards were all dropped) are never recorded.

use std::collections::BTreeSet;

use crate::sync::process::{AtomicU64, Mutex, MutexGuard, Ordering};

/// The next id to hand out (0 is never used).
static NEXT: AtomicU64 = AtomicU64::new(1);
/// Ids of dropped trees that still held lock entries.
static DEAD: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
/// Bumped each time an id joins [`DEAD`]: a thread whose held list has seen this
/// generation has nothing new to prune.
static DEAD_GENERATION: AtomicU64 = AtomicU64::new(0);

/// A fresh tree id, never handed out before in this process.
pub(crate) fn next() -> u64 {
    // Relaxed: only uniqueness matters, which the read-modify-write gives.
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Records that the tree `id` was dropped while lock entries of forgotten guards were
/// still in it.
pub(crate) fn dropped_with_locks(id: u64) {
    lock_dead().insert(id);
    DEAD_GENERATION.fetch_add(1, Ordering::Release);
}

/// How many trees have been recorded by [`dropped_with_locks`] so far.
#[inline]
pub(crate) fn dead_generation() -> u64 {
    DEAD_GENERATION.load(Ordering::Acquire)
}

/// Whether `id` names a tree that was dropped with lock entries in it; `f` is called with
/// a predicate over ids, under the registry's lock.
pub(crate) fn with_dead<R>(f: impl FnOnce(&dyn Fn(u64) -> bool) -> R) -> R {
    let dead = lock_dead();
    f(&|id| dead.contains(&id))
}

fn lock_dead() -> MutexGuard<'static, BTreeSet<u64>> {
    DEAD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_never_reused() {
        let a = super::next();
        let b = super::next();
        assert!(a != 0 && b > a);
    }
}
