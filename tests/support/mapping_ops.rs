//! Page-cache operations for `tests/mapping/model/`: their edge-biased decoding from
//! random bytes (quickcheck draws the bytes, see `quickcheck_harness.rs`) and their
//! shrinking. Page indices are mostly small or among the last four pages of the index
//! space; byte offsets are a page, a sector and an offset in the sector.

use std::fmt;
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use arbitrary::{Arbitrary, Unstructured};

use super::arbitrary_indices;
pub use arbitrary_indices::inclusive;
use arbitrary_indices::{fmt_index, shrink_index, shrink_seq};

/// A page index: below `2^63` as is (clamped to the last page), else `MAX-k` is the
/// `k`-th page from the top of the page index space of the mapping's geometry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pg(pub u64);

impl Pg {
    pub fn at(self, top: u64) -> u64 {
        if self.0 >= 1 << 63 {
            top - (u64::MAX - self.0)
        } else {
            self.0.min(top)
        }
    }
}

impl fmt::Debug for Pg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_index(f, self.0)
    }
}

impl<'a> Arbitrary<'a> for Pg {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const MIDDLE: [u64; 8] = [15, 16, 63, 64, 255, 256, 4096, 1 << 32];
        let k = u64::from(u8::arbitrary(u)?);
        Ok(Pg(match k % 8 {
            0..=4 => k / 8 % 8,
            5 | 6 => u64::MAX - k / 8 % 4,
            _ => MIDDLE[(k / 8 % 8) as usize],
        }))
    }
}

/// A byte offset: a page, a sector in it, and 0, 1 or the last byte of the sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos(pub Pg, pub u8, pub u8);

impl<'a> Arbitrary<'a> for Pos {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let page = Pg::arbitrary(u)?;
        let b = u8::arbitrary(u)?;
        let sector = if b & 1 == 0 { 0 } else { (b >> 1) % 4 };
        Ok(Pos(
            page,
            sector,
            [0, 0, 0, 0, 0, 1, 255, 255][usize::from(b >> 5)],
        ))
    }
}

/// A byte range: a start, and an end either absolute or a few pages after the start
/// (so sub-page and neighbouring ranges are common).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes {
    pub start: Bound<Pos>,
    pub end: Bound<Pos>,
    pub relative: bool,
}

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        let start = if b % 8 == 0 {
            Unbounded
        } else {
            Included(Pos::arbitrary(u)?)
        };
        let mut end = Pos::arbitrary(u)?;
        let relative = b & 24 != 0;
        if relative {
            end.0 = Pg(end.0 .0 % 3); // pages after the start
        }
        let end = match (b >> 5) % 8 {
            0..=2 => Included(end),
            3..=6 => Excluded(end),
            _ => Unbounded,
        };
        Ok(Bytes {
            start,
            end,
            relative,
        })
    }
}

/// A page range for write-back and `dirty_pages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pages(pub Bound<Pg>, pub Bound<Pg>);

impl<'a> Arbitrary<'a> for Pages {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let b = u8::arbitrary(u)?;
        let (s, e) = (Pg::arbitrary(u)?, Pg::arbitrary(u)?);
        let start = [Included(s), Included(s), Excluded(s), Unbounded][usize::from(b % 4)];
        let end = [Included(e), Excluded(e), Unbounded, Unbounded][usize::from(b / 4 % 4)];
        Ok(Pages(start, end))
    }
}

#[derive(Clone, Debug)]
pub enum Op {
    SetSize(Pos),
    Truncate(Pos),
    Fault {
        page: Pg,
        fail: bool,
    },
    Read {
        page: Pg,
        fail: bool,
    },
    /// `Mapping::read_pages` of `first..first + len`; `fail_at`: the fill (counted from
    /// 0 within the call) that fails.
    ReadPages {
        first: Pg,
        len: u8,
        fail_at: Option<u8>,
    },
    Write {
        page: Pg,
        sector: u8,
        fail: bool,
    },
    /// `give`: how many pages `fill` returns (all if `None`).
    Readahead {
        first: Pg,
        len: u8,
        give: Option<u8>,
        fail: bool,
    },
    /// `fail_at`: the write (counted modulo the number made) that fails.
    Writeback {
        pages: Pages,
        fail_at: Option<u8>,
    },
    DirtyPages(Pages),
    /// `hold`: keep the guard (up to three) instead of dropping it after the IO.
    Direct {
        bytes: Bytes,
        write: bool,
        fail_at: Option<u8>,
        hold: bool,
    },
    Release(u8),
    PunchHole(Bytes),
    Collapse(Bytes),
    Insert(Bytes),
    /// Replaces a clean cached page by a shadow entry (page reclaim, done on the tree).
    Reclaim(Pg),
    /// `Mapping::reclaim`: drops a clean cached page.
    Drop(Pg),
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let fail = |u: &mut Unstructured<'a>| Ok(u8::arbitrary(u)? % 6 == 0);
        let fail_at = |u: &mut Unstructured<'a>| {
            let b = u8::arbitrary(u)?;
            Ok((b % 4 == 0).then_some(b / 4))
        };
        // Collapse and insert want page-aligned ranges: mostly from a page start to one.
        let aligned = |u: &mut Unstructured<'a>| -> arbitrary::Result<Bytes> {
            let mut bytes = Bytes::arbitrary(u)?;
            if u8::arbitrary(u)? % 4 != 0 {
                let (s, e) = (Pg::arbitrary(u)?, 1 + u8::arbitrary(u)? % 3);
                bytes.start = Included(Pos(s, 0, 0));
                bytes.end = Excluded(Pos(Pg(u64::from(e)), 0, 0));
                bytes.relative = true;
            }
            Ok(bytes)
        };
        Ok(match u8::arbitrary(u)? % 24 {
            0..=2 => Op::SetSize(Pos::arbitrary(u)?),
            3 => Op::Truncate(Pos::arbitrary(u)?),
            4 | 5 => Op::Fault {
                page: Pg::arbitrary(u)?,
                fail: fail(u)?,
            },
            6 if bool::arbitrary(u)? => Op::Read {
                page: Pg::arbitrary(u)?,
                fail: fail(u)?,
            },
            // Up to 40 pages: two and a half lookup batches (`READ_BATCH` is 16).
            6 => Op::ReadPages {
                first: Pg::arbitrary(u)?,
                len: u8::arbitrary(u)? % 41,
                fail_at: fail_at(u)?.map(|n| n % 8),
            },
            7..=10 => Op::Write {
                page: Pg::arbitrary(u)?,
                sector: u8::arbitrary(u)? % 4,
                fail: fail(u)?,
            },
            11 => Op::Readahead {
                first: Pg::arbitrary(u)?,
                len: u8::arbitrary(u)? % 12,
                give: fail_at(u)?.map(|n| n % 4),
                fail: fail(u)?,
            },
            12 => Op::Writeback {
                pages: Pages::arbitrary(u)?,
                fail_at: fail_at(u)?,
            },
            13 => Op::DirtyPages(Pages::arbitrary(u)?),
            14..=16 => Op::Direct {
                bytes: Bytes::arbitrary(u)?,
                write: bool::arbitrary(u)?,
                fail_at: fail_at(u)?,
                hold: u8::arbitrary(u)? % 4 == 0,
            },
            17 => Op::Release(u8::arbitrary(u)?),
            18 => Op::PunchHole(Bytes::arbitrary(u)?),
            19 => Op::Collapse(aligned(u)?),
            20 => Op::Insert(aligned(u)?),
            21 => Op::Reclaim(Pg::arbitrary(u)?),
            22 => Op::Drop(Pg::arbitrary(u)?),
            _ => Op::Write {
                page: Pg::arbitrary(u)?,
                sector: 0,
                fail: false,
            },
        })
    }
}

/// Simpler versions of one operation: no failure, no hold, smaller pages.
fn shrink_op(op: &Op) -> Vec<Op> {
    let pages = |p: Pg| -> Vec<Pg> {
        let top = p.0 >= 1 << 63;
        let mut out: Vec<Pg> = shrink_index(if top { 0 } else { p.0 }, &[0, 1])
            .into_iter()
            .map(Pg)
            .collect();
        if top {
            out.insert(0, Pg(0));
            if p.0 != u64::MAX {
                out.push(Pg(u64::MAX));
            }
        }
        out
    };
    let mut out = Vec::new();
    match op.clone() {
        Op::Fault { page, fail } | Op::Read { page, fail } => {
            if fail {
                out.push(Op::Fault { page, fail: false });
            }
            out.extend(pages(page).into_iter().map(|page| Op::Fault { page, fail }));
        }
        Op::ReadPages {
            first,
            len,
            fail_at,
        } => {
            out.push(Op::Read {
                page: first,
                fail: false,
            });
            if fail_at.is_some() {
                out.push(Op::ReadPages {
                    first,
                    len,
                    fail_at: None,
                });
            }
            out.extend([len / 2, len.saturating_sub(1)].map(|len| Op::ReadPages {
                first,
                len,
                fail_at,
            }));
            out.extend(pages(first).into_iter().map(|first| Op::ReadPages {
                first,
                len,
                fail_at,
            }));
        }
        Op::Write { page, sector, fail } => {
            if fail || sector != 0 {
                out.push(Op::Write {
                    page,
                    sector: 0,
                    fail: false,
                });
            }
            out.extend(
                pages(page)
                    .into_iter()
                    .map(|page| Op::Write { page, sector, fail }),
            );
        }
        Op::Direct {
            bytes,
            write,
            fail_at,
            hold,
        } if fail_at.is_some() || hold => {
            out.push(Op::Direct {
                bytes,
                write,
                fail_at: None,
                hold: false,
            });
        }
        Op::Writeback {
            pages,
            fail_at: Some(_),
        } => {
            out.push(Op::Writeback {
                pages,
                fail_at: None,
            });
        }
        Op::SetSize(Pos(page, s, o)) => {
            out.extend(
                pages(page)
                    .into_iter()
                    .map(|page| Op::SetSize(Pos(page, s, o))),
            );
        }
        _ => {}
    }
    out
}

pub fn shrink_ops(ops: &[Op]) -> Vec<Vec<Op>> {
    shrink_seq(ops, shrink_op)
}
