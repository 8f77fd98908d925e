//! Random sequences of overlapping range locks (Shared and Exclusive, try / zero-timeout
//! / blocking, downgrade, publish, detach) and plain writes on `XArray<u64, 4>` and
//! `XArray<u64, 64>` against the interval model of `tests/support/range_ops.rs`; any
//! divergence panics.
//!
//! `cargo +nightly fuzz run range_overlap` (in `fuzz/`). The corpus and the minimised
//! crashes in `fuzz/regressions/range_overlap/` replay on stable through
//! `tests/fuzz_replay/range_overlap.rs`, which decodes them the same way.
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
#[path = "../../tests/support/range_ops.rs"]
mod range_ops;

fuzz_target!(|ops: Vec<range_ops::RangeOp>| {
    range_ops::run(&ops);
});
