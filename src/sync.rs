//! The one place that chooses between `std` and `loom` synchronisation primitives.
//!
//! Everything in the crate that synchronises threads imports it from here, never from
//! `std::sync` directly (`ci/lint.sh` enforces it), so a
//! build with `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"` runs every atomic, lock and
//! interior-mutable cell of the crate under loom's model checker. crossbeam-epoch follows
//! the same switch through its own `crossbeam_loom` cfg (see `ci/loom.sh`): both cfgs are
//! needed, or the epoch's atomics stay invisible to loom.
//!
//! [`UnsafeCell`] has loom's `with`/`with_mut` API on both sides, so loom checks each
//! access for data races (and the std build compiles them to plain pointer accesses).
//!
//! Items handed to the tree are always `std::sync::Arc` (it is the type users have), so
//! [`ItemArc`] is std's `Arc` in both builds.

pub(crate) use std::sync::Arc as ItemArc;

/// The OS thread's own `thread_local!`, even under loom: loom runs every thread of a
/// model on the OS thread that called `loom::model`, so a value kept here is shared by
/// all of them and by nothing else (the loom mutation switch, `src/mutation.rs`, needs
/// exactly that).
#[cfg(loom)]
pub(crate) use std::thread_local as os_thread_local;

/// OS threads, for the unit tests whose subject is a thread's own state (what its
/// thread-locals hold, what happens when it exits). Never used inside a loom model, whose
/// threads come from loom.
#[cfg(test)]
pub(crate) use std::thread as os_thread;

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic;
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread_local;
}

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
    pub(crate) use std::thread_local;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
    }

    /// `std::cell::UnsafeCell` with loom's closure-based access API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(#[allow(clippy::disallowed_types)] std::cell::UnsafeCell<T>);

    #[allow(dead_code)]
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with an exclusive raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

pub(crate) use imp::*;

/// Process-wide bookkeeping that is no part of any protocol loom checks (the counter that
/// names trees, the registry of dropped trees that still held a forgotten guard's lock):
/// always `std`'s, also under loom, where a static of loom's types cannot exist. Nothing
/// waits on them and no ordering between threads is derived from them.
pub(crate) mod process {
    pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
    #[cfg(feature = "lockdep")]
    pub(crate) use std::sync::LazyLock;
    pub(crate) use std::sync::{Mutex, MutexGuard};

    /// The current thread's name, for reports (`"<unnamed>"` if it has none).
    #[cfg(feature = "lockdep")]
    pub(crate) fn thread_name() -> String {
        std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_owned()
    }
}

pub(crate) use crossbeam_utils::CachePadded;

/// Waits on `condvar` (until `deadline`, if any), ignoring poisoning like [`lock`].
/// Returns the guard and whether the deadline has passed.
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<std::time::Instant>,
) -> (MutexGuard<'a, T>, bool) {
    match deadline {
        None => (
            condvar.wait(guard).unwrap_or_else(|p| p.into_inner()),
            false,
        ),
        Some(deadline) => {
            let now = std::time::Instant::now();
            if now >= deadline {
                return (guard, true);
            }
            let (guard, _) = condvar
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner());
            // Loom's condvar never times out; the deadline check makes std's do so.
            (guard, !cfg!(loom) && std::time::Instant::now() >= deadline)
        }
    }
}

/// Locks `mutex`, ignoring poisoning.
///
/// The tree and the wait table never run user code while holding one of their mutexes,
/// and every tree update leaves the tree valid after each single-word store, so a
/// poisoned lock there only means that some unrelated thread panicked. A page lock
/// (`mapping/page.rs`) does run the caller's callbacks; a page whose callback panicked
/// stays usable: a buffered write marks it dirty before its callback runs, a write-back
/// whose callback panicked leaves the page dirty, and an eviction whose callback
/// panicked puts the pages back.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A spin lock in one byte: bit 0 is the lock, the other bits belong to the owner of
/// the byte (a node keeps its `OBSOLETE` and `KEPT` flags there). Held only for a few dozen
/// instructions, never across user code, IO or a wait; a waiter spins briefly and then
/// yields its time slice (on a machine with fewer cores than threads, the holder may be
/// descheduled). Under loom every failed attempt yields, which is what loom needs to
/// explore a spin loop.
///
/// **Only the holder writes the byte**: other bits change only under the lock, and a
/// failed compare-exchange writes nothing. So letting go is a load and a `Release`
/// store of the same byte without the lock bit, not a read-modify-write (on x86 a
/// locked instruction, as dear as taking the lock). Whoever adds a bit that changes
/// without the lock must keep it in another word.
pub(crate) struct SpinLock<'a> {
    word: &'a atomic::AtomicU8,
    /// `false` for the guard of the loom mutation `NodeLockSkipped`
    /// ([`SpinLock::not_taken`]).
    #[cfg(loom)]
    taken: bool,
}

/// The lock bit of a [`SpinLock`] byte.
pub(crate) const SPIN_LOCKED: u8 = 1;

impl<'a> SpinLock<'a> {
    /// Locks `word` (waiting as long as it takes) and returns the bits it held besides
    /// the lock bit.
    #[inline]
    pub(crate) fn lock(word: &'a atomic::AtomicU8) -> (SpinLock<'a>, u8) {
        let mut current = word.load(atomic::Ordering::Relaxed);
        let mut spins = 0u32;
        loop {
            if current & SPIN_LOCKED == 0 {
                match word.compare_exchange_weak(
                    current,
                    current | SPIN_LOCKED,
                    atomic::Ordering::Acquire,
                    atomic::Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let guard = SpinLock {
                            word,
                            #[cfg(loom)]
                            taken: true,
                        };
                        return (guard, current);
                    }
                    Err(now) => current = now,
                }
                continue;
            }
            spin_wait(&mut spins);
            current = word.load(atomic::Ordering::Relaxed);
        }
    }

    /// A guard for a lock that was not taken: the mutation `NodeLockSkipped` of the loom
    /// negative controls (`src/mutation.rs`). Dropping it clears the lock bit, which
    /// nobody set unless a correct writer holds the lock: then the mutation breaks that
    /// writer too, as a missing lock would.
    #[cfg(loom)]
    pub(crate) fn not_taken(word: &'a atomic::AtomicU8) -> SpinLock<'a> {
        SpinLock { word, taken: false }
    }

    /// Keeps the word locked past this guard's life: the owner unlocks it later with
    /// [`spin_unlock`] (a cursor that holds a lock across calls).
    pub(crate) fn keep(self) {
        core::mem::forget(self);
    }
}

/// Unlocks a byte locked with [`SpinLock::lock`] and [`SpinLock::keep`]: the caller
/// holds the lock, so nobody else writes the byte between the load and the store (see
/// [`SpinLock`]).
#[inline]
pub(crate) fn spin_unlock(word: &atomic::AtomicU8) {
    let bits = word.load(atomic::Ordering::Relaxed);
    // (Not under loom, where the mutation `NodeLockSkipped` unlocks what it never took.)
    #[cfg(not(loom))]
    debug_assert!(
        bits & SPIN_LOCKED != 0,
        "unlocking a spin lock nobody holds"
    );
    word.store(bits & !SPIN_LOCKED, atomic::Ordering::Release);
}

impl Drop for SpinLock<'_> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(loom)]
        if !self.taken {
            // The mutation's guard holds nothing: clear the bit as an atomic
            // read-modify-write, which breaks a correct holder the way a missing lock
            // would, without the plain store's assumption that the caller holds it.
            self.word.fetch_and(!SPIN_LOCKED, atomic::Ordering::Release);
            return;
        }
        spin_unlock(self.word);
    }
}

/// One round of waiting in a spin loop: a CPU pause for the first rounds, then a yield.
#[inline]
pub(crate) fn spin_wait(spins: &mut u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        *spins += 1;
        if *spins < 64 {
            core::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::atomic::{AtomicU64, AtomicU8, Ordering};
    use super::{os_thread, spin_unlock, SpinLock, SPIN_LOCKED};

    /// Letting go is a load and a store of the byte: the bits its holder set under the
    /// lock (a node's obsolete and kept flags) survive it, and the next locker is handed them.
    #[test]
    fn unlocking_keeps_the_bits_set_under_the_lock() {
        let byte = AtomicU8::new(0);
        let (guard, bits) = SpinLock::lock(&byte);
        assert_eq!(bits, 0);
        // What `Node::make_obsolete` and `Node::mark_kept` do: the holder's load and store.
        byte.store(byte.load(Ordering::Relaxed) | 2, Ordering::Relaxed);
        drop(guard);
        assert_eq!(byte.load(Ordering::Relaxed), 2);
        let (guard, bits) = SpinLock::lock(&byte);
        assert_eq!(bits, 2);
        guard.keep();
        assert_eq!(byte.load(Ordering::Relaxed), 2 | SPIN_LOCKED);
        spin_unlock(&byte);
        assert_eq!(byte.load(Ordering::Relaxed), 2);
    }

    /// Mutual exclusion under contention: every holder adds one to a counter with a
    /// plain load and store, which loses increments as soon as two holders overlap.
    #[test]
    fn two_holders_never_overlap() {
        const THREADS: u64 = 4;
        const ROUNDS: u64 = if cfg!(miri) { 200 } else { 20_000 };
        let byte = AtomicU8::new(0);
        let counter = AtomicU64::new(0);
        os_thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        let (guard, _) = SpinLock::lock(&byte);
                        let n = counter.load(Ordering::Relaxed);
                        counter.store(n + 1, Ordering::Relaxed);
                        drop(guard);
                    }
                });
            }
        });
        assert_eq!(counter.load(Ordering::Relaxed), THREADS * ROUNDS);
        assert_eq!(byte.load(Ordering::Relaxed), 0);
    }
}
