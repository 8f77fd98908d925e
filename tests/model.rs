//! The tree against a sequential model, over random operation sequences (quickcheck).
//!
//! Operations come from the same edge-biased decoder the fuzzer uses: quickcheck draws
//! random bytes and `tests/support/xarray_ops.rs` decodes them into [`Op`]s; shrinking
//! works on the decoded operations (drop chunks, then simplify indices, ranges and
//! values toward 0 and the edges). The seed is fixed, so a failure reproduces; set
//! `QUICKCHECK_TESTS` to run more cases.
#![cfg(not(loom))]

#[path = "support/xarray_ops.rs"]
mod xarray_ops;

use arbitrary::Unstructured;
use quickcheck::{Arbitrary, Gen, QuickCheck};
use xarray_ops::{run, shrink_ops, Op};

/// A random operation sequence.
#[derive(Clone, Debug)]
struct Ops(Vec<Op>);

impl Arbitrary for Ops {
    fn arbitrary(g: &mut Gen) -> Self {
        // Up to `size` operations, each decoded from its own random bytes (more than
        // the largest operation needs), so the sequence length does not depend on
        // `arbitrary_take_rest`'s continuation bytes.
        let len = usize::arbitrary(g) % (g.size() + 1);
        let ops = (0..len)
            .map(|_| {
                let bytes: Vec<u8> = (0..32).map(|_| u8::arbitrary(g)).collect();
                <Op as arbitrary::Arbitrary>::arbitrary(&mut Unstructured::new(&bytes))
                    .expect("the operation decoder never fails")
            })
            .collect();
        Ops(ops)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        Box::new(shrink_ops(&self.0).into_iter().map(Ops))
    }
}

fn prop_matches_model(ops: Ops) -> bool {
    run(&ops.0);
    true
}

/// Cases, generator size (about the largest number of operations) and seed.
fn config() -> (u64, usize, u64) {
    if cfg!(miri) {
        (4, 12, 0x5eed)
    } else {
        (500, 120, 0x5eed)
    }
}

#[test]
fn xarray_matches_model() {
    let (tests, size, seed) = config();
    let tests = std::env::var("QUICKCHECK_TESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(tests);
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(size, seed))
        .tests(tests)
        .max_tests(tests)
        .quickcheck(prop_matches_model as fn(Ops) -> bool);
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
