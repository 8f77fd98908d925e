//! The one place in the comparison that chooses between `std` and `loom` primitives, for
//! the two parts that have loom models: the two-state lock (`two_state.rs`) and the
//! direct-IO count (`dio_count.rs`). Built with `RUSTFLAGS="--cfg loom"` (see
//! `ci/loom.sh`), the crate is only those two modules, their atomics, mutexes and
//! condition variables loom's. Everything else in the crate uses `std` directly: it is
//! the benchmark around the protocols, not a protocol.

#[cfg(loom)]
pub(crate) use loom::sync::atomic;
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic;
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning: the mutexes of the two protocols guard no data
/// (they order a sleeper's last check with the waker's notify).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits on `condvar`, ignoring poisoning like [`lock`].
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(|p| p.into_inner())
}
