//! Replays the `xarray_ops` fuzz corpus and its regression inputs on stable, through the
//! same decoding (`Vec<Op>::arbitrary_take_rest`, as `fuzz_target!` does) and the same
//! driver the fuzz target calls (the loop is `tests/support/replay.rs`). The fuzzer
//! itself is `cargo +nightly fuzz run xarray_ops` in `fuzz/`.
#![cfg(not(loom))]

use crate::support::replay;
use crate::support::xarray_ops;

#[test]
// Miri's isolation forbids reading the folder; `tests/xarray/model.rs` runs the same driver there.
#[cfg_attr(miri, ignore)]
fn xarray_ops_corpus_replays() {
    replay::replay::<xarray_ops::Op>("xarray_ops", xarray_ops::run);
}
