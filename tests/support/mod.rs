//! The support tree of the integration tests: helpers, harnesses, models and drivers
//! that more than one test binary uses. Every binary mounts this one directory the same
//! way, from its `main.rs` (or its single file, for the binaries that must stay alone):
//!
//! ```ignore
//! #[path = "../support/mod.rs"]
//! mod support;
//! ```
//!
//! and its modules name what they use as `crate::support::<module>`. Each binary uses
//! only part of it, so dead code and unused re-exports are allowed here.
//!
//! Outside the test binaries, the fuzz targets (`fuzz/fuzz_targets/*.rs`) mount the two
//! differential drivers, `xarray_ops.rs` and `range_ops.rs`, and the comparison crate's
//! loom tests (`compare/tests/loom_*.rs`) mount `loom_harness.rs`, each file with
//! `#[path]`; a fuzz target mounts `arbitrary_indices.rs` and `interval_model.rs` beside
//! its driver too, since the drivers reach them as `super::` (here, they are mounted
//! once for all three users: `xarray_ops`, `range_ops`, `mapping_ops`).
//!
//! | module | what it holds | used by |
//! |---|---|---|
//! | `tree_checks` | the edge indices, invariant checks, `Seen` entries, span tiling, `scaled` | xarray, lock, memory tests |
//! | `quickcheck_harness` | random operation sequences for the differential models | `xarray::model`, `lock::model`, `mapping::model` |
//! | `xarray_ops`, `range_ops` | the differential drivers of the tree and of the range locks | the models, `fuzz_replay`, the fuzz targets |
//! | `arbitrary_indices`, `interval_model` | what the drivers share: bounds, marks, shrinking; the interval map and block rules | `xarray_ops`, `range_ops`, `mapping_ops` |
//! | `replay` | the fuzz-corpus replay on stable | `fuzz_replay` |
//! | `lock_harness` | generator, budget, watchdog, value signatures, waits | lock and tree stress, mapping oracle |
//! | `mapping_ops`, `page_cache_model` | the page-cache operations and their sequential model | `mapping::model` |
//! | `mapping_fixture`, `mapping_waits` | files, devices, watchdogs of the page-cache scenarios | `mapping::{scenarios, edits, writeback}` |
//! | `page_cache`, `faulty_mapping`, `task_mapping`, `oracle`, `oracle_checks` | the consistency oracle (blocking, with failures injected, as tasks) | `mapping::oracle` |
//! | `loom_harness` | the loom model runner (outcomes, preemption bound) | `loom`, compare's loom tests |
#![allow(dead_code, unused_imports)]

#[cfg(not(loom))]
pub mod arbitrary_indices;
#[cfg(not(loom))]
#[cfg(not(loom))]
pub mod faulty_mapping;
#[cfg(not(loom))]
pub mod interval_model;
#[cfg(not(loom))]
pub mod lock_harness;
#[cfg(loom)]
pub mod loom_harness;
#[cfg(not(loom))]
pub mod mapping_fixture;
#[cfg(not(loom))]
pub mod mapping_ops;
#[cfg(not(loom))]
pub mod mapping_waits;
#[cfg(not(loom))]
pub mod oracle;
#[cfg(not(loom))]
pub mod oracle_checks;
#[cfg(not(loom))]
pub mod page_cache;
#[cfg(not(loom))]
pub mod page_cache_model;
#[cfg(not(loom))]
pub mod quickcheck_harness;
#[cfg(not(loom))]
pub mod range_ops;
#[cfg(not(loom))]
pub mod replay;
#[cfg(not(loom))]
pub mod task_mapping;
#[cfg(not(loom))]
pub mod tree_checks;
#[cfg(not(loom))]
pub mod xarray_ops;
