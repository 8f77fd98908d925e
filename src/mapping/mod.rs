//! A file's page cache on lock entries: [`Mapping`].
//!
//! The page index is an [`XArray`] of [`Page`]s. Direct IO and the truncate family lock
//! the pages they touch with lock entries in that same tree, so a fault or a buffered
//! read or write waits only if its own page is locked. There is no lock over the whole
//! file: a direct IO locks the pages of its byte range, a hole punch those of its hole,
//! and truncate, collapse and insert lock from their first page to the end of the index
//! space (everything after it changes).
//!
//! # One fault
//!
//! [`Mapping::fault`] looks the page up without a lock; a hit is returned at once. On a
//! miss it checks the file size, then locks the missing index alone, Exclusive
//! ([`XArray::get_or_fill`]): a concurrent fault of the same page waits for this one,
//! a direct IO over the page waits too, and pages around it are untouched. With the lock
//! held it checks the size again (a truncate that shrank the file holds its range
//! Exclusive while it changes the size, so this check is ordered with it) and runs the
//! caller's `fill` with no internal lock held. The filled page replaces the lock entry in
//! one step and every waiter wakes to find it. A fill that fails or panics unlocks the
//! index; a shadow entry it was replacing is put back.
//!
//! # One direct write
//!
//! [`Mapping::direct_io`] locks the pages that cover the byte range Shared, *sealed*
//! ([`XArray::lock_range_sealed`]): cached pages are evicted into the guard atomically
//! with the lock entries that replace them; indices that held nothing get lock entries
//! that other direct IO may share at once (two sub-page writes to one page hold its entry
//! together, holder count 2), while the entries of evicted pages stay closed until the
//! hand-off is done. For each evicted page it then takes the page lock (waiting out a
//! buffered write or a write-back in progress), marks it evicted, and passes dirty data
//! to the caller's `flush`, which writes it to the device. Only then are the sealed
//! entries opened and the guard returned; the caller does its IO and drops the guard.
//! Faults and buffered IO on those pages wait until then and read the new data. If a
//! `flush` fails or panics, the pages are put back (their marks rebuilt from their
//! flags) and nothing is lost.
//!
//! Direct reads take the same path. (A lighter read that keeps clean pages cached would
//! write dirty pages back in place and wait for sealed and Exclusive entries; it is not
//! built.)
//!
//! # One truncate
//!
//! [`Mapping::truncate`] locks from the page that holds the new end of file to the end
//! of the index space, Exclusive: it waits for faults, fills and direct IO in that range
//! to finish, and no new page can appear there. It evicts the pages, hands the dirty one
//! that straddles the new end to the caller, and sets the size while it holds the range,
//! so a fault past the new end either finished before (and its page was evicted) or sees
//! the new size and fails with [`MappingError::BeyondEof`]. The caller updates its
//! on-disk file and drops the [`EditGuard`]. [`Mapping::punch_hole`],
//! [`Mapping::collapse_range`] and [`Mapping::insert_range`] work the same way over their
//! ranges (to the end of the index space for the last two, whose pages move). Edits
//! change the size in one atomic step, so a concurrent `set_size` (a direct write past
//! the end of file, on pages the edit does not hold) is never overwritten; a hole punch
//! leaves the size alone.
//!
//! # Self-deadlock (gup)
//!
//! A fault on a page that the calling thread holds under its own direct IO fails with
//! [`MappingError::Lock`]`(`[`LockError::WouldDeadlock`]`)`: a direct write whose source
//! buffer is a mapping of the same range cannot wait for itself.
//! [`Mapping::direct_write_from`] is the policy a file system wraps around such a write:
//! fault the source in with nothing locked, lock, pin the source without blocking, and
//! if it cannot be pinned unlock and retry a bounded number of times, then fall back to
//! a buffered write. It neither deadlocks nor livelocks.
//!
//! # Tasks
//!
//! [`Mapping::fault_async`], [`Mapping::direct_io_async`] and the asynchronous edits
//! ([`Mapping::truncate_async`], [`Mapping::punch_hole_async`],
//! [`Mapping::collapse_range_async`], [`Mapping::insert_range_async`]) do what their
//! blocking versions do, with the range lock awaited as a future in one queue with the
//! blocking waiters and a guard that is `Send` ([`DetachedDirectIo`],
//! [`DetachedEditGuard`]). A direct IO's `flush` is then a future too, handed each
//! evicted dirty page (marked evicted first, so its data no longer changes) with no lock
//! held across its `.await`. Dropping any of these futures at any await point puts back
//! what it evicted, dirty where its data had not been flushed. A task is never told
//! `WouldDeadlock` (see [`XArray::lock_range_async`](crate::XArray::lock_range_async)),
//! and a thread waits for a task's guard rather than failing: keep blocking calls off
//! an executor's workers (a worker blocked on a page that a task on its own queue holds
//! may never run that task).
//!
//! # Lock order
//!
//! Range locks (ascending), then page locks, then the tree's internal node and head
//! locks (held only inside one tree operation). No thread takes a page lock while it
//! holds a lock of the tree, and no callback runs under one. Callbacks do run under a page lock (`flush`, the `read` and
//! `write` closures, write-back's `write`), so they must not fault, lock or write pages
//! of the same mapping. Write-back may wait for a direct IO's or an edit's hand-off of
//! evicted dirty pages (range-lock state), so a thread that holds a range of the mapping
//! gets `WouldDeadlock` from it rather than a wait.
//!
//! [`LockError::WouldDeadlock`]: crate::LockError::WouldDeadlock

mod direct;
mod edit;
mod edit_async;
mod error;
mod evict;
mod fault;
mod geometry;
mod gup;
mod page;
mod reclaim;
mod returns;
mod writeback;

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::xarray::{Mark, XArray};

pub use direct::{DetachedDirectIo, DirectIo, DirectIoKind};
pub use edit::EditGuard;
pub use edit_async::DetachedEditGuard;
pub use error::MappingError;
pub use fault::READ_BATCH;
pub use geometry::PageGeometry;
pub use gup::{MappedBuffer, WritePath, WriteSource};
pub use page::{Page, PageLock};

/// The tree mark of dirty pages.
pub const DIRTY: Mark = Mark::M0;
/// The tree mark of pages under write-back.
pub const WRITEBACK: Mark = Mark::M1;

/// A file's page cache: pages of data `P` indexed by page number, a file size, and the
/// protocol that keeps faults, buffered IO, direct IO and size changes consistent with
/// one another (see the [module docs](self)).
///
/// ```
/// use rangelock::mapping::{DirectIoKind, Mapping};
/// use std::convert::Infallible;
///
/// let file: Mapping<Vec<u8>> = Mapping::new();
/// file.set_size(3 * 4096);
/// let read_page = |_: u64| Ok::<_, Infallible>(vec![0u8; 4096]);
///
/// // A buffered write faults page 1 in, writes it and marks it dirty.
/// file.write(1, read_page, |page| page[0] = 7).unwrap();
/// assert_eq!(file.dirty_pages(..), vec![1]);
///
/// // A direct write over bytes 4096..8192 evicts page 1 and hands its dirty data over.
/// let mut written_back = Vec::new();
/// let dio = file
///     .direct_io(4096..8192, DirectIoKind::Write, |index, data: &Vec<u8>| {
///         written_back.push((index, data[0]));
///         Ok::<_, Infallible>(())
///     })
///     .unwrap();
/// assert_eq!(written_back, vec![(1, 7)]);
/// assert!(file.get(1).is_none()); // faults on page 1 now wait for `dio`
/// drop(dio);
/// assert!(file.dirty_pages(..).is_empty());
/// ```
pub struct Mapping<P: Send + Sync + 'static, const SLOTS: usize = 64> {
    pages: XArray<Page<P>, SLOTS>,
    geometry: PageGeometry,
    size: AtomicU64,
    /// Dirty data put back into the cache by a failed hand-off or write-back: a
    /// write-back round during which this moved looks again (see `returns.rs`).
    returns: returns::Returns,
}

impl<P: Send + Sync + 'static> Mapping<P> {
    /// An empty file (size 0) with 4096-byte pages.
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn new() -> Self {
        Self::with_tree(XArray::new(), PageGeometry::default())
    }

    /// An empty file with `page_size`-byte pages (a power of two up to 2^32).
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn with_page_size(page_size: u64) -> Result<Self, MappingError> {
        Ok(Self::with_tree(
            XArray::new(),
            PageGeometry::new(page_size)?,
        ))
    }
}

impl<P: Send + Sync + 'static> Default for Mapping<P> {
    #[cfg_attr(feature = "lockdep", track_caller)]
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// An empty file over `pages` (an empty tree, say with its own collector or wait
    /// table, or fewer slots for tests).
    pub fn with_tree(pages: XArray<Page<P>, SLOTS>, geometry: PageGeometry) -> Self {
        Mapping {
            pages,
            geometry,
            size: AtomicU64::new(0),
            returns: returns::Returns::new(),
        }
    }

    /// This file, with its page index in the lock class `name` (see
    /// [`XArray::with_class`]). Call it before the mapping is shared.
    pub fn with_class(self, name: &'static str) -> Self {
        Mapping {
            pages: self.pages.with_class(name),
            ..self
        }
    }

    /// The page index, for inspection (`get`, `iter`, marks). Changing it directly
    /// bypasses the protocol.
    pub fn pages(&self) -> &XArray<Page<P>, SLOTS> {
        &self.pages
    }

    /// The page geometry.
    pub fn geometry(&self) -> PageGeometry {
        self.geometry
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> u64 {
        self.geometry.page_size()
    }

    /// The file size in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Grows the file to `size` bytes if it is smaller (a write past the end of file).
    /// Shrinking takes [`truncate`](Self::truncate), which evicts the pages past the end.
    /// Returns the size after the call.
    pub fn set_size(&self, size: u64) -> u64 {
        self.size.fetch_max(size, Ordering::AcqRel).max(size)
    }

    /// Changes the size to `change(current)` (`None`: unchanged) in one atomic step and
    /// returns the size after it, or the error `change` refused the current size with.
    /// The caller holds the range the change affects Exclusive.
    fn update_size(
        &self,
        change: impl Fn(u64) -> Result<Option<u64>, MappingError>,
    ) -> Result<u64, MappingError> {
        let mut current = self.size();
        loop {
            let Some(new) = change(current)? else {
                return Ok(current);
            };
            match self
                .size
                .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(new),
                Err(now) => current = now,
            }
        }
    }

    /// Refuses page `index` if it lies wholly at or past the end of the file.
    fn check_eof<E>(&self, index: u64) -> Result<(), MappingError<E>> {
        let size = self.size();
        if index >= self.geometry.pages_in(size) {
            return Err(MappingError::BeyondEof { index, size });
        }
        Ok(())
    }

    /// The cached page at `index`: a lock-free lookup, `None` for a missing or locked
    /// page.
    pub fn get(&self, index: u64) -> Option<std::sync::Arc<Page<P>>> {
        self.pages.load(index)
    }

    /// The number of cached pages.
    pub fn cached_pages(&self) -> usize {
        self.pages
            .iter(..)
            .filter(|(_, e)| e.item().is_some())
            .count()
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> core::fmt::Debug for Mapping<P, SLOTS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mapping")
            .field("page_size", &self.page_size())
            .field("size", &self.size())
            .field("pages", &self.pages)
            .finish()
    }
}
