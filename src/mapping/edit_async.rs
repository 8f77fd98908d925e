//! The truncate family for tasks: the same edits as `edit.rs`, whose range lock is
//! awaited as a future, returning a guard that is `Send`.
//!
//! An asynchronous edit runs the blocking edit's plan ([`Plan`]: the pages, the dirty
//! pages it hands over, the size change) and its eviction step
//! ([`Mapping::evict_for`]); only the acquisition differs
//! ([`Mapping::lock_evicting_async`], in one queue with the blocking waiters). The one
//! await point is that acquisition: dropping the future there withdraws it from the
//! queue and gives back what it had claimed (see `lock/future.rs`); once the range is
//! held the rest runs to the end without yielding, and a refused size change puts every
//! evicted page back as the blocking edit does.

use core::fmt;
use core::ops::{RangeBounds, RangeInclusive};
use std::sync::Arc;

use super::edit::{Edited, Keeps, Plan, SizeAfter};
use super::error::MappingError;
use super::page::Page;
use super::Mapping;
use crate::lock::{DetachedGuard, LockMode};

/// An [`EditGuard`](super::EditGuard) that is not tied to a thread: what the
/// asynchronous edits ([`truncate_async`](Mapping::truncate_async) and the others)
/// return, or [`EditGuard::detach`](super::EditGuard::detach) makes. It is `Send`;
/// dropping it on any thread ends the edit.
#[must_use = "the pages are unlocked as soon as the guard is dropped"]
pub struct DetachedEditGuard<'a, P: Send + Sync + 'static, const SLOTS: usize = 64> {
    guard: DetachedGuard<'a, Page<P>, SLOTS>,
    edited: Edited<P>,
}

impl<'a, P: Send + Sync + 'static, const SLOTS: usize> DetachedEditGuard<'a, P, SLOTS> {
    pub(super) fn new(guard: DetachedGuard<'a, Page<P>, SLOTS>, edited: Edited<P>) -> Self {
        DetachedEditGuard { guard, edited }
    }

    /// See [`EditGuard::pages`](super::EditGuard::pages).
    pub fn pages(&self) -> RangeInclusive<u64> {
        self.guard.range()
    }

    /// See [`EditGuard::size`](super::EditGuard::size).
    pub fn size(&self) -> u64 {
        self.edited.size
    }

    /// See [`EditGuard::dirty`](super::EditGuard::dirty).
    pub fn dirty(&self) -> &[(u64, Arc<Page<P>>)] {
        &self.edited.dirty
    }

    /// See [`EditGuard::dirty_written`](super::EditGuard::dirty_written).
    pub fn dirty_written(&mut self) {
        self.guard.unseal();
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> fmt::Debug for DetachedEditGuard<'_, P, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetachedEditGuard")
            .field("pages", &self.pages())
            .field("size", &self.edited.size)
            .field("dirty", &self.edited.dirty.len())
            .finish()
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// Runs `plan` for a task: awaits its pages Exclusive, sealed, then
    /// [`evict_for`](Self::evict_for).
    async fn edit_async(
        &self,
        plan: Plan<impl Keeps, impl SizeAfter>,
    ) -> Result<DetachedEditGuard<'_, P, SLOTS>, MappingError> {
        let guard = self
            .lock_evicting_async(plan.pages.clone(), LockMode::Exclusive)
            .await?;
        let (guard, edited) = self.evict_for(guard, &plan)?;
        Ok(DetachedEditGuard { guard, edited })
    }

    /// [`truncate`](Self::truncate) for a task: the range lock is awaited as a future
    /// and the guard returned is `Send` (hold it across the on-disk truncate's
    /// `.await`). Dropping the future before it resolves changes nothing. A task is
    /// never told `WouldDeadlock`: a task that truncates over pages of its own direct IO
    /// or edit waits until the future is dropped.
    ///
    /// ```
    /// use rangelock::mapping::{Mapping, MappingError};
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(4 * 4096);
    /// for i in 0..4 {
    ///     file.write(i, |_| Ok::<_, ()>(0), |b| *b = 1).unwrap();
    /// }
    /// let edit = block_on(file.truncate_async(4096 + 10)).unwrap();
    /// assert_eq!(edit.dirty().iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
    /// std::thread::scope(|s| s.spawn(move || drop(edit)).join().unwrap()); // completed elsewhere
    /// assert_eq!(file.size(), 4106);
    /// assert!(matches!(file.fault(2, |_| Ok::<_, ()>(0)), Err(MappingError::BeyondEof { index: 2, .. })));
    /// ```
    pub async fn truncate_async(
        &self,
        new_size: u64,
    ) -> Result<DetachedEditGuard<'_, P, SLOTS>, MappingError> {
        self.edit_async(self.truncate_plan(new_size)).await
    }

    /// [`punch_hole`](Self::punch_hole) for a task (see
    /// [`truncate_async`](Self::truncate_async)). An invalid range fails before
    /// anything is awaited.
    ///
    /// ```
    /// use rangelock::mapping::Mapping;
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(8 * 4096);
    /// for i in 0..8 {
    ///     file.write(i, |_| Ok::<_, ()>(0), |b| *b = 1).unwrap();
    /// }
    /// let hole = block_on(file.punch_hole_async(100..3 * 4096)).unwrap();
    /// assert_eq!((hole.pages(), hole.dirty().len()), (0..=2, 1)); // page 0 keeps 100 bytes
    /// drop(hole);
    /// assert_eq!(file.dirty_pages(..), vec![3, 4, 5, 6, 7]);
    /// ```
    pub async fn punch_hole_async(
        &self,
        bytes: impl RangeBounds<u64>,
    ) -> Result<DetachedEditGuard<'_, P, SLOTS>, MappingError> {
        let plan = self.punch_hole_plan(&bytes)?;
        self.edit_async(plan).await
    }

    /// [`collapse_range`](Self::collapse_range) for a task (see
    /// [`truncate_async`](Self::truncate_async)). A misaligned range fails before
    /// anything is awaited; one that reaches the end of file fails once the range is
    /// held (the size is read under it), with everything put back.
    ///
    /// ```
    /// use rangelock::mapping::{Mapping, MappingError};
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(4 * 4096);
    /// file.write(3, |_| Ok::<_, ()>(0), |b| *b = 3).unwrap();
    /// let edit = block_on(file.collapse_range_async(4096..2 * 4096)).unwrap();
    /// assert_eq!((edit.dirty().len(), edit.size()), (1, 3 * 4096)); // page 3 moves down
    /// drop(edit);
    /// let too_far = block_on(file.collapse_range_async(0..3 * 4096));
    /// assert!(matches!(too_far, Err(MappingError::OutsideFile { .. })));
    /// assert!(file.pages().is_empty());
    /// ```
    pub async fn collapse_range_async(
        &self,
        bytes: impl RangeBounds<u64>,
    ) -> Result<DetachedEditGuard<'_, P, SLOTS>, MappingError> {
        let plan = self.collapse_range_plan(&bytes)?;
        self.edit_async(plan).await
    }

    /// [`insert_range`](Self::insert_range) for a task (see
    /// [`truncate_async`](Self::truncate_async)).
    ///
    /// ```
    /// use rangelock::mapping::Mapping;
    ///
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
    /// # }
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(2 * 4096);
    /// let edit = block_on(file.insert_range_async(4096..3 * 4096)).unwrap();
    /// assert_eq!((edit.pages(), edit.size()), (1..=u64::MAX, 4 * 4096));
    /// ```
    pub async fn insert_range_async(
        &self,
        bytes: impl RangeBounds<u64>,
    ) -> Result<DetachedEditGuard<'_, P, SLOTS>, MappingError> {
        let plan = self.insert_range_plan(&bytes)?;
        self.edit_async(plan).await
    }
}
