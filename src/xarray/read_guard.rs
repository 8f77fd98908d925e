//! `ReadGuard`: a pinned epoch guard through which lookups borrow items.

use core::fmt;
use core::ops::RangeBounds;

use crossbeam_epoch::Guard;

use super::entry::{EntryRef, Mark};
use super::iter::{decode_ref, item_ref, RefIter};
use super::span;
use super::tree::{load_item, XArray};
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
        let word = self.xa.lookup_word(&self.guard, index);
        // SAFETY: read under `self.guard`, which lives as long as the borrow of `self`.
        unsafe { item_ref(word) }
    }

    /// The entry at `index`, with its item borrowed.
    #[inline]
    pub fn entry(&self, index: u64) -> EntryRef<'_, T> {
        let word = self.xa.lookup_word(&self.guard, index);
        // SAFETY: read under `self.guard`, which lives as long as the borrow of `self`.
        unsafe { decode_ref(word) }
    }

    /// The items at each of `indices`, borrowed: as many [`get`](Self::get)s, but walked
    /// level by level together, so that the memory system overlaps their cache misses
    /// (on a tree much larger than the CPU caches, eight lookups together cost about
    /// what two do one after the other). Each index is looked up as by `get`: the
    /// results are not one snapshot. At most 64 indices per call.
    ///
    /// Sixteen a call is the width to start from. On random lookups in trees larger
    /// than the CPU caches (1 Mi dense items, or 64 Ki at sparse indices; hits and
    /// misses) sixteen took 0.57x to 0.72x the time per lookup of eight, and 0.90x on a
    /// set that fits in the caches (`cargo bench --bench lookup`, `xarray_get_many`
    /// against `xarray_get_many_16`). Sixty-four measured no faster than sixteen: the
    /// CPU keeps no more misses in flight.
    ///
    /// ```
    /// use rangelock::XArray;
    /// use std::sync::Arc;
    ///
    /// let xa: XArray<u32> = XArray::new();
    /// xa.store(3, Arc::new(30)).unwrap();
    /// xa.store(1 << 20, Arc::new(40)).unwrap();
    /// let guard = xa.read();
    /// assert_eq!(guard.get_many([3, 4, 1 << 20]), [Some(&30), None, Some(&40)]);
    /// ```
    #[inline]
    pub fn get_many<const N: usize>(&self, indices: [u64; N]) -> [Option<&T>; N] {
        let words = self.xa.lookup_words(&self.guard, &indices);
        // SAFETY: read under `self.guard`, which lives as long as the borrow of `self`.
        words.map(|word| unsafe { item_ref(word) })
    }

    /// The entries at each of `indices`, with their items borrowed: the batched
    /// [`entry`](Self::entry) (see [`get_many`](Self::get_many)).
    #[inline]
    pub fn entries_many<const N: usize>(&self, indices: [u64; N]) -> [EntryRef<'_, T>; N] {
        let words = self.xa.lookup_words(&self.guard, &indices);
        // SAFETY: read under `self.guard`, which lives as long as the borrow of `self`.
        words.map(|word| unsafe { decode_ref(word) })
    }

    /// The item at `index` as an owned `Arc`.
    pub fn load(&self, index: u64) -> Option<Arc<T>> {
        let word = self.xa.lookup_word(&self.guard, index);
        // SAFETY: read under `self.guard`, still pinned.
        unsafe { load_item(word) }
    }

    /// The items at each of `indices` as owned `Arc`s: the batched [`load`](Self::load),
    /// walked level by level together like [`get_many`](Self::get_many). For a caller
    /// that keeps the items past the guard (to lock a page, say, which must not happen
    /// under a pin): one pin per batch instead of one per item, and the batch's cache
    /// misses overlap.
    ///
    /// ```
    /// use rangelock::XArray;
    /// use std::sync::Arc;
    ///
    /// let xa: XArray<u32> = XArray::new();
    /// xa.store(7, Arc::new(70)).unwrap();
    /// let [hit, miss] = xa.read().load_many([7, 8]); // the guard is dropped here
    /// assert_eq!(hit.as_deref(), Some(&70));
    /// assert_eq!(miss, None);
    /// ```
    #[inline]
    pub fn load_many<const N: usize>(&self, indices: [u64; N]) -> [Option<Arc<T>>; N] {
        let words = self.xa.lookup_words(&self.guard, &indices);
        // SAFETY: read under `self.guard`, still pinned.
        words.map(|word| unsafe { load_item(word) })
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

#[cfg(test)]
mod tests {
    use crate::xarray::{EntryRef, LockMode, Mark};
    use crate::XArray;
    use std::sync::Arc;

    /// A comparable summary of an entry.
    fn summary(entry: EntryRef<'_, u64>) -> (u8, u64) {
        match entry {
            EntryRef::Empty => (0, 0),
            EntryRef::Item(item) => (1, *item),
            EntryRef::Value(value) => (2, value),
            EntryRef::Locked { mode, holders } => (3 + (mode == LockMode::Shared) as u8, holders),
        }
    }

    /// The indices of the tests: the edges of every level, and their neighbours.
    fn edges() -> Vec<u64> {
        let mut indices = vec![0, 1, 2, 3, 4, 5, u64::MAX - 1, u64::MAX];
        for bits in [2, 4, 6, 8, 12, 16, 32, 62] {
            let edge = 1u64 << bits;
            indices.extend([edge - 1, edge, edge + 1]);
        }
        indices
    }

    /// `get_many`, `entries_many` and `load_many` agree with `entry`, `get` and `load`
    /// one index at a time, on every kind of entry (items, values, multi-index values,
    /// lock entries and lock records) and on trees of every height, in batches of
    /// several sizes.
    #[test]
    fn many_agrees_with_one_at_a_time() {
        fn check<const N: usize>(xa: &XArray<u64, 4>, indices: &[u64]) {
            let guard = xa.read();
            for chunk in indices.chunks_exact(N) {
                let batch: [u64; N] = chunk.try_into().unwrap();
                let many = guard.entries_many(batch);
                let items = guard.get_many(batch);
                let owned = guard.load_many(batch);
                for (((&index, entry), item), arc) in batch.iter().zip(many).zip(items).zip(owned) {
                    assert_eq!(summary(entry), summary(guard.entry(index)), "{index}");
                    assert_eq!(item, guard.get(index), "{index}");
                    assert_eq!(arc, guard.load(index), "{index}");
                    if let (Some(arc), Some(item)) = (&arc, item) {
                        // The tree's own item, not a copy; the clone raised its count.
                        assert!(core::ptr::eq(&**arc, item), "{index}");
                        assert!(Arc::strong_count(arc) >= 2, "{index}");
                    }
                }
            }
        }
        let xa: XArray<u64, 4> = XArray::with_slots();
        let mut probes = edges();
        probes.extend(edges().iter().map(|i| i.wrapping_mul(7)));
        check::<1>(&xa, &probes);
        xa.store(2, Arc::new(2)).unwrap(); // a one-node tree
        check::<4>(&xa, &probes);
        for (n, &index) in edges().iter().enumerate() {
            if n % 3 == 0 {
                xa.store_value(index, index / 2).unwrap();
            } else if index != 2 {
                xa.store(index, Arc::new(index)).unwrap();
            }
        }
        xa.store_range(64..128, 9).unwrap(); // one multi-index entry
        let _shared = xa.lock_range(300..301, LockMode::Shared).unwrap();
        let _record = xa.lock_range(1001..1013, LockMode::Exclusive).unwrap();
        xa.set_mark(4, Mark::M0);
        probes.extend([300, 301, 1000, 1001, 1005, 1012, 1013, 70, 127, 128]);
        while probes.len() % 8 != 0 {
            probes.push(probes.len() as u64);
        }
        check::<1>(&xa, &probes);
        check::<3>(&xa, &probes);
        check::<8>(&xa, &probes);
        check::<64>(&xa, &probes[..64]);
    }
}
