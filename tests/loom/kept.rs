//! Trees that keep emptied nodes for lockers (`src/xarray/kept.rs`): a locker that comes
//! back to a kept leaf claims and releases in it by the fast paths while `XArray::trim`
//! unlinks the empty nodes it found on an unlocked walk; two lockers build their nodes
//! down into one empty slot at once. Each race passes as built and must fail with one
//! protection switched off (see `mutations.rs`):
//!
//! | model | race | mutation | how it fails |
//! |---|---|---|---|
//! | [`a_locker_in_a_kept_leaf_vs_trim`] | a lock and unlock in a kept leaf against `trim` | `EmptinessUnchecked` | the lock goes with the unlinked leaf: the index reads empty while locked |
//! | [`two_lockers_build_down_into_one_slot`] | two one-index locks whose chains would hang from one empty slot of a kept root | `SlotNotReread` | the second chain replaces the first: the first lock is lost |

use std::sync::Arc;

use crate::mutations::{contents, lock_check_release, passes_and_catches_on, Tree};
use rangelock::mutation::Mutation;
use rangelock::LockMode;

/// Trees of the models: keeping up to four nodes.
fn keeping(tree: Tree) -> Tree {
    tree.with_kept_nodes(4)
}

/// Asserts that the tree is empty and sound, and that `trim` takes every node left.
#[track_caller]
fn empty_and_trimmed(xa: &Tree) {
    xa.check_invariants().unwrap();
    assert!(xa.is_empty(), "left behind: {:?}", contents(xa));
    xa.trim();
    assert_eq!(xa.node_count(), 0);
    xa.check_invariants().unwrap();
}

/// Leaves the leaf over `8..12` linked, empty and kept, under a root over `0..16`: a
/// page at 8 keeps the leaf while 9 is locked, the page goes, and the release of 9
/// would empty the leaf.
fn kept_leaf(xa: &Tree) {
    xa.store(8, Arc::new(8)).unwrap();
    let guard = xa.lock_range(9..=9, LockMode::Exclusive).unwrap();
    xa.erase(8).unwrap();
    drop(guard);
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 2, "the root and the kept leaf");
}

/// One thread locks 10 (the fast claim into the kept leaf), checks that it holds it,
/// and lets go (the fast release, which keeps the leaf again); the other trims. Either
/// trim's unlink comes first (the claim finds the leaf obsolete and takes the general
/// path) or the claim does (the unlinker finds the leaf no longer empty under its lock
/// and leaves it). Afterwards the tree is empty, sound, and its budget in step.
#[test]
fn a_locker_in_a_kept_leaf_vs_trim() {
    passes_and_catches_on(
        keeping,
        Mutation::EmptinessUnchecked,
        &["should be locked"],
        |xa| {
            kept_leaf(&xa);
            let trimmer = {
                let xa = xa.clone();
                loom::thread::spawn(move || xa.trim())
            };
            lock_check_release(&xa, 10);
            trimmer.join().unwrap();
            empty_and_trimmed(&xa);
        },
    );
}

/// A kept, empty root over `0..16`: 1 in the head, 9 forces the root (records in its
/// slots 0 and 2), and the last release keeps it.
fn kept_root(xa: &Tree) {
    let a = xa.lock_range(1..=1, LockMode::Exclusive).unwrap();
    let b = xa.lock_range(9..=9, LockMode::Exclusive).unwrap();
    drop((a, b));
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 1, "the kept root");
}

/// Two threads lock 9 and 10, both in the root's empty slot over `8..12`, each by the
/// claim fast path that builds a leaf below that slot. Whichever links its leaf first
/// wins the slot; the other reads the slot again under the root's lock, finds the leaf,
/// and claims its index by another path. Both hold their index, and afterwards the tree
/// is empty, sound, and its budget in step.
#[test]
fn two_lockers_build_down_into_one_slot() {
    passes_and_catches_on(
        keeping,
        Mutation::SlotNotReread,
        &["should be locked"],
        |xa| {
            kept_root(&xa);
            let other = {
                let xa = xa.clone();
                loom::thread::spawn(move || lock_check_release(&xa, 10))
            };
            lock_check_release(&xa, 9);
            other.join().unwrap();
            empty_and_trimmed(&xa);
        },
    );
}
