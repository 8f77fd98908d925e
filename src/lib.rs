//! # rangelock
//!
//! An XArray-style concurrent radix tree whose slots hold pages (items), shadow entries
//! (values) and *lock entries*, so that range locks over a file's page index live in the
//! same tree as its pages.
//!
//! The tree, [`XArray`]:
//!
//! * all of `u64` as index space, 64 slots per node, height that follows the largest
//!   index in use;
//! * lock-free reads through crossbeam-epoch ([`XArray::load`], [`XArray::get`], a pinned
//!   [`ReadGuard`] that borrows items without touching reference counts, [`XArray::iter`],
//!   [`XArray::find`]);
//! * writes serialised on one short internal lock ([`XArray::store`],
//!   [`XArray::store_value`], [`XArray::store_range`], [`XArray::erase`],
//!   [`XArray::erase_range`], [`XArray::compare_exchange`], [`XArray::clear`]);
//! * multi-index entries: a value stored over `2^40` indices costs a handful of slots;
//! * three [`Mark`]s per entry, propagated up the tree ([`XArray::iter_marked`],
//!   O(1) [`XArray::any_marked`]).
//!
//! The range locks ([`lock`]): [`XArray::lock_range`] and friends claim a range in
//! [`LockMode::Shared`] or [`LockMode::Exclusive`], evicting cached items into the
//! [`RangeGuard`]; Shared holders of one index are counted in its entry; a fault
//! ([`XArray::get_or_fill`]) waits only if its own index is locked; waiting is fair and
//! self-deadlock is reported ([`LockError::WouldDeadlock`]). [`RangeLock`] is the same
//! lock for any `u64` space. Each has a runtime-agnostic future beside it
//! ([`XArray::lock_range_async`], [`XArray::lock_range_sealed_async`],
//! [`XArray::load_wait_async`], [`XArray::get_or_fill_async`] with a fill future,
//! [`RangeLock::lock_async`], [`mapping::Mapping::fault_async`]), queued in one order
//! with the blocking waiters and cancellation-safe at every await point.
//!
//! The page cache ([`mapping`]): [`mapping::Mapping`] is a file's page cache on these
//! lock entries: faults, readahead, buffered IO, write-back, direct IO and the truncate
//! family, consistent with one another without a lock over the whole file (its module
//! docs walk through one fault, one direct write and one truncate).
//!
//! ```
//! use rangelock::{Entry, XArray};
//! use std::sync::Arc;
//!
//! let xa: XArray<&str> = XArray::new();
//! assert!(matches!(xa.store(u64::MAX, Arc::new("last")), Ok(Entry::Empty)));
//! xa.store_range(0..1 << 40, 7).unwrap();
//! let spans: Vec<_> = xa.iter(..).map(|(span, _)| span).collect();
//! assert_eq!(spans.len(), 17); // 16 blocks of 2^36 indices, then the item at u64::MAX
//! assert_eq!(xa.erase(u64::MAX).unwrap().item().map(|s| **s), Some("last"));
//! ```
//!
//! ## Lock-order checking
//!
//! With the `lockdep` cargo feature (off by default, and then free), every tree, range
//! lock and mapping has a lock class, and the crate reports lock-order problems the way
//! the kernel's lockdep does: a cycle in the order of classes (ABBA between two files,
//! taken by two threads at different times), a range taken below one of the same tree,
//! two trees of one class nested without a declared level. See [`lockdep`] for the rules
//! and an example report.
//!
//! ## Layers
//!
//! `sync` (std or loom primitives) and `lock_mode` ([`LockMode`]) <- `wait_table` (where
//! lock waiters sleep, keyed by tree and entry: [`WaitTable`]) <- [`xarray`] (the tree,
//! including the lock entries' encoding; each tree names the wait table its waiters use)
//! <- [`lock`] (range locks made of lock entries: acquisition, waiting, fairness,
//! deadlock detection) <- [`mapping`] (a file's page cache). No module imports one above
//! it, apart from [`lockdep`]'s class that each tree carries (free without the feature).
//!
//! ## Verification
//!
//! Unit and conformance tests, quickcheck against interval models of the tree and of the
//! range locks, loom models of the reader/writer races and of the lock protocol
//! (`ci/loom.sh`), Miri with tree borrows (`ci/miri.sh`), stress tests with oracles, and
//! cargo-fuzz targets whose corpora replay under `cargo test`.

#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]
#![warn(missing_debug_implementations)]

#[cfg(not(target_pointer_width = "64"))]
compile_error!("rangelock needs 64-bit pointers: a slot word carries 63-bit values");

pub mod lock;
pub(crate) mod lock_mode;
pub mod lockdep;
pub mod mapping;
#[cfg(loom)]
#[doc(hidden)]
pub mod mutation;
pub(crate) mod sync;
pub(crate) mod tree_waits;
pub(crate) mod wait_table;
pub mod xarray;

pub use lock::{
    DetachedGuard, Evicted, FillError, LoadWaitFuture, LockError, LockMode, LockRangeFuture,
    PublishError, RangeGuard, RangeLock, RangeLockGuard, WaitTable,
};
pub use xarray::{
    CompareExchangeError, Entry, EntryRef, Iter, Mark, ReadGuard, RefIter, StoreError, XArray,
    XaError, MAX_VALUE,
};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
