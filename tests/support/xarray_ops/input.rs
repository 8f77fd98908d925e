//! Operations, their edge-biased decoding from fuzzer bytes, and shrinking for quickcheck.

use std::fmt;
use std::ops::Bound;

use arbitrary::{Arbitrary, Unstructured};
use rangelock::MAX_VALUE;

pub use super::arbitrary_indices::MarkSel;
use super::arbitrary_indices::{
    arbitrary_bound, arbitrary_span, each, fmt_bounds, fmt_index, shrink_bounds, shrink_index,
    shrink_seq,
};

/// Indices where radix-tree bugs live: fan-out edges of 4 and 64 slots, `2^32`, the top
/// levels (the 64-slot top node has 16 slots of `2^60`) and the top of the index space.
pub const EDGES: [u64; 30] = [
    0,
    1,
    3,
    4,
    15,
    16,
    63,
    64,
    255,
    256,
    1023,
    1024,
    4095,
    4096,
    65535,
    65536,
    1 << 24,
    1 << 32,
    1 << 36,
    1 << 42,
    1 << 48,
    1 << 54,
    1 << 60,
    1 << 62,
    1 << 63,
    3 << 62,
    15 << 60,
    u64::MAX - 1,
    u64::MAX,
    u64::MAX - 63,
];

/// Range lengths worth trying from an edge.
const LENGTHS: [u64; 16] = [
    0,
    1,
    2,
    3,
    4,
    15,
    16,
    17,
    63,
    64,
    65,
    4095,
    4096,
    1 << 32,
    1 << 60,
    1 << 62,
];

/// An index, drawn mostly from [`EDGES`] (exactly or a few off), else a small number, a
/// random aligned index or any `u64`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Index(pub u64);

impl<'a> Arbitrary<'a> for Index {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let kind = u8::arbitrary(u)? % 16;
        let index = match kind {
            0..=6 => EDGES[u.choose_index(EDGES.len())?],
            7..=10 => {
                let edge = EDGES[u.choose_index(EDGES.len())?];
                edge.wrapping_add_signed(u.int_in_range(-4i64..=4)?)
            }
            11..=13 => u64::from(u8::arbitrary(u)?),
            14 => {
                let shift = u.int_in_range(0u32..=63)?;
                u64::arbitrary(u)? & !((1u64 << shift) - 1)
            }
            _ => u64::arbitrary(u)?,
        };
        Ok(Index(index))
    }
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_index(f, self.0)
    }
}

/// An [`Index`], as a bare `u64`.
fn arbitrary_index(u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
    Ok(Index::arbitrary(u)?.0)
}

/// A value to store: mostly tiny (so neighbouring runs often compare equal), sometimes
/// [`MAX_VALUE`], and sometimes too large (the tree must refuse it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Value(pub u64);

impl<'a> Arbitrary<'a> for Value {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let kind = u8::arbitrary(u)? % 8;
        let value = match kind {
            0..=4 => u64::from(u8::arbitrary(u)? % 4),
            5 => MAX_VALUE,
            6 => *u.choose(&[MAX_VALUE + 1, u64::MAX])?,
            _ => u64::arbitrary(u)?,
        };
        Ok(Value(value))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > MAX_VALUE {
            write!(f, "{:#x} (too large)", self.0)
        } else {
            fmt_index(f, self.0)
        }
    }
}

/// An index range as the caller writes it: any pair of bounds, so empty, inverted and
/// unbounded ranges all occur (most ranges are an edge plus a length).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: Bound<u64>,
    pub end: Bound<u64>,
}

impl Range {
    pub(super) fn bounds(&self) -> (Bound<u64>, Bound<u64>) {
        (self.start, self.end)
    }
}

impl<'a> Arbitrary<'a> for Range {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let kind = u8::arbitrary(u)? % 8;
        let (start, end) = match kind {
            0..=3 => {
                let first = Index::arbitrary(u)?.0;
                let len = match u8::arbitrary(u)? % 8 {
                    7 => u64::arbitrary(u)?,
                    _ => LENGTHS[u.choose_index(LENGTHS.len())?],
                };
                arbitrary_span(u, first, len)?
            }
            4 => (
                arbitrary_bound(u, arbitrary_index)?,
                arbitrary_bound(u, arbitrary_index)?,
            ),
            5 => (Bound::Unbounded, Bound::Unbounded),
            6 => {
                let start = Index::arbitrary(u)?.0;
                if bool::arbitrary(u)? {
                    (Bound::Included(start), Bound::Unbounded)
                } else {
                    (Bound::Excluded(start), Bound::Unbounded)
                }
            }
            _ => {
                let end = Index::arbitrary(u)?.0;
                if bool::arbitrary(u)? {
                    (Bound::Unbounded, Bound::Included(end))
                } else {
                    (Bound::Unbounded, Bound::Excluded(end))
                }
            }
        };
        Ok(Range { start, end })
    }
}

impl fmt::Debug for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_bounds(f, self.start, self.end)
    }
}

/// Which item a store hands over.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemSource {
    /// A new `Arc`.
    Fresh,
    /// The item the model holds at this index (a new `Arc` if it holds none there), so
    /// one item can sit at several indices.
    SameAs(Index),
}

/// The `current` argument of `compare_exchange`.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Whatever the model holds at the index (the exchange should succeed).
    Current,
    Empty,
    Value(Value),
    /// The item the model holds at this index (a never-stored `Arc` if none).
    ItemAt(Index),
    /// A never-stored `Arc` (never matches).
    FreshItem,
}

/// The `new` argument of `compare_exchange`.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewEntry {
    Empty,
    Value(Value),
    FreshItem,
    ItemAt(Index),
}

/// One call on the tree.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Store {
        index: Index,
        item: ItemSource,
    },
    StoreValue {
        index: Index,
        value: Value,
    },
    StoreRange {
        range: Range,
        value: Value,
    },
    Erase {
        index: Index,
    },
    EraseRange {
        range: Range,
    },
    CompareExchange {
        index: Index,
        current: Expected,
        new: NewEntry,
    },
    SetMark {
        index: Index,
        mark: MarkSel,
    },
    ClearMark {
        index: Index,
        mark: MarkSel,
    },
    GetMark {
        index: Index,
        mark: MarkSel,
    },
    Load {
        index: Index,
    },
    Get {
        index: Index,
    },
    Find {
        from: Index,
    },
    Iter {
        range: Range,
    },
    IterMarked {
        range: Range,
        mark: MarkSel,
    },
    AnyMarked {
        mark: MarkSel,
    },
    Clear,
}

// Shrinking (for quickcheck; the fuzzer minimises bytes instead).

impl Index {
    pub(super) fn shrink(self) -> Vec<Index> {
        each(shrink_index(self.0, &EDGES), Index)
    }
}

impl Value {
    pub(super) fn shrink(self) -> Vec<Value> {
        if self.0 > MAX_VALUE {
            // Keep it too large (that is what it tests), but the simplest such value.
            return if self.0 == MAX_VALUE + 1 {
                Vec::new()
            } else {
                vec![Value(MAX_VALUE + 1)]
            };
        }
        match self.0 {
            0 => Vec::new(),
            1 => vec![Value(0)],
            v => vec![Value(0), Value(1), Value(v / 2)],
        }
    }
}

impl Range {
    pub(super) fn shrink(self) -> Vec<Range> {
        each(shrink_bounds(self.bounds(), &EDGES), |(start, end)| Range {
            start,
            end,
        })
    }
}

impl Op {
    /// Simpler versions of this operation, simplest first.
    pub fn shrink(&self) -> Vec<Op> {
        use Op::*;
        match *self {
            Store { index, item } => {
                let mut out = vec![StoreValue {
                    index,
                    value: Value(0),
                }];
                if item != ItemSource::Fresh {
                    out.push(Store {
                        index,
                        item: ItemSource::Fresh,
                    });
                }
                out.extend(each(index.shrink(), |index| Store { index, item }));
                out
            }
            StoreValue { index, value } => {
                let mut out = each(index.shrink(), |index| StoreValue { index, value });
                out.extend(each(value.shrink(), |value| StoreValue { index, value }));
                out
            }
            StoreRange { range, value } => {
                let mut out = each(range.shrink(), |range| StoreRange { range, value });
                out.extend(each(value.shrink(), |value| StoreRange { range, value }));
                out
            }
            Erase { index } => each(index.shrink(), |index| Erase { index }),
            EraseRange { range } => each(range.shrink(), |range| EraseRange { range }),
            CompareExchange {
                index,
                current,
                new,
            } => each(index.shrink(), |index| CompareExchange {
                index,
                current,
                new,
            }),
            SetMark { index, mark } => each(index.shrink(), |index| SetMark { index, mark }),
            ClearMark { index, mark } => each(index.shrink(), |index| ClearMark { index, mark }),
            GetMark { index, mark } => each(index.shrink(), |index| GetMark { index, mark }),
            Load { index } => each(index.shrink(), |index| Load { index }),
            Get { index } => each(index.shrink(), |index| Get { index }),
            Find { from } => each(from.shrink(), |from| Find { from }),
            Iter { range } => each(range.shrink(), |range| Iter { range }),
            IterMarked { range, mark } => each(range.shrink(), |range| IterMarked { range, mark }),
            AnyMarked { .. } | Clear => Vec::new(),
        }
    }
}

/// Simpler versions of an operation sequence: drop chunks (halves, quarters, ... single
/// operations), then simplify one operation at a time.
pub fn shrink_ops(ops: &[Op]) -> Vec<Vec<Op>> {
    shrink_seq(ops, Op::shrink)
}
