//! Per-thread tracking of the range locks a thread holds: deadlock detection.
//!
//! Every [`RangeGuard`](super::RangeGuard) registers its (tree, range, mode) in a small
//! inline list of the thread that acquired it, and removes it when it is dropped or
//! detached. Only the slow path reads the list: before sleeping on an entry, an acquirer
//! asks whether *this thread* holds that index in a mode that conflicts with its request.
//! If so, sleeping would wait for itself (a direct-IO write whose user buffer is an mmap
//! of its own range faults through get_user_pages), and the call returns
//! [`LockError::WouldDeadlock`](super::LockError::WouldDeadlock) instead.
//!
//! The list also lets a thread that already holds an index Shared take it Shared again
//! without queueing behind a waiting Exclusive acquirer (which would wait for it).
//!
//! Cross-thread cycles (thread A holds X and waits for B's Y while B waits for A's X) are
//! not detected: acquiring ranges of one tree in ascending order, and trees in one global
//! order, rules them out (see the module docs of `lock`).

use core::cell::RefCell;

use smallvec::SmallVec;

use crate::xarray::LockMode;

/// One lock this thread holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    tree: usize,
    first: u64,
    last: u64,
    mode: LockMode,
}

#[cfg(not(loom))]
crate::sync::thread_local! {
    static HELD: RefCell<SmallVec<[Held; 8]>> = const { RefCell::new(SmallVec::new_const()) };
}

// loom's `thread_local!` takes no `const { }` initialiser.
#[cfg(loom)]
crate::sync::thread_local! {
    static HELD: RefCell<SmallVec<[Held; 8]>> = RefCell::new(SmallVec::new_const());
}

/// Records that this thread now holds `first..=last` of `tree` in `mode`.
#[inline]
pub(crate) fn push(tree: usize, first: u64, last: u64, mode: LockMode) {
    HELD.with(|held| {
        held.borrow_mut().push(Held {
            tree,
            first,
            last,
            mode,
        })
    });
}

/// Forgets one record equal to the arguments (the guard released or left the thread).
#[inline]
pub(crate) fn remove(tree: usize, first: u64, last: u64, mode: LockMode) {
    let wanted = Held {
        tree,
        first,
        last,
        mode,
    };
    // `try_with`: a guard dropped during thread-local destruction has nothing to forget.
    let _ = HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        if let Some(at) = held.iter().rposition(|h| *h == wanted) {
            held.swap_remove(at);
        }
    });
}

/// Changes the mode of one record (a downgrade).
pub(crate) fn set_mode(tree: usize, first: u64, last: u64, from: LockMode, to: LockMode) {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let Some(h) = held
            .iter_mut()
            .rev()
            .find(|h| h.tree == tree && h.first == first && h.last == last && h.mode == from)
        {
            h.mode = to;
        }
    });
}

/// The strongest mode in which this thread holds `index` of `tree`, if it does.
pub(crate) fn mode_at(tree: usize, index: u64) -> Option<LockMode> {
    HELD.with(|held| {
        let mut found = None;
        for h in held.borrow().iter() {
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
pub(crate) fn holds_any(tree: usize) -> bool {
    HELD.with(|held| held.borrow().iter().any(|h| h.tree == tree))
}

/// The first index of `first..=last` that this thread holds in `tree` in a mode that
/// conflicts with `mode` (an acquisition of the range would end in `WouldDeadlock`).
pub(crate) fn first_conflict(tree: usize, first: u64, last: u64, mode: LockMode) -> Option<u64> {
    HELD.with(|held| {
        held.borrow()
            .iter()
            .filter(|h| h.tree == tree && h.first <= last && first <= h.last)
            .filter(|h| !h.mode.is_compatible(mode))
            .map(|h| h.first.max(first))
            .min()
    })
}
