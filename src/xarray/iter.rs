//! Iteration in index order, lock-free, each multi-index entry reported once.

use core::fmt;
use core::ops::RangeInclusive;

use crossbeam_epoch::Guard;

use super::entry::{self, Entry, EntryRef};
use super::node::Node;
use super::span::{Block, Inclusive};
use super::tree::{decode_owned, XArray};
use super::walk;

/// How many entries an [`Iter`] yields between re-pins of its epoch guard, so a long
/// iteration does not hold back reclamation.
const REPIN_EVERY: u32 = 128;

/// The iteration state both iterators share: what is left of the range, the mark
/// filter, and a hint: the node where the last entry was found, so that the next step
/// usually scans on in the same node instead of walking down from the head again.
#[derive(Debug)]
struct Scan<const SLOTS: usize> {
    remaining: Option<Inclusive>,
    mark: Option<usize>,
    hint: Option<(*const Node<SLOTS>, u64)>,
}

impl<const SLOTS: usize> Scan<SLOTS> {
    fn new(range: Option<Inclusive>, mark: Option<usize>) -> Self {
        Scan {
            remaining: range,
            mark,
            hint: None,
        }
    }

    /// The next entry's block and word, read under `guard`, which must be the guard
    /// every earlier step ran under unless [`Scan::forget_hint`] was called since.
    fn next<T>(&mut self, xa: &XArray<T, SLOTS>, guard: &Guard) -> Option<(Block, usize)> {
        let mut range = self.remaining?;
        let mut found = None;
        if let Some((node, base)) = self.hint.take() {
            // SAFETY: the hint was found under `guard`, which has stayed pinned since
            // (the caller's contract), so the node is still allocated. If it was unlinked
            // meanwhile, it holds the entries of the moment it was unlinked: a reading
            // that a walk started at that moment would also have produced.
            let node = unsafe { &*node };
            let last = walk::node_last::<SLOTS>(base, node.shift as u32);
            if range.first <= last {
                found = walk::find_in(node, base, range.first, range.last.min(last), self.mark);
                if found.is_none() {
                    if last >= range.last {
                        self.remaining = None;
                        return None;
                    }
                    range.first = last + 1;
                }
            }
        }
        let found = match found {
            Some(found) => found,
            None => match xa.find_word(guard, range.first, range.last, self.mark) {
                Some(found) => found,
                None => {
                    self.remaining = None;
                    return None;
                }
            },
        };
        if !found.node.is_null() {
            self.hint = Some((found.node, found.base));
        }
        let last = found.block.last();
        self.remaining = (last < range.last).then(|| Inclusive {
            first: last + 1,
            last: range.last,
        });
        Some((found.block, found.word))
    }

    /// Drops the hint (before the guard is re-pinned).
    fn forget_hint(&mut self) {
        self.hint = None;
    }
}

/// Iterator over `(span, entry)` pairs of an [`XArray`], from [`XArray::iter`] or
/// [`XArray::iter_marked`].
///
/// Each step continues after the last entry reported (in the same node when it can,
/// otherwise walking from the head), so entries are reported in ascending order, each at
/// most once, and the iterator never wraps past `u64::MAX`. It is not a snapshot: entries stored or erased during the
/// iteration may or may not be seen. The iterator holds an epoch guard and re-pins it
/// every 128 entries.
pub struct Iter<'a, T, const SLOTS: usize> {
    xa: &'a XArray<T, SLOTS>,
    guard: Guard,
    scan: Scan<SLOTS>,
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
            scan: Scan::new(range, mark),
            since_repin: 0,
        }
    }
}

impl<T, const SLOTS: usize> Iterator for Iter<'_, T, SLOTS> {
    type Item = (RangeInclusive<u64>, Entry<T>);

    fn next(&mut self) -> Option<Self::Item> {
        self.since_repin += 1;
        if self.since_repin == REPIN_EVERY {
            self.since_repin = 0;
            self.scan.forget_hint();
            self.guard.repin();
        }
        let (block, word) = self.scan.next(self.xa, &self.guard)?;
        // SAFETY: the word was read under `self.guard`, which is still pinned.
        Some((block.first..=block.last(), unsafe { decode_owned(word) }))
    }
}

impl<T, const SLOTS: usize> core::iter::FusedIterator for Iter<'_, T, SLOTS> {}

impl<T, const SLOTS: usize> fmt::Debug for Iter<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("scan", &self.scan)
            .finish_non_exhaustive()
    }
}

/// Iterator over `(span, entry)` pairs borrowed from a [`ReadGuard`](super::ReadGuard).
pub struct RefIter<'g, T, const SLOTS: usize> {
    xa: &'g XArray<T, SLOTS>,
    guard: &'g Guard,
    scan: Scan<SLOTS>,
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
            scan: Scan::new(range, mark),
        }
    }
}

impl<'g, T, const SLOTS: usize> Iterator for RefIter<'g, T, SLOTS> {
    type Item = (RangeInclusive<u64>, EntryRef<'g, T>);

    fn next(&mut self) -> Option<Self::Item> {
        let (block, word) = self.scan.next(self.xa, self.guard)?;
        // SAFETY: the word was read under `self.guard`, which outlives 'g.
        Some((block.first..=block.last(), unsafe { decode_ref(word) }))
    }
}

impl<T, const SLOTS: usize> core::iter::FusedIterator for RefIter<'_, T, SLOTS> {}

impl<T, const SLOTS: usize> fmt::Debug for RefIter<'_, T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefIter")
            .field("scan", &self.scan)
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
