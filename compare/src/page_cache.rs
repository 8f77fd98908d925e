//! [`PageCache`], the operations a file system drives on a file's page cache, and
//! [`Device`], what the cache fills from and writes back to: the two traits every
//! strategy of the comparison and every device of the [`workload`](crate::workload)
//! meet at.

use core::ops::{Range, RangeInclusive};

use rangelock::mapping::{DirectIoKind, MappingError};

/// The device under a page cache: where fills come from and write-back goes.
pub trait Device<P>: Sync {
    /// Reads page `index` (a fault's or readahead's fill).
    fn read_page(&self, index: u64) -> P;
    /// Writes page `index` (write-back, or dirty data handed over before a direct IO or
    /// an edit).
    fn write_page(&self, index: u64, data: &P);
}

/// A file's page cache, as a file system drives it. Implemented by
/// [`Mapping`](rangelock::mapping::Mapping) (lock
/// entries) and by [`LockedMapping`](crate::LockedMapping) under each whole-file lock; see the
/// [crate docs](crate). Callbacks run with the strategy's locks held and must not call
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
    /// A page fault (a mapped read): `read` runs on page `index`'s data under the page
    /// lock, the page read from `device` on a miss; `BeyondEof` past the end of file.
    fn fault(
        &self,
        index: u64,
        device: &dyn Device<P>,
        read: &mut dyn FnMut(&P),
    ) -> Result<(), MappingError>;
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
