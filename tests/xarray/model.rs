//! The tree against a sequential model, over random operation sequences (quickcheck).
//!
//! Operations come from the same edge-biased decoder the fuzzer uses: quickcheck draws
//! random bytes and `tests/support/xarray_ops.rs` decodes them into [`Op`]s; shrinking
//! works on the decoded operations (drop chunks, then simplify indices, ranges and
//! values toward 0 and the edges). The harness, shared with `tests/lock/model.rs`, is
//! `tests/support/quickcheck_harness.rs`: the seed is fixed, so a failure reproduces;
//! set `QUICKCHECK_TESTS` to run more cases.
#![cfg(not(loom))]

use crate::support::quickcheck_harness::{check_matches_model, DriverOp};
use crate::support::xarray_ops;
use crate::support::xarray_ops::{run, shrink_ops, Op};

impl DriverOp for Op {
    const RUN: fn(&[Op]) = run;
    const SHRINK_OPS: fn(&[Op]) -> Vec<Vec<Op>> = shrink_ops;
}

#[test]
fn xarray_matches_model() {
    check_matches_model::<Op>();
}

/// Hand-written sequences for the cases the model's rules single out.
#[test]
fn model_edge_cases() {
    use std::ops::Bound::*;
    use xarray_ops::{Expected, Index, ItemSource, MarkSel, NewEntry, Range, Value};
    let range = |start, end| Range { start, end };
    let top = u64::MAX;
    let cases: Vec<Vec<Op>> = vec![
        // Marks join when a range store replaces marked entries with one block.
        vec![
            Op::Store {
                index: Index(5),
                item: ItemSource::Fresh,
            },
            Op::SetMark {
                index: Index(5),
                mark: MarkSel::M1,
            },
            Op::StoreValue {
                index: Index(9),
                value: Value(1),
            },
            Op::SetMark {
                index: Index(9),
                mark: MarkSel::M2,
            },
            Op::StoreRange {
                range: range(Included(0), Excluded(64)),
                value: Value(3),
            },
            Op::ClearMark {
                index: Index(6),
                mark: MarkSel::M1,
            },
            Op::Erase { index: Index(63) },
        ],
        // The whole index space, then holes at both ends.
        vec![
            Op::StoreRange {
                range: range(Unbounded, Unbounded),
                value: Value(2),
            },
            Op::SetMark {
                index: Index(top),
                mark: MarkSel::M0,
            },
            Op::Erase { index: Index(0) },
            Op::EraseRange {
                range: range(Included(top - 1), Unbounded),
            },
            Op::Find {
                from: Index(top - 1),
            },
            Op::EraseRange {
                range: range(Unbounded, Unbounded),
            },
        ],
        // Empty, inverted and too-large requests change nothing.
        vec![
            Op::StoreRange {
                range: range(Included(5), Excluded(5)),
                value: Value(1),
            },
            Op::StoreRange {
                range: range(Excluded(top), Unbounded),
                value: Value(1),
            },
            Op::EraseRange {
                range: range(Included(7), Included(6)),
            },
            Op::StoreValue {
                index: Index(3),
                value: Value(u64::MAX),
            },
            Op::StoreRange {
                range: range(Included(1), Included(2)),
                value: Value(1 << 63),
            },
            Op::Iter {
                range: range(Unbounded, Excluded(0)),
            },
        ],
        // compare_exchange: identity, not equality; refusal hands the value back.
        vec![
            Op::Store {
                index: Index(top),
                item: ItemSource::Fresh,
            },
            Op::Store {
                index: Index(4096),
                item: ItemSource::SameAs(Index(top)),
            },
            Op::CompareExchange {
                index: Index(4096),
                current: Expected::ItemAt(Index(top)),
                new: NewEntry::Value(Value(7)),
            },
            Op::CompareExchange {
                index: Index(top),
                current: Expected::FreshItem,
                new: NewEntry::Empty,
            },
            Op::CompareExchange {
                index: Index(top),
                current: Expected::Current,
                new: NewEntry::Value(Value(1 << 63)),
            },
            Op::CompareExchange {
                index: Index(top),
                current: Expected::Current,
                new: NewEntry::Empty,
            },
        ],
    ];
    for ops in cases {
        run(&ops);
    }
}
