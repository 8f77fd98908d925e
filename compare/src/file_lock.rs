//! The lock a [`LockedMapping`](super::LockedMapping) takes around each operation, and
//! the two simplest ones: a whole-file rw lock and no lock at all.
//!
//! An operation asks for an [`Access`] over the pages it touches; each lock decides what
//! that costs. The protocol a lock must keep: a holder of [`Access::Block`] or
//! [`Access::Edit`] over a page excludes every [`Access::Create`] and
//! [`Access::Read`]/[`Access::Write`] that the lock does not leave free, so no page can be
//! created under a direct IO or an edit; and an [`Access::Edit`] excludes every other
//! `Block` or `Edit` over the same pages, so edits and direct writes apply to the device
//! in the order they are granted.
//! [`Access::Create`] is asked for by a thread that holds [`Access::Read`] or
//! [`Access::Write`] over the same pages (a miss found under it); no lock here makes
//! those cost anything, so no acquisition nests.

use core::fmt;
use core::ops::RangeInclusive;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::two_state::{TwoState, TwoStateGuard, TwoStateLock};

/// What an operation needs to keep out while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading cached pages (a fault or buffered read, hit or miss).
    Read,
    /// Changing cached pages (a buffered write).
    Write,
    /// Creating pages (a miss filled from the device, readahead), while the same thread
    /// holds `Read` or `Write` over the same pages.
    Create,
    /// Keeping pages from being created or used (direct IO).
    Block,
    /// [`Access::Block`], and also excluding every other edit and direct IO over the same
    /// pages (truncate, hole punch: Linux holds `i_rwsem` exclusive for them).
    Edit,
}

/// A lock over a whole file, or over ranges of its pages, as a
/// [`LockedMapping`](super::LockedMapping) uses it.
///
/// The protocol an implementation keeps: a holder of [`Access::Block`] or
/// [`Access::Edit`] over a page excludes every [`Access::Create`] over it (and every
/// `Read` or `Write` it does not leave free), so no page appears under a direct IO or an
/// edit; an [`Access::Edit`] excludes every other `Block` or `Edit` over the same pages.
pub trait FileLock: Send + Sync + Default {
    /// The strategy's name in reports.
    const NAME: &'static str;
    /// A held acquisition; dropping it releases.
    type Guard<'a>
    where
        Self: 'a;
    /// Acquires `access` over `pages`, waiting as long as it takes.
    fn acquire(&self, pages: RangeInclusive<u64>, access: Access) -> Self::Guard<'_>;
}

/// A whole-file rw lock taken as Linux takes `invalidate_lock`: creation shared; direct
/// IO, truncate and hole punch exclusive; cache hits and buffered changes to cached pages
/// free (the page lock orders them).
#[derive(Default)]
pub struct RwFileLock(RwLock<()>);

impl fmt::Debug for RwFileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwFileLock").finish_non_exhaustive()
    }
}

/// A held [`RwFileLock`] (or nothing, for accesses it leaves free).
#[derive(Debug)]
pub enum RwFileGuard<'a> {
    /// Nothing held.
    Free,
    /// Held shared.
    Shared(RwLockReadGuard<'a, ()>),
    /// Held exclusive.
    Exclusive(RwLockWriteGuard<'a, ()>),
}

impl FileLock for RwFileLock {
    const NAME: &'static str = "rwlock";
    type Guard<'a> = RwFileGuard<'a>;

    fn acquire(&self, _pages: RangeInclusive<u64>, access: Access) -> RwFileGuard<'_> {
        // A panic while holding the lock leaves the protected state (none: `()`) intact.
        match access {
            Access::Read | Access::Write => RwFileGuard::Free,
            Access::Create => {
                RwFileGuard::Shared(self.0.read().unwrap_or_else(|poison| poison.into_inner()))
            }
            Access::Block | Access::Edit => {
                RwFileGuard::Exclusive(self.0.write().unwrap_or_else(|poison| poison.into_inner()))
            }
        }
    }
}

/// bcachefs's [`TwoStateLock`] as the comparison takes it: faults and readahead in the
/// add state, direct IO and edits in the block state (shared among direct IOs, as in
/// bcachefs). Truncate and hole punch also take the inode's rw lock (`i_rwsem`)
/// exclusive and direct IO takes it shared, since the two states alone would let an edit
/// run beside a direct write or another edit over the same blocks.
#[derive(Default)]
pub struct TwoStateFileLock {
    state: TwoStateLock,
    inode: RwLock<()>,
}

impl fmt::Debug for TwoStateFileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoStateFileLock")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A held [`TwoStateFileLock`]: the state, and the inode lock where the access needs it.
#[derive(Debug)]
pub struct TwoStateFileGuard<'a> {
    // Field order is drop order: the state goes first, then the inode lock.
    _state: Option<TwoStateGuard<'a>>,
    _inode: RwFileGuard<'a>,
}

impl FileLock for TwoStateFileLock {
    const NAME: &'static str = "two-state";
    type Guard<'a> = TwoStateFileGuard<'a>;

    fn acquire(&self, _pages: RangeInclusive<u64>, access: Access) -> Self::Guard<'_> {
        // The inode lock first (it is the outer lock in Linux), then the state.
        let inode = match access {
            Access::Read | Access::Write | Access::Create => RwFileGuard::Free,
            Access::Block => {
                RwFileGuard::Shared(self.inode.read().unwrap_or_else(|p| p.into_inner()))
            }
            Access::Edit => {
                RwFileGuard::Exclusive(self.inode.write().unwrap_or_else(|p| p.into_inner()))
            }
        };
        let state = match access {
            Access::Read | Access::Write => None,
            Access::Create => Some(self.state.lock(TwoState::Add)),
            Access::Block | Access::Edit => Some(self.state.lock(TwoState::Block)),
        };
        TwoStateFileGuard {
            _state: state,
            _inode: inode,
        }
    }
}

/// No lock at all: the negative control, which lets page creation race with direct IO.
#[derive(Debug, Default)]
pub struct NoFileLock;

impl FileLock for NoFileLock {
    const NAME: &'static str = "naive";
    type Guard<'a> = ();

    fn acquire(&self, _pages: RangeInclusive<u64>, _access: Access) {}
}
