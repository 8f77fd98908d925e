//! Index ranges: turning `impl RangeBounds<u64>` into inclusive bounds, and splitting an
//! inclusive range into the maximal aligned spans that tree slots cover.
//!
//! A slot of a node with shift `s` covers the `2^s` indices of one aligned block; the
//! head covers all of `u64` (shift 64). Any range `[first, last]` is the disjoint union
//! of such blocks, and the *canonical decomposition* takes, from left to right, the
//! largest block that starts at the current position and fits in what is left. It has
//! at most `2 * (SLOTS - 1)` blocks per level, so a range store or lock over `2^40`
//! indices touches O(levels x SLOTS) slots, however long the range is.

use core::ops::{Bound, RangeBounds};

use super::error::XaError;
use super::node::Geometry;

/// An inclusive index range, `first <= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inclusive {
    pub(crate) first: u64,
    pub(crate) last: u64,
}

/// Normalises `range` to inclusive bounds, or `None` when it holds no index.
pub(crate) fn inclusive(range: &impl RangeBounds<u64>) -> Option<Inclusive> {
    let first = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some(Inclusive { first, last })
}

/// Like [`inclusive`], but an empty or inverted range is an error naming its bounds.
pub(crate) fn checked(range: &impl RangeBounds<u64>) -> Result<Inclusive, XaError> {
    inclusive(range).ok_or_else(|| XaError::InvalidRange {
        start: range.start_bound().cloned(),
        end: range.end_bound().cloned(),
    })
}

/// One aligned block: `2^shift` indices starting at `first` (`shift == 64`: everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) first: u64,
    pub(crate) shift: u32,
}

impl Block {
    /// The last index of the block.
    pub(crate) fn last(&self) -> u64 {
        if self.shift >= 64 {
            u64::MAX
        } else {
            self.first + ((1u64 << self.shift) - 1)
        }
    }
}

/// The canonical decomposition of `range` into blocks, in ascending order.
pub(crate) fn blocks<const SLOTS: usize>(range: Inclusive) -> Blocks<SLOTS> {
    Blocks {
        next: Some(range.first),
        last: range.last,
    }
}

/// Iterator of [`blocks`].
#[derive(Debug)]
pub(crate) struct Blocks<const SLOTS: usize> {
    next: Option<u64>,
    last: u64,
}

impl<const SLOTS: usize> Iterator for Blocks<SLOTS> {
    type Item = Block;

    fn next(&mut self) -> Option<Block> {
        let first = self.next?;
        if first == 0 && self.last == u64::MAX {
            self.next = None;
            return Some(Block {
                first,
                shift: Geometry::<SLOTS>::HEAD_SHIFT,
            });
        }
        let remaining = self.last - first; // block size - 1 must not exceed this
        let mut shift = 0;
        let mut candidate = Geometry::<SLOTS>::BITS;
        while candidate <= Geometry::<SLOTS>::TOP_SHIFT {
            let aligned = first & ((1u64 << candidate) - 1) == 0;
            if !aligned || (1u64 << candidate) - 1 > remaining {
                break;
            }
            shift = candidate;
            candidate += Geometry::<SLOTS>::BITS;
        }
        let block = Block { first, shift };
        let block_last = block.last();
        self.next = if block_last >= self.last {
            None
        } else {
            Some(block_last + 1)
        };
        Some(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect<const S: usize>(first: u64, last: u64) -> Vec<Block> {
        blocks::<S>(Inclusive { first, last }).collect()
    }

    #[test]
    fn bounds_normalise_and_reject_empty() {
        assert_eq!(inclusive(&(3..5)), Some(Inclusive { first: 3, last: 4 }));
        assert_eq!(inclusive(&(3..=3)), Some(Inclusive { first: 3, last: 3 }));
        assert_eq!(
            inclusive(&(..)),
            Some(Inclusive {
                first: 0,
                last: u64::MAX
            })
        );
        assert_eq!(inclusive(&(5..5)), None);
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = 6..5;
        assert_eq!(inclusive(&inverted), None);
        assert_eq!(inclusive(&(..0)), None);
        assert_eq!(
            inclusive(&(u64::MAX..)),
            Some(Inclusive {
                first: u64::MAX,
                last: u64::MAX
            })
        );
        let excluded = (Bound::Excluded(u64::MAX), Bound::Unbounded);
        assert_eq!(inclusive(&excluded), None);
        assert!(matches!(
            checked(&(5..5)),
            Err(XaError::InvalidRange { .. })
        ));
    }

    #[test]
    fn decomposition_covers_exactly_with_aligned_blocks() {
        let cases = [
            (0, 0),
            (0, 63),
            (0, 64),
            (1, 127),
            (5, 4099),
            (4095, 4096),
            (123_456, 123_456 + 100_000),
            (0, (1 << 40) - 1),
            (u64::MAX - 70, u64::MAX),
            (1, u64::MAX),
            (0, u64::MAX - 1),
        ];
        for (first, last) in cases {
            for blocks in [collect::<64>(first, last), collect::<4>(first, last)] {
                let mut next = first;
                for b in &blocks {
                    assert_eq!(b.first, next);
                    assert!(b.shift == 64 || b.first & ((1u64 << b.shift) - 1) == 0);
                    next = b.last().wrapping_add(1);
                }
                assert_eq!(blocks.last().unwrap().last(), last);
            }
        }
        assert_eq!(
            collect::<64>(0, u64::MAX),
            vec![Block {
                first: 0,
                shift: 64
            }]
        );
        assert_eq!(
            collect::<64>(0, 127),
            vec![
                Block { first: 0, shift: 6 },
                Block {
                    first: 64,
                    shift: 6
                }
            ]
        );
        // O(levels x slots) blocks for any range.
        assert!(collect::<64>(1, u64::MAX - 1).len() <= 2 * 63 * 11);
        assert_eq!(collect::<64>(0, (1 << 40) - 1).len(), 16);
    }
}
