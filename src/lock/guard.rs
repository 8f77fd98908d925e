//! Range guards: what a granted range lock is, and how it ends.

use core::fmt;
use core::marker::PhantomData;
use core::ops::RangeInclusive;

use super::error::PublishError;
use super::evicted::Evicted;
use super::lock_cursor::LockCursor;
use super::{held, LockMode};
use crate::sync::ItemArc as Arc;
use crate::xarray::lock_word::LockState;
use crate::xarray::span::Block;
use crate::xarray::XArray;

/// The state both guard types share: the tree, the range, the mode, and what only some
/// guards have (kept out of line, so that the common guard, which evicted nothing, is
/// five words and moves cheaply).
struct Held<'a, T: Send + Sync + 'static, const SLOTS: usize> {
    xa: &'a XArray<T, SLOTS>,
    first: u64,
    last: u64,
    /// The mode, and whether to put the evicted entries back on release (a fill that
    /// failed) instead of leaving the indices empty.
    flags: Flags,
    /// `None` while the guard has no evicted entry and nothing sealed.
    extra: Option<Box<Extra<T>>>,
}

/// A guard's mode and its restore flag, in one word. The fast paths build a guard that
/// their caller moves at once: two byte fields written one by one and then copied as one
/// word make the load wait for both stores to retire (a failed store forwarding, which
/// perf put at a third of an uncontended whole-range lock and unlock), where a word
/// written whole is forwarded.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Flags(usize);

impl Flags {
    /// Above the mode's bit ([`LockMode::BIT`]).
    const RESTORE: usize = 2;

    #[inline(always)]
    fn new(mode: LockMode) -> Self {
        Flags(mode.bit())
    }

    #[inline(always)]
    fn mode(self) -> LockMode {
        LockMode::from_bit(self.0)
    }

    #[inline(always)]
    fn restore(self) -> bool {
        self.0 & Self::RESTORE != 0
    }
}

/// The evicted entries and the sealed blocks of a guard that has any.
struct Extra<T> {
    evicted: Vec<Evicted<T>>,
    /// Entries still sealed (`pending`) by a sealed acquisition.
    sealed: Vec<Block>,
}

impl<T> Extra<T> {
    #[inline(never)]
    fn boxed(evicted: Vec<Evicted<T>>) -> Box<Self> {
        Box::new(Extra {
            evicted,
            sealed: Vec::new(),
        })
    }
}

impl<T> Default for Extra<T> {
    fn default() -> Self {
        Extra {
            evicted: Vec::new(),
            sealed: Vec::new(),
        }
    }
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> Held<'a, T, SLOTS> {
    /// Inlined: the fast paths build the guard in place. Out of line, this constructor
    /// wrote the guard's byte fields one by one and its caller read them back as one
    /// word, a failed store forwarding that perf put at a third of an uncontended
    /// whole-range lock and unlock.
    #[inline(always)]
    fn new(
        xa: &'a XArray<T, SLOTS>,
        first: u64,
        last: u64,
        mode: LockMode,
        evicted: Vec<Evicted<T>>,
    ) -> Self {
        let extra = if evicted.is_empty() {
            None
        } else {
            Some(Extra::boxed(evicted))
        };
        Held {
            xa,
            first,
            last,
            flags: Flags::new(mode),
            extra,
        }
    }

    fn evicted(&self) -> &[Evicted<T>] {
        self.extra.as_ref().map_or(&[], |e| &e.evicted)
    }

    fn take_evicted(&mut self) -> Vec<Evicted<T>> {
        self.extra
            .as_mut()
            .map(|e| core::mem::take(&mut e.evicted))
            .unwrap_or_default()
    }

    fn sealed(&self) -> &[Block] {
        self.extra.as_ref().map_or(&[], |e| &e.sealed)
    }

    fn is_sealed(&self) -> bool {
        !self.sealed().is_empty()
    }

    fn take_sealed(&mut self) -> Vec<Block> {
        self.extra
            .as_mut()
            .map(|e| core::mem::take(&mut e.sealed))
            .unwrap_or_default()
    }

    fn set_sealed(&mut self, sealed: Vec<Block>) {
        if sealed.is_empty() && self.extra.is_none() {
            return;
        }
        self.extra.get_or_insert_with(Box::default).sealed = sealed;
    }

    #[inline]
    fn mode(&self) -> LockMode {
        self.flags.mode()
    }

    fn tree(&self) -> u64 {
        self.xa.id
    }

    fn range(&self) -> RangeInclusive<u64> {
        self.first..=self.last
    }

    fn is_whole(&self) -> bool {
        self.first == 0 && self.last == u64::MAX
    }

    /// Opens the entries still sealed in the tree (and wakes the holders waiting to
    /// join them); the caller keeps its thread's held list in step.
    fn open_sealed(&mut self) {
        let blocks = self.take_sealed();
        let mut lc = LockCursor::new(self.xa);
        lc.unseal(blocks);
        lc.pending_closed();
    }

    /// Gives the range back: one compare-exchange of the head for an entry there that
    /// is the tree's only one (a whole-range entry with one holder, or a lock record);
    /// one slot emptied under its node's lock for a one-holder entry that lies in one
    /// slot; else a walk.
    #[inline]
    fn release(self) {
        if !self.try_release_fast() {
            self.release_slow();
        }
    }

    /// The fast paths of [`release`](Self::release), from a borrow: a guard's drop
    /// tries them before it moves its state out, so that the common release copies
    /// nothing (a guard built a moment ago and copied out whole waits for its stores).
    /// `true`: released; the state is left for its plain drop.
    #[inline]
    fn try_release_fast(&self) -> bool {
        if self.is_sealed() || self.flags.restore() {
            return false;
        }
        let state = LockState::single(self.mode());
        self.xa.try_release_head(self.is_whole(), state)
            || (!self.is_whole() && self.xa.try_release_slots(self.first, self.last, state))
    }

    #[inline(never)]
    fn release_slow(mut self) {
        let mut lc = LockCursor::new(self.xa);
        if self.flags.restore() && !self.evicted().is_empty() {
            let evicted = self.take_evicted();
            lc.release_restoring(self.first, self.last, evicted);
            if self.is_sealed() {
                lc.pending_closed();
            }
            return;
        }
        if self.is_sealed() {
            // Released unopened: the entries go with the rest of the range, then the
            // count of pending acquisitions drops.
            lc.release(self.first, self.last);
            lc.pending_closed();
            return;
        }
        lc.release(self.first, self.last);
    }

    /// Replaces a one-index Exclusive lock by `item` (see [`RangeGuard::publish`]);
    /// any other range is released and `item` handed back.
    fn publish(self, item: Arc<T>) -> Result<(), PublishError<T>> {
        if self.first != self.last || self.mode() != LockMode::Exclusive {
            self.release();
            return Err(PublishError { item });
        }
        let mut lc = LockCursor::new(self.xa);
        lc.publish(self.first, item);
        if self.is_sealed() {
            // A sealed one-index guard over an evicted item: its entry, pending until
            // now, was replaced by the item.
            lc.pending_closed();
        }
        Ok(())
    }

    /// Puts `evicted` back and releases the range (see
    /// [`RangeGuard::release_restoring`]).
    fn release_restoring(self, evicted: Vec<Evicted<T>>) {
        debug_assert!(
            self.mode() == LockMode::Exclusive
                || evicted
                    .iter()
                    .all(|e| self.sealed().iter().any(|b| b.first == e.block.first)),
            "restoring entries that others may share"
        );
        // One ascending walk: each index is put back or released in the step that
        // visits it, and never touched again.
        let mut lc = LockCursor::new(self.xa);
        lc.release_restoring(self.first, self.last, evicted);
        if self.is_sealed() {
            lc.pending_closed();
        }
    }

    fn downgrade(&mut self) {
        if self.mode() == LockMode::Shared {
            return;
        }
        self.flags.0 &= !LockMode::BIT;
        if self.is_whole()
            && self.xa.try_change_head_state(
                LockState::single(LockMode::Exclusive),
                LockState::single(LockMode::Shared),
            )
        {
            return;
        }
        LockCursor::new(self.xa).downgrade(self.first, self.last);
    }
}

/// A granted range lock. Dropping it (also during a panic's unwinding) releases the
/// range and wakes the waiters that can now run.
///
/// The guard belongs to the thread that acquired it (it is `!Send`: the thread's held-lock
/// list, which detects self-deadlock, names it). To release it on another thread (an
/// asynchronous IO completion), [`detach`](Self::detach) it first.
///
/// ```
/// use rangelock::{Entry, LockMode, XArray};
/// use std::sync::Arc;
///
/// let pages: XArray<&str> = XArray::new();
/// pages.store(5, Arc::new("dirty page")).unwrap();
///
/// // A direct-IO write over pages 0..16: the cached page is evicted into the guard.
/// // Sealed, so that no other direct IO joins page 5 before it is written back.
/// let mut dio = pages.lock_range_sealed(0..16, LockMode::Shared).unwrap();
/// assert_eq!(dio.evicted().len(), 1);
/// assert!(matches!(pages.get(5), Entry::Locked { mode: LockMode::Shared, holders: 1 }));
/// let page = dio.take_evicted().remove(0).into_entry();
/// assert_eq!(page.item().map(|p| **p), Some("dirty page")); // write it back,
/// dio.unseal(); // then let other direct IO in, and do this one's IO
/// drop(dio);
/// assert!(pages.get(5).is_empty());
/// ```
#[must_use = "the range is unlocked as soon as the guard is dropped"]
pub struct RangeGuard<'a, T: Send + Sync + 'static, const SLOTS: usize = 64> {
    held: Option<Held<'a, T, SLOTS>>,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> RangeGuard<'a, T, SLOTS> {
    /// A guard for a range just granted to this thread.
    #[inline]
    pub(crate) fn new(
        xa: &'a XArray<T, SLOTS>,
        first: u64,
        last: u64,
        mode: LockMode,
        evicted: Vec<Evicted<T>>,
    ) -> Self {
        held::push(xa.id, first, last, mode);
        crate::lockdep::granted(xa, first, last, mode);
        RangeGuard {
            held: Some(Held::new(xa, first, last, mode, evicted)),
            _not_send: PhantomData,
        }
    }

    fn held(&self) -> &Held<'a, T, SLOTS> {
        self.held.as_ref().expect("a live guard")
    }

    /// Makes the release put the evicted entries back (the fill protocol: a fill that
    /// fails or panics must not lose the shadow entry it was going to replace).
    pub(crate) fn restore_on_release(mut self) -> Self {
        self.held.as_mut().expect("a live guard").flags.0 |= Flags::RESTORE;
        self
    }

    /// Records the entries a sealed acquisition left sealed.
    pub(crate) fn with_sealed(mut self, sealed: Vec<Block>) -> Self {
        let h = self.held.as_mut().expect("a live guard");
        if !sealed.is_empty() {
            held::set_sealed(h.tree(), h.first, h.last, h.mode(), true);
        }
        h.set_sealed(sealed);
        self
    }

    /// Whether entries of this guard are still sealed (see
    /// [`lock_range_sealed`](XArray::lock_range_sealed)).
    pub fn is_sealed(&self) -> bool {
        self.held().is_sealed()
    }

    /// Opens the entries that [`lock_range_sealed`](XArray::lock_range_sealed) made by
    /// evicting to other compatible holders (and wakes the ones waiting to join). Does
    /// nothing for a guard with nothing sealed.
    pub fn unseal(&mut self) {
        let h = self.held.as_mut().expect("a live guard");
        if !h.is_sealed() {
            return;
        }
        held::set_sealed(h.tree(), h.first, h.last, h.mode(), false);
        h.open_sealed();
    }

    /// Puts `evicted` (entries this guard evicted and holds alone: Exclusive, or still
    /// sealed) back in place
    /// of their lock entries, marks included, and releases the range: the direct-IO
    /// path's undo when writing back an evicted dirty page failed.
    pub(crate) fn release_restoring(mut self, evicted: Vec<Evicted<T>>) {
        self.take().release_restoring(evicted);
    }

    /// Takes the guard out of this thread's held list (it is being consumed).
    #[inline]
    fn take(&mut self) -> Held<'a, T, SLOTS> {
        let h = self.held.take().expect("a live guard");
        held::remove(h.tree(), h.first, h.last, h.mode(), h.is_sealed());
        crate::lockdep::released(h.tree(), h.first, h.last);
        h
    }

    /// The locked indices.
    pub fn range(&self) -> RangeInclusive<u64> {
        self.held().range()
    }

    /// The mode the range is held in.
    pub fn mode(&self) -> LockMode {
        self.held().mode()
    }

    /// The items and values the acquisition removed from the range, in index order.
    pub fn evicted(&self) -> &[Evicted<T>] {
        self.held().evicted()
    }

    /// Takes the evicted entries (to write dirty pages back, say).
    pub fn take_evicted(&mut self) -> Vec<Evicted<T>> {
        take_evicted(&mut self.held)
    }

    /// Turns an Exclusive guard into a Shared one without letting go of the range, and
    /// wakes the Shared waiters at the front of the queue. A Shared guard is unchanged.
    pub fn downgrade(&mut self) {
        let h = self.held.as_mut().expect("a live guard");
        let from = h.mode();
        h.downgrade();
        let sealed = h.is_sealed();
        held::set_mode(h.tree(), h.first, h.last, sealed, from, LockMode::Shared);
        crate::lockdep::downgraded(h.tree(), h.first, h.last);
    }

    /// Replaces this one-index Exclusive lock by `item` in one atomic step: the fill
    /// protocol of a page fault (lock the missing index, read the page with no internal
    /// lock held, publish it). Waiters wake and find the item.
    ///
    /// Any other guard is released, and the item is handed back in the error.
    pub fn publish(mut self, item: Arc<T>) -> Result<(), PublishError<T>> {
        self.take().publish(item)
    }

    /// A guard that may be released on another thread (asynchronous IO completion). It
    /// leaves this thread's held-lock list, so this thread's later calls no longer count
    /// it when they check for self-deadlock.
    pub fn detach(mut self) -> DetachedGuard<'a, T, SLOTS> {
        DetachedGuard {
            held: Some(self.take()),
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> Drop for RangeGuard<'_, T, SLOTS> {
    #[inline]
    fn drop(&mut self) {
        let Some(h) = &self.held else {
            return;
        };
        held::remove(h.tree(), h.first, h.last, h.mode(), h.is_sealed());
        crate::lockdep::released(h.tree(), h.first, h.last);
        if !h.try_release_fast() {
            self.held.take().expect("a live guard").release_slow();
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> fmt::Debug for RangeGuard<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeGuard")
            .field("range", &self.range())
            .field("mode", &self.mode())
            .field("evicted", &self.evicted().len())
            .finish()
    }
}

/// A range lock that is no longer tied to the thread that took it: it is `Send`, and
/// dropping it on any thread releases the range.
#[must_use = "the range is unlocked as soon as the guard is dropped"]
pub struct DetachedGuard<'a, T: Send + Sync + 'static, const SLOTS: usize = 64> {
    held: Option<Held<'a, T, SLOTS>>,
}

impl<'a, T: Send + Sync + 'static, const SLOTS: usize> DetachedGuard<'a, T, SLOTS> {
    /// A guard for a range just granted to a task (`lock/future.rs`): it goes into no
    /// thread's held list, as a detached [`RangeGuard`] would have left it.
    #[inline]
    pub(crate) fn new(
        xa: &'a XArray<T, SLOTS>,
        first: u64,
        last: u64,
        mode: LockMode,
        evicted: Vec<Evicted<T>>,
    ) -> Self {
        DetachedGuard {
            held: Some(Held::new(xa, first, last, mode, evicted)),
        }
    }

    fn held(&self) -> &Held<'_, T, SLOTS> {
        self.held.as_ref().expect("a live guard")
    }

    /// The locked indices, the mode and the evicted entries, as for [`RangeGuard`].
    pub fn range(&self) -> RangeInclusive<u64> {
        self.held().range()
    }

    /// See [`RangeGuard::mode`].
    pub fn mode(&self) -> LockMode {
        self.held().mode()
    }

    /// See [`RangeGuard::evicted`].
    pub fn evicted(&self) -> &[Evicted<T>] {
        self.held().evicted()
    }

    /// See [`RangeGuard::take_evicted`].
    pub fn take_evicted(&mut self) -> Vec<Evicted<T>> {
        take_evicted(&mut self.held)
    }

    /// Records the entries a sealed asynchronous acquisition left sealed (no held list:
    /// a task's guard is in none).
    pub(crate) fn with_sealed(mut self, sealed: Vec<Block>) -> Self {
        self.held.as_mut().expect("a live guard").set_sealed(sealed);
        self
    }

    /// See [`RangeGuard::is_sealed`].
    pub fn is_sealed(&self) -> bool {
        self.held().is_sealed()
    }

    /// See [`RangeGuard::unseal`]: opens the entries that
    /// [`lock_range_sealed_async`](XArray::lock_range_sealed_async) (or a sealed guard
    /// detached) made by evicting to other compatible holders.
    pub fn unseal(&mut self) {
        let h = self.held.as_mut().expect("a live guard");
        if !h.is_sealed() {
            return;
        }
        // In no thread's held list (detached, or a task's): only the tree changes.
        h.open_sealed();
    }

    /// See [`RangeGuard::publish`]: replaces this one-index Exclusive lock by `item`;
    /// any other guard is released and the item handed back in the error.
    pub fn publish(mut self, item: Arc<T>) -> Result<(), PublishError<T>> {
        self.held.take().expect("a live guard").publish(item)
    }

    /// See [`RangeGuard::release_restoring`]: puts `evicted` back in place of their
    /// lock entries and releases the range (an asynchronous direct IO or edit that
    /// failed or was cancelled before it committed).
    pub(crate) fn release_restoring(mut self, evicted: Vec<Evicted<T>>) {
        self.held
            .take()
            .expect("a live guard")
            .release_restoring(evicted);
    }

    /// Makes the release put the evicted entries back (see
    /// [`RangeGuard::restore_on_release`]): an asynchronous fill that fails, panics
    /// or is cancelled leaves the index as it found it.
    pub(crate) fn restore_on_release(mut self) -> Self {
        self.held.as_mut().expect("a live guard").flags.0 |= Flags::RESTORE;
        self
    }
}

/// Takes the evicted entries out of a live guard's state.
fn take_evicted<T: Send + Sync + 'static, const SLOTS: usize>(
    held: &mut Option<Held<'_, T, SLOTS>>,
) -> Vec<Evicted<T>> {
    held.as_mut().expect("a live guard").take_evicted()
}

impl<T: Send + Sync + 'static, const SLOTS: usize> Drop for DetachedGuard<'_, T, SLOTS> {
    fn drop(&mut self) {
        // As `RangeGuard`'s drop: the fast release from a borrow.
        if let Some(h) = &self.held {
            if !h.try_release_fast() {
                self.held.take().expect("a live guard").release_slow();
            }
        }
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> fmt::Debug for DetachedGuard<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetachedGuard")
            .field("range", &self.range())
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}
