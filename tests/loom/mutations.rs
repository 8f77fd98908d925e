//! Loom negative controls for the per-node write protocol and the lock records
//! (`src/xarray/cursor/`, `src/xarray/node.rs`, `src/xarray/record.rs`): each model runs
//! one race twice, once as built (it must pass) and once with one protection switched off
//! through `rangelock::mutation` (it must fail, for the reason the protection exists).
//!
//! | model | race | mutation | how it fails |
//! |---|---|---|---|
//! | [`two_writers_on_one_leaf`] | two stores into one leaf | `NodeLockSkipped` | causality violation on the leaf's `count` |
//! | [`claim_vs_node_being_freed`] | a one-index lock in a leaf vs the erase that frees the leaf | `ObsoleteIgnored` | the lock lands in the dead leaf: the index is not locked |
//! | [`claim_vs_split`] | a one-index lock inside a multi-index entry vs a store that splits it | `SlotNotReread` | one writer's new leaf replaces the other's: a lock or a page is lost |
//! | [`lookup_vs_record_reuse`] | a lock-free lookup vs a lock record freed and reused for other bounds | `RecordSeqUnchecked` | the lookup combines two publications' bounds: an index never locked reads as locked |
//! | [`mark_set_vs_propagation_under_way`] | two marks set in one leaf, the first one's recomputation of the root still under way | `PropagationIgnored` | the second set returns before its mark is visible from the head |
//!
//! Run with `ci/loom.sh` (both cfgs). The mutated runs use a tree with its own epoch
//! collector: a model that fails on the global collector aborts the test binary (its
//! thread-local handles are dropped outside the model) instead of unwinding to the
//! `catch_unwind` that inspects the failure.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crossbeam_epoch::Collector;

use crate::support::loom_harness;
use rangelock::mutation::{self, Mutation};
use rangelock::{Entry, LockMode, Mark, XArray};

/// A tree of 4-slot nodes: indices below 4 live in a root leaf; `4..16` needs a root of
/// shift 2 with leaves (or multi-index entries) below it.
pub(crate) type Tree = XArray<u64, 4>;

/// Runs `race` under loom on fresh trees from the global collector and asserts that it
/// passes; then runs it with `mutation` switched on (on trees with their own collector)
/// and asserts that it fails with a message containing one of `caught_by`.
pub(crate) fn passes_and_catches(
    mutation: Mutation,
    caught_by: &[&str],
    race: impl Fn(loom::sync::Arc<Tree>) + Sync + Send + Copy + 'static,
) {
    passes_and_catches_on(|tree| tree, mutation, caught_by, race);
}

/// [`passes_and_catches`] on trees that `configure` sets up (before they are shared).
pub(crate) fn passes_and_catches_on(
    configure: fn(Tree) -> Tree,
    mutation: Mutation,
    caught_by: &[&str],
    race: impl Fn(loom::sync::Arc<Tree>) + Sync + Send + Copy + 'static,
) {
    loom_harness::model(None, move || {
        race(loom::sync::Arc::new(configure(Tree::with_slots())))
    });

    mutation::set(mutation);
    let failed = panic::catch_unwind(AssertUnwindSafe(|| {
        loom_harness::model(None, move || {
            race(loom::sync::Arc::new(configure(Tree::with_collector(
                Collector::new(),
            ))))
        })
    }));
    mutation::set(Mutation::None);
    let payload = failed.err().unwrap_or_else(|| {
        panic!("loom did not catch the mutation {mutation:?}: the model passed with it")
    });
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    // Shown with `--nocapture`: what caught it.
    eprintln!(
        "{mutation:?} caught: {}",
        message.lines().next().unwrap_or_default()
    );
    assert!(
        caught_by.iter().any(|reason| message.contains(reason)),
        "the mutation {mutation:?} failed the model for another reason than {caught_by:?}:\n{message}"
    );
}

/// Locks `index` Exclusive, asserts that the tree shows it held by one holder, and
/// releases it: one locker's turn in a race.
pub(crate) fn lock_check_release(xa: &Tree, index: u64) {
    let guard = xa.lock_range(index..=index, LockMode::Exclusive).unwrap();
    assert_locked(xa, index);
    drop(guard);
}

/// The entries of the tree, as (first index, what) pairs.
pub(crate) fn contents(xa: &Tree) -> Vec<(u64, String)> {
    xa.iter(..)
        .map(|(span, entry)| (*span.start(), format!("{entry:?}")))
        .collect()
}

/// Asserts that `index` is locked Exclusive by one holder.
#[track_caller]
pub(crate) fn assert_locked(xa: &Tree, index: u64) {
    match xa.get(index) {
        Entry::Locked { mode, holders } => {
            assert_eq!((mode, holders), (LockMode::Exclusive, 1));
        }
        other => panic!("index {index} should be locked, found {other:?}"),
    }
}

/// Two writers store into one leaf (the root leaf, which holds index 0) at once: the
/// node lock serialises their changes of the leaf's `count` and slots, so both pages
/// land and the count is right.
#[test]
fn two_writers_on_one_leaf() {
    passes_and_catches(
        Mutation::NodeLockSkipped,
        &["Causality violation", "count"],
        |xa| {
            xa.store(0, Arc::new(0)).unwrap();
            let writer = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    assert!(xa.store(1, Arc::new(1)).unwrap().is_empty());
                })
            };
            assert!(xa.store(2, Arc::new(2)).unwrap().is_empty());
            writer.join().unwrap();
            xa.check_invariants().unwrap();
            let firsts: Vec<u64> = contents(&xa).into_iter().map(|(i, _)| i).collect();
            assert_eq!(firsts, [0, 1, 2]);
        },
    );
}

/// A one-index lock walks (without locks) to the leaf over `4..8`, while a writer
/// erases the leaf's only page, which unlinks the leaf (obsolete) and empties the tree.
/// The claim must find the leaf obsolete under its lock and walk again: while the guard
/// is held, index 6 reads as locked.
#[test]
fn claim_vs_node_being_freed() {
    passes_and_catches(
        Mutation::ObsoleteIgnored,
        &["index 6 should be locked", "Causality violation"],
        |xa| {
            xa.store(5, Arc::new(5)).unwrap();
            let locker = {
                let xa = xa.clone();
                loom::thread::spawn(move || lock_check_release(&xa, 6))
            };
            assert_eq!(xa.erase(5).unwrap().item().map(|p| **p), Some(5));
            locker.join().unwrap();
            xa.check_invariants().unwrap();
            assert!(xa.is_empty(), "left behind: {:?}", contents(&xa));
        },
    );
}

/// The value 7 covers `0..4` as one multi-index entry (a slot of the shift-2 root; a
/// page at 8 keeps the root that tall). A one-index lock of 1 and a store at 2 both
/// split it into a leaf. Each must split the slot as it is under the node lock, so the
/// second writer works in the first one's leaf: the lock, the page and the value at the
/// other indices all survive (the lock evicts the value at 1, and its release leaves 1
/// empty).
#[test]
fn claim_vs_split() {
    passes_and_catches(
        Mutation::SlotNotReread,
        &[
            "index 1 should be locked",
            "lost the page at 2",
            "Causality violation",
        ],
        |xa| {
            xa.store(8, Arc::new(8)).unwrap();
            xa.store_range(0..4, 7).unwrap();
            let locker = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let guard = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
                    assert_locked(&xa, 1);
                    drop(guard);
                })
            };
            assert!(xa.store(2, Arc::new(2)).unwrap().value() == Some(7));
            locker.join().unwrap();
            assert!(
                matches!(xa.get(2), Entry::Item(page) if *page == 2),
                "lost the page at 2: {:?}",
                contents(&xa)
            );
            for index in [0, 3] {
                assert_eq!(xa.get(index).value(), Some(7), "index {index}");
            }
            // The lock evicted the value at 1 into its guard; the release leaves 1 empty.
            assert!(xa.get(1).is_empty(), "index 1: {:?}", xa.get(1));
            xa.check_invariants().unwrap();
        },
    );
}

/// A lock of `1..=2` on an empty tree is one lock record in the head; it is released,
/// and a lock of `5..=6` reuses the same record (the pool hands back the record freed
/// last) with other bounds. A lock-free lookup of 4 meanwhile may find the head word of
/// either publication, which is the same word: only the record's sequence number tells
/// them apart, and index 4, never locked, must never read as locked.
#[test]
fn lookup_vs_record_reuse() {
    passes_and_catches(
        Mutation::RecordSeqUnchecked,
        &["index 4 was never locked"],
        |xa| {
            let reader = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let seen = xa.get(4);
                    assert!(seen.is_empty(), "index 4 was never locked, read {seen:?}");
                })
            };
            drop(xa.lock_range(1..=2, LockMode::Exclusive).unwrap());
            let second = xa.lock_range(5..=6, LockMode::Exclusive).unwrap();
            assert_locked(&xa, 5);
            drop(second);
            reader.join().unwrap();
            assert!(xa.is_empty());
        },
    );
}

/// Two writers set a mark on two indices of one leaf (`0..4`, under a root of shift 2).
/// The first to lock the leaf changes its summary and recomputes the root's bit and the
/// head's after letting go of the leaf; the second finds the summary already set. It
/// may stop there only if no recomputation above is under way (the leaf's propagation
/// count, cursor invariant 4): each set mark must be visible from the head (which
/// `get_mark` consults first) when its call returns.
#[test]
fn mark_set_vs_propagation_under_way() {
    passes_and_catches(
        Mutation::PropagationIgnored,
        &["not visible from the head"],
        |xa| {
            for index in [0, 1, 4] {
                xa.store(index, Arc::new(index)).unwrap();
            }
            let other = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    xa.set_mark(0, Mark::M0);
                    assert!(xa.get_mark(0, Mark::M0), "mark 0 not visible from the head");
                })
            };
            xa.set_mark(1, Mark::M0);
            assert!(xa.get_mark(1, Mark::M0), "mark 1 not visible from the head");
            other.join().unwrap();
            xa.check_invariants().unwrap();
            assert!(!xa.get_mark(4, Mark::M0));
        },
    );
}
