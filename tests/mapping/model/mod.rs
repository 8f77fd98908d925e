//! The page cache ([`Mapping`]) against a sequential model, over random operation
//! sequences (quickcheck, through `tests/support/quickcheck_harness.rs`: fixed seed,
//! shrinking, `QUICKCHECK_TESTS` for more cases).
//!
//! Each sequence runs twice: on a 64-slot tree with 64-byte pages and on a 4-slot tree
//! with 4-byte pages (multi-index lock entries split within a few operations). A page
//! holds four sectors (`[u64; 4]`). Page indices are mostly small or among the last
//! four pages of the index space (`MAX-k`: the last page that a byte offset can reach),
//! so sizes, ranges and edits touch `u64::MAX`.
//!
//! The model is a device (page index -> sectors), a cache (index -> page data and dirty
//! flag, or a shadow value), the file size, and the page ranges of the direct IOs this
//! thread still holds. Every call's answer is compared exactly (data, counts, errors:
//! `InvalidRange`, `Unaligned`, `OutsideFile`, `TooLarge`, `BeyondEof`,
//! `Lock(WouldDeadlock)`, `Io`), and so is every callback the mapping makes: the indices
//! `fill` is asked for (a fault's one index; readahead's missing, unlocked indices below
//! end of file, ascending), the `(index, data)` list that write-back writes and that a
//! direct IO hands to `flush`, and an edit's `dirty()` list, range and new size. Fills,
//! flushes and write-backs fail on demand: nothing cached is lost, flags and the DIRTY
//! mark stay in step. Edits are then applied to the device as a file system would:
//! truncate and hole punch zero, collapse moves data down, insert moves it up and leaves
//! zeros.
//!
//! After every operation: the cached pages and shadow entries (`pages().iter(..)`) with
//! their data, each page's dirty flag against its DIRTY mark, no WRITEBACK mark or flag,
//! `dirty_pages(..)`, `cached_pages()`, the size, both devices, the tree's invariants,
//! and the lock entries: exactly the held direct IOs' pages, with their holder counts (no
//! lock entry is left behind by a fault, a readahead, a refused edit or a failed flush).
//!
//! The decoder and shrinker are `tests/support/mapping_ops.rs`, the model
//! `tests/support/page_cache_model.rs`. 500 cases of up to 120 operations, about 9 s in
//! a debug build.
//!
//! Not vacuous (checked by breaking the model on purpose, then restoring it): a model
//! whose direct IO forgets to hand the last dirty page to `flush` fails at once, shrunk
//! to `[SetSize(MAX), Write(page 0), Direct(0..)]` (the mapping flushed page 0, the model
//! expected nothing); a model whose truncate hands over no straddling page fails, shrunk
//! to `[SetSize, Write(page 4), Truncate(inside page 4)]`; a model that leaves a page
//! flushed before a failing flush still dirty fails on the cache comparison. On the
//! mapping's side: a `read_pages` that counts the page past the end of file as read
//! fails at its first short read; a readahead whose scan takes shadow entries for
//! cached pages fails at its first readahead over one (the fill is asked for fewer
//! indices).
#![cfg(not(loom))]

use crate::support::mapping_ops::{shrink_ops, Bytes, Op, Pages, Pg, Pos};
use crate::support::quickcheck_harness::{check_matches_model, DriverOp};

mod driver;

use driver::run;

impl DriverOp for Op {
    const RUN: fn(&[Op]) = run;
    const SHRINK_OPS: fn(&[Op]) -> Vec<Vec<Op>> = shrink_ops;
}

#[test]
fn mapping_matches_model() {
    check_matches_model::<Op>();
}

/// Hand-written sequences for the edges the generator reaches only by luck.
#[test]
fn mapping_model_edge_cases() {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let top = |k: u64| Pg(u64::MAX - k);
    let max = Pos(top(0), 3, 255); // byte u64::MAX
    let range = |start, end| Bytes {
        start,
        end,
        relative: false,
    };
    let pages = |start: u64, len: u8| Bytes {
        start: Included(Pos(Pg(start), 0, 0)),
        end: Excluded(Pos(Pg(u64::from(len)), 0, 0)),
        relative: true,
    };
    let write = |page| Op::Write {
        page,
        sector: 1,
        fail: false,
    };
    let direct = |bytes, fail_at, hold| Op::Direct {
        bytes,
        write: true,
        fail_at,
        hold,
    };
    let cases = vec![
        // The last pages of the index space: a held direct IO over `..` blocks faults
        // and edits with WouldDeadlock, a second one joins it; insert cannot grow past
        // u64::MAX; truncate to u64::MAX keeps the straddling last page.
        vec![
            Op::SetSize(max),
            write(top(0)),
            write(top(1)),
            Op::Readahead {
                first: top(3),
                len: 8,
                give: None,
                fail: false,
            },
            direct(range(Included(Pos(top(1), 2, 0)), Unbounded), None, true),
            Op::Fault {
                page: top(0),
                fail: false,
            },
            Op::Truncate(Pos(top(3), 0, 0)),
            direct(range(Unbounded, Included(max)), Some(1), true),
            Op::Release(0),
            Op::Release(0),
            write(top(0)),
            Op::Insert(pages(0, 1)),
            Op::Truncate(max),
            Op::Collapse(range(
                Included(Pos(top(2), 0, 0)),
                Excluded(Pos(top(1), 0, 0)),
            )),
        ],
        // Shadow entries: a failed fill, a short readahead and a failed flush put them
        // back; a direct IO and an edit drop them.
        vec![
            Op::SetSize(Pos(Pg(8), 0, 0)),
            Op::Fault {
                page: Pg(2),
                fail: false,
            },
            Op::Fault {
                page: Pg(3),
                fail: false,
            },
            Op::Reclaim(Pg(2)),
            Op::Reclaim(Pg(3)),
            Op::Fault {
                page: Pg(2),
                fail: true,
            },
            Op::Readahead {
                first: Pg(0),
                len: 4,
                give: Some(1),
                fail: false,
            },
            write(Pg(0)),
            write(Pg(4)),
            direct(pages(0, 5), Some(1), false),
            direct(
                range(Included(Pos(Pg(0), 1, 1)), Excluded(Pos(Pg(3), 0, 0))),
                None,
                false,
            ),
            Op::PunchHole(range(Included(Pos(Pg(3), 0, 0)), Unbounded)),
        ],
        // Write-back failing half-way, then edits that refuse.
        vec![
            Op::SetSize(Pos(Pg(6), 2, 0)),
            write(Pg(1)),
            write(Pg(5)),
            write(Pg(6)),
            Op::Writeback {
                pages: Pages(Unbounded, Unbounded),
                fail_at: Some(1),
            },
            Op::Collapse(pages(4, 3)),
            Op::Collapse(range(
                Included(Pos(Pg(0), 0, 1)),
                Excluded(Pos(Pg(1), 0, 0)),
            )),
            Op::Insert(pages(7, 1)),
            Op::PunchHole(range(
                Included(Pos(Pg(5), 0, 0)),
                Excluded(Pos(Pg(5), 0, 0)),
            )),
            Op::Collapse(pages(1, 1)),
            Op::Insert(pages(0, 2)),
        ],
        // Mapping::reclaim: only clean cached pages go, and a fault reads them again.
        vec![
            Op::SetSize(Pos(Pg(4), 0, 0)),
            Op::Fault {
                page: Pg(1),
                fail: false,
            },
            write(Pg(2)),
            Op::Drop(Pg(1)),
            Op::Drop(Pg(2)),
            Op::Drop(Pg(3)),
            Op::Reclaim(Pg(0)),
            Op::Drop(Pg(0)),
            Op::Writeback {
                pages: Pages(Unbounded, Unbounded),
                fail_at: None,
            },
            Op::Drop(Pg(2)),
            Op::Fault {
                page: Pg(1),
                fail: false,
            },
        ],
    ];
    for ops in cases {
        run(&ops);
    }
}
