//! Per-thread tracking of the range locks a thread holds: deadlock detection.
//!
//! Every [`RangeGuard`](super::RangeGuard) registers its (tree, range, mode, sealed) in a
//! list of the thread that acquired it (eight records in place in the thread-local, more
//! in a spill `Vec`), and removes it when it is dropped or detached: a guard dropped in
//! the order it was taken removes the newest record, one compare and one store. Before an acquisition claims anything, it asks whether *this thread* holds
//! part of the range in a mode that conflicts with its request, or a pending entry of a
//! guard that is still sealed (which nobody may join): waiting there would wait for
//! itself (a direct-IO write whose user buffer is an mmap of its own range faults
//! through get_user_pages), and the call returns
//! [`LockError::WouldDeadlock`](super::LockError::WouldDeadlock) before it has evicted
//! anything. An empty list (the common case) costs one thread-local read. A call that
//! may not wait asks only after its claim failed (see `run_claim`): the same answer,
//! and no scan for a try that succeeds.
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

use core::cell::{Cell, RefCell};

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

/// A place for one record in the thread-local, written and read field by field: a
/// record built whole and copied in goes through the stack, and copying it out in 16-byte
/// pieces that span fields stored one by one stalls the store forwarding (perf put that
/// at a third of an uncontended whole-range lock and unlock).
struct Slot {
    tree: Cell<u64>,
    first: Cell<u64>,
    last: Cell<u64>,
    /// Bit 0: Exclusive; bit 1: sealed.
    flags: Cell<u8>,
}

impl Slot {
    const fn vacant() -> Slot {
        Slot {
            tree: Cell::new(0),
            first: Cell::new(0),
            last: Cell::new(0),
            flags: Cell::new(0),
        }
    }

    #[inline(always)]
    fn get(&self) -> Held {
        let flags = self.flags.get();
        Held {
            tree: self.tree.get(),
            first: self.first.get(),
            last: self.last.get(),
            mode: if flags & 1 != 0 {
                LockMode::Exclusive
            } else {
                LockMode::Shared
            },
            sealed: flags & 2 != 0,
        }
    }

    #[inline(always)]
    fn set(&self, h: Held) {
        self.tree.set(h.tree);
        self.first.set(h.first);
        self.last.set(h.last);
        let exclusive = u8::from(h.mode == LockMode::Exclusive);
        self.flags.set(exclusive | u8::from(h.sealed) << 1);
    }
}

/// How many records a thread keeps inline; more go to its spill list.
const INLINE: usize = 8;

/// A thread's records: the first [`INLINE`] in place, the rest in [`SPILL`], and the
/// registry generation it last pruned against.
///
/// Nothing here needs dropping, so the thread-local is a plain per-thread address: no
/// lazy initialisation or destructor registration to check on the path that every
/// lock and unlock takes (with a `SmallVec` in a `RefCell`, those checks and the
/// borrow flag cost about a fifth of an uncontended whole-range lock and unlock).
struct HeldList {
    /// Records in `inline[..len]`, in no particular order.
    len: Cell<usize>,
    inline: [Slot; INLINE],
    /// Records in [`SPILL`] (read before touching it, so a thread that never holds more
    /// than [`INLINE`] guards never initialises it).
    spilled: Cell<usize>,
    pruned_at: Cell<u64>,
}

#[cfg(not(loom))]
crate::sync::thread_local! {
    static HELD: HeldList = const {
        HeldList {
            len: Cell::new(0),
            inline: [const { Slot::vacant() }; INLINE],
            spilled: Cell::new(0),
            pruned_at: Cell::new(0),
        }
    };
    static SPILL: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
}

// loom's `thread_local!` takes no `const { }` initialiser.
#[cfg(loom)]
crate::sync::thread_local! {
    static HELD: HeldList = HeldList {
        len: Cell::new(0),
        inline: [const { Slot::vacant() }; INLINE],
        spilled: Cell::new(0),
        pruned_at: Cell::new(0),
    };
    static SPILL: RefCell<Vec<Held>> = RefCell::new(Vec::new());
}

impl HeldList {
    fn inline(&self) -> &[Slot] {
        &self.inline[..self.len.get()]
    }

    fn is_empty(&self) -> bool {
        self.len.get() == 0 && self.spilled.get() == 0
    }

    /// Removes `inline[at]`, moving the last inline record into its place.
    fn swap_remove_inline(&self, at: usize) {
        let last = self.len.get() - 1;
        self.inline[at].set(self.inline[last].get());
        self.len.set(last);
    }

    /// Calls `f` on every record, inline then spilled, until it returns `true`.
    fn any(&self, mut f: impl FnMut(&Held) -> bool) -> bool {
        if self.inline().iter().any(|h| f(&h.get())) {
            return true;
        }
        self.spilled.get() != 0 && SPILL.with(|spill| spill.borrow().iter().any(f))
    }

    /// Applies `f` to one record equal to `key` (the spilled ones are searched first;
    /// equal records are interchangeable). `false`: there is none.
    fn update(&self, key: &Held, f: impl FnOnce(&mut Held)) -> bool {
        let mut f = Some(f);
        if self.spilled.get() != 0 {
            let done = SPILL.with(|spill| {
                let mut spill = spill.borrow_mut();
                let at = spill.iter().rposition(|h| h == key);
                at.map(|at| (f.take().expect("unused"))(&mut spill[at]))
                    .is_some()
            });
            if done {
                return true;
            }
        }
        let Some(cell) = self.inline().iter().rev().find(|h| h.get() == *key) else {
            return false;
        };
        let mut h = cell.get();
        (f.take().expect("unused"))(&mut h);
        cell.set(h);
        true
    }

    /// Drops the records of trees dropped since the last prune (see the module docs).
    fn prune(&self) {
        let generation = identity::dead_generation();
        if generation == self.pruned_at.get() {
            return;
        }
        self.pruned_at.set(generation);
        identity::with_dead(|dead| {
            let mut at = 0;
            while at < self.len.get() {
                if dead(self.inline[at].get().tree) {
                    self.swap_remove_inline(at);
                } else {
                    at += 1;
                }
            }
            if self.spilled.get() != 0 {
                SPILL.with(|spill| {
                    let mut spill = spill.borrow_mut();
                    spill.retain(|h| !dead(h.tree));
                    self.spilled.set(spill.len());
                });
            }
        });
    }
}
/// Records that this thread now holds `first..=last` of `tree` in `mode`.
#[inline]
pub(crate) fn push(tree: u64, first: u64, last: u64, mode: LockMode) {
    HELD.with(|list| {
        if !list.is_empty() {
            list.prune();
        }
        let record = Held {
            tree,
            first,
            last,
            mode,
            sealed: false,
        };
        let len = list.len.get();
        if len < INLINE {
            list.inline[len].set(record);
            list.len.set(len + 1);
        } else {
            push_spilled(list, record);
        }
    });
}

#[inline(never)]
fn push_spilled(list: &HeldList, record: Held) {
    SPILL.with(|spill| {
        let mut spill = spill.borrow_mut();
        spill.push(record);
        list.spilled.set(spill.len());
    });
}

/// Forgets one record of the guard over `first..=last` of `tree` in `mode`, `sealed` or
/// not: it released or left the thread.
#[inline]
pub(crate) fn remove(tree: u64, first: u64, last: u64, mode: LockMode, sealed: bool) {
    let key = Held {
        tree,
        first,
        last,
        mode,
        sealed,
    };
    // The common case: the newest inline record, nothing spilled. (A closure this small
    // lets the thread-local access inline into the guard's drop.)
    let newest = HELD.with(|list| {
        let len = list.len.get();
        let newest = list.spilled.get() == 0 && len > 0 && list.inline[len - 1].get() == key;
        if newest {
            list.len.set(len - 1);
        }
        newest
    });
    if !newest {
        HELD.with(|list| remove_slow(list, &key));
    }
}

#[inline(never)]
fn remove_slow(list: &HeldList, key: &Held) {
    if list.spilled.get() != 0 {
        // `try_with`: a guard dropped while this thread's spill list is being destroyed
        // has nothing left to forget there.
        let Ok(removed) = SPILL.try_with(|spill| {
            let mut spill = spill.borrow_mut();
            let at = spill.iter().rposition(|h| h == key);
            if let Some(at) = at {
                spill.swap_remove(at);
                list.spilled.set(spill.len());
            }
            at.is_some()
        }) else {
            return;
        };
        if removed {
            return;
        }
    }
    let at = list.inline().iter().rposition(|h| h.get() == *key);
    debug_assert!(at.is_some(), "a live guard without its record: {key:?}");
    if let Some(at) = at {
        list.swap_remove_inline(at);
    }
}

/// Changes the mode of the record of a guard that is `sealed` or not (a downgrade).
pub(crate) fn set_mode(
    tree: u64,
    first: u64,
    last: u64,
    sealed: bool,
    from: LockMode,
    to: LockMode,
) {
    let key = Held {
        tree,
        first,
        last,
        mode: from,
        sealed,
    };
    HELD.with(|list| list.update(&key, |h| h.mode = to));
}

/// Marks the record of a guard sealed or not (a sealed guard made, or unsealed).
pub(crate) fn set_sealed(tree: u64, first: u64, last: u64, mode: LockMode, sealed: bool) {
    let key = Held {
        tree,
        first,
        last,
        mode,
        sealed: !sealed,
    };
    HELD.with(|list| list.update(&key, |h| h.sealed = sealed));
}

/// The strongest mode in which this thread holds `index` of `tree`, if it does.
pub(crate) fn mode_at(tree: u64, index: u64) -> Option<LockMode> {
    HELD.with(|list| {
        let mut found = None;
        list.any(|h| {
            if h.tree == tree && h.first <= index && index <= h.last {
                found = Some(h.mode);
                return h.mode == LockMode::Exclusive;
            }
            false
        });
        found
    })
}

/// Whether this thread holds any range of `tree` (a wait that is not on a range lock of
/// its own, such as write-back waiting for a hand-off, must not sleep while it does).
pub(crate) fn holds_any(tree: u64) -> bool {
    HELD.with(|list| list.any(|h| h.tree == tree))
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
    let mut found = SelfConflicts::default();
    HELD.with(|list| {
        if list.is_empty() {
            return;
        }
        list.any(|h| {
            if h.tree != tree || h.last < first || last < h.first {
                return false;
            }
            let (lo, hi) = (h.first.max(first), h.last.min(last));
            if !h.mode.is_compatible(mode) {
                found.conflict = Some(found.conflict.map_or(lo, |c| c.min(lo)));
            } else if h.sealed {
                found.sealed.push((lo, hi));
            }
            false
        });
    });
    found
}

/// How many records this thread's list holds (tests of the bound on forgotten guards).
#[cfg(test)]
pub(crate) fn len() -> usize {
    HELD.with(|list| list.len.get() + list.spilled.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Gen, QuickCheck};

    /// Tree ids far above any real tree's (ids count up from 1), so that no tree dropped
    /// by another test prunes them.
    const TREE: u64 = u64::MAX - 8;

    fn mode(exclusive: bool) -> LockMode {
        if exclusive {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        }
    }

    /// What each query should answer, computed from the model's records.
    fn check_against(model: &[Held]) {
        assert_eq!(len(), model.len());
        for tree in TREE..TREE + 3 {
            assert_eq!(holds_any(tree), model.iter().any(|h| h.tree == tree));
            for index in 0..24 {
                let held: Vec<&Held> = model
                    .iter()
                    .filter(|h| h.tree == tree && h.first <= index && index <= h.last)
                    .collect();
                let strongest = held
                    .iter()
                    .map(|h| h.mode)
                    .max_by_key(|m| *m == LockMode::Exclusive);
                assert_eq!(mode_at(tree, index), strongest, "tree {tree} index {index}");
            }
            for (first, last, exclusive) in [(0, 23, true), (3, 9, false), (10, 12, true)] {
                let want = mode(exclusive);
                let found = self_conflicts(tree, first, last, want);
                let overlapping = model
                    .iter()
                    .filter(|h| h.tree == tree && h.first <= last && first <= h.last);
                let conflict = overlapping
                    .clone()
                    .filter(|h| !h.mode.is_compatible(want))
                    .map(|h| h.first.max(first))
                    .min();
                assert_eq!(found.conflict, conflict);
                let mut sealed: Vec<(u64, u64)> = overlapping
                    .filter(|h| h.mode.is_compatible(want) && h.sealed)
                    .map(|h| (h.first.max(first), h.last.min(last)))
                    .collect();
                let mut got: Vec<(u64, u64)> = found.sealed.to_vec();
                sealed.sort_unstable();
                got.sort_unstable();
                assert_eq!(got, sealed);
            }
        }
    }

    /// Random pushes, removes, seals, unseals and downgrades, more than fit in place,
    /// against a plain `Vec` of records: every query answers as the model does, and each
    /// change touches exactly one record equal to its key.
    #[test]
    fn the_list_answers_like_a_vec_of_records() {
        fn prop(ops: Vec<(u8, u8, u8)>) -> bool {
            // A fresh thread: an empty list, whatever this test thread holds.
            crate::sync::os_thread::spawn(move || {
                let mut model: Vec<Held> = Vec::new();
                for (op, a, b) in ops {
                    let pick =
                        |model: &Vec<Held>| (!model.is_empty()).then(|| a as usize % model.len());
                    match op % 5 {
                        // Pushes twice as often as anything else: the list grows past
                        // its eight places.
                        0 | 1 => {
                            let first = u64::from(a % 20);
                            let h = Held {
                                tree: TREE + u64::from(b % 3),
                                first,
                                last: first + u64::from(b % 5),
                                mode: mode(b % 2 == 0),
                                sealed: false,
                            };
                            push(h.tree, h.first, h.last, h.mode);
                            model.push(h);
                        }
                        2 => {
                            if let Some(i) = pick(&model) {
                                let h = model.swap_remove(i);
                                remove(h.tree, h.first, h.last, h.mode, h.sealed);
                            }
                        }
                        3 => {
                            if let Some(i) = pick(&model) {
                                let h = model[i];
                                set_sealed(h.tree, h.first, h.last, h.mode, !h.sealed);
                                // Equal records are interchangeable: flip the model's
                                // first one that equals the key.
                                let j = model.iter().position(|m| *m == h).expect("itself");
                                model[j].sealed = !h.sealed;
                            }
                        }
                        _ => {
                            if let Some(i) = pick(&model) {
                                let h = model[i];
                                set_mode(
                                    h.tree,
                                    h.first,
                                    h.last,
                                    h.sealed,
                                    h.mode,
                                    LockMode::Shared,
                                );
                                let j = model.iter().position(|m| *m == h).expect("itself");
                                model[j].mode = LockMode::Shared;
                            }
                        }
                    }
                    check_against(&model);
                }
                true
            })
            .join()
            .unwrap_or(false)
        }
        QuickCheck::new()
            .tests(if cfg!(miri) { 3 } else { 300 })
            .rng(Gen::new(if cfg!(miri) { 20 } else { 60 }))
            .quickcheck(prop as fn(Vec<(u8, u8, u8)>) -> bool);
    }
}
