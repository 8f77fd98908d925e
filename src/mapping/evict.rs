//! Taking over the pages that a range lock evicted, and putting them back if the
//! operation fails.
//!
//! A range lock removes cached pages from the tree atomically with the lock entries that
//! replace them; the pages' own state changes afterwards, one page lock at a time (see
//! [`Page`]). While an [`Eviction`] lives, the range stays locked and the evicted
//! entries are held alone (a sealed Shared lock, or an Exclusive one), so they can still
//! be put back: dropping the `Eviction` without [`commit`](Eviction::commit) (an error
//! returned by a callback, a refused edit, a panic in a callback) does that.
//!
//! # The undo
//!
//! Every evicted page is locked, in ascending index order, before anything is put back,
//! and stays locked until the range has been released: so no page can be evicted again,
//! written, or written back half-way through. Each page's `evicted` flag is cleared and
//! its restored marks are rebuilt from its flags (a buffered write that was inside its
//! page lock when the eviction happened may have dirtied it since, and its mark was
//! refused by the lock entry; a write-back that ran meanwhile has cleaned it). Then the
//! entries go back and the range is released in one ascending walk of the tree, each
//! index put back or released by the step that visits it, before any page lock is let
//! go.

use core::ops::RangeInclusive;
use std::sync::Arc;

use super::error::MappingError;
use super::page::{Page, PageLock};
use super::{Mapping, DIRTY, WRITEBACK};
use crate::lock::{DetachedGuard, Evicted, LockMode, RangeGuard};

/// What an [`Eviction`] needs of the guard it holds: a thread's [`RangeGuard`] (the
/// blocking operations) or a task's [`DetachedGuard`] (the asynchronous ones).
pub(crate) trait EvictingGuard<T>: Sized {
    /// The entries the acquisition evicted, in index order.
    fn take_evicted(&mut self) -> Vec<Evicted<T>>;
    /// Puts `evicted` back and releases the range.
    fn release_restoring(self, evicted: Vec<Evicted<T>>);
}

impl<T: Send + Sync + 'static, const SLOTS: usize> EvictingGuard<T> for RangeGuard<'_, T, SLOTS> {
    fn take_evicted(&mut self) -> Vec<Evicted<T>> {
        RangeGuard::take_evicted(self)
    }

    fn release_restoring(self, evicted: Vec<Evicted<T>>) {
        RangeGuard::release_restoring(self, evicted);
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> EvictingGuard<T>
    for DetachedGuard<'_, T, SLOTS>
{
    fn take_evicted(&mut self) -> Vec<Evicted<T>> {
        DetachedGuard::take_evicted(self)
    }

    fn release_restoring(self, evicted: Vec<Evicted<T>>) {
        DetachedGuard::release_restoring(self, evicted);
    }
}

/// Pages evicted by a range lock that the operation has not yet committed to; `G` is
/// the guard that holds the range.
pub(crate) struct Eviction<
    'a,
    P: Send + Sync + 'static,
    const SLOTS: usize,
    G: EvictingGuard<Page<P>>,
> {
    mapping: &'a Mapping<P, SLOTS>,
    guard: Option<G>,
    evicted: Vec<Evicted<Page<P>>>,
}

impl<'a, P: Send + Sync + 'static, const SLOTS: usize, G: EvictingGuard<Page<P>>>
    Eviction<'a, P, SLOTS, G>
{
    /// Takes over what `guard` evicted. The guard must hold the evicted entries alone
    /// (sealed, or Exclusive) until [`commit`](Self::commit).
    pub(crate) fn new(mapping: &'a Mapping<P, SLOTS>, mut guard: G) -> Self {
        let evicted = guard.take_evicted();
        Eviction {
            mapping,
            guard: Some(guard),
            evicted,
        }
    }

    /// The evicted pages (not shadow entries), ascending, with their indices.
    pub(crate) fn pages(&self) -> impl Iterator<Item = (u64, &Arc<Page<P>>)> {
        self.evicted
            .iter()
            .filter_map(|e| Some((*e.range().start(), e.entry().item()?)))
    }

    /// Keeps the eviction: the pages are gone for good; the guard is the caller's.
    pub(crate) fn commit(mut self) -> G {
        self.guard.take().expect("committed once")
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize, G: EvictingGuard<Page<P>>> Drop
    for Eviction<'_, P, SLOTS, G>
{
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        // Dirty pages go back into the cache: a return (see `returns.rs`), begun before
        // anything of it is visible and done after the last page lock is let go.
        let _returning = self.mapping.returns.begin();
        let mut evicted = core::mem::take(&mut self.evicted);
        let pages: Vec<Arc<Page<P>>> = evicted
            .iter()
            .filter_map(|e| e.entry().item().cloned())
            .collect();
        let locks: Vec<PageLock<'_, P>> = pages
            .iter()
            .map(|page| {
                let mut lock = page.lock();
                lock.set_evicted(false);
                lock
            })
            .collect();
        for e in &mut evicted {
            if let Some(page) = e.entry().item() {
                let (dirty, writeback) = (page.is_dirty(), page.is_writeback());
                e.set_mark(DIRTY, dirty);
                e.set_mark(WRITEBACK, writeback);
            }
        }
        guard.release_restoring(evicted);
        drop(locks);
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// Locks `pages` in `mode`, sealed (see [`XArray::lock_range_sealed`]), for an
    /// operation that will take over the pages it evicts.
    ///
    /// It waits as long as it takes, so it fails only with `WouldDeadlock`, on a range
    /// this thread holds itself (in a conflicting mode, or sealed), and the lock layer
    /// finds that before it evicts anything: no page it evicts is ever put back by a
    /// failure here (only by the [`Eviction`]'s undo, which counts it).
    ///
    /// [`XArray::lock_range_sealed`]: crate::XArray::lock_range_sealed
    pub(crate) fn lock_evicting<E>(
        &self,
        pages: RangeInclusive<u64>,
        mode: LockMode,
    ) -> Result<RangeGuard<'_, Page<P>, SLOTS>, MappingError<E>> {
        self.pages
            .lock_range_sealed(pages, mode)
            .map_err(MappingError::Lock)
    }

    /// [`lock_evicting`](Self::lock_evicting) for a task: waits as a future
    /// ([`XArray::lock_range_sealed_async`]) and returns a guard that is `Send`. A task
    /// is never told `WouldDeadlock` (see `lock/future.rs`), so this does not fail on a
    /// valid range.
    ///
    /// [`XArray::lock_range_sealed_async`]: crate::XArray::lock_range_sealed_async
    pub(crate) async fn lock_evicting_async<E>(
        &self,
        pages: RangeInclusive<u64>,
        mode: LockMode,
    ) -> Result<DetachedGuard<'_, Page<P>, SLOTS>, MappingError<E>> {
        self.pages
            .lock_range_sealed_async(pages, mode)
            .await
            .map_err(MappingError::Lock)
    }
}
