//! Dev-only helpers shared by the tests, benches and examples of `rangelock` and of
//! `rangelock-compare` (a dev-dependency of both; never published):
//!
//! | module | what | used by |
//! |---|---|---|
//! | [`counting_alloc`] | a per-thread counting `#[global_allocator]` | `tests/xarray_memory.rs`, `tests/lock_memory.rs`, `benches/lock_cost.rs`, `examples/quickstart.rs`, `compare/benches/range_lock.rs`, `compare/examples/mixed_io` |
//! | [`executor`] | `block_on`: poll with a no-op waker until ready; `park_on`: park between polls, woken by the waker | `benches/lock_async.rs`, `tests/mapping/`, `tests/lock/async_acquire/` |
//! | [`bench`](mod@bench) | the benches' shared criterion settings | `benches/`, `compare/benches/range_lock.rs` |
//! | [`threads`] | run a closure on n threads released together; the disjoint-lockers workload | `benches/lookup.rs`, `benches/lock_cost.rs`, `compare/benches/range_lock.rs` |
//!
//! The test-only models, op decoders and harnesses stay in `tests/support/` (mounted by
//! the test binaries and the fuzz targets), since they are written against the crate's
//! internals-facing test API and are not needed by benches or examples.
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]

pub mod bench;
pub mod counting_alloc;
pub mod executor;
pub mod threads;
