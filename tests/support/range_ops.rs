//! A differential driver for the range locks of [`XArray`]: a sequence of [`RangeOp`]s
//! (acquisitions, releases, downgrades, publishes, detaches, and the plain writes that
//! must respect lock entries) runs against the tree and against a sequential model side
//! by side; any divergence panics with the step, the operation, both answers and the
//! live guards.
//!
//! One driver, three users: `tests/lock/model.rs` (quickcheck), `tests/fuzz_replay/range_overlap.rs`
//! (the fuzz corpus replayed on stable) and `fuzz/fuzz_targets/range_overlap.rs`
//! (cargo-fuzz), which all call [`run`]. `run` drives a 4-slot tree (lock entries split
//! and nodes appear in a few operations) and a 64-slot tree (the production shape).
//! What it shares with the `XArray` driver (`tests/support/xarray_ops.rs`) lives in
//! `tests/support/arbitrary_indices.rs` (bounds, marks, shrinking) and
//! `tests/support/interval_model.rs` (the interval map, block rules, common checks).
//!
//! # The model
//!
//! Everything runs on one thread, so nothing ever waits: an acquisition is granted iff
//! no live guard whose mode conflicts overlaps it. The model is an interval map of items
//! and values with their marks (the indices outside every locked range) plus the list of
//! live guards as plain intervals `(first, last, mode, attached)`. A granted acquisition
//! moves the map's contents of its range into the guard (the *evicted* entries); a
//! release leaves its range empty; a publish puts a fresh unmarked item at its index.
//!
//! A refused acquisition stops where an ascending claim stops: at the first index of the
//! range that a conflicting guard holds. It fails with `WouldDeadlock { index }` when an
//! attached guard (one in this thread's held list) holds that index in a conflicting
//! mode, else with `WouldBlock` (`try_lock_range`) or `TimedOut` (a zero timeout).
//!
//! # What is compared
//!
//! Every call's answer (entries by identity, errors exactly: `InvalidRange`, `Locked`
//! with the first locked index, the item handed back by a refused store or publish). A
//! granted guard's range and mode, and its evicted entries: ascending, disjoint aligned
//! blocks inside the range that flatten to the model's runs, marks included. `get`,
//! `load` and `get_mark` at the ends of every range acquired, refused or released, their
//! neighbours and a few indices inside (holder counts and mode of lock entries). After
//! every step: `check_invariants`, `len`, `is_empty`, `any_marked`; after every
//! refused acquisition (which must have changed nothing) and periodically: the whole
//! map by meaning through `iter(..)` (lock entries included) and `iter_marked`. At the
//! end every guard is dropped and the tree must hold exactly the model's items and
//! values (and no node if it holds nothing).

#![allow(dead_code)]

// What the two drivers share is mounted once, beside this module: by
// `tests/support/mod.rs` in the test binaries, by the fuzz target's crate root in
// `fuzz/`. Its submodules reach it as `super::arbitrary_indices`, `super::interval_model`.
use super::{arbitrary_indices, interval_model};

#[path = "range_ops/driver.rs"]
mod driver;
#[path = "range_ops/input.rs"]
mod input;
#[path = "range_ops/model.rs"]
mod model;

#[allow(unused_imports)]
pub use driver::{run, run_with};
pub use input::*;
