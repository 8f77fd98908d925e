//! The fuzz corpora replayed on stable, one module per cargo-fuzz target (`fuzz/`):
//! `xarray_ops` (the tree against its interval-map model) and `range_overlap` (the range
//! locks against theirs). Each decodes every committed corpus and regression input as
//! `fuzz_target!` does and runs it through the driver the fuzz target calls
//! (`support/xarray_ops.rs`, `support/range_ops.rs`; the loop is `support/replay.rs`).

#[path = "../support/mod.rs"]
mod support;

mod range_overlap;
mod xarray_ops;
