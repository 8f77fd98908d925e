//! The loom models, one module per protocol, all in one binary that exists only under
//! `RUSTFLAGS="--cfg loom --cfg crossbeam_loom"` (`ci/loom.sh`; empty otherwise):
//!
//! - `xarray`: the tree's reader/writer races and epoch reclamation, with the negative
//!   control that must catch a reader that does not pin;
//! - `lock`: the range-lock protocol (wake-ups, the head fast path, holder counts,
//!   fairness, downgrade, fill against direct IO);
//! - `mapping`: the page-cache protocol (fault against direct write, buffered write
//!   against eviction, the sealed hand-off, truncate against fault);
//! - `fsync`: write-back against a failed hand-off (issue 11);
//! - `async_acquire`: waker registration against release, cancel against grant;
//! - `range_write`: a range store against the lock fast path on an empty tree;
//! - `mutations`: negative controls of the per-node write protocol and the lock records
//!   (each race passes as built and fails with one protection switched off);
//! - `slot_fast`: the lock fast paths inside a node (claims of empty slots, releases of
//!   one-holder entries) against each other, a queued waiter and an erase.
//!
//! The modules need different preemption bounds, so `ci/loom.sh` runs the binary once
//! per module with a test-name filter (`xarray::`, `lock::`, ...) and that module's
//! `LOOM_MAX_PREEMPTIONS`.
#![cfg(loom)]

#[path = "../support/mod.rs"]
mod support;

mod async_acquire;
mod fsync;
mod kept;
mod lock;
mod mapping;
mod mutations;
mod range_write;
mod slot_fast;
mod xarray;
