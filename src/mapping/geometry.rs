//! Page geometry: the page size, and byte <-> page conversions that never overflow.
//!
//! A byte range is any `RangeBounds<u64>` (so the last byte may be `u64::MAX`); it is
//! normalised to its first and last byte, then to its first and last page by shifting.
//! No conversion multiplies a page index back into bytes except where the result is
//! known to fit (`page_start` of a page that a byte maps to).

use core::ops::{Bound, RangeBounds, RangeInclusive};

use super::error::MappingError;

/// The page size of a [`Mapping`](super::Mapping) and its conversions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageGeometry {
    shift: u32,
}

impl PageGeometry {
    /// The default page size, 4096 bytes.
    pub const DEFAULT_PAGE_SIZE: u64 = 4096;

    /// A geometry with `page_size` bytes per page: a power of two from 1 to 2^32.
    pub fn new(page_size: u64) -> Result<Self, MappingError> {
        if !page_size.is_power_of_two() || page_size > 1 << 32 {
            return Err(MappingError::InvalidPageSize { page_size });
        }
        Ok(PageGeometry {
            shift: page_size.trailing_zeros(),
        })
    }

    /// Bytes per page.
    pub fn page_size(&self) -> u64 {
        1 << self.shift
    }

    /// The page that holds byte `offset`.
    pub fn page_of(&self, offset: u64) -> u64 {
        offset >> self.shift
    }

    /// The first byte of page `index`, or `None` if it is past `u64::MAX`.
    pub fn page_start(&self, index: u64) -> Option<u64> {
        index.checked_mul(self.page_size())
    }

    /// How many pages a file of `size` bytes covers (rounded up; never overflows).
    pub fn pages_in(&self, size: u64) -> u64 {
        (size >> self.shift) + u64::from(size & (self.page_size() - 1) != 0)
    }

    /// Whether `offset` is on a page boundary.
    pub fn is_aligned(&self, offset: u64) -> bool {
        offset & (self.page_size() - 1) == 0
    }

    /// The first and last byte of `bytes`, refusing an empty or inverted range.
    pub fn bytes<E>(&self, bytes: &impl RangeBounds<u64>) -> Result<(u64, u64), MappingError<E>> {
        let invalid = || MappingError::InvalidRange {
            start: bytes.start_bound().cloned(),
            end: bytes.end_bound().cloned(),
        };
        let first = match bytes.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.checked_add(1).ok_or_else(invalid)?,
            Bound::Unbounded => 0,
        };
        let last = match bytes.end_bound() {
            Bound::Included(&e) => e,
            Bound::Excluded(&e) => e.checked_sub(1).ok_or_else(invalid)?,
            Bound::Unbounded => u64::MAX,
        };
        if first > last {
            return Err(invalid());
        }
        Ok((first, last))
    }

    /// The pages that cover `bytes`.
    pub fn pages<E>(
        &self,
        bytes: &impl RangeBounds<u64>,
    ) -> Result<RangeInclusive<u64>, MappingError<E>> {
        let (first, last) = self.bytes(bytes)?;
        Ok(self.page_of(first)..=self.page_of(last))
    }
}

impl Default for PageGeometry {
    fn default() -> Self {
        PageGeometry { shift: 12 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_at_the_edges() {
        let g = PageGeometry::new(4096).unwrap();
        assert_eq!(g.pages_in(0), 0);
        assert_eq!(g.pages_in(1), 1);
        assert_eq!(g.pages_in(4096), 1);
        assert_eq!(g.pages_in(4097), 2);
        assert_eq!(g.pages_in(u64::MAX), 1 << 52);
        assert_eq!(g.page_start(1 << 52), None);
        assert_eq!(g.page_start((1 << 52) - 1), Some(u64::MAX - 4095));
        assert_eq!(g.pages::<()>(&(..)).unwrap(), 0..=(1 << 52) - 1);
        assert_eq!(g.pages::<()>(&(4095..4097)).unwrap(), 0..=1);
        assert_eq!(
            g.pages::<()>(&(u64::MAX..=u64::MAX)).unwrap(),
            (1 << 52) - 1..=(1 << 52) - 1
        );
        assert!(matches!(
            g.pages::<()>(&(5..5)),
            Err(MappingError::InvalidRange { .. })
        ));
        assert!(matches!(
            g.bytes::<()>(&(Bound::Excluded(u64::MAX), Bound::Unbounded)),
            Err(MappingError::InvalidRange { .. })
        ));
        for bad in [0, 3, 4095, 1 << 33] {
            assert_eq!(
                PageGeometry::new(bad),
                Err(MappingError::InvalidPageSize { page_size: bad })
            );
        }
        let one = PageGeometry::new(1).unwrap();
        assert_eq!(one.pages_in(u64::MAX), u64::MAX);
        assert_eq!(one.pages::<()>(&(..)).unwrap(), 0..=u64::MAX);
    }
}
