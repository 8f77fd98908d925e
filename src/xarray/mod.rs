//! `XArray<T>`: a concurrent radix tree from `u64` index to entry, with lock-free reads,
//! multi-index entries and marks.
//!
//! # Shape
//!
//! The tree has `SLOTS` (default 64) slots per node; a node with *shift* `s` spends
//! index bits `s .. s + log2(SLOTS)`, so a leaf (shift 0) holds single indices and each
//! level up multiplies a slot's span by `SLOTS`. The root's shift is as small as the
//! largest index in use allows: a tree holding indices below 64 is one leaf; holding
//! `u64::MAX` it is 11 levels (64 slots) deep. The head word above the root covers all
//! of `u64`. See `src/xarray/entry.rs` for how one word encodes every slot state.
//!
//! # Concurrency
//!
//! * **Reads** (`walk.rs`) pin crossbeam-epoch and follow slot words with `Acquire` loads:
//!   no lock, no reference count (unless the caller asks for an `Arc`), one load per
//!   level.
//! * **Writes** (`cursor/`) take no tree-wide lock. A write cursor walks down without
//!   locks, then locks only the node that holds the slot it changes (a spin lock in the
//!   node, `node.rs`; the tree's `head_lock` for the head), checks that the node was not
//!   unlinked meanwhile (its *obsolete* bit) and re-reads the slot. Locks are short and
//!   never held across user code, IO or a wait; writers of slots in different nodes
//!   share no lock. Every slot change is a single-word store or compare-exchange: a new
//!   node is fully built before one `Release` store publishes it, and an unlinked node
//!   or item is *retired*: freed by the epoch (nodes go back to the tree's node slab)
//!   once no reader can hold it. The one change made with no lock at all is the lock
//!   layer's fast path on an empty head (`head.rs`); its fast path inside a node
//!   (`slot_fast.rs`) locks that node alone and needs no cursor.
//!
//! # Semantics
//!
//! The tree behaves as a total map `u64 -> (Entry, marks)`: [`XArray::store_range`]
//! gives every index of a range the value, [`XArray::erase`] empties one index even if it
//! was part of a multi-index entry, marks are per index. Multi-index entries are how that
//! map is stored compactly: a value over an aligned block of `SLOTS^k` indices is one word
//! in one slot (`span.rs` explains the decomposition). The one place the representation
//! shows is iteration, which reports each multi-index entry once with its span, and the
//! mark rule of range stores: a new multi-index entry carries the union of the marks of
//! the entries it replaced (as Linux's multi-order stores do).

mod check;
pub(crate) mod cursor;
pub(crate) mod entry;
mod error;
mod head;
pub(crate) mod identity;
mod iter;
pub(crate) mod kept;
pub(crate) mod lock_word;
#[cfg(loom)]
mod loom_hooks;
pub(crate) mod node;
pub(crate) mod node_slab;
mod range_write;
mod read_guard;
pub(crate) mod record;
mod slot_fast;
pub(crate) mod span;
pub(crate) mod store;
pub(crate) mod tree;
pub(crate) mod walk;

pub use crate::lock_mode::LockMode;
pub use entry::{Entry, EntryRef, Mark, MAX_VALUE};
pub use error::{CompareExchangeError, StoreError, XaError};
pub use iter::{Iter, RefIter};
pub use kept::MAX_KEPT_NODES;
pub use read_guard::ReadGuard;
pub use tree::XArray;
