//! `ReadGuard`: a pinned epoch guard through which lookups borrow items.

use core::fmt;
use core::ops::RangeBounds;

use crossbeam_epoch::Guard;

use super::entry::{self, EntryRef, Mark};
use super::iter::{decode_ref, RefIter};
use super::span;
use super::tree::{clone_item, XArray};
use crate::sync::ItemArc as Arc;

/// A pinned view of an [`XArray`] for batches of lookups.
///
/// Lookups through the guard return `&T` borrowed for the guard's lifetime: no reference
/// count is touched, so a batch of lookups costs one pin plus one atomic load per tree
/// level each. Items erased meanwhile stay valid until the guard drops. Keep guards
/// short: while one lives, the epoch cannot reclaim anything retired after it pinned.
///
/// ```
/// use rangelock::XArray;
/// use std::sync::Arc;
///
/// let xa: XArray<u32> = XArray::new();
/// for i in 0..10 {
///     xa.store(i, Arc::new(i as u32 * 10)).unwrap();
/// }
/// let guard = xa.read();
/// let sum: u32 = (0..10).filter_map(|i| guard.get(i)).sum();
/// assert_eq!(sum, 450);
/// ```
pub struct ReadGuard<'a, T, const SLOTS: usize = 64> {
    xa: &'a XArray<T, SLOTS>,
    guard: Guard,
}

impl<'a, T, const SLOTS: usize> ReadGuard<'a, T, SLOTS> {
    pub(crate) fn new(xa: &'a XArray<T, SLOTS>, guard: Guard) -> Self {
        ReadGuard { xa, guard }
    }

    /// The item at `index`, borrowed.
    #[inline]
    pub fn get(&self, index: u64) -> Option<&T> {
        self.entry(index).item()
    }

    /// The entry at `index`, with its item borrowed.
    #[inline]
    pub fn entry(&self, index: u64) -> EntryRef<'_, T> {
        let word = self.xa.lookup_word(&self.guard, index);
        // SAFETY: read under `self.guard`, which lives as long as the borrow of `self`.
        unsafe { decode_ref(word) }
    }

    /// The item at `index` as an owned `Arc`.
    pub fn load(&self, index: u64) -> Option<Arc<T>> {
        let word = self.xa.lookup_word(&self.guard, index);
        (entry::kind(word) == entry::Kind::Item).then(|| {
            // SAFETY: an item word read under `self.guard`, still pinned.
            unsafe { clone_item(word) }
        })
    }

    /// Whether the entry at `index` carries `mark`.
    pub fn get_mark(&self, index: u64, mark: Mark) -> bool {
        self.xa.lookup_mark(&self.guard, index, mark.index())
    }

    /// Entries of `range` in ascending order, borrowed (see [`XArray::iter`]).
    pub fn iter(&self, range: impl RangeBounds<u64>) -> RefIter<'_, T, SLOTS> {
        RefIter::new(self.xa, &self.guard, span::inclusive(&range), None)
    }

    /// Entries of `range` that carry `mark`, borrowed.
    pub fn iter_marked(&self, range: impl RangeBounds<u64>, mark: Mark) -> RefIter<'_, T, SLOTS> {
        RefIter::new(
            self.xa,
            &self.guard,
            span::inclusive(&range),
            Some(mark.index()),
        )
    }
}

impl<T, const SLOTS: usize> fmt::Debug for ReadGuard<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("xa", self.xa)
            .finish_non_exhaustive()
    }
}
