//! A differential driver for [`XArray`]: a sequence of [`Op`]s runs against the tree and
//! against a sequential model side by side, and any divergence panics with the step, the
//! operation and both answers.
//!
//! One driver, three users: `tests/xarray/model.rs` (quickcheck), `tests/fuzz_replay/xarray_ops.rs` (the fuzz
//! corpus replayed on stable) and `fuzz/fuzz_targets/xarray_ops.rs` (cargo-fuzz), which
//! all call [`run`]. `run` drives a 4-slot tree (deep trees, splits and node freeing in a
//! few operations) and a 64-slot tree (the production shape) with the same operations.
//! What it shares with the range-lock driver (`tests/support/range_ops.rs`) lives in
//! `tests/support/arbitrary_indices.rs` (bounds, marks, shrinking) and
//! `tests/support/interval_model.rs` (the interval map, block rules, common checks).
//!
//! # The model
//!
//! The tree's meaning is a total map from `u64` index to (entry, marks). A range store
//! can cover `2^64` indices, so the model is an interval map: [`Model`] keeps disjoint
//! runs `start -> (last, entry, marks)` of non-empty indices (absent means empty). It
//! knows the one rule where the tree's representation shows: a range store writes one
//! entry per block of the canonical decomposition (greedy from the left, the largest
//! aligned block of `SLOTS^k` indices that fits, all of `u64` being one block), and each
//! block takes the union of the marks of the indices it replaces. The model computes
//! that decomposition itself ([`canonical_blocks`]), independently of `src/`.
//!
//! # What is compared
//!
//! Every operation's answer (old entries by identity: same `Arc`, same value or both
//! empty; errors exactly). After every operation: `check_invariants`, `len`,
//! `is_empty`, `any_marked`; and (every step for short sequences, every 8th step and the
//! last for long ones) the whole map, by meaning: `iter(..)` and `iter_marked(.., m)`
//! for each mark are flattened into maximal runs of identical entries and compared with
//! the model's runs. Spans are checked separately: each one an aligned block of
//! `SLOTS^k` indices (or all of `u64`), ascending, disjoint, intersecting the range.

#![allow(dead_code)]

// What the two drivers share is mounted once, beside this module: by
// `tests/support/mod.rs` in the test binaries, by the fuzz target's crate root in
// `fuzz/`. Its submodules reach it as `super::arbitrary_indices`, `super::interval_model`.
use super::{arbitrary_indices, interval_model};

#[path = "xarray_ops/driver.rs"]
mod driver;
#[path = "xarray_ops/input.rs"]
mod input;
#[path = "xarray_ops/model.rs"]
mod model;

pub use driver::run;
pub use input::*;
