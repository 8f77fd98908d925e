//! Range-lock operations, their overlap-biased decoding from fuzzer bytes, and shrinking
//! for quickcheck.

use std::fmt;
use std::ops::Bound;

use arbitrary::{Arbitrary, Unstructured};
use rangelock::{LockMode, Mark, MAX_VALUE};

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

pub(super) fn fmt_index(f: &mut fmt::Formatter<'_>, index: u64) -> fmt::Result {
    if index >= u64::MAX - 4096 {
        write!(f, "MAX-{}", u64::MAX - index)
    } else if index >= 1 << 20 {
        write!(f, "{index:#x}")
    } else {
        write!(f, "{index}")
    }
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

fn arbitrary_bound(u: &mut Unstructured<'_>) -> arbitrary::Result<Bound<u64>> {
    let index = Index::arbitrary(u)?.0;
    Ok(match u8::arbitrary(u)? % 3 {
        0 => Bound::Included(index),
        1 => Bound::Excluded(index),
        _ => Bound::Unbounded,
    })
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
                let end = first.saturating_add(len);
                if bool::arbitrary(u)? {
                    (Bound::Included(first), Bound::Included(end))
                } else {
                    (Bound::Included(first), Bound::Excluded(end))
                }
            }
            5 | 6 => {
                let index = Index::arbitrary(u)?.0;
                (Bound::Included(index), Bound::Included(index))
            }
            7 => (arbitrary_bound(u)?, arbitrary_bound(u)?),
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
        match self.start {
            Bound::Included(s) => fmt_index(f, s)?,
            Bound::Excluded(s) => {
                write!(f, "(after ")?;
                fmt_index(f, s)?;
                write!(f, ")")?;
            }
            Bound::Unbounded => {}
        }
        match self.end {
            Bound::Included(e) => {
                write!(f, "..=")?;
                fmt_index(f, e)
            }
            Bound::Excluded(e) => {
                write!(f, "..")?;
                fmt_index(f, e)
            }
            Bound::Unbounded => write!(f, ".."),
        }
    }
}

/// Normalises bounds to an inclusive `(first, last)`, `None` when no index is in range
/// (computed here, independently of the crate).
pub fn inclusive(range: Range) -> Option<(u64, u64)> {
    let first = match range.start {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match range.end {
        Bound::Included(e) => e,
        Bound::Excluded(e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some((first, last))
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

/// One of the three marks.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkSel {
    M0,
    M1,
    M2,
}

impl MarkSel {
    pub const ALL: [MarkSel; 3] = [MarkSel::M0, MarkSel::M1, MarkSel::M2];

    pub fn mark(self) -> Mark {
        match self {
            MarkSel::M0 => Mark::M0,
            MarkSel::M1 => Mark::M1,
            MarkSel::M2 => Mark::M2,
        }
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
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
            _ => Clear,
        })
    }
}

// Shrinking (for quickcheck; the fuzzer minimises bytes instead).

/// Simpler candidates for `index`: 0, the edges below it, then halfway to the nearest
/// edge below (a shrink chain takes O(64) steps, never O(index)).
fn shrink_index(index: u64) -> Vec<u64> {
    if index == 0 {
        return Vec::new();
    }
    let mut out: Vec<u64> = EDGES.iter().copied().filter(|&e| e < index).collect();
    out.sort_unstable();
    out.dedup();
    let below = out.last().copied().unwrap_or(0);
    let halfway = below + (index - below) / 2;
    if !out.contains(&halfway) {
        out.push(halfway);
    }
    out
}

fn shrink_bound(bound: Bound<u64>) -> Vec<Bound<u64>> {
    match bound {
        Bound::Included(i) => shrink_index(i).into_iter().map(Bound::Included).collect(),
        Bound::Excluded(i) => {
            let mut out = vec![Bound::Included(i)];
            out.extend(shrink_index(i).into_iter().map(Bound::Excluded));
            out
        }
        Bound::Unbounded => Vec::new(),
    }
}

impl Index {
    fn shrink(self) -> Vec<Index> {
        shrink_index(self.0).into_iter().map(Index).collect()
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
        if let Some((first, last)) = inclusive(self) {
            if first != last {
                out.push(Range::single(first));
            }
        }
        out.extend(
            shrink_bound(self.start)
                .into_iter()
                .map(|start| Range { start, ..self }),
        );
        out.extend(
            shrink_bound(self.end)
                .into_iter()
                .map(|end| Range { end, ..self }),
        );
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
                out.extend(
                    range
                        .shrink()
                        .into_iter()
                        .map(|range| Lock { range, mode, how }),
                );
                out
            }
            Unlock { guard } => guard
                .shrink()
                .into_iter()
                .map(|guard| Unlock { guard })
                .collect(),
            Downgrade { guard } => guard
                .shrink()
                .into_iter()
                .map(|guard| Downgrade { guard })
                .collect(),
            Publish { guard } => guard
                .shrink()
                .into_iter()
                .map(|guard| Publish { guard })
                .collect(),
            Detach { guard } => guard
                .shrink()
                .into_iter()
                .map(|guard| Detach { guard })
                .collect(),
            TakeEvicted { guard } => guard
                .shrink()
                .into_iter()
                .map(|guard| TakeEvicted { guard })
                .collect(),
            Store { index } => {
                let mut out = vec![StoreValue {
                    index,
                    value: Value(0),
                }];
                out.extend(index.shrink().into_iter().map(|index| Store { index }));
                out
            }
            StoreValue { index, value } => {
                let mut out: Vec<RangeOp> = index
                    .shrink()
                    .into_iter()
                    .map(|index| StoreValue { index, value })
                    .collect();
                out.extend(
                    value
                        .shrink()
                        .into_iter()
                        .map(|value| StoreValue { index, value }),
                );
                out
            }
            Erase { index } => index
                .shrink()
                .into_iter()
                .map(|index| Erase { index })
                .collect(),
            SetMark { index, mark } => index
                .shrink()
                .into_iter()
                .map(|index| SetMark { index, mark })
                .collect(),
            ClearMark { index, mark } => index
                .shrink()
                .into_iter()
                .map(|index| ClearMark { index, mark })
                .collect(),
            Get { index } => index
                .shrink()
                .into_iter()
                .map(|index| Get { index })
                .collect(),
            CompareExchange { index, new } => index
                .shrink()
                .into_iter()
                .map(|index| CompareExchange { index, new })
                .collect(),
            StoreRange { range, value } => {
                let mut out: Vec<RangeOp> = range
                    .shrink()
                    .into_iter()
                    .map(|range| StoreRange { range, value })
                    .collect();
                out.extend(
                    value
                        .shrink()
                        .into_iter()
                        .map(|value| StoreRange { range, value }),
                );
                out
            }
            EraseRange { range } => range
                .shrink()
                .into_iter()
                .map(|range| EraseRange { range })
                .collect(),
            Clear => Vec::new(),
        }
    }
}

/// Simpler versions of an operation sequence: drop chunks (halves, quarters, ... single
/// operations), then simplify one operation at a time.
pub fn shrink_ops(ops: &[RangeOp]) -> Vec<Vec<RangeOp>> {
    let mut out = Vec::new();
    let mut chunk = ops.len() / 2;
    while chunk >= 1 {
        let mut start = 0;
        while start < ops.len() {
            let end = (start + chunk).min(ops.len());
            let mut shorter = ops[..start].to_vec();
            shorter.extend_from_slice(&ops[end..]);
            out.push(shorter);
            start = end;
        }
        chunk /= 2;
    }
    if ops.len() == 1 {
        out.push(Vec::new());
    }
    for (i, op) in ops.iter().enumerate() {
        for simpler in op.shrink() {
            let mut candidate = ops.to_vec();
            candidate[i] = simpler;
            out.push(candidate);
        }
    }
    out
}
