//! Random operation sequences on `XArray<u64, 4>` and `XArray<u64, 64>` against the
//! interval-map model of `tests/support/xarray_ops.rs`; any divergence panics.
//!
//! `cargo +nightly fuzz run xarray_ops` (in the repository root). The corpus and the
//! minimised crashes in `fuzz/regressions/xarray_ops/` replay on stable through
//! `tests/fuzz_replay/xarray_ops.rs`, which decodes them the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;

// What the driver shares with the other one, mounted beside it (it reaches them as
// `super::`); each driver uses only part of them.
#[allow(dead_code)]
#[path = "../../tests/support/arbitrary_indices.rs"]
mod arbitrary_indices;
#[allow(dead_code)]
#[path = "../../tests/support/interval_model.rs"]
mod interval_model;
#[path = "../../tests/support/xarray_ops.rs"]
mod xarray_ops;

fuzz_target!(|ops: Vec<xarray_ops::Op>| {
    xarray_ops::run(&ops);
});
