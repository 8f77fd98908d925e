//! Iteration in index order, lock-free, each multi-index entry reported once.

use core::fmt;
use core::ops::RangeInclusive;

use crossbeam_epoch::Guard;

use super::entry::{self, Entry, EntryRef};
use super::span::Inclusive;
use super::tree::{decode_owned, XArray};

/// How many entries an [`Iter`] yields between re-pins of its epoch guard, so a long
/// iteration does not hold back reclamation.
const REPIN_EVERY: u32 = 128;

/// Iterator over `(span, entry)` pairs of an [`XArray`], from [`XArray::iter`] or
/// [`XArray::iter_marked`].
///
/// Each step walks from the head to the next entry after the last one reported, so
/// entries are reported in ascending order, each at most once, and the iterator never
/// wraps past `u64::MAX`. It is not a snapshot: entries stored or erased during the
/// iteration may or may not be seen. The iterator holds an epoch guard and re-pins it
/// every 128 entries.
pub struct Iter<'a, T, const SLOTS: usize> {
    xa: &'a XArray<T, SLOTS>,
    guard: Guard,
    cursor: Option<Inclusive>,
    mark: Option<usize>,
    since_repin: u32,
}

impl<'a, T, const SLOTS: usize> Iter<'a, T, SLOTS> {
    pub(crate) fn new(
        xa: &'a XArray<T, SLOTS>,
        range: Option<Inclusive>,
        mark: Option<usize>,
    ) -> Self {
        Iter {
            xa,
            guard: xa.pin(),
            cursor: range,
            mark,
            since_repin: 0,
        }
    }
}

impl<T, const SLOTS: usize> Iterator for Iter<'_, T, SLOTS> {
    type Item = (RangeInclusive<u64>, Entry<T>);

    fn next(&mut self) -> Option<Self::Item> {
        let range = self.cursor?;
        self.since_repin += 1;
        if self.since_repin == REPIN_EVERY {
            self.since_repin = 0;
            self.guard.repin();
        }
        let Some((block, word)) =
            self.xa
                .find_word(&self.guard, range.first, range.last, self.mark)
        else {
            self.cursor = None;
            return None;
        };
        let last = block.last();
        self.cursor = (last < range.last).then(|| Inclusive {
            first: last + 1,
            last: range.last,
        });
        // SAFETY: the word was read under `self.guard`, which is still pinned.
        Some((block.first..=last, unsafe { decode_owned(word) }))
    }
}

impl<T, const SLOTS: usize> core::iter::FusedIterator for Iter<'_, T, SLOTS> {}

impl<T, const SLOTS: usize> fmt::Debug for Iter<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.cursor.map(|r| r.first..=r.last))
            .field("mark", &self.mark)
            .finish_non_exhaustive()
    }
}

/// Iterator over `(span, entry)` pairs borrowed from a [`ReadGuard`](super::ReadGuard).
pub struct RefIter<'g, T, const SLOTS: usize> {
    xa: &'g XArray<T, SLOTS>,
    guard: &'g Guard,
    cursor: Option<Inclusive>,
    mark: Option<usize>,
}

impl<'g, T, const SLOTS: usize> RefIter<'g, T, SLOTS> {
    pub(crate) fn new(
        xa: &'g XArray<T, SLOTS>,
        guard: &'g Guard,
        range: Option<Inclusive>,
        mark: Option<usize>,
    ) -> Self {
        RefIter {
            xa,
            guard,
            cursor: range,
            mark,
        }
    }
}

impl<'g, T, const SLOTS: usize> Iterator for RefIter<'g, T, SLOTS> {
    type Item = (RangeInclusive<u64>, EntryRef<'g, T>);

    fn next(&mut self) -> Option<Self::Item> {
        let range = self.cursor?;
        let Some((block, word)) = self
            .xa
            .find_word(self.guard, range.first, range.last, self.mark)
        else {
            self.cursor = None;
            return None;
        };
        let last = block.last();
        self.cursor = (last < range.last).then(|| Inclusive {
            first: last + 1,
            last: range.last,
        });
        // SAFETY: the word was read under `self.guard`, which outlives 'g.
        Some((block.first..=last, unsafe { decode_ref(word) }))
    }
}

impl<T, const SLOTS: usize> core::iter::FusedIterator for RefIter<'_, T, SLOTS> {}

impl<T, const SLOTS: usize> fmt::Debug for RefIter<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefIter")
            .field("remaining", &self.cursor.map(|r| r.first..=r.last))
            .field("mark", &self.mark)
            .finish_non_exhaustive()
    }
}

/// Decodes a non-node word into a borrowed entry.
///
/// # Safety
/// `word` was read from a tree under a guard that stays pinned for `'g`.
pub(crate) unsafe fn decode_ref<'g, T>(word: usize) -> EntryRef<'g, T> {
    match entry::kind(word) {
        // SAFETY: the tree holds a strong reference to the item that is released only
        // after the epoch passes the caller's pin, which lasts for 'g.
        entry::Kind::Item => EntryRef::Item(unsafe { &*entry::word_item::<T>(word) }),
        entry::Kind::Value => EntryRef::Value(entry::word_value(word)),
        entry::Kind::Empty | entry::Kind::Node | entry::Kind::Lock => EntryRef::Empty,
    }
}
