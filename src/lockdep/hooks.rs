//! The calls the lock layer and the page lock make, with the feature on (`off.rs` has
//! the same names, doing nothing).
//!
//! Each is one line at its call site, placed so that it can be moved by hand when the
//! lock internals change:
//!
//! * [`check`] before an acquisition that may wait claims anything (a report panics
//!   there, with nothing claimed yet);
//! * [`granted`] where a guard is made for a granted range;
//! * [`released`] where a guard leaves its thread (released, published, or detached);
//! * [`downgraded`] where a guard turns Shared;
//! * a [`PageLockToken`] field in the page lock, made before its mutex is locked.

use super::check::{self, Reports};
use super::class::{page_class, Node};
use super::graph;
use super::held::{self, HeldLock, Instance};
use super::report;
use crate::xarray::span::Inclusive;
use crate::xarray::{LockMode, XArray};

pub(crate) use super::class::TreeClass;

fn deliver(reports: Option<Reports>) {
    for report in reports.into_iter().flatten() {
        report::deliver(report);
    }
}

/// Checks the order of an acquisition of `first..=last` of `tree` in `mode` that may
/// wait (`may_wait`; a `try_` acquisition is not checked) against what this thread
/// holds, adding its edges to the graph. Costs one thread-local read while the thread
/// holds nothing.
#[inline]
pub(crate) fn check<T, const SLOTS: usize>(
    xa: &XArray<T, SLOTS>,
    range: Inclusive,
    mode: LockMode,
    may_wait: bool,
) {
    if !may_wait {
        return;
    }
    let (class, tree, first, last) = (&xa.lockdep, xa.id, range.first, range.last);
    deliver(held::with(|state| {
        state.prune();
        if state.held.is_empty() || state.unchecked {
            return Reports::new();
        }
        let new = HeldLock {
            instance: Instance::Tree(tree),
            node: Node {
                class: class.id,
                subclass: state.subclass,
            },
            first,
            last,
            mode,
        };
        check::acquire(graph::global(), state, &new)
    }));
}

/// Records that this thread now holds `first..=last` of `tree` in `mode`.
#[inline]
pub(crate) fn granted<T, const SLOTS: usize>(
    xa: &XArray<T, SLOTS>,
    first: u64,
    last: u64,
    mode: LockMode,
) {
    let (class, tree) = (&xa.lockdep, xa.id);
    held::with(|state| {
        let node = Node {
            class: class.id,
            subclass: state.subclass,
        };
        state.push(HeldLock {
            instance: Instance::Tree(tree),
            node,
            first,
            last,
            mode,
        })
    });
}

/// Forgets `first..=last` of `tree` (its guard was released or detached).
#[inline]
pub(crate) fn released(tree: u64, first: u64, last: u64) {
    held::with(|state| state.remove(Instance::Tree(tree), first, last));
}

/// Records that `first..=last` of `tree` is now held Shared.
pub(crate) fn downgraded(tree: u64, first: u64, last: u64) {
    held::with(|state| state.set_mode(Instance::Tree(tree), first, last, LockMode::Shared));
}

/// Sets this thread's subclass, returning the previous one.
pub(crate) fn set_subclass(subclass: u8) -> u8 {
    held::with(|state| core::mem::replace(&mut state.subclass, subclass)).unwrap_or(0)
}

/// Turns checking off (or on) for this thread, returning the previous setting.
pub(crate) fn set_unchecked(unchecked: bool) -> bool {
    held::with(|state| core::mem::replace(&mut state.unchecked, unchecked)).unwrap_or(false)
}

/// A held page lock, as the checker sees it: made (checked, then recorded) before the
/// page's mutex is locked, forgotten when dropped.
#[derive(Debug)]
pub(crate) struct PageLockToken {
    page: usize,
}

impl PageLockToken {
    /// Checks and records a lock of the page at address `page`.
    pub(crate) fn acquire(page: usize) -> Self {
        let lock = |subclass| HeldLock {
            instance: Instance::Page(page),
            node: Node {
                class: page_class(),
                subclass,
            },
            first: 0,
            last: 0,
            mode: LockMode::Exclusive,
        };
        deliver(held::with(|state| {
            let new = lock(state.subclass);
            let reports = if state.held.is_empty() || state.unchecked {
                Reports::new()
            } else {
                check::acquire(graph::global(), state, &new)
            };
            state.push(new);
            reports
        }));
        PageLockToken { page }
    }
}

impl Drop for PageLockToken {
    fn drop(&mut self) {
        held::with(|state| state.remove(Instance::Page(self.page), 0, 0));
    }
}
