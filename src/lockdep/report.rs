//! Reports: what the checker found, how it is worded, and where it goes.
//!
//! A report is delivered to the hook set with [`set_report_hook`]; without one (the
//! default) it panics with the report's text, on the thread that made the acquisition
//! and before that acquisition has claimed anything, so nothing leaks. The wording
//! follows the kernel's lockdep ("possible circular locking dependency detected", the
//! existing chain in order, each edge with the backtrace of the first time it was
//! seen), so that people who read those can read these.

use core::fmt;

use crate::sync::process::Mutex;

/// What kind of ordering problem a [`Report`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReportKind {
    /// A new edge closed a cycle in the order graph of classes (ABBA, or longer).
    CircularDependency,
    /// A range of a tree was taken below a range of the same tree that the thread held:
    /// ranges of one tree must be taken in ascending order of their first index.
    DescendingRange,
    /// Two trees (or two ranges of different trees) of one class were held at once
    /// without a declared nesting (see `lock_range_nested`).
    UndeclaredNesting,
    /// A page lock was taken again by the thread that holds it.
    RecursiveLock,
}

/// A lock-order problem found by the `lockdep` feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    kind: ReportKind,
    text: String,
}

impl Report {
    #[cfg_attr(not(feature = "lockdep"), allow(dead_code))]
    pub(crate) fn new(kind: ReportKind, text: String) -> Self {
        Report { kind, text }
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ReportKind {
        self.kind
    }

    /// The full text, as the default hook panics with it.
    pub fn message(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

static HOOK: Mutex<Option<fn(&Report)>> = Mutex::new(None);

/// Sends lockdep reports to `hook` (to log them, say) instead of panicking; `None`
/// restores the default, a panic with the report's text. The hook runs on the thread
/// that made the acquisition, before that acquisition goes on; locks it takes are not
/// checked. Without the `lockdep` feature there are no reports and this does nothing
/// that matters.
///
/// ```
/// fn log(report: &rangelock::lockdep::Report) {
///     eprintln!("{report}");
/// }
/// rangelock::lockdep::set_report_hook(Some(log));
/// # rangelock::lockdep::set_report_hook(None);
/// ```
pub fn set_report_hook(hook: Option<fn(&Report)>) {
    *HOOK.lock().unwrap_or_else(|p| p.into_inner()) = hook;
}

/// Hands `report` to the hook, or panics with it.
#[cfg(feature = "lockdep")]
pub(crate) fn deliver(report: Report) {
    let hook = *HOOK.lock().unwrap_or_else(|p| p.into_inner());
    match hook {
        Some(hook) => hook(&report),
        None => panic!("{report}"),
    }
}

#[cfg(feature = "lockdep")]
pub(crate) use wording::*;

/// The text of each kind of report.
#[cfg(feature = "lockdep")]
mod wording {
    use core::fmt::Write;
    use std::backtrace::Backtrace;
    use std::sync::Arc;

    use super::super::graph::EdgeInfo;
    use super::super::held::HeldLock;
    use super::{Report, ReportKind};

    const RULE: &str = "======================================================";
    const DASH: &str = "------------------------------------------------------";

    fn lock_line(lock: &HeldLock) -> String {
        format!("{} ({})", lock.node.label(), lock.describe())
    }

    fn indent(backtrace: &Backtrace) -> String {
        let mut out = String::new();
        for line in backtrace.to_string().lines() {
            let _ = writeln!(out, "      {line}");
        }
        out
    }

    fn header(text: &mut String, title: &str) {
        let _ = writeln!(text, "\n{RULE}\nWARNING: {title}\n{DASH}");
    }

    /// The new edge `edge` closes a cycle with `chain` (`to -> ... -> from`).
    pub(crate) fn circular(edge: &EdgeInfo, chain: &[Arc<EdgeInfo>]) -> Report {
        let mut t = String::new();
        header(&mut t, "possible circular locking dependency detected");
        let _ = writeln!(
            t,
            "thread '{}' is trying to acquire lock:\n  {}\n\nbut it already holds lock:\n  {}\n\nwhich lock already depends on the new lock.\n",
            edge.thread,
            lock_line(&edge.to),
            lock_line(&edge.from)
        );
        let _ = writeln!(t, "the existing dependency chain is:\n");
        for (n, link) in chain.iter().enumerate() {
            let _ = writeln!(
                t,
                "-> #{n} {} taken while holding {}\n   by thread '{}' ({} while holding {}), first seen at:\n{}",
                link.to.node.label(),
                link.from.node.label(),
                link.thread,
                link.to.describe(),
                link.from.describe(),
                indent(&link.backtrace)
            );
        }
        let _ = writeln!(
            t,
            "and the new dependency {} -> {}, which closes the cycle, at:\n{}",
            edge.from.node.label(),
            edge.to.node.label(),
            indent(&edge.backtrace)
        );
        let (a, b) = (edge.from.node.label(), edge.to.node.label());
        let _ = writeln!(
            t,
            " Possible unsafe locking scenario:\n\n       thread 1                thread 2\n       --------                --------\n  lock({a});\n                               lock({b});\n                               (the chain above: {b} ... then) lock({a});\n  lock({b});\n\n *** DEADLOCK ***"
        );
        Report::new(ReportKind::CircularDependency, t)
    }

    /// `to` is taken below `held`, a range of the same tree.
    pub(crate) fn descending(thread: &str, held: &HeldLock, to: &HeldLock) -> Report {
        let mut t = String::new();
        header(
            &mut t,
            "possible circular locking dependency within one tree",
        );
        let _ = writeln!(
            t,
            "thread '{thread}' is trying to acquire:\n  {}\n\nbut it already holds, higher in the same tree:\n  {}\n\nRanges of one tree must be taken in ascending order of their first index: a thread that\ntakes them in the other order can wait for one that holds the lower range and waits for the\nhigher one. (A Shared range inside Shared ranges the thread holds is exempt.)\n\nacquired at:\n{}",
            lock_line(to),
            lock_line(held),
            indent(&Backtrace::force_capture())
        );
        Report::new(ReportKind::DescendingRange, t)
    }

    /// `to` has the class and subclass of `held`, another tree.
    pub(crate) fn undeclared_nesting(thread: &str, held: &HeldLock, to: &HeldLock) -> Report {
        let mut t = String::new();
        header(&mut t, "possible recursive locking detected");
        let _ = writeln!(
            t,
            "thread '{thread}' is trying to acquire:\n  {}\n\nbut it already holds a lock of the same class:\n  {}\n\nTwo trees of one class held at once need a declared nesting level\n(`lock_range_nested(range, mode, subclass)` or `rangelock::lockdep::nested`), and every\nthread must nest them in one order (by inode number, say).\n\nacquired at:\n{}",
            lock_line(to),
            lock_line(held),
            indent(&Backtrace::force_capture())
        );
        Report::new(ReportKind::UndeclaredNesting, t)
    }

    /// A page lock taken again by its holder.
    pub(crate) fn recursive(thread: &str, to: &HeldLock) -> Report {
        let mut t = String::new();
        header(
            &mut t,
            "recursive locking detected: this thread holds the lock",
        );
        let _ = writeln!(
            t,
            "thread '{thread}' is trying to acquire:\n  {}\nwhich it already holds: it would wait for itself.\n\nacquired at:\n{}",
            lock_line(to),
            indent(&Backtrace::force_capture())
        );
        Report::new(ReportKind::RecursiveLock, t)
    }
}
