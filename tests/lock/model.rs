//! Range locks against a sequential model, over random operation sequences (quickcheck).
//!
//! Operations come from the same overlap-biased decoder the fuzzer uses: quickcheck draws
//! random bytes and `tests/support/range_ops.rs` decodes them into [`RangeOp`]s;
//! shrinking works on the decoded operations (drop chunks, then simplify ranges, modes
//! and indices toward 0 and the edges). The harness, shared with `tests/xarray/model.rs`, is
//! `tests/support/quickcheck_harness.rs`: the seed is fixed, so a failure reproduces;
//! set `QUICKCHECK_TESTS` to run more cases.
#![cfg(not(loom))]

use crate::support::quickcheck_harness::{check_matches_model, DriverOp};
use crate::support::range_ops;
use crate::support::range_ops::{run, shrink_ops, RangeOp};

impl DriverOp for RangeOp {
    const RUN: fn(&[RangeOp]) = run;
    const SHRINK_OPS: fn(&[RangeOp]) -> Vec<Vec<RangeOp>> = shrink_ops;
}

#[test]
fn range_locks_match_model() {
    check_matches_model::<RangeOp>();
}

/// Hand-written sequences for the cases the model's rules single out.
#[test]
fn lock_model_edge_cases() {
    use range_ops::{How, Index, MarkSel, Mode, NewEntry, Pick, Range, Value};
    use std::ops::Bound::*;
    let range = |start, end| Range { start, end };
    let top = u64::MAX;
    let lock = |range, mode, how| RangeOp::Lock { range, mode, how };
    let cases: Vec<Vec<RangeOp>> = vec![
        // Shared locks stack and count holders; an Exclusive one over them is refused
        // with WouldDeadlock at the first shared index (this thread holds it).
        vec![
            RangeOp::Store { index: Index(5) },
            RangeOp::SetMark {
                index: Index(5),
                mark: MarkSel::M1,
            },
            RangeOp::StoreRange {
                range: range(Included(8), Excluded(24)),
                value: Value(3),
            },
            lock(range(Included(2), Included(9)), Mode::Shared, How::Try),
            lock(
                range(Included(7), Included(20)),
                Mode::Shared,
                How::Blocking,
            ),
            lock(range(Included(0), Included(30)), Mode::Exclusive, How::Try),
            lock(
                range(Included(0), Included(1)),
                Mode::Exclusive,
                How::Blocking,
            ),
            RangeOp::Get { index: Index(8) },
            RangeOp::Store { index: Index(9) },
            RangeOp::Erase { index: Index(20) },
            RangeOp::EraseRange {
                range: range(Included(21), Unbounded),
            },
            RangeOp::Unlock { guard: Pick(0) },
            RangeOp::Unlock { guard: Pick(0) },
        ],
        // Detached holders make a conflict WouldBlock / TimedOut instead.
        vec![
            lock(
                range(Included(top - 3), Unbounded),
                Mode::Exclusive,
                How::Try,
            ),
            RangeOp::Detach { guard: Pick(0) },
            lock(
                range(Included(top), Included(top)),
                Mode::Shared,
                How::Blocking,
            ),
            lock(range(Unbounded, Unbounded), Mode::Shared, How::TimeoutZero),
            lock(
                range(Included(0), Excluded(top - 3)),
                Mode::Shared,
                How::Try,
            ),
            RangeOp::Downgrade { guard: Pick(1) },
            RangeOp::Unlock { guard: Pick(0) },
        ],
        // The whole-range fast path, its downgrade, and publishes.
        vec![
            lock(range(Unbounded, Unbounded), Mode::Exclusive, How::Blocking),
            RangeOp::Downgrade { guard: Pick(0) },
            lock(range(Included(3), Included(3)), Mode::Shared, How::Try),
            RangeOp::Publish { guard: Pick(1) },
            RangeOp::Unlock { guard: Pick(0) },
            lock(range(Included(3), Included(3)), Mode::Exclusive, How::Try),
            RangeOp::Publish { guard: Pick(0) },
            RangeOp::CompareExchange {
                index: Index(3),
                new: NewEntry::Value(Value(1)),
            },
        ],
        // A refusal after evicting a prefix puts the items and values back, marks
        // included (WouldDeadlock while attached, WouldBlock once detached).
        vec![
            RangeOp::Store { index: Index(1) },
            RangeOp::SetMark {
                index: Index(1),
                mark: MarkSel::M0,
            },
            RangeOp::StoreRange {
                range: range(Included(4), Excluded(16)),
                value: Value(2),
            },
            RangeOp::SetMark {
                index: Index(6),
                mark: MarkSel::M2,
            },
            lock(range(Included(10), Included(10)), Mode::Shared, How::Try),
            lock(range(Included(0), Included(20)), Mode::Exclusive, How::Try),
            RangeOp::Detach { guard: Pick(0) },
            lock(
                range(Included(0), Included(20)),
                Mode::Exclusive,
                How::Blocking,
            ),
            lock(
                range(Unbounded, Unbounded),
                Mode::Exclusive,
                How::TimeoutZero,
            ),
            lock(range(Included(0), Included(9)), Mode::Exclusive, How::Try),
            RangeOp::TakeEvicted { guard: Pick(1) },
        ],
        // Empty and inverted ranges.
        vec![
            lock(range(Included(5), Excluded(5)), Mode::Shared, How::Try),
            lock(
                range(Excluded(top), Unbounded),
                Mode::Exclusive,
                How::Blocking,
            ),
            lock(
                range(Unbounded, Excluded(0)),
                Mode::Exclusive,
                How::TimeoutZero,
            ),
            lock(range(Included(7), Included(6)), Mode::Shared, How::Try),
        ],
    ];
    for ops in cases {
        run(&ops);
    }
}
