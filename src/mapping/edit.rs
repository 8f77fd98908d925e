//! The truncate family: size changes and range edits, Exclusive over the pages they
//! affect, with the evicted dirty pages handed to the caller.

use core::fmt;
use core::ops::{RangeBounds, RangeInclusive};
use std::sync::Arc;

use super::edit_async::DetachedEditGuard;
use super::error::MappingError;
use super::evict::{EvictingGuard, Eviction};
use super::page::Page;
use super::Mapping;
use crate::lock::{LockMode, RangeGuard};

/// An edit of the file (truncate, hole punch, collapse, insert) in progress: its pages
/// are locked Exclusive and evicted, and the new size is in place. The caller changes
/// its on-disk file, writing [`dirty`](Self::dirty) pages first, then drops the guard.
///
/// Until [`dirty_written`](Self::dirty_written) or the drop, the entries of the evicted
/// pages stay sealed: a [`writeback`](Mapping::writeback) (fsync) waits for them, since
/// their data is in no page of the cache and maybe not on the device yet.
#[must_use = "the pages are unlocked as soon as the guard is dropped"]
pub struct EditGuard<'a, P: Send + Sync + 'static, const SLOTS: usize = 64> {
    guard: RangeGuard<'a, Page<P>, SLOTS>,
    edited: Edited<P>,
}

/// An edit, before it runs: the pages it locks, which of the evicted dirty pages it
/// hands over (`keeps`), and its size change (`size_after`, see
/// [`Mapping::evict_for`]). The blocking and the asynchronous edits run the same plans.
pub(super) struct Plan<K, S> {
    pub(super) pages: RangeInclusive<u64>,
    keeps: K,
    size_after: S,
}

/// A plan's `keeps`.
pub(super) trait Keeps: Fn(u64) -> bool + Send {}
impl<F: Fn(u64) -> bool + Send> Keeps for F {}

/// A plan's `size_after`.
pub(super) trait SizeAfter: Fn(u64) -> Result<Option<u64>, MappingError> + Send {}
impl<F: Fn(u64) -> Result<Option<u64>, MappingError> + Send> SizeAfter for F {}

/// What an edit hands over with its guard: the evicted dirty pages it keeps, and the
/// size it set.
pub(super) struct Edited<P> {
    pub(super) dirty: Vec<(u64, Arc<Page<P>>)>,
    pub(super) size: u64,
}

impl<'a, P: Send + Sync + 'static, const SLOTS: usize> EditGuard<'a, P, SLOTS> {
    /// The pages locked (and emptied) for the edit.
    pub fn pages(&self) -> RangeInclusive<u64> {
        self.guard.range()
    }

    /// The file size the edit set.
    pub fn size(&self) -> u64 {
        self.edited.size
    }

    /// The evicted dirty pages whose data survives the edit, by index: the page that
    /// straddles a new end of file or a hole's edge, and for collapse and insert every
    /// page that moves. Their data must reach the device before the on-disk edit. Pages
    /// whose data the edit discards are not listed.
    pub fn dirty(&self) -> &[(u64, Arc<Page<P>>)] {
        &self.edited.dirty
    }

    /// Says that the [`dirty`](Self::dirty) pages are on the device: a write-back waiting
    /// for this edit goes on (the rest of the edit may take longer).
    pub fn dirty_written(&mut self) {
        self.guard.unseal();
    }

    /// The same edit, releasable on another thread (the on-disk edit completes
    /// asynchronously). It leaves this thread's held-lock list, as
    /// [`RangeGuard::detach`] does.
    pub fn detach(self) -> DetachedEditGuard<'a, P, SLOTS> {
        DetachedEditGuard::new(self.guard.detach(), self.edited)
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> fmt::Debug for EditGuard<'_, P, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EditGuard")
            .field("pages", &self.pages())
            .field("size", &self.edited.size)
            .field("dirty", &self.edited.dirty.len())
            .finish()
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// Runs `plan` on a thread: locks its pages Exclusive, sealed, then
    /// [`evict_for`](Self::evict_for).
    fn edit(
        &self,
        plan: Plan<impl Keeps, impl SizeAfter>,
    ) -> Result<EditGuard<'_, P, SLOTS>, MappingError> {
        let guard = self.lock_evicting(plan.pages.clone(), LockMode::Exclusive)?;
        let (guard, edited) = self.evict_for(guard, &plan)?;
        Ok(EditGuard { guard, edited })
    }

    /// With `guard` holding `plan.pages` Exclusive, sealed: changes the size by
    /// `size_after(current)` (`None`: unchanged; an error refuses the edit and puts
    /// everything back), in one atomic step, so that a size change on a range this edit
    /// does not hold (a direct write past the end calling `set_size`) is never
    /// overwritten. Then evicts the pages and keeps the dirty ones for which
    /// `keeps(index)` holds.
    pub(super) fn evict_for<G: EvictingGuard<Page<P>>>(
        &self,
        guard: G,
        plan: &Plan<impl Keeps, impl SizeAfter>,
    ) -> Result<(G, Edited<P>), MappingError> {
        // Dropped on a refusal before `commit`: the pages go back.
        let eviction = Eviction::new(self, guard);
        let size = self.update_size(&plan.size_after)?;
        let mut dirty = Vec::new();
        for (index, page) in eviction.pages() {
            let mut lock = page.lock();
            lock.set_evicted(true);
            if lock.is_dirty() {
                lock.set_dirty(false);
                if (plan.keeps)(index) {
                    dirty.push((index, Arc::clone(page)));
                }
            }
        }
        Ok((eviction.commit(), Edited { dirty, size }))
    }

    /// Sets the file size to `new_size`, evicting every page from the one that holds
    /// the new end of file onwards; a fault there afterwards fails with
    /// [`MappingError::BeyondEof`]. The dirty page that straddles the new end (its bytes
    /// below it survive) is handed over in the guard.
    ///
    /// ```
    /// use rangelock::mapping::{Mapping, MappingError};
    ///
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(4 * 4096);
    /// for i in 0..4 {
    ///     file.write(i, |_| Ok::<_, ()>(0), |b| *b = 1).unwrap();
    /// }
    /// let edit = file.truncate(4096 + 10).unwrap();
    /// assert_eq!(edit.dirty().iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
    /// drop(edit); // after the on-disk truncate
    /// assert_eq!(file.size(), 4106);
    /// assert!(matches!(file.fault(2, |_| Ok::<_, ()>(0)), Err(MappingError::BeyondEof { index: 2, .. })));
    /// ```
    pub fn truncate(&self, new_size: u64) -> Result<EditGuard<'_, P, SLOTS>, MappingError> {
        self.edit(self.truncate_plan(new_size))
    }

    /// What [`truncate`](Self::truncate) locks, keeps and sets.
    pub(super) fn truncate_plan(&self, new_size: u64) -> Plan<impl Keeps, impl SizeAfter> {
        let first = self.geometry.page_of(new_size);
        let partial = !self.geometry.is_aligned(new_size);
        Plan {
            pages: first..=u64::MAX,
            keeps: move |index| partial && index == first,
            size_after: move |_| Ok(Some(new_size)),
        }
    }

    /// Evicts the pages that cover `bytes` (the caller frees the blocks on disk). The
    /// dirty pages that the hole covers only partly are handed over in the guard.
    ///
    /// ```
    /// use rangelock::mapping::Mapping;
    ///
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(8 * 4096);
    /// for i in 0..8 {
    ///     file.write(i, |_| Ok::<_, ()>(0), |b| *b = 1).unwrap();
    /// }
    /// // Bytes 100..12288: page 0 partly (its first 100 bytes survive), pages 1 and 2 whole.
    /// let hole = file.punch_hole(100..3 * 4096).unwrap();
    /// assert_eq!(hole.pages(), 0..=2);
    /// assert_eq!(hole.dirty().iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0]);
    /// drop(hole);
    /// assert_eq!(file.dirty_pages(..), vec![3, 4, 5, 6, 7]);
    /// assert_eq!(file.size(), 8 * 4096);
    /// ```
    pub fn punch_hole(
        &self,
        bytes: impl RangeBounds<u64>,
    ) -> Result<EditGuard<'_, P, SLOTS>, MappingError> {
        self.edit(self.punch_hole_plan(&bytes)?)
    }

    /// What [`punch_hole`](Self::punch_hole) locks, keeps and sets.
    pub(super) fn punch_hole_plan(
        &self,
        bytes: &impl RangeBounds<u64>,
    ) -> Result<Plan<impl Keeps, impl SizeAfter>, MappingError> {
        let (first, last) = self.geometry.bytes(bytes)?;
        let (p, q) = (self.geometry.page_of(first), self.geometry.page_of(last));
        let head_partial = !self.geometry.is_aligned(first);
        let tail_partial = last != u64::MAX && !self.geometry.is_aligned(last + 1);
        Ok(Plan {
            pages: p..=q,
            keeps: move |index| (head_partial && index == p) || (tail_partial && index == q),
            size_after: |_| Ok(None),
        })
    }

    /// Removes `bytes` from the file, moving everything after them down (the caller
    /// moves the data on disk). The range must start and end on page boundaries and end
    /// before the end of file. Every page from the range's start on is evicted; the
    /// dirty ones after the range are handed over.
    ///
    /// ```
    /// use rangelock::mapping::{Mapping, MappingError};
    ///
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(4 * 4096);
    /// file.write(3, |_| Ok::<_, ()>(0), |b| *b = 3).unwrap();
    /// let edit = file.collapse_range(4096..2 * 4096).unwrap();
    /// // Page 3 moves down to page 2: its dirty data must reach the disk first.
    /// assert_eq!(edit.dirty().iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![3]);
    /// assert_eq!(edit.size(), 3 * 4096);
    /// drop(edit);
    /// assert!(matches!(file.collapse_range(0..100), Err(MappingError::Unaligned { .. })));
    /// assert!(matches!(
    ///     file.collapse_range(0..3 * 4096), // would remove the end of file
    ///     Err(MappingError::OutsideFile { .. })
    /// ));
    /// ```
    pub fn collapse_range(
        &self,
        bytes: impl RangeBounds<u64>,
    ) -> Result<EditGuard<'_, P, SLOTS>, MappingError> {
        self.edit(self.collapse_range_plan(&bytes)?)
    }

    /// What [`collapse_range`](Self::collapse_range) locks, keeps and sets.
    pub(super) fn collapse_range_plan(
        &self,
        bytes: &impl RangeBounds<u64>,
    ) -> Result<Plan<impl Keeps, impl SizeAfter>, MappingError> {
        let (first, last) = self.aligned(bytes)?;
        let last_page = self.geometry.page_of(last);
        Ok(Plan {
            pages: self.geometry.page_of(first)..=u64::MAX,
            keeps: move |index| index > last_page,
            size_after: move |size| {
                // Linux's rule: the range must end before the end of file.
                if size == 0 || last >= size - 1 {
                    return Err(MappingError::OutsideFile { first, last, size });
                }
                Ok(Some(size - (last - first + 1)))
            },
        })
    }

    /// Inserts `bytes.len()` bytes of hole at the range's start, moving everything from
    /// there up (the caller moves the data on disk). The range must start and end on
    /// page boundaries and start inside the file. Every page from the range's start on
    /// is evicted; the dirty ones are handed over.
    ///
    /// ```
    /// use rangelock::mapping::{Mapping, MappingError};
    ///
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(2 * 4096);
    /// let edit = file.insert_range(4096..3 * 4096).unwrap(); // two pages of hole at 4096
    /// assert_eq!((edit.pages(), edit.size()), (1..=u64::MAX, 4 * 4096));
    /// drop(edit);
    /// assert!(matches!(
    ///     file.insert_range(0..u64::MAX - 4095),
    ///     Err(MappingError::TooLarge { .. })
    /// ));
    /// ```
    pub fn insert_range(
        &self,
        bytes: impl RangeBounds<u64>,
    ) -> Result<EditGuard<'_, P, SLOTS>, MappingError> {
        self.edit(self.insert_range_plan(&bytes)?)
    }

    /// What [`insert_range`](Self::insert_range) locks, keeps and sets.
    pub(super) fn insert_range_plan(
        &self,
        bytes: &impl RangeBounds<u64>,
    ) -> Result<Plan<impl Keeps, impl SizeAfter>, MappingError> {
        let (first, last) = self.aligned(bytes)?;
        Ok(Plan {
            pages: self.geometry.page_of(first)..=u64::MAX,
            keeps: |_| true,
            size_after: move |size| {
                if first >= size {
                    return Err(MappingError::OutsideFile { first, last, size });
                }
                // The range's length is at most 2^64: checked, as the new size is.
                (last - first)
                    .checked_add(1)
                    .and_then(|added| size.checked_add(added))
                    .map(Some)
                    .ok_or(MappingError::TooLarge {
                        size,
                        added: (last - first).saturating_add(1),
                    })
            },
        })
    }

    /// The first and last byte of a page-aligned range.
    fn aligned(&self, bytes: &impl RangeBounds<u64>) -> Result<(u64, u64), MappingError> {
        let (first, last) = self.geometry.bytes(bytes)?;
        // A range that ends at u64::MAX ends at 2^64, a page boundary.
        if !self.geometry.is_aligned(first)
            || (last != u64::MAX && !self.geometry.is_aligned(last + 1))
        {
            return Err(MappingError::Unaligned {
                first,
                last,
                page_size: self.page_size(),
            });
        }
        Ok((first, last))
    }
}
