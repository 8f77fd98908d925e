//! A cached page: the caller's data, its state flags, and the page lock.
//!
//! # State
//!
//! | flag | set by | cleared by |
//! |---|---|---|
//! | `uptodate` | creation (a page is published only once filled); the undo of an eviction | eviction |
//! | `dirty` | a buffered write, under the page lock; a write-back that failed or panicked | write-back start, hand-off to a direct IO or edit |
//! | `writeback` | write-back, under the page lock | write-back end, also when it failed or panicked (the lock is held throughout) |
//! | `evicted` | the evicting direct IO or edit, under the page lock | the undo of a failed or panicking direct IO, or a refused edit |
//!
//! The flags are written only under the page lock and read without it (a snapshot).
//! Dirty and writeback are mirrored as the tree marks [`DIRTY`](super::DIRTY) and
//! [`WRITEBACK`](super::WRITEBACK) of the page's index, so write-back finds dirty pages
//! without a scan; the flags are the truth, the marks the index.
//!
//! # The page lock and the evicted flag
//!
//! Removing a page from the tree (by a range lock) and marking it `evicted` are two
//! steps: the page is gone from the tree first, atomically with the lock entry that
//! replaces it, and the evicting thread then takes the page lock, sets `evicted` and
//! takes over a dirty page's data. A buffered writer takes the page lock and checks
//! `evicted` before copying: if its copy lands before the eviction completes, the evicting
//! thread (which waits for the page lock) finds the page dirty and hands the data on; if
//! after, the writer sees `evicted` and retries, which waits on the lock entry. Either
//! way nothing is lost. This is Linux's folio lock plus `folio->mapping` re-check.

use core::fmt;
use core::ops::{Deref, DerefMut};

use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::{self, Mutex, MutexGuard};

const UPTODATE: u8 = 1;
const DIRTY: u8 = 2;
const WRITEBACK: u8 = 4;
const EVICTED: u8 = 8;

/// A page of a [`Mapping`](super::Mapping): data of type `P` behind a page lock, with its
/// state flags.
pub struct Page<P> {
    flags: AtomicU8,
    data: Mutex<P>,
}

impl<P> Page<P> {
    /// A page holding `data`, up to date and clean.
    pub fn new(data: P) -> Self {
        Page {
            flags: AtomicU8::new(UPTODATE),
            data: Mutex::new(data),
        }
    }

    fn flags(&self) -> u8 {
        self.flags.load(Ordering::Acquire)
    }

    /// Whether the page holds valid data (false once evicted).
    pub fn is_uptodate(&self) -> bool {
        self.flags() & UPTODATE != 0
    }

    /// Whether the page holds data not yet written back.
    pub fn is_dirty(&self) -> bool {
        self.flags() & DIRTY != 0
    }

    /// Whether write-back of the page is in progress.
    pub fn is_writeback(&self) -> bool {
        self.flags() & WRITEBACK != 0
    }

    /// Whether the page has left its mapping (a direct IO or an edit evicted it).
    pub fn is_evicted(&self) -> bool {
        self.flags() & EVICTED != 0
    }

    /// Takes the page lock, waiting for its holder (a buffered writer, a write-back in
    /// progress, an evicting thread).
    pub fn lock(&self) -> PageLock<'_, P> {
        let _lockdep = crate::lockdep::PageLockToken::acquire(self as *const Self as usize);
        PageLock {
            page: self,
            data: sync::lock(&self.data),
            _lockdep,
        }
    }

    /// Runs `f` on the data under the page lock.
    pub fn read<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        f(&self.lock())
    }
}

impl<P> fmt::Debug for Page<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("uptodate", &self.is_uptodate())
            .field("dirty", &self.is_dirty())
            .field("writeback", &self.is_writeback())
            .field("evicted", &self.is_evicted())
            .finish_non_exhaustive()
    }
}

/// A held page lock: access to the page's data and its flags. Released on drop.
#[must_use = "the page is unlocked as soon as the lock is dropped"]
pub struct PageLock<'a, P> {
    page: &'a Page<P>,
    data: MutexGuard<'a, P>,
    /// The lock-order checker's record (zero-sized without the `lockdep` feature).
    _lockdep: crate::lockdep::PageLockToken,
}

impl<P> PageLock<'_, P> {
    fn set(&mut self, flag: u8, on: bool) {
        // Only the lock holder writes the flags: a load and a store cannot lose an update.
        let old = self.page.flags.load(Ordering::Relaxed);
        let new = if on { old | flag } else { old & !flag };
        self.page.flags.store(new, Ordering::Release);
    }

    /// See [`Page::is_dirty`].
    pub fn is_dirty(&self) -> bool {
        self.page.is_dirty()
    }

    /// See [`Page::is_evicted`].
    pub fn is_evicted(&self) -> bool {
        self.page.is_evicted()
    }

    /// The data, for a change the caller will mark dirty.
    pub(crate) fn data_mut(&mut self) -> &mut P {
        self.data.deref_mut()
    }

    pub(crate) fn set_dirty(&mut self, on: bool) {
        self.set(DIRTY, on);
    }

    pub(crate) fn set_writeback(&mut self, on: bool) {
        self.set(WRITEBACK, on);
    }

    /// Marks the page evicted (and no longer up to date), or undoes that.
    pub(crate) fn set_evicted(&mut self, on: bool) {
        self.set(EVICTED, on);
        self.set(UPTODATE, !on);
    }
}

impl<P> Deref for PageLock<'_, P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.data
    }
}

impl<P> fmt::Debug for PageLock<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageLock")
            .field("page", self.page)
            .finish_non_exhaustive()
    }
}
