//! Range-lock operations, their overlap-biased decoding from fuzzer bytes, and shrinking
//! for quickcheck.

use std::fmt;
use std::ops::Bound;

use arbitrary::{Arbitrary, Unstructured};
use rangelock::{LockMode, MAX_VALUE};

pub use super::arbitrary_indices::MarkSel;
use super::arbitrary_indices::{
    arbitrary_bound, arbitrary_span, each, fmt_bounds, fmt_index, inclusive, shrink_bounds,
    shrink_index, shrink_seq,
};

/// Indices where lock ranges and tree shapes meet: fan-out edges of 4 and 64 slots, the
/// top levels, and the top of the index space (decoding adds a few either side).
pub const EDGES: [u64; 24] = [
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
    4095,
    4096,
    1 << 32,
    1 << 60,
    1 << 62,
    1 << 63,
    3 << 62,
    15 << 60,
    u64::MAX - 4096,
    u64::MAX - 255,
    u64::MAX - 63,
    u64::MAX - 15,
    u64::MAX - 3,
    u64::MAX,
];

/// Range lengths (last minus first) worth trying.
const LENGTHS: [u64; 16] = [
    0,
    1,
    2,
    3,
    4,
    5,
    15,
    16,
    63,
    64,
    255,
    4096,
    1 << 32,
    1 << 60,
    1 << 63,
    u64::MAX,
];

/// An index: mostly a small one or one just below `u64::MAX` (so that ranges overlap
/// often), else an edge (exactly or a few off), or any `u64`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Index(pub u64);

impl<'a> Arbitrary<'a> for Index {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let index = match u8::arbitrary(u)? % 16 {
            0..=5 => u64::from(u8::arbitrary(u)? % 24),
            6..=8 => u64::MAX - u64::from(u8::arbitrary(u)? % 24),
            9..=11 => {
                let edge = EDGES[u.choose_index(EDGES.len())?];
                edge.wrapping_add_signed(u.int_in_range(-2i64..=2)?)
            }
            12..=14 => EDGES[u.choose_index(EDGES.len())?],
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

/// A value to store: mostly tiny (neighbouring runs often compare equal), sometimes
/// [`MAX_VALUE`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Value(pub u64);

impl<'a> Arbitrary<'a> for Value {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let value = match u8::arbitrary(u)? % 8 {
            0..=5 => u64::from(u8::arbitrary(u)? % 4),
            6 => MAX_VALUE,
            _ => u64::arbitrary(u)? & MAX_VALUE,
        };
        Ok(Value(value))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_index(f, self.0)
    }
}

/// A range as the caller writes it: any pair of bounds, so empty, inverted and unbounded
/// ranges all occur. Most are an index plus a length; one in five is a single index.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: Bound<u64>,
    pub end: Bound<u64>,
}

impl Range {
    pub fn bounds(&self) -> (Bound<u64>, Bound<u64>) {
        (self.start, self.end)
    }

    pub fn single(index: u64) -> Range {
        Range {
            start: Bound::Included(index),
            end: Bound::Included(index),
        }
    }
}

impl<'a> Arbitrary<'a> for Range {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let (start, end) = match u8::arbitrary(u)? % 10 {
            0..=4 => {
                let first = Index::arbitrary(u)?.0;
                let len = match u8::arbitrary(u)? % 8 {
                    0..=3 => u64::from(u8::arbitrary(u)? % 8),
                    _ => LENGTHS[u.choose_index(LENGTHS.len())?],
                };
                arbitrary_span(u, first, len)?
            }
            5 | 6 => {
                let index = Index::arbitrary(u)?.0;
                (Bound::Included(index), Bound::Included(index))
            }
            7 => (
                arbitrary_bound(u, arbitrary_index)?,
                arbitrary_bound(u, arbitrary_index)?,
            ),
            8 => (Bound::Unbounded, Bound::Unbounded),
            _ => {
                let index = Index::arbitrary(u)?.0;
                match u8::arbitrary(u)? % 4 {
                    0 => (Bound::Included(index), Bound::Unbounded),
                    1 => (Bound::Excluded(index), Bound::Unbounded),
                    2 => (Bound::Unbounded, Bound::Included(index)),
                    _ => (Bound::Unbounded, Bound::Excluded(index)),
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

/// A lock mode.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl Mode {
    pub fn mode(self) -> LockMode {
        match self {
            Mode::Shared => LockMode::Shared,
            Mode::Exclusive => LockMode::Exclusive,
        }
    }
}

/// Which acquisition call: `try_lock_range`, `lock_range_timeout` with a zero timeout,
/// or `lock_range`. A blocking call that would sleep (on a range only detached guards
/// hold: nobody would ever wake it) runs as `try_lock_range` instead.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Try,
    TimeoutZero,
    Blocking,
}

/// The `new` entry of a `compare_exchange` whose `current` is what the model holds.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewEntry {
    Empty,
    Value(Value),
    FreshItem,
}

/// The k-th live guard (modulo their number; the operation is skipped when none lives).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick(pub u8);

/// One call on the tree or on a guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeOp {
    /// Acquire a range lock.
    Lock {
        range: Range,
        mode: Mode,
        how: How,
    },
    /// Drop a guard.
    Unlock {
        guard: Pick,
    },
    /// `RangeGuard::downgrade` (skipped on a detached guard).
    Downgrade {
        guard: Pick,
    },
    /// `RangeGuard::publish` of a fresh item (skipped on a detached guard).
    Publish {
        guard: Pick,
    },
    /// `RangeGuard::detach`.
    Detach {
        guard: Pick,
    },
    /// `take_evicted`.
    TakeEvicted {
        guard: Pick,
    },
    /// `store` of a fresh item.
    Store {
        index: Index,
    },
    StoreValue {
        index: Index,
        value: Value,
    },
    Erase {
        index: Index,
    },
    SetMark {
        index: Index,
        mark: MarkSel,
    },
    ClearMark {
        index: Index,
        mark: MarkSel,
    },
    /// `get` and `get_mark` of each mark.
    Get {
        index: Index,
    },
    /// `compare_exchange` from the model's entry (a lock entry never matches).
    CompareExchange {
        index: Index,
        new: NewEntry,
    },
    StoreRange {
        range: Range,
        value: Value,
    },
    EraseRange {
        range: Range,
    },
    /// `clear` (lock entries stay).
    Clear,
    /// `trim`: unlinks the empty nodes a tree keeps for lockers; no index changes.
    Trim,
}

impl<'a> Arbitrary<'a> for RangeOp {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        use RangeOp::*;
        // Weighted: a third of the operations acquire, a sixth release.
        Ok(match u8::arbitrary(u)? % 32 {
            0..=10 => Lock {
                range: Range::arbitrary(u)?,
                mode: Mode::arbitrary(u)?,
                how: How::arbitrary(u)?,
            },
            11..=15 => Unlock {
                guard: Pick::arbitrary(u)?,
            },
            16 => Downgrade {
                guard: Pick::arbitrary(u)?,
            },
            17 | 18 => Publish {
                guard: Pick::arbitrary(u)?,
            },
            19 => Detach {
                guard: Pick::arbitrary(u)?,
            },
            20 => TakeEvicted {
                guard: Pick::arbitrary(u)?,
            },
            21 | 22 => Store {
                index: Index::arbitrary(u)?,
            },
            23 => StoreValue {
                index: Index::arbitrary(u)?,
                value: Value::arbitrary(u)?,
            },
            24 => Erase {
                index: Index::arbitrary(u)?,
            },
            25 => SetMark {
                index: Index::arbitrary(u)?,
                mark: MarkSel::arbitrary(u)?,
            },
            26 => ClearMark {
                index: Index::arbitrary(u)?,
                mark: MarkSel::arbitrary(u)?,
            },
            27 => Get {
                index: Index::arbitrary(u)?,
            },
            28 => CompareExchange {
                index: Index::arbitrary(u)?,
                new: NewEntry::arbitrary(u)?,
            },
            29 => StoreRange {
                range: Range::arbitrary(u)?,
                value: Value::arbitrary(u)?,
            },
            30 => EraseRange {
                range: Range::arbitrary(u)?,
            },
            // (A byte more chooses: inputs that end here, as before, stay `Clear`.)
            _ if bool::arbitrary(u)? => Trim,
            _ => Clear,
        })
    }
}

// Shrinking (for quickcheck; the fuzzer minimises bytes instead).

impl Index {
    fn shrink(self) -> Vec<Index> {
        each(shrink_index(self.0, &EDGES), Index)
    }
}

impl Value {
    fn shrink(self) -> Vec<Value> {
        match self.0 {
            0 => Vec::new(),
            1 => vec![Value(0)],
            v => vec![Value(0), Value(1), Value(v / 2)],
        }
    }
}

impl Range {
    fn shrink(self) -> Vec<Range> {
        let mut out = Vec::new();
        // A single index first (keeping the start), then each bound on its own.
        if let Some((first, last)) = inclusive(self.bounds()) {
            if first != last {
                out.push(Range::single(first));
            }
        }
        out.extend(each(
            shrink_bounds(self.bounds(), &EDGES),
            |(start, end)| Range { start, end },
        ));
        out
    }
}

impl Pick {
    fn shrink(self) -> Vec<Pick> {
        if self.0 == 0 {
            Vec::new()
        } else {
            vec![Pick(0), Pick(self.0 / 2)]
        }
    }
}

impl RangeOp {
    /// Simpler versions of this operation, simplest first.
    pub fn shrink(&self) -> Vec<RangeOp> {
        use RangeOp::*;
        match *self {
            Lock { range, mode, how } => {
                let mut out = Vec::new();
                if how != How::Try {
                    out.push(Lock {
                        range,
                        mode,
                        how: How::Try,
                    });
                }
                if mode == Mode::Exclusive {
                    out.push(Lock {
                        range,
                        mode: Mode::Shared,
                        how,
                    });
                }
                out.extend(each(range.shrink(), |range| Lock { range, mode, how }));
                out
            }
            Unlock { guard } => each(guard.shrink(), |guard| Unlock { guard }),
            Downgrade { guard } => each(guard.shrink(), |guard| Downgrade { guard }),
            Publish { guard } => each(guard.shrink(), |guard| Publish { guard }),
            Detach { guard } => each(guard.shrink(), |guard| Detach { guard }),
            TakeEvicted { guard } => each(guard.shrink(), |guard| TakeEvicted { guard }),
            Store { index } => {
                let mut out = vec![StoreValue {
                    index,
                    value: Value(0),
                }];
                out.extend(each(index.shrink(), |index| Store { index }));
                out
            }
            StoreValue { index, value } => {
                let mut out = each(index.shrink(), |index| StoreValue { index, value });
                out.extend(each(value.shrink(), |value| StoreValue { index, value }));
                out
            }
            Erase { index } => each(index.shrink(), |index| Erase { index }),
            SetMark { index, mark } => each(index.shrink(), |index| SetMark { index, mark }),
            ClearMark { index, mark } => each(index.shrink(), |index| ClearMark { index, mark }),
            Get { index } => each(index.shrink(), |index| Get { index }),
            CompareExchange { index, new } => {
                each(index.shrink(), |index| CompareExchange { index, new })
            }
            StoreRange { range, value } => {
                let mut out = each(range.shrink(), |range| StoreRange { range, value });
                out.extend(each(value.shrink(), |value| StoreRange { range, value }));
                out
            }
            EraseRange { range } => each(range.shrink(), |range| EraseRange { range }),
            Clear | Trim => Vec::new(),
        }
    }
}

/// Simpler versions of an operation sequence: drop chunks (halves, quarters, ... single
/// operations), then simplify one operation at a time.
pub fn shrink_ops(ops: &[RangeOp]) -> Vec<Vec<RangeOp>> {
    shrink_seq(ops, RangeOp::shrink)
}
