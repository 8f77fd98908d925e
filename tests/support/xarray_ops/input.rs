//! Operations, their edge-biased decoding from fuzzer bytes, and shrinking for quickcheck.

use std::fmt;
use std::ops::Bound;

use arbitrary::{Arbitrary, Unstructured};
use rangelock::{Mark, MAX_VALUE};

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

fn fmt_index(f: &mut fmt::Formatter<'_>, index: u64) -> fmt::Result {
    if index >= u64::MAX - 4096 {
        write!(f, "MAX-{}", u64::MAX - index)
    } else if index >= 1 << 20 {
        write!(f, "{index:#x}")
    } else {
        write!(f, "{index}")
    }
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
        let kind = u8::arbitrary(u)? % 8;
        let (start, end) = match kind {
            0..=3 => {
                let first = Index::arbitrary(u)?.0;
                let len = match u8::arbitrary(u)? % 8 {
                    7 => u64::arbitrary(u)?,
                    _ => LENGTHS[u.choose_index(LENGTHS.len())?],
                };
                let end = first.saturating_add(len);
                if bool::arbitrary(u)? {
                    (Bound::Included(first), Bound::Included(end))
                } else {
                    (Bound::Included(first), Bound::Excluded(end))
                }
            }
            4 => (arbitrary_bound(u)?, arbitrary_bound(u)?),
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

/// One of the three marks.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkSel {
    M0,
    M1,
    M2,
}

impl MarkSel {
    pub(super) fn mark(self) -> Mark {
        match self {
            MarkSel::M0 => Mark::M0,
            MarkSel::M1 => Mark::M1,
            MarkSel::M2 => Mark::M2,
        }
    }

    pub(super) fn bit(self) -> u8 {
        1 << (self as u8)
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

/// Simpler candidates for `index`: 0, then the edges below it, then halfway to the
/// nearest edge below (so a shrink chain takes O(64) steps, never O(index)).
fn shrink_index(index: u64) -> Vec<u64> {
    let mut out = Vec::new();
    if index == 0 {
        return out;
    }
    let mut edges: Vec<u64> = EDGES.iter().copied().filter(|&e| e < index).collect();
    edges.sort_unstable();
    edges.dedup();
    out.extend(&edges);
    let below = edges.last().copied().unwrap_or(0);
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
    pub(super) fn shrink(self) -> Vec<Index> {
        shrink_index(self.0).into_iter().map(Index).collect()
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
        let mut out: Vec<Range> = shrink_bound(self.start)
            .into_iter()
            .map(|start| Range { start, ..self })
            .collect();
        out.extend(
            shrink_bound(self.end)
                .into_iter()
                .map(|end| Range { end, ..self }),
        );
        out
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
                out.extend(
                    index
                        .shrink()
                        .into_iter()
                        .map(|index| Store { index, item }),
                );
                out
            }
            StoreValue { index, value } => {
                let mut out: Vec<Op> = index
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
            StoreRange { range, value } => {
                let mut out: Vec<Op> = range
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
            Erase { index } => index
                .shrink()
                .into_iter()
                .map(|index| Erase { index })
                .collect(),
            EraseRange { range } => range
                .shrink()
                .into_iter()
                .map(|range| EraseRange { range })
                .collect(),
            CompareExchange {
                index,
                current,
                new,
            } => index
                .shrink()
                .into_iter()
                .map(|index| CompareExchange {
                    index,
                    current,
                    new,
                })
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
            GetMark { index, mark } => index
                .shrink()
                .into_iter()
                .map(|index| GetMark { index, mark })
                .collect(),
            Load { index } => index
                .shrink()
                .into_iter()
                .map(|index| Load { index })
                .collect(),
            Get { index } => index
                .shrink()
                .into_iter()
                .map(|index| Get { index })
                .collect(),
            Find { from } => from
                .shrink()
                .into_iter()
                .map(|from| Find { from })
                .collect(),
            Iter { range } => range
                .shrink()
                .into_iter()
                .map(|range| Iter { range })
                .collect(),
            IterMarked { range, mark } => range
                .shrink()
                .into_iter()
                .map(|range| IterMarked { range, mark })
                .collect(),
            AnyMarked { .. } | Clear => Vec::new(),
        }
    }
}

/// Simpler versions of an operation sequence: drop chunks (halves, quarters, ... single
/// operations), then simplify one operation at a time.
pub fn shrink_ops(ops: &[Op]) -> Vec<Vec<Op>> {
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
