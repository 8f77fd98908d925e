//! What the two differential drivers' inputs share: the marks, how a range's bounds are
//! decoded, normalised and printed, and how indices, bounds and operation sequences
//! shrink.
//!
//! `tests/support/xarray_ops.rs`, `tests/support/range_ops.rs` and
//! `tests/support/mapping_ops.rs` use it as `super::arbitrary_indices` (mounted once by
//! `tests/support/mod.rs`, or by a fuzz target), so it also runs in their quickcheck
//! tests, corpus replays and fuzz targets. Each driver keeps its own edge list and index decoder (they
//! are biased differently) and passes them in. The decoders here read from
//! [`Unstructured`] with the same calls, in the same order, as the code they replaced:
//! the fuzz corpora decode to the same operations.

use std::fmt;
use std::ops::Bound;

use arbitrary::{Arbitrary, Unstructured};
use rangelock::Mark;

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

/// Writes an index the way the operations' `Debug` does: `MAX-n` near the top, hex from
/// `2^20`, decimal below.
pub fn fmt_index(f: &mut fmt::Formatter<'_>, index: u64) -> fmt::Result {
    if index >= u64::MAX - 4096 {
        write!(f, "MAX-{}", u64::MAX - index)
    } else if index >= 1 << 20 {
        write!(f, "{index:#x}")
    } else {
        write!(f, "{index}")
    }
}

/// An index in the notation of the operations' `Debug` ([`fmt_index`]), for messages.
pub struct Hex(pub u64);

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_index(f, self.0)
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_index(f, self.0)
    }
}

/// Writes a pair of bounds as a Rust range (`a..=b`, `(after a)..b`, `..`), indices as
/// [`fmt_index`] does.
pub fn fmt_bounds(f: &mut fmt::Formatter<'_>, start: Bound<u64>, end: Bound<u64>) -> fmt::Result {
    match start {
        Bound::Included(s) => fmt_index(f, s)?,
        Bound::Excluded(s) => {
            write!(f, "(after ")?;
            fmt_index(f, s)?;
            write!(f, ")")?;
        }
        Bound::Unbounded => {}
    }
    match end {
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

/// Decodes a bound: an index (through the driver's decoder `index`), then whether it is
/// included, excluded or ignored (unbounded).
pub fn arbitrary_bound<'a>(
    u: &mut Unstructured<'a>,
    index: fn(&mut Unstructured<'a>) -> arbitrary::Result<u64>,
) -> arbitrary::Result<Bound<u64>> {
    let index = index(u)?;
    Ok(match u8::arbitrary(u)? % 3 {
        0 => Bound::Included(index),
        1 => Bound::Excluded(index),
        _ => Bound::Unbounded,
    })
}

/// The range from `first` spanning `len` more indices (saturating at `u64::MAX`): one
/// more decoded `bool` picks whether the end is included or excluded.
pub fn arbitrary_span(
    u: &mut Unstructured<'_>,
    first: u64,
    len: u64,
) -> arbitrary::Result<(Bound<u64>, Bound<u64>)> {
    let end = first.saturating_add(len);
    Ok(if bool::arbitrary(u)? {
        (Bound::Included(first), Bound::Included(end))
    } else {
        (Bound::Included(first), Bound::Excluded(end))
    })
}

/// Normalises bounds to an inclusive `(first, last)`, `None` when no index is in range
/// (computed here, independently of the crate).
pub fn inclusive((start, end): (Bound<u64>, Bound<u64>)) -> Option<(u64, u64)> {
    let first = match start {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match end {
        Bound::Included(e) => e,
        Bound::Excluded(e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some((first, last))
}

// Shrinking (for quickcheck; the fuzzer minimises bytes instead).

/// Simpler candidates for `index`: the `edges` below it, ascending (0 first: it is an
/// edge), then halfway to the nearest edge below (so a shrink chain takes O(64) steps,
/// never O(index)).
pub fn shrink_index(index: u64, edges: &[u64]) -> Vec<u64> {
    if index == 0 {
        return Vec::new();
    }
    let mut out: Vec<u64> = edges.iter().copied().filter(|&e| e < index).collect();
    out.sort_unstable();
    out.dedup();
    let below = out.last().copied().unwrap_or(0);
    let halfway = below + (index - below) / 2;
    if !out.contains(&halfway) {
        out.push(halfway);
    }
    out
}

/// Simpler candidates for a bound: an excluded index becomes included first, then the
/// index shrinks (see [`shrink_index`]); `Unbounded` is already simplest.
fn shrink_bound(bound: Bound<u64>, edges: &[u64]) -> Vec<Bound<u64>> {
    match bound {
        Bound::Included(i) => each(shrink_index(i, edges), Bound::Included),
        Bound::Excluded(i) => {
            let mut out = vec![Bound::Included(i)];
            out.extend(shrink_index(i, edges).into_iter().map(Bound::Excluded));
            out
        }
        Bound::Unbounded => Vec::new(),
    }
}

/// Simpler candidates for a pair of bounds: each simpler start (the end kept), then each
/// simpler end (the start kept).
pub fn shrink_bounds(
    (start, end): (Bound<u64>, Bound<u64>),
    edges: &[u64],
) -> Vec<(Bound<u64>, Bound<u64>)> {
    let mut out = each(shrink_bound(start, edges), |start| (start, end));
    out.extend(shrink_bound(end, edges).into_iter().map(|end| (start, end)));
    out
}

/// `f` applied to each candidate, in order (rebuilds an operation around each simpler
/// field).
pub fn each<T, U>(candidates: Vec<T>, f: impl FnMut(T) -> U) -> Vec<U> {
    candidates.into_iter().map(f).collect()
}

/// Simpler versions of an operation sequence: drop chunks (halves, quarters, ... single
/// operations), then simplify one operation at a time (`shrink`, simplest first).
pub fn shrink_seq<T: Clone>(ops: &[T], shrink: impl Fn(&T) -> Vec<T>) -> Vec<Vec<T>> {
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
        for simpler in shrink(op) {
            let mut candidate = ops.to_vec();
            candidate[i] = simpler;
            out.push(candidate);
        }
    }
    out
}
