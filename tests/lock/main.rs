//! Integration tests of the range-lock layer (lock entries in the tree, `RangeLock`,
//! `WaitTable`, `src/lock/`), one module per topic:
//!
//! - `model`: the quickcheck differential test against a sequential interval model
//!   (`support/range_ops.rs`, shared with the fuzz target);
//! - `safety`: failure paths leave no trace (panics, timeouts, deadlock detection);
//! - `fairness`: bounded overtaking, counted in grants;
//! - `races`: the plain writers against the lock fast path;
//! - `sealed`: sealed entries and their hand-off;
//! - `slot_fast`: what the lock fast paths inside a node leave behind, and where they
//!   hand over to the general path;
//! - `wait_table`: the shared wait table;
//! - `async_acquire`: acquisition from futures;
//! - `stress`: many threads locking overlapping ranges.
//!
//! Two lock tests are binaries of their own: `tests/lock_memory.rs` installs a counting
//! global allocator, and `tests/lock_rss.rs` measures the process's resident set, which
//! any other test running beside it would move.

#[path = "../support/mod.rs"]
mod support;

mod async_acquire;
mod fairness;
mod kept_nodes;
mod model;
mod races;
mod safety;
mod sealed;
mod slot_fast;
mod stress;
mod wait_table;
