//! Deliberate breakages for the loom models' negative controls (`tests/loom/mutations.rs`).
//!
//! A loom model proves a protocol only if the same model *fails* when the protocol is
//! broken. Each [`Mutation`] switches off one protection at the one place that provides
//! it; the mutation models run a race with it switched off and check that loom (or the
//! model's own assertions) catch what goes wrong, and run the same race without it and
//! check that it passes.
//!
//! Only compiled in under `cfg(loom)`; everywhere else [`active`] is the constant
//! `false` and the call sites compile to nothing. Loom runs all the threads of a model on
//! the OS thread that called `loom::model`, so the switch is an OS thread-local
//! (`sync::os_thread_local`): it applies to every thread of one model and to nothing
//! that other tests run at the same time.

/// One protection switched off (see the module docs).
#[cfg(loom)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Nothing is broken.
    None,
    /// `Node::lock` does not take the node's spin lock (it still reports obsolete
    /// nodes): two writers of one leaf change its slots and `count` at the same time.
    NodeLockSkipped,
    /// `Node::lock` ignores the obsolete flag: a writer that walked to a node which has
    /// since been unlinked writes into the dead node.
    ObsoleteIgnored,
    /// `WriteCursor::lock_at`, and the lock fast paths inside a node
    /// (`xarray/slot_fast.rs`), keep what they read on their unlocked walk instead of
    /// reading the slots again under the lock: a writer acts on a slot another writer
    /// has changed meanwhile (splits a multi-index entry that was split already, claims
    /// a slot another locker has just claimed, empties an entry whose waiter has just
    /// queued on it).
    SlotNotReread,
    /// A lock-free reader of a lock record does not check the record's sequence number
    /// after reading its bounds: it can combine the bounds of two publications of one
    /// recycled record.
    RecordSeqUnchecked,
    /// `WriteCursor::set_mark` ignores the node's propagation count: a writer whose set
    /// left the node's summary as it was stops there, though another writer's
    /// recomputation of the ancestors is still under way, and returns before its mark
    /// is visible from the head.
    PropagationIgnored,
    /// `WriteCursor::unlink_empty` does not check, under the node's lock, that a kept
    /// node it unlinks is still empty: an unlinker that saw an empty node kept for lockers
    /// (`XArray::trim`'s unlocked walk) unlinks it after a locker has claimed a slot in
    /// it, and the lock entry goes with the node.
    EmptinessUnchecked,
}

#[cfg(loom)]
crate::sync::os_thread_local! {
    static ACTIVE: core::cell::Cell<Mutation> = const { core::cell::Cell::new(Mutation::None) };
}

/// Switches `mutation` on for every model this OS thread runs from now on
/// ([`Mutation::None`] switches it off). Test-only: nothing else may call it.
#[cfg(loom)]
#[doc(hidden)]
pub fn set(mutation: Mutation) {
    ACTIVE.with(|active| active.set(mutation));
}

/// Whether `mutation` is switched on.
#[cfg(loom)]
#[inline]
pub(crate) fn active(mutation: Mutation) -> bool {
    ACTIVE.with(|active| active.get()) == mutation
}
