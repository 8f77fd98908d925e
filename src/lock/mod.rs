//! Range locks made of lock entries in the tree.
//!
//! A range lock here is not a separate structure beside the index: it is a set of *lock
//! entries* stored in the tree's own slots (`xarray/lock_word.rs` encodes them: mode,
//! holder count, waiter and pending flags, in one word). A lookup that lands on a locked
//! index sees the lock entry and can wait for that index alone; an index nobody locked is
//! untouched.
//!
//! # The protocol in one page
//!
//! * **Acquire** ([`XArray::lock_range`](crate::XArray::lock_range)): walk the range in
//!   ascending order (`claim.rs`), locking one slot owner (a node, or the head) at a
//!   time; there is no tree-wide lock. Empty regions get fresh entries (a part of a slot,
//!   whatever its alignment, is one lock record: `xarray/record.rs`), items and values
//!   are evicted into the guard, compatible lock entries are split to the range and
//!   their holder count raised. At the first entry that may not be taken, set its
//!   `waiters` flag and queue a record in the wait table while its owner is locked, let
//!   go and sleep; what was claimed so far stays claimed. Ascending order and waiting
//!   only at the first conflict mean range lockers cannot deadlock each other.
//! * **Fast path** (`xarray/head.rs`): any range of an empty tree is one
//!   compare-exchange of the tree's head (`EMPTY` -> a one-holder entry over everything,
//!   or a lock record with the range's bounds), its release one compare-exchange back,
//!   and the whole range's downgrade one compare-exchange from Exclusive to Shared.
//!   Inside a node (`xarray/slot_fast.rs`): a range whose slots in the one node that
//!   covers it are all empty becomes one word per slot under that node's lock alone,
//!   and its release, while nobody else holds or waits on those entries and the node
//!   keeps another entry, empties them the same way.
//! * **Release** (dropping a [`RangeGuard`], also on unwind): decrement every entry of
//!   the range; an entry whose last holder leaves is removed, or kept *reserved* while
//!   acquirers are queued on it, and the front of its queue is woken. Entries without
//!   the `waiters` flag never touch the wait table.
//! * **Wait** (`src/wait_table.rs`, a layer below the tree): register, re-check, sleep, all ordered by the lock of the
//!   entry's owner: no lost wake-ups. Waking picks only the waiters that can now run.
//! * **Fairness** (`claim.rs`): a contended entry goes to the oldest conflicting waiter
//!   first; newcomers queue behind every waiter they conflict with. A thread that holds
//!   the index Shared may join Shared holders regardless (the recursive-read trap).
//! * **Deadlock detection** (`held.rs`): a thread about to sleep on an index that it
//!   holds itself in a conflicting mode gets [`LockError::WouldDeadlock`].
//! * **Async** (`future.rs`): [`XArray::lock_range_async`](crate::XArray::lock_range_async)
//!   is the same walk as a future; its record carries the task's waker and queues in
//!   the same order as threads. Wakers are woken after every internal lock is let go.
//!   Its guard is a [`DetachedGuard`]; tasks get no self-deadlock detection.
//!   [`XArray::load_wait_async`](crate::XArray::load_wait_async) and
//!   [`XArray::get_or_fill_async`](crate::XArray::get_or_fill_async) (`fill_async.rs`)
//!   are the lookup and the fault that wait the same way; the fault awaits the caller's
//!   fill future, and dropping it at any await point puts back what it replaced.
//!
//! # Several ranges
//!
//! A thread that holds one range and wants another of the same tree must take them in
//! ascending order of their first index; across trees, in one global order (say, by
//! inode number). Self-deadlock on one index is detected; cycles across threads that
//! break these orders are not.

mod acquire;
pub(crate) mod claim;
mod error;
mod evicted;
mod fill;
mod fill_async;
mod future;
mod guard;
pub(crate) mod held;
pub(crate) mod lock_cursor;
mod range_lock;
mod release;
#[cfg(test)]
mod tests;

pub use crate::lock_mode::LockMode;
pub use crate::wait_table::WaitTable;
pub use error::{FillError, LockError, PublishError};
pub use evicted::Evicted;
pub use fill_async::LoadWaitFuture;
pub use future::LockRangeFuture;
pub use guard::{DetachedGuard, RangeGuard};
pub use range_lock::{RangeLock, RangeLockGuard};
