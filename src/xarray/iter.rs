//! Iteration in index order, lock-free, each multi-index entry reported once.

use core::fmt;
use core::ops::RangeInclusive;

use crossbeam_epoch::Guard;

use super::entry::{self, Entry, EntryRef};
use super::node::Node;
use super::span::Inclusive;
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
    /// Whether an entry was reported already: later entries are clipped to what is
    /// left of the range (see [`Scan::next`]).
    resumed: bool,
}

impl<const SLOTS: usize> Scan<SLOTS> {
    fn new(range: Option<Inclusive>, mark: Option<usize>) -> Self {
        Scan {
            remaining: range,
            mark,
            hint: None,
            resumed: false,
        }
    }

    /// The next entry's span and word, read under `guard`, which must be the guard
    /// every earlier step ran under unless [`Scan::forget_hint`] was called since.
    ///
    /// The first entry is reported with its whole block, even if that begins before the
    /// range (a multi-index entry the range starts inside). A later step searches from
    /// the index after the last one reported, and an entry stored meanwhile may cover
    /// indices before that, which were reported already: its span starts at the search
    /// position instead, so that no index is reported twice and spans stay ascending.
    fn next<T>(
        &mut self,
        xa: &XArray<T, SLOTS>,
        guard: &Guard,
    ) -> Option<(RangeInclusive<u64>, usize)> {
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
                match walk::find_in(
                    guard,
                    node,
                    base,
                    range.first,
                    range.last.min(last),
                    self.mark,
                ) {
                    Some(Some(hit)) => found = Some(hit),
                    Some(None) => {
                        if last >= range.last {
                            self.remaining = None;
                            return None;
                        }
                        range.first = last + 1;
                    }
                    // A lock record changed into a node under the search: the walk from
                    // the head below looks again.
                    None => {}
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
        let last = found.last;
        self.remaining = (last < range.last).then(|| Inclusive {
            first: last + 1,
            last: range.last,
        });
        let first = if self.resumed {
            found.first.max(range.first)
        } else {
            found.first
        };
        self.resumed = true;
        Some((first..=last, found.word))
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
        let (span, word) = self.scan.next(self.xa, &self.guard)?;
        // SAFETY: the word was read under `self.guard`, which is still pinned.
        Some((span, unsafe { decode_owned(word) }))
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
        let (span, word) = self.scan.next(self.xa, self.guard)?;
        // SAFETY: the word was read under `self.guard`, which outlives 'g.
        Some((span, unsafe { decode_ref(word) }))
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
        entry::Kind::Lock => {
            let state = super::lock_word::LockState::of(word);
            EntryRef::Locked {
                mode: state.mode,
                holders: state.holders,
            }
        }
        entry::Kind::Empty | entry::Kind::Node => EntryRef::Empty,
        entry::Kind::Record => unreachable!("walks resolve lock records"),
    }
}

#[cfg(test)]
mod tests {
    use crate::XArray;
    use std::sync::Arc;

    /// A multi-index entry stored during an iteration over indices both behind and
    /// ahead of the cursor is reported from the cursor on: no index is reported twice.
    #[test]
    fn entry_stored_behind_the_cursor_is_not_reported_twice() {
        let xa: XArray<u32, 4> = XArray::with_slots();
        xa.store(0, Arc::new(0)).unwrap();
        xa.store(20, Arc::new(20)).unwrap();
        let guard = xa.read();
        let mut owned = xa.iter(..);
        let mut borrowed = guard.iter(..);
        assert_eq!(owned.next().map(|(span, _)| span), Some(0..=0));
        assert_eq!(borrowed.next().map(|(span, _)| span), Some(0..=0));

        xa.store_range(0..16, 7).unwrap(); // one block: 0..=15

        let (span, entry) = owned.next().unwrap();
        assert!(*span.start() > 0 && *span.end() == 15, "{span:?}");
        assert_eq!(entry.value(), Some(7));
        let (span, entry) = borrowed.next().unwrap();
        assert!(*span.start() > 0 && *span.end() == 15, "{span:?}");
        assert_eq!(entry.value(), Some(7));
        assert_eq!(owned.next().map(|(span, _)| span), Some(20..=20));
        assert_eq!(borrowed.next().map(|(span, _)| span), Some(20..=20));
        assert!(owned.next().is_none() && borrowed.next().is_none());
    }
}
