//! The comparison: the same page cache under whole-file locks, and the workload that
//! measures them against [`Mapping`].
//!
//! [`PageCache`] is the set of page-cache operations a file system drives: faults,
//! buffered reads and writes, readahead, write-back, reclaim, direct IO, truncate and
//! hole punch. Five types implement it over the same [`XArray`](crate::XArray) page index
//! and the same [`Page`] (data behind a page lock, with the uptodate, dirty, writeback and
//! evicted flags), so that the only thing that differs between them is how direct IO and
//! size changes are kept from racing with page creation:
//!
//! | strategy | type | cache hit | page creation (fault miss, readahead) | direct IO, truncate, punch |
//! |---|---|---|---|---|
//! | `rangelock` | [`Mapping`] | lock-free | one-index lock entry | lock entries over its pages |
//! | `rwlock` | [`RwLockMapping`] | lock-free | whole-file rw lock, shared | whole-file rw lock, exclusive |
//! | `two-state` | [`TwoStateMapping`] | lock-free | [`TwoStateLock`], add state | [`TwoStateLock`], block state (edits also take the inode lock exclusive, direct IO shared) |
//! | `interval` | [`IntervalMapping`] | lock-free | [`IntervalLock`] Exclusive over the pages | [`IntervalLock`]: direct IO Shared, truncate and punch Exclusive, over their pages |
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
//! and checks every read against an oracle; `examples/mixed_io.rs` is its command line.
//!
//! The module is compiled out of loom builds: the baselines use `std` locks directly and
//! are not part of the protocol loom checks.
//!
//! [`Mapping`]: crate::mapping::Mapping

mod file_lock;
mod interval_lock;
mod locked_mapping;
mod mapping_impl;
mod two_state;
pub mod workload;

use core::ops::{Range, RangeInclusive};
use std::sync::Arc;

use crate::mapping::{DirectIoKind, MappingError, Page};

pub use file_lock::{
    Access, FileLock, NoFileLock, RwFileGuard, RwFileLock, TwoStateFileGuard, TwoStateFileLock,
};
pub use interval_lock::{IntervalGuard, IntervalLock};
pub use locked_mapping::LockedMapping;
pub use two_state::{TwoState, TwoStateGuard, TwoStateLock};

/// The page cache under a whole-file rw lock.
pub type RwLockMapping<P> = LockedMapping<P, RwFileLock>;
/// The page cache under bcachefs's two-state lock.
pub type TwoStateMapping<P> = LockedMapping<P, TwoStateFileLock>;
/// The page cache under a mutex-protected interval range lock.
pub type IntervalMapping<P> = LockedMapping<P, IntervalLock>;
/// The page cache with no lock between direct IO and page creation: the negative control.
pub type UnlockedMapping<P> = LockedMapping<P, NoFileLock>;

/// The device under a page cache: where fills come from and write-back goes.
pub trait Device<P>: Sync {
    /// Reads page `index` (a fault's or readahead's fill).
    fn read_page(&self, index: u64) -> P;
    /// Writes page `index` (write-back, or dirty data handed over before a direct IO or
    /// an edit).
    fn write_page(&self, index: u64, data: &P);
}

/// A file's page cache, as a file system drives it. Implemented by
/// [`Mapping`](crate::mapping::Mapping) (lock
/// entries) and by [`LockedMapping`] under each whole-file lock; see the
/// [module docs](self). Callbacks run with the strategy's locks held and must not call
/// back into the same cache.
pub trait PageCache<P>: Send + Sync {
    /// The strategy's name in reports: `rangelock`, `rwlock`, `two-state`, `interval`,
    /// `naive`.
    fn strategy(&self) -> &'static str;
    /// The page size in bytes.
    fn page_size(&self) -> u64;
    /// The file size in bytes.
    fn size(&self) -> u64;
    /// Grows the file to `size` bytes if it is smaller; returns the size after the call.
    fn set_size(&self, size: u64) -> u64;
    /// The page at `index`, read from `device` on a miss; `BeyondEof` past the end of
    /// file.
    fn fault(&self, index: u64, device: &dyn Device<P>) -> Result<Arc<Page<P>>, MappingError>;
    /// A buffered read: `read` runs on page `index`'s data under the page lock.
    fn read(
        &self,
        index: u64,
        device: &dyn Device<P>,
        read: &mut dyn FnMut(&P),
    ) -> Result<(), MappingError>;
    /// A buffered write: `write` changes page `index`'s data under the page lock, and the
    /// page is dirty afterwards.
    fn write(
        &self,
        index: u64,
        device: &dyn Device<P>,
        write: &mut dyn FnMut(&mut P),
    ) -> Result<(), MappingError>;
    /// Reads ahead the missing pages of `pages` (within the file); returns how many it
    /// added.
    fn readahead(
        &self,
        pages: RangeInclusive<u64>,
        device: &dyn Device<P>,
    ) -> Result<usize, MappingError>;
    /// Writes the dirty pages of `pages` to `device`; returns how many it wrote.
    fn writeback(
        &self,
        pages: RangeInclusive<u64>,
        device: &dyn Device<P>,
    ) -> Result<usize, MappingError>;
    /// Drops the clean page at `index` (memory pressure); returns whether it did.
    fn reclaim(&self, index: u64) -> bool;
    /// A direct IO over `bytes`: cached pages are written back (if dirty) and dropped,
    /// page creation over them is held off, and `io` (the device transfer) runs.
    fn direct_io(
        &self,
        bytes: Range<u64>,
        kind: DirectIoKind,
        device: &dyn Device<P>,
        io: &mut dyn FnMut(),
    ) -> Result<(), MappingError>;
    /// Shrinks (or sets) the size to `size`: pages past it are dropped (the dirty one
    /// that straddles it written first), and `edit` (the on-disk truncate) runs while
    /// no page can appear there.
    fn truncate(
        &self,
        size: u64,
        device: &dyn Device<P>,
        edit: &mut dyn FnMut(),
    ) -> Result<(), MappingError>;
    /// Drops the pages under `bytes` (dirty pages it covers only partly written first)
    /// and runs `edit` (freeing the blocks) while no page can appear there.
    fn punch_hole(
        &self,
        bytes: Range<u64>,
        device: &dyn Device<P>,
        edit: &mut dyn FnMut(),
    ) -> Result<(), MappingError>;
    /// Once every thread has stopped: `Err` describing anything left locked, evicted or
    /// inconsistent.
    fn check_quiescent(&self) -> Result<(), String>;
}

#[cfg(test)]
mod tests;
