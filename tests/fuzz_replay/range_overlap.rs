//! Replays the `range_overlap` fuzz corpus and its regression inputs on stable, through
//! the same decoding (`Vec<RangeOp>::arbitrary_take_rest`, as `fuzz_target!` does) and
//! the same driver the fuzz target calls (the loop is `tests/support/replay.rs`). The
//! fuzzer itself is `cargo +nightly fuzz run range_overlap` in `fuzz/`.
#![cfg(not(loom))]

use crate::support::range_ops;
use crate::support::replay;

#[test]
// Miri's isolation forbids reading the folder; `tests/lock/model.rs` runs the same driver.
#[cfg_attr(miri, ignore)]
fn range_overlap_corpus_replays() {
    replay::replay::<range_ops::RangeOp>("range_overlap", range_ops::run);
}
