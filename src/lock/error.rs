//! Errors of the lock layer.

use core::fmt;
use core::ops::Bound;

/// Why a range lock was not granted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockError {
    /// The range holds no index (empty or inverted).
    InvalidRange {
        /// The range's start bound, as given.
        start: Bound<u64>,
        /// The range's end bound, as given.
        end: Bound<u64>,
    },
    /// [`try_lock_range`](crate::XArray::try_lock_range) met a conflicting holder (or a
    /// queued waiter it must not overtake).
    WouldBlock,
    /// [`lock_range_timeout`](crate::XArray::lock_range_timeout) ran out of time.
    TimedOut,
    /// The call would have had to wait on `index`, which this thread itself holds in a
    /// conflicting mode: a blocking call would have waited for itself forever. (A
    /// `try_lock_range` reports this rather than `WouldBlock`, since retrying cannot help
    /// while this thread holds the index.)
    WouldDeadlock {
        /// The index the call would have waited on.
        index: u64,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::InvalidRange { start, end } => {
                write!(f, "lock range ({start:?}, {end:?}) holds no index")
            }
            LockError::WouldBlock => f.write_str("the range is locked in a conflicting mode"),
            LockError::TimedOut => f.write_str("timed out waiting for the range lock"),
            LockError::WouldDeadlock { index } => write!(
                f,
                "index {index} is held by this thread in a conflicting mode: waiting would deadlock"
            ),
        }
    }
}

impl std::error::Error for LockError {}

/// Why [`get_or_fill`](crate::XArray::get_or_fill) returned no item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FillError<E> {
    /// The index could not be locked for filling (say, [`LockError::WouldDeadlock`]).
    Lock(LockError),
    /// The fill function failed; the index was released and its waiters retry.
    Fill(E),
}

impl<E: fmt::Display> fmt::Display for FillError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FillError::Lock(e) => write!(f, "could not lock the index to fill it: {e}"),
            FillError::Fill(e) => write!(f, "fill failed: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for FillError<E> {}

/// A [`publish`](crate::RangeGuard::publish) on a guard that is not a one-index Exclusive
/// guard. The guard was released; the item is handed back.
pub struct PublishError<T> {
    /// The item that was not published.
    pub item: crate::sync::ItemArc<T>,
}

impl<T> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishError").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("only a one-index Exclusive guard can publish an item")
    }
}

impl<T> std::error::Error for PublishError<T> {}
