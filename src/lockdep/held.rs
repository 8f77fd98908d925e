//! What one thread holds, as the order checker sees it, and the edges it already knows.
//!
//! Separate from the lock layer's own held list (`lock/held.rs`, which detects
//! self-deadlock and must stay lean): this one also records each lock's class and
//! subclass, covers page locks, and carries the thread's cache of order-graph edges
//! known to exist, so that an acquisition whose edges are all known reads neither the
//! graph nor any shared memory.
//!
//! # Invariants
//!
//! * A record is pushed when a lock is granted to this thread and removed when its guard
//!   is released or detached (a detached guard may be released on another thread: it
//!   has left this list before it leaves this thread).
//! * `known` only grows, and only with edges that are in the global graph: the graph
//!   never loses an edge, so a cached edge is never stale.
//! * `subclass` is non-zero only inside `lockdep::nested`, and applies to every
//!   acquisition made there; `unchecked` is set only inside `lockdep::unchecked`.
//! * A forgotten guard's record stays until its tree is dropped, then goes at the next
//!   push or check (the lock layer's registry of dropped trees says which).

use core::cell::RefCell;
use core::hash::{BuildHasherDefault, Hasher};
use std::collections::HashSet;

use smallvec::SmallVec;

use super::class::Node;
use crate::xarray::{identity, LockMode};

/// Which lock a record is: a tree (by id) or a page lock (by the page's address, stable
/// while the page is locked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Instance {
    Tree(u64),
    Page(usize),
}

/// One lock this thread holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeldLock {
    pub(crate) instance: Instance,
    pub(crate) node: Node,
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) mode: LockMode,
}

impl HeldLock {
    /// "Exclusive 0..=9", or "page lock" for a page.
    pub(crate) fn describe(&self) -> String {
        match self.instance {
            Instance::Tree(tree) => format!(
                "{:?} {}..={} of tree {tree}",
                self.mode, self.first, self.last
            ),
            Instance::Page(_) => "page lock".to_owned(),
        }
    }
}

/// A hasher for packed edges (two `u32` node keys): one multiply, enough for keys that
/// are small dense integers.
#[derive(Default)]
pub(crate) struct EdgeHasher(u64);

impl Hasher for EdgeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = (key ^ key >> 29).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The edges of the order graph a thread has seen already.
pub(crate) type KnownEdges = HashSet<u64, BuildHasherDefault<EdgeHasher>>;

/// One thread's view.
#[derive(Debug, Default)]
pub(crate) struct ThreadState {
    pub(crate) held: SmallVec<[HeldLock; 8]>,
    pub(crate) known: KnownEdges,
    pub(crate) subclass: u8,
    /// Inside `lockdep::unchecked`: acquisitions are recorded, not checked.
    pub(crate) unchecked: bool,
    /// The dropped-tree generation last pruned against (as in `lock/held.rs`).
    pruned_at: u64,
}

impl ThreadState {
    /// Records a granted lock.
    pub(crate) fn push(&mut self, lock: HeldLock) {
        self.prune();
        self.held.push(lock);
    }

    /// Drops the records of trees dropped (with a forgotten guard's lock in them) since
    /// the last prune: a forgotten guard's record lives as long as its tree, as in
    /// `lock/held.rs`. One atomic load while nothing changed.
    pub(crate) fn prune(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let generation = identity::dead_generation();
        if generation == self.pruned_at {
            return;
        }
        self.pruned_at = generation;
        identity::with_dead(|dead| {
            self.held
                .retain(|h| !matches!(h.instance, Instance::Tree(tree) if dead(tree)))
        });
    }

    /// Forgets the most recent record of `instance` over `first..=last`.
    pub(crate) fn remove(&mut self, instance: Instance, first: u64, last: u64) {
        if let Some(at) = self
            .held
            .iter()
            .rposition(|h| h.instance == instance && h.first == first && h.last == last)
        {
            self.held.remove(at);
        }
    }

    /// Sets the mode of the most recent record of `instance` over `first..=last`.
    pub(crate) fn set_mode(&mut self, instance: Instance, first: u64, last: u64, mode: LockMode) {
        if let Some(h) = self
            .held
            .iter_mut()
            .rev()
            .find(|h| h.instance == instance && h.first == first && h.last == last)
        {
            h.mode = mode;
        }
    }
}

crate::sync::thread_local! {
    static STATE: RefCell<ThreadState> = RefCell::new(ThreadState::default());
}

/// Runs `f` on this thread's state; `None` during thread-local destruction or if the
/// state is already borrowed (a report hook that takes a lock: it is not checked).
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&mut ThreadState) -> R) -> Option<R> {
    STATE
        .try_with(|state| state.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}
