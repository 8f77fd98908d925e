//! The mapping layer's error: bad input, end of file, a lock that would deadlock, or the
//! caller's own IO error.

use core::convert::Infallible;
use core::fmt;
use core::ops::Bound;

use crate::lock::LockError;

/// Why a [`Mapping`](super::Mapping) operation did not happen. `E` is the error of the
/// caller's IO callbacks (fill, flush, write-back); operations without one use
/// [`Infallible`].
#[derive(Clone, PartialEq, Eq)]
pub enum MappingError<E = Infallible> {
    /// The page size is not a power of two of at least 1 byte and at most 2^32 bytes.
    InvalidPageSize {
        /// The page size asked for.
        page_size: u64,
    },
    /// The byte range holds no byte (empty or inverted).
    InvalidRange {
        /// The range's start bound, as given.
        start: Bound<u64>,
        /// The range's end bound, as given.
        end: Bound<u64>,
    },
    /// `collapse_range` and `insert_range` move whole pages: the range must start and
    /// end on page boundaries.
    Unaligned {
        /// The first byte of the range.
        first: u64,
        /// The last byte of the range.
        last: u64,
        /// The mapping's page size.
        page_size: u64,
    },
    /// `collapse_range` must end before the end of the file, and `insert_range` must
    /// start inside it.
    OutsideFile {
        /// The first byte of the range.
        first: u64,
        /// The last byte of the range.
        last: u64,
        /// The file size at the time of the call.
        size: u64,
    },
    /// The file would grow past `u64::MAX` bytes.
    TooLarge {
        /// The file size at the time of the call.
        size: u64,
        /// The number of bytes the call would add.
        added: u64,
    },
    /// The page lies wholly at or past the end of the file.
    BeyondEof {
        /// The page index.
        index: u64,
        /// The file size at the time of the check.
        size: u64,
    },
    /// The range lock could not be taken: [`LockError::WouldDeadlock`] when this thread
    /// holds the page itself (a fault on the buffer of its own direct IO).
    Lock(LockError),
    /// The caller's fill, flush or write-back callback failed; nothing was lost (see
    /// each operation).
    Io(E),
}

impl<E> From<LockError> for MappingError<E> {
    fn from(error: LockError) -> Self {
        MappingError::Lock(error)
    }
}

impl MappingError<Infallible> {
    /// The same error with another callback error type (this one never carries one).
    pub fn widen<E>(self) -> MappingError<E> {
        match self {
            MappingError::InvalidPageSize { page_size } => {
                MappingError::InvalidPageSize { page_size }
            }
            MappingError::InvalidRange { start, end } => MappingError::InvalidRange { start, end },
            MappingError::Unaligned {
                first,
                last,
                page_size,
            } => MappingError::Unaligned {
                first,
                last,
                page_size,
            },
            MappingError::OutsideFile { first, last, size } => {
                MappingError::OutsideFile { first, last, size }
            }
            MappingError::TooLarge { size, added } => MappingError::TooLarge { size, added },
            MappingError::BeyondEof { index, size } => MappingError::BeyondEof { index, size },
            MappingError::Lock(error) => MappingError::Lock(error),
            MappingError::Io(never) => match never {},
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for MappingError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingError::InvalidPageSize { page_size } => f
                .debug_struct("InvalidPageSize")
                .field("page_size", page_size)
                .finish(),
            MappingError::InvalidRange { start, end } => f
                .debug_struct("InvalidRange")
                .field("start", start)
                .field("end", end)
                .finish(),
            MappingError::Unaligned {
                first,
                last,
                page_size,
            } => f
                .debug_struct("Unaligned")
                .field("first", first)
                .field("last", last)
                .field("page_size", page_size)
                .finish(),
            MappingError::OutsideFile { first, last, size } => f
                .debug_struct("OutsideFile")
                .field("first", first)
                .field("last", last)
                .field("size", size)
                .finish(),
            MappingError::TooLarge { size, added } => f
                .debug_struct("TooLarge")
                .field("size", size)
                .field("added", added)
                .finish(),
            MappingError::BeyondEof { index, size } => f
                .debug_struct("BeyondEof")
                .field("index", index)
                .field("size", size)
                .finish(),
            MappingError::Lock(error) => f.debug_tuple("Lock").field(error).finish(),
            MappingError::Io(error) => f.debug_tuple("Io").field(error).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for MappingError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingError::InvalidPageSize { page_size } => write!(
                f,
                "page size {page_size} is not a power of two between 1 and 2^32"
            ),
            MappingError::InvalidRange { start, end } => {
                write!(f, "byte range ({start:?}, {end:?}) holds no byte")
            }
            MappingError::Unaligned {
                first,
                last,
                page_size,
            } => write!(
                f,
                "byte range {first}..={last} does not start and end on {page_size}-byte page boundaries"
            ),
            MappingError::OutsideFile { first, last, size } => write!(
                f,
                "byte range {first}..={last} is not inside the file of {size} bytes"
            ),
            MappingError::TooLarge { size, added } => write!(
                f,
                "a file of {size} bytes cannot grow by {added} bytes (past u64::MAX)"
            ),
            MappingError::BeyondEof { index, size } => {
                write!(f, "page {index} lies past the end of the file ({size} bytes)")
            }
            MappingError::Lock(error) => write!(f, "range lock: {error}"),
            MappingError::Io(error) => write!(f, "IO callback failed: {error}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for MappingError<E> {}
