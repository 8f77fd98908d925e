//! Range locks under concurrency: failure paths leave no trace.
//!
//! * **Panic safety**: a holder or a fill that panics (on another thread, or caught on
//!   its own) releases its range on unwinding and leaves the thread's held list, so
//!   waiters, watchers and later faults proceed and the tree ends empty.
//! * **Timeouts roll back**: `lock_range_timeout` that evicted entries before meeting a
//!   holder puts them all back, marks included, when it times out; while such an
//!   acquisition waits, the entries it evicted are `pending` and refuse joiners.
//! * **Deadlock detection**: a thread that would wait for itself gets `WouldDeadlock`
//!   (naming the index) in every entry point, and the failed call leaves no trace; a
//!   detached guard no longer counts as held by its thread; a recursive Shared
//!   acquisition passes a queued Exclusive request instead of waiting for itself.

#![cfg(not(loom))]

mod deadlock;
mod panics;
mod timeouts;
