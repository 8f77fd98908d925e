//! [`Page`]: the comparison's own cached page, shared by every [`LockedMapping`]
//! strategy (the library's `rangelock::mapping::Page` keeps its flag setters private to
//! its `Mapping`).
//!
//! It is the same design as the library's page: data behind a page lock, four flags
//! written only under that lock and read without it (a snapshot).
//!
//! | flag | set by | cleared by |
//! |---|---|---|
//! | `uptodate` | the creator, once it has filled the page under its page lock | eviction |
//! | `dirty` | a buffered write, under the page lock | write-back start, the hand-off to a direct IO or edit |
//! | `writeback` | write-back, under the page lock | write-back end |
//! | `evicted` | the evicting direct IO, edit or reclaim, under the page lock | never (an evicted page is gone for good) |
//!
//! A reader or writer that holds a reference to a page takes the page lock and checks
//! `evicted` before it touches the data: if the page left its cache meanwhile, it looks
//! the index up again. This is Linux's folio lock plus `folio->mapping` re-check.
//!
//! [`LockedMapping`]: crate::LockedMapping

use core::fmt;
use core::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

const UPTODATE: u8 = 1;
const DIRTY: u8 = 2;
const WRITEBACK: u8 = 4;
const EVICTED: u8 = 8;

/// A page of a [`LockedMapping`](crate::LockedMapping): data of type `P` behind a page
/// lock, with its state flags.
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

    /// A page whose data is still to be read from the device: not up to date. Its
    /// creator publishes it with its page lock held, fills it, then marks it up to date
    /// ([`PageLock::set_uptodate`]), so whoever finds it waits on the lock for the data.
    pub fn unfilled(data: P) -> Self {
        Page {
            flags: AtomicU8::new(0),
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

    /// Whether the page has left its cache.
    pub fn is_evicted(&self) -> bool {
        self.flags() & EVICTED != 0
    }

    /// Takes the page lock, waiting for its holder. A poisoned lock is taken anyway: a
    /// callback that panicked under it left the flags as they were before it ran.
    pub fn lock(&self) -> PageLock<'_, P> {
        PageLock {
            page: self,
            data: self.data.lock().unwrap_or_else(|p| p.into_inner()),
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
    pub fn data_mut(&mut self) -> &mut P {
        self.data.deref_mut()
    }

    /// Marks a page made [`unfilled`](Page::unfilled) up to date, once filled.
    pub fn set_uptodate(&mut self) {
        self.set(UPTODATE, true);
    }

    /// Sets or clears `dirty`.
    pub fn set_dirty(&mut self, on: bool) {
        self.set(DIRTY, on);
    }

    /// Sets or clears `writeback`.
    pub fn set_writeback(&mut self, on: bool) {
        self.set(WRITEBACK, on);
    }

    /// Marks the page evicted (and no longer up to date), or undoes that.
    pub fn set_evicted(&mut self, on: bool) {
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
