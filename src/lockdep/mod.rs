//! Lock-order checking: the `lockdep` cargo feature.
//!
//! Range locks of one tree cannot deadlock one another when every thread takes them in
//! ascending order, and the lock layer catches a thread waiting for itself
//! ([`LockError::WouldDeadlock`](crate::LockError::WouldDeadlock)). What it cannot see
//! is two threads taking locks of two trees (two files, a file and a journal, a range
//! and a page lock) in opposite orders: they hang in production, on the one run where
//! the timing lines up. With the `lockdep` feature the crate checks lock order the way
//! the Linux kernel's lockdep does, and reports the possible deadlock on any run where
//! both orders were *taken*, at different times or not, hung or not.
//!
//! # Classes
//!
//! Every [`XArray`](crate::XArray), [`RangeLock`](crate::RangeLock) and
//! [`Mapping`](crate::mapping::Mapping) has a lock class: the source location that
//! built it (its constructor is `#[track_caller]` with the feature on), or a name given
//! with `with_class("inode.i_pages")`. The page locks of all mappings are one class,
//! `rangelock::Page::lock`; a fill runs under its page's one-index range lock (the
//! mapping's class), a flush under the direct IO's range and the page lock, a
//! write-back under the page lock: user callbacks that take locks are checked against
//! those.
//!
//! # The rules
//!
//! * **Order graph.** Acquiring a lock of class B while holding one of class A records
//!   the edge A -> B, with the modes, ranges and a backtrace of the first time it was
//!   seen. An edge that closes a cycle is reported at once: one run took A then B,
//!   another (or the same, earlier) B then A. Three classes or more work the same way.
//! * **Within a tree**, ranges are taken in ascending order of their first index;
//!   taking a lower one while holding a higher one is reported. A Shared range inside
//!   Shared ranges the thread holds is exempt (it joins without waiting), and a range
//!   the lock layer refuses with `WouldDeadlock` is not reported.
//! * **Two trees of one class** held at once must declare their nesting level:
//!   [`XArray::lock_range_nested`](crate::XArray::lock_range_nested),
//!   [`RangeLock::lock_nested`](crate::RangeLock::lock_nested), or [`nested`] around any
//!   call that locks (a `Mapping` operation). Levels are ordered like classes.
//! * `try_` acquisitions never wait, so they add no edges; once granted they count as
//!   held. A detached guard leaves its thread's held set when it detaches.
//!
//! See `check.rs` for the rules as a table.
//!
//! # Reports
//!
//! A report panics by default, before the acquisition claims anything;
//! [`set_report_hook`] lets a program log it instead. An ABBA between two mappings reads
//! (backtraces shortened):
//!
//! ```text
//! ======================================================
//! WARNING: possible circular locking dependency detected
//! ------------------------------------------------------
//! thread 'second' is trying to acquire lock:
//!   file.a (Exclusive 0..=0 of tree 7)
//!
//! but it already holds lock:
//!   file.b (Exclusive 0..=0 of tree 8)
//!
//! which lock already depends on the new lock.
//!
//! the existing dependency chain is:
//!
//! -> #0 file.b taken while holding file.a
//!    by thread 'first' (Exclusive 0..=0 of tree 8 while holding Exclusive 0..=0 of tree 7), first seen at:
//!       0: rangelock::lockdep::graph::OrderGraph::add
//!       ...
//!       6: lockdep::abba_across_two_mappings::{{closure}}
//!              at ./tests/lockdep.rs:40:22
//!
//! and the new dependency file.b -> file.a, which closes the cycle, at:
//!       0: rangelock::lockdep::graph::OrderGraph::add
//!       ...
//!       6: lockdep::abba_across_two_mappings::{{closure}}
//!              at ./tests/lockdep.rs:47:22
//!
//!  Possible unsafe locking scenario:
//!
//!        thread 1                thread 2
//!        --------                --------
//!   lock(file.b);
//!                                lock(file.a);
//!                                (the chain above: file.a ... then) lock(file.b);
//!   lock(file.a);
//!
//!  *** DEADLOCK ***
//! ```
//!
//! # Cost
//!
//! Off (the default), the feature adds nothing: the hooks are empty inline functions
//! and zero-sized fields (`tests/xarray/type_sizes.rs` checks the sizes). On, a tree is 8
//! bytes larger and a page lock 8, and an acquisition costs one thread-local read while
//! the thread holds nothing, plus a probe of a thread-local set of known edges per lock
//! held. The graph is an `arc_swap::ArcSwap` snapshot, read when an edge is not known to
//! the thread and copied only when an edge is new (`graph.rs`). `benches/range_lock.rs`
//! has the numbers (group `lockdep`).
//!
//! # Not checked
//!
//! Page locks nested in page locks (they have no nesting API and no order of their
//! own), waits that are not acquisitions (`load_wait`, the wait for sealed entries), and
//! locks that are not this crate's. The feature is not available under loom.

#[cfg(all(feature = "lockdep", loom))]
compile_error!("the `lockdep` feature does not run under loom: build loom models without it");

mod api;
#[cfg(feature = "lockdep")]
mod check;
#[cfg(feature = "lockdep")]
mod class;
#[cfg(feature = "lockdep")]
mod graph;
#[cfg(feature = "lockdep")]
mod held;
#[cfg(feature = "lockdep")]
mod hooks;
#[cfg(not(feature = "lockdep"))]
mod off;
mod report;
#[cfg(all(test, feature = "lockdep"))]
mod tests;

#[cfg(feature = "lockdep")]
pub(crate) use hooks::*;
#[cfg(not(feature = "lockdep"))]
pub(crate) use off::*;
pub use report::{set_report_hook, Report, ReportKind};

/// Runs `f` with every lock it takes on this thread declared at nesting level
/// `subclass` of its class (see the module docs): for two trees of one class held at
/// once, such as two files of one file system locked by inode order. Without the
/// `lockdep` feature it just runs `f`.
///
/// ```
/// use rangelock::mapping::Mapping;
/// use rangelock::lockdep;
///
/// let make = || Mapping::<Vec<u8>>::new().with_class("fs.file");
/// let (lower_inode, higher_inode) = (make(), make());
/// let a = lower_inode.pages().lock_range(0..4, rangelock::LockMode::Exclusive).unwrap();
/// lockdep::nested(1, || higher_inode.truncate(0)).unwrap();
/// # drop(a);
/// ```
pub fn nested<R>(subclass: u8, f: impl FnOnce() -> R) -> R {
    /// Puts the previous level back, also on unwind.
    struct Restore(u8);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_subclass(self.0);
        }
    }
    let _restore = Restore(set_subclass(subclass));
    f()
}

/// Runs `f` with lock-order checking off on this thread, like the kernel's
/// `lockdep_off()`: its acquisitions are recorded as held (what is taken under them is
/// ordered after them later) but neither checked nor added to the graph. For code whose
/// order is arbitrary on purpose and that never runs concurrently with other lockers
/// of the same locks: sequential models and fuzz drivers that take random ranges of one
/// tree on one thread. Without the `lockdep` feature it just runs `f`.
pub fn unchecked<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the previous setting back, also on unwind.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_unchecked(self.0);
        }
    }
    let _restore = Restore(set_unchecked(true));
    f()
}
