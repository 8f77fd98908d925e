//! Per-thread tracking of the range locks a thread holds: deadlock detection.
//!
//! Every [`RangeGuard`](super::RangeGuard) registers its (tree, range, mode, sealed) in a
//! small inline list of the thread that acquired it, and removes it when it is dropped or
//! detached. Before an acquisition claims anything, it asks whether *this thread* holds
//! part of the range in a mode that conflicts with its request, or a pending entry of a
//! guard that is still sealed (which nobody may join): waiting there would wait for
//! itself (a direct-IO write whose user buffer is an mmap of its own range faults
//! through get_user_pages), and the call returns
//! [`LockError::WouldDeadlock`](super::LockError::WouldDeadlock) before it has evicted
//! anything. An empty list (the common case) costs one thread-local read.
//!
//! The list also lets a thread that already holds an index Shared take it Shared again
//! without queueing behind a waiting Exclusive acquirer (which would wait for it).
//!
//! Cross-thread cycles (thread A holds X and waits for B's Y while B waits for A's X) are
//! not detected: acquiring ranges of one tree in ascending order, and trees in one global
//! order, rules them out (see the module docs of `lock`).
//!
//! # Trees are named by id, and forgotten guards
//!
//! Records name their tree by its id (`xarray/identity.rs`), never reused, not by its
//! address, which a later tree may get. `std::mem::forget` of a guard is safe: its lock
//! stays in its tree (leaked, like a forgotten `MutexGuard`) and its record stays in the
//! thread's list, where it correctly says that the thread holds that range for as long
//! as the tree lives. It can affect no other tree. Once the tree is dropped, the record is
//! dead weight: the tree's drop registers its id (it still held lock entries), and a
//! thread drops the records of registered trees when it next pushes a record onto a list
//! that is not empty after a new tree was registered. So a thread's list holds at most one
//! record per guard it holds, plus one per guard it forgot on a tree that is still alive.

use core::cell::RefCell;

use smallvec::SmallVec;

use crate::lock_mode::LockMode;
use crate::xarray::identity;

/// One lock this thread holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    tree: u64,
    first: u64,
    last: u64,
    mode: LockMode,
    /// The guard still has sealed entries (see `XArray::lock_range_sealed`).
    sealed: bool,
}

/// A thread's records, and the registry generation it last pruned against.
struct HeldList {
    records: SmallVec<[Held; 8]>,
    pruned_at: u64,
}

#[cfg(not(loom))]
crate::sync::thread_local! {
    static HELD: RefCell<HeldList> = const {
        RefCell::new(HeldList { records: SmallVec::new_const(), pruned_at: 0 })
    };
}

// loom's `thread_local!` takes no `const { }` initialiser.
#[cfg(loom)]
crate::sync::thread_local! {
    static HELD: RefCell<HeldList> =
        RefCell::new(HeldList { records: SmallVec::new_const(), pruned_at: 0 });
}

impl HeldList {
    /// Drops the records of trees dropped since the last prune (see the module docs).
    fn prune(&mut self) {
        let generation = identity::dead_generation();
        if generation == self.pruned_at {
            return;
        }
        self.pruned_at = generation;
        identity::with_dead(|dead| self.records.retain(|h| !dead(h.tree)));
    }
}

/// Records that this thread now holds `first..=last` of `tree` in `mode`.
#[inline]
pub(crate) fn push(tree: u64, first: u64, last: u64, mode: LockMode) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if !held.records.is_empty() {
            held.prune();
        }
        held.records.push(Held {
            tree,
            first,
            last,
            mode,
            sealed: false,
        })
    });
}

/// The most recent record equal to the arguments.
fn find(list: &mut HeldList, tree: u64, first: u64, last: u64, mode: LockMode) -> Option<usize> {
    list.records
        .iter()
        .rposition(|h| h.tree == tree && h.first == first && h.last == last && h.mode == mode)
}

/// Forgets one record equal to the arguments (the guard released or left the thread).
#[inline]
pub(crate) fn remove(tree: u64, first: u64, last: u64, mode: LockMode) {
    // `try_with`: a guard dropped during thread-local destruction has nothing to forget.
    let _ = HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        if let Some(at) = find(&mut held, tree, first, last, mode) {
            held.records.swap_remove(at);
        }
    });
}

/// Changes the mode of one record (a downgrade).
pub(crate) fn set_mode(tree: u64, first: u64, last: u64, from: LockMode, to: LockMode) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let Some(at) = find(&mut held, tree, first, last, from) {
            held.records[at].mode = to;
        }
    });
}

/// Marks one record sealed or not (a sealed guard made, or unsealed).
pub(crate) fn set_sealed(tree: u64, first: u64, last: u64, mode: LockMode, sealed: bool) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let Some(at) = find(&mut held, tree, first, last, mode) {
            held.records[at].sealed = sealed;
        }
    });
}

/// The strongest mode in which this thread holds `index` of `tree`, if it does.
pub(crate) fn mode_at(tree: u64, index: u64) -> Option<LockMode> {
    HELD.with(|held| {
        let mut found = None;
        for h in held.borrow().records.iter() {
            if h.tree == tree && h.first <= index && index <= h.last {
                if h.mode == LockMode::Exclusive {
                    return Some(LockMode::Exclusive);
                }
                found = Some(LockMode::Shared);
            }
        }
        found
    })
}

/// Whether this thread holds any range of `tree` (a wait that is not on a range lock of
/// its own, such as write-back waiting for a hand-off, must not sleep while it does).
pub(crate) fn holds_any(tree: u64) -> bool {
    HELD.with(|held| held.borrow().records.iter().any(|h| h.tree == tree))
}

/// Where an acquisition of `first..=last` in `mode` may wait for this thread itself.
#[derive(Debug, Default)]
pub(crate) struct SelfConflicts {
    /// The first index held here in a conflicting mode.
    pub(crate) conflict: Option<u64>,
    /// Parts of the range held here (compatibly) under a guard that is still sealed: its
    /// pending entries there may be joined by nobody, this thread included.
    pub(crate) sealed: SmallVec<[(u64, u64); 2]>,
}

/// What this thread holds of `first..=last` of `tree` that an acquisition in `mode`
/// would wait for (see [`SelfConflicts`]). Nothing, at the cost of one thread-local
/// read, when this thread holds nothing.
#[inline]
pub(crate) fn self_conflicts(tree: u64, first: u64, last: u64, mode: LockMode) -> SelfConflicts {
    HELD.with(|held| {
        let held = held.borrow();
        let mut found = SelfConflicts::default();
        for h in held.records.iter() {
            if h.tree != tree || h.last < first || last < h.first {
                continue;
            }
            let (lo, hi) = (h.first.max(first), h.last.min(last));
            if !h.mode.is_compatible(mode) {
                found.conflict = Some(found.conflict.map_or(lo, |c| c.min(lo)));
            } else if h.sealed {
                found.sealed.push((lo, hi));
            }
        }
        found
    })
}

/// How many records this thread's list holds (tests of the bound on forgotten guards).
#[cfg(test)]
pub(crate) fn len() -> usize {
    HELD.with(|held| held.borrow().records.len())
}
