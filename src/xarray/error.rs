//! Errors of the tree layer. Every failed write that was given an item hands it back.

use core::fmt;
use core::ops::Bound;

use super::entry::{Entry, MAX_VALUE};
use crate::sync::ItemArc as Arc;

/// Why a tree operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XaError {
    /// A value entry must fit in 63 bits ([`MAX_VALUE`]); it is never truncated.
    ValueTooLarge {
        /// The value that was refused.
        value: u64,
    },
    /// The range holds no index (empty or inverted).
    InvalidRange {
        /// The range's start bound, as given.
        start: Bound<u64>,
        /// The range's end bound, as given.
        end: Bound<u64>,
    },
    /// The index is held by a range lock (a lock entry is there); plain writes never
    /// overwrite one. Wait for it ([`XArray::load_wait`](crate::XArray::load_wait)) or
    /// take the lock.
    Locked {
        /// The first locked index the write would have touched.
        index: u64,
    },
}

impl fmt::Display for XaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XaError::ValueTooLarge { value } => write!(
                f,
                "value {value:#x} does not fit in a value entry (at most {MAX_VALUE:#x})"
            ),
            XaError::InvalidRange { start, end } => {
                write!(f, "index range (")?;
                match start {
                    Bound::Included(s) => write!(f, "{s}")?,
                    Bound::Excluded(s) => write!(f, "after {s}")?,
                    Bound::Unbounded => {}
                }
                write!(f, "..")?;
                match end {
                    Bound::Included(e) => write!(f, "={e}")?,
                    Bound::Excluded(e) => write!(f, "{e}")?,
                    Bound::Unbounded => {}
                }
                write!(f, ") holds no index")
            }
            XaError::Locked { index } => write!(f, "index {index} is held by a range lock"),
        }
    }
}

impl std::error::Error for XaError {}

/// A refused [`store`](crate::XArray::store): the reason and the caller's item, handed back.
pub struct StoreError<T> {
    /// Why the store was refused.
    pub error: XaError,
    /// The item that was not stored.
    pub item: Arc<T>,
}

impl<T> fmt::Debug for StoreError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for StoreError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store refused: {}", self.error)
    }
}

impl<T> std::error::Error for StoreError<T> {}

/// A failed [`compare_exchange`](crate::XArray::compare_exchange); the new entry is
/// handed back either way.
pub enum CompareExchangeError<T> {
    /// The index did not hold the expected entry.
    Mismatch {
        /// The entry found at the index instead.
        current: Entry<T>,
        /// The entry that was not stored.
        new: Entry<T>,
    },
    /// The new entry itself was refused (a value over [`MAX_VALUE`], say).
    Refused {
        /// Why.
        error: XaError,
        /// The entry that was not stored.
        new: Entry<T>,
    },
}

impl<T> CompareExchangeError<T> {
    /// The entry that was not stored.
    pub fn into_new(self) -> Entry<T> {
        match self {
            CompareExchangeError::Mismatch { new, .. }
            | CompareExchangeError::Refused { new, .. } => new,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for CompareExchangeError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompareExchangeError::Mismatch { current, new } => f
                .debug_struct("Mismatch")
                .field("current", current)
                .field("new", new)
                .finish(),
            CompareExchangeError::Refused { error, new } => f
                .debug_struct("Refused")
                .field("error", error)
                .field("new", new)
                .finish(),
        }
    }
}

impl<T: fmt::Debug> fmt::Display for CompareExchangeError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompareExchangeError::Mismatch { current, .. } => {
                write!(f, "compare_exchange failed: the index holds {current:?}")
            }
            CompareExchangeError::Refused { error, .. } => {
                write!(f, "compare_exchange refused: {error}")
            }
        }
    }
}

impl<T: fmt::Debug> std::error::Error for CompareExchangeError<T> {}
