//! Integration tests of the tree layer (`XArray`, `src/xarray/`), one module per topic:
//!
//! - `smoke`: the first things a user does with the API;
//! - `conformance`: the behaviours Linux's `lib/test_xarray.c` checks, by topic (stores,
//!   marks, multi-index entries, iteration);
//! - `edges`: the edge indices, value limits, invalid ranges and the tree's height, for
//!   every fan-out;
//! - `model`: the quickcheck differential test against an interval-map model
//!   (`support/xarray_ops.rs`, shared with the fuzz target);
//! - `stress`: concurrent readers and writers (the long runs are `#[ignore]`d);
//! - `type_sizes`: the sizes of the public types.
//!
//! The memory accounting tests are a binary of their own, `tests/xarray_memory.rs` (they
//! install a counting global allocator and measure on quiet threads).

#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod edges;
mod model;
mod smoke;
mod stress;
mod type_sizes;
