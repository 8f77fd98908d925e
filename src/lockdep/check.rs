//! The rules: what an acquisition adds to the order graph, and what it breaks.
//!
//! For a lock `new` that a thread is about to wait for, against each lock `held` that
//! the thread holds:
//!
//! | `held` vs `new` | rule | outcome |
//! |---|---|---|
//! | same tree, overlapping, conflicting modes | the lock layer refuses it (`WouldDeadlock`) | nothing checked |
//! | same tree, `new` Shared and inside Shared ranges held | recursive Shared joins without waiting | nothing checked |
//! | same tree, `new.first < held.first` | ascending order within a tree | [`DescendingRange`](super::ReportKind::DescendingRange) |
//! | same tree, otherwise | | fine, no edge |
//! | same page | a page lock is not recursive | [`RecursiveLock`](super::ReportKind::RecursiveLock) |
//! | two page locks | (not checked: see the module docs of `lockdep`) | no edge |
//! | other tree, same class and subclass | nesting must be declared | [`UndeclaredNesting`](super::ReportKind::UndeclaredNesting) |
//! | anything else | | edge `held -> new`; a cycle it closes is [`CircularDependency`](super::ReportKind::CircularDependency) |
//!
//! Modes do not exempt an edge from cycles: with fair queueing a Shared acquirer
//! queues behind a waiting Exclusive one, so two Shared-Shared orders can deadlock
//! through two queued writers, as readers of a fair rwsem can.
//!
//! A `try_` acquisition never waits, so it is not checked and adds no edge (it is still
//! recorded as held once granted: what is taken under it orders after it).

use smallvec::SmallVec;

use super::class::page_class;
use super::graph::{self, Added, OrderGraph};
use super::held::{HeldLock, Instance, ThreadState};
use super::report::{self, Report};
use crate::lock_mode::LockMode;
use crate::sync::process::thread_name;

/// The reports an acquisition made (usually none).
pub(crate) type Reports = SmallVec<[Report; 1]>;

/// Whether the Shared ranges of `tree` in `held` cover all of `first..=last`.
fn covered_by_shared(held: &[HeldLock], tree: u64, first: u64, last: u64) -> bool {
    let mut spans: SmallVec<[(u64, u64); 8]> = held
        .iter()
        .filter(|h| h.instance == Instance::Tree(tree) && h.mode == LockMode::Shared)
        .map(|h| (h.first, h.last))
        .collect();
    spans.sort_unstable();
    let mut next = first;
    for (lo, hi) in spans {
        if lo > next {
            break;
        }
        if hi >= last {
            return true;
        }
        next = next.max(hi + 1);
    }
    false
}

/// Whether the lock layer will refuse `new` as a wait for this thread itself.
fn refused(held: &[HeldLock], new: &HeldLock) -> bool {
    held.iter().any(|h| {
        h.instance == new.instance
            && matches!(h.instance, Instance::Tree(_))
            && h.first <= new.last
            && new.first <= h.last
            && !h.mode.is_compatible(new.mode)
    })
}

/// Checks an acquisition of `new` by the thread whose state is `state`, adding its
/// edges to `graph`. Returns the reports to deliver (after `state` is let go).
pub(crate) fn acquire(graph: &OrderGraph, state: &mut ThreadState, new: &HeldLock) -> Reports {
    let mut reports = Reports::new();
    if let Instance::Tree(tree) = new.instance {
        if refused(&state.held, new)
            || (new.mode == LockMode::Shared
                && covered_by_shared(&state.held, tree, new.first, new.last))
        {
            return reports;
        }
    }
    for i in 0..state.held.len() {
        let held = state.held[i];
        if held.instance == new.instance {
            match new.instance {
                Instance::Page(_) => reports.push(report::recursive(&thread_name(), new)),
                Instance::Tree(_) if new.first < held.first => {
                    reports.push(report::descending(&thread_name(), &held, new))
                }
                Instance::Tree(_) => {}
            }
            continue;
        }
        if held.node == new.node {
            if held.node.class != page_class() {
                reports.push(report::undeclared_nesting(&thread_name(), &held, new));
            }
            continue;
        }
        let key = graph::edge_key(held.node, new.node);
        if state.known.contains(&key) {
            continue;
        }
        if let Added::New {
            edge,
            cycle: Some(chain),
        } = graph.add(&held, new)
        {
            reports.push(report::circular(&edge, &chain));
        }
        state.known.insert(key);
    }
    reports
}
