//! # rangelock-compare
//!
//! The comparison: the same page cache under whole-file locks, and the workload that
//! measures them against rangelock's [`Mapping`]. It is its own crate, built only on
//! rangelock's public API, so that the library ships no benchmark code and so that anyone
//! can benchmark their own page cache against whole-file locks: implement [`PageCache`]
//! and hand it to [`workload`].
//!
//! [`PageCache`] is the set of page-cache operations a file system drives: faults,
//! buffered reads and writes, readahead, write-back, reclaim, direct IO, truncate and
//! hole punch. Five types implement it over the same [`XArray`](rangelock::XArray) page index
//! and the same page (data behind a page lock, with the uptodate, dirty, writeback and
//! evicted flags), so that the only thing that differs between them is how direct IO and
//! size changes are kept from racing with page creation:
//!
//! | strategy | type | cache hit | page creation (fault miss, readahead) | direct IO, truncate, punch |
//! |---|---|---|---|---|
//! | `rangelock` | [`Mapping`] | lock-free | one-index lock entry | lock entries over its pages |
//! | `rwlock` | [`RwLockMapping`] | lock-free | whole-file rw lock, shared | whole-file rw lock, exclusive |
//! | `two-state` | [`TwoStateMapping`] | lock-free | [`TwoStateLock`], add state | [`TwoStateLock`], block state (edits also take the inode lock exclusive, direct IO shared) |
//! | `interval` | [`IntervalMapping`] | lock-free | [`IntervalLock`] Exclusive over the pages | [`IntervalLock`]: direct IO Shared, truncate and punch Exclusive, over their pages |
//! | `dio-count` | [`DioCountMapping`] | lock-free | waits for no direct IO in flight ([`dio_count`]), for the insertion only | counted in flight; over cached pages, through them (edits: inode lock exclusive) |
//! | `naive` | [`UnlockedMapping`] | lock-free | nothing | nothing (write back, invalidate, IO) |
//!
//! * **`rwlock`** is Linux's `invalidate_lock` (and `i_rwsem` for direct IO) taken the
//!   way a correct file system must: page creation shared, anything that must keep pages
//!   from appearing under it exclusive. `std::sync::RwLock` on Linux is a futex lock that
//!   queues new readers behind a waiting writer, as `rw_semaphore` does.
//! * **`two-state`** is bcachefs's pagecache lock: two states, each shared among its own
//!   holders and exclusive with the other; no fairness, as in bcachefs.
//! * **`interval`** is the classic range lock (Bueso's `range_lock`, Lustre, ZFS's
//!   `zfs_rangelock`): one mutex around an ordered set of granted ranges, FIFO among
//!   conflicting requests, used as a range-granular `invalidate_lock`. It has two modes,
//!   so page creation takes it Exclusive and direct IO Shared (direct IO then shares with
//!   direct IO, as lock entries let it; page creation conflicts with it); truncate and
//!   hole punch take it Exclusive. Cache hits take no lock. (ZFS takes its range lock for
//!   every read and write, hits included, because its cache is the ARC, not a page
//!   cache; doing that here measured the mutex more than the range conflict.)
//! * **`naive`** takes no lock at all: a direct IO writes back and invalidates its pages
//!   and does its IO, as page caches did before `invalidate_lock`. It is the negative
//!   control: the workload's oracle must catch it serving stale data.
//!
//! Write-back and reclaim take no file lock in any strategy (as in Linux): the page lock
//! and the evicted flag order them with everything else.
//!
//! The baselines are written to be fair to the locks they stand for: the same tree, the
//! same page lock, the same eviction and dirty hand-off, and the simplest correct use of
//! each lock. Where Linux would do more (a buffered write takes `i_rwsem` exclusive,
//! serialising every writer of the file), the baseline does less, so the comparison
//! flatters the baselines rather than the lock entries.
//!
//! [`workload`] drives any [`PageCache`] with threads by role against a simulated device
//! and checks every read against an oracle; `examples/mixed_io/` is its command line.
//!
//! Under `--cfg loom` the crate is only [`two_state`]'s lock and [`dio_count`]'s count
//! (their own `sync` shim swaps in loom's primitives): the rest uses `std` locks directly
//! and is not part of the protocols loom checks (`tests/loom_two_state.rs`,
//! `tests/loom_dio_count.rs`).
//!
//! [`Mapping`]: rangelock::mapping::Mapping

#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]
#![warn(missing_debug_implementations)]

pub mod dio_count;
mod sync;
pub mod two_state;

#[cfg(not(loom))]
mod dio_count_mapping;
#[cfg(not(loom))]
mod file_lock;
#[cfg(not(loom))]
mod interval_lock;
#[cfg(not(loom))]
mod locked_mapping;
#[cfg(not(loom))]
mod mapping_impl;
#[cfg(not(loom))]
mod page;
#[cfg(not(loom))]
mod page_cache;
#[cfg(not(loom))]
mod page_index;
#[cfg(not(loom))]
pub mod workload;

#[cfg(not(loom))]
pub use crate::{
    dio_count_mapping::DioCountMapping,
    file_lock::{
        Access, FileLock, NoFileLock, RwFileGuard, RwFileLock, TwoStateFileGuard, TwoStateFileLock,
    },
    interval_lock::{IntervalGuard, IntervalLock},
    locked_mapping::LockedMapping,
    page::{Page, PageLock},
    page_cache::{Device, PageCache},
    two_state::{TwoState, TwoStateGuard, TwoStateLock},
};

/// The page cache under a whole-file rw lock.
#[cfg(not(loom))]
pub type RwLockMapping<P> = LockedMapping<P, RwFileLock>;
/// The page cache under bcachefs's two-state lock.
#[cfg(not(loom))]
pub type TwoStateMapping<P> = LockedMapping<P, TwoStateFileLock>;
/// The page cache under a mutex-protected interval range lock.
#[cfg(not(loom))]
pub type IntervalMapping<P> = LockedMapping<P, IntervalLock>;
/// The page cache with no lock between direct IO and page creation: the negative control.
#[cfg(not(loom))]
pub type UnlockedMapping<P> = LockedMapping<P, NoFileLock>;

#[cfg(all(test, not(loom)))]
mod tests;
