//! Iteration in index order, lock-free, each multi-index entry reported once.

use core::fmt;
use core::ops::RangeInclusive;

use crossbeam_epoch::Guard;

use super::entry::{self, Entry, EntryRef};
use super::node::{Geometry, Node};
use super::span::Inclusive;
use super::tree::{decode_owned, XArray};
use super::walk;

/// How many entries an [`Iter`] yields between re-pins of its epoch guard, so a long
/// iteration does not hold back reclamation.
const REPIN_EVERY: u32 = 128;

/// The iteration state both iterators share: what is left of the range, the mark
/// filter, and the node scan: the node where the last entry was found with the slots of
/// it still to look at, so that the next step usually reads the next occupied slot of
/// the same leaf instead of searching again.
///
/// # The leaf-local fast path
///
/// Once a search has found an entry, the scan keeps the node it was found in and a
/// bitmap of that node's slots after it inside the range (for `iter_marked`, only those
/// whose mark bit was set when the bitmap was taken). A step then costs one slot load
/// per slot looked at: an empty slot is skipped, a plain entry is reported with its
/// slot's span. Only a child node or a lock record sends the step back to the search
/// of `walk.rs` (from that slot, in the same node), and a node whose bitmap runs out
/// sends it to a search of its parent from the next index on (the node the search that
/// found it came down from: the next leaf of a dense tree is usually a sibling), and from
/// the head if the parent holds nothing more of the range or was unlinked (so that what
/// replaced it is seen, as a search from the head would see it). A parent unlinked
/// after that check holds the entries of the moment it was unlinked: what a search
/// started at that moment would have found. Every slot is still read with one `Acquire` load
/// at the moment it is reported, so what a step can see is what a search started at
/// that moment could see: the scan is as much (and as little) a snapshot as before.
#[derive(Debug)]
struct Scan<const SLOTS: usize> {
    remaining: Option<Inclusive>,
    mark: Option<usize>,
    node_scan: Option<NodeScan<SLOTS>>,
    /// Whether an entry was reported already: later entries are clipped to what is
    /// left of the range (see [`Scan::next`]).
    resumed: bool,
}

/// The node of the last entry reported and its slots still to look at.
#[derive(Debug, Clone, Copy)]
struct NodeScan<const SLOTS: usize> {
    node: *const Node<SLOTS>,
    /// The first index `node` covers.
    base: u64,
    /// Slots after the last entry reported, inside the range (and marked, if filtered).
    pending: u64,
    /// The node the search came down to `node` from (null if none, or if `node` was
    /// found by a search within itself), and its first index: once `node` runs out, the
    /// next entry is looked for there first.
    parent: *const Node<SLOTS>,
    parent_base: u64,
}

impl<const SLOTS: usize> Scan<SLOTS> {
    fn new(range: Option<Inclusive>, mark: Option<usize>) -> Self {
        Scan {
            remaining: range,
            mark,
            node_scan: None,
            resumed: false,
        }
    }

    /// The next entry's span (first and last index) and word, read under `guard`, which
    /// must be the guard every earlier step ran under unless [`Scan::forget_hint`] was
    /// called since.
    ///
    /// The first entry is reported with its whole block, even if that begins before the
    /// range (a multi-index entry the range starts inside). A later step searches from
    /// the index after the last one reported, and an entry stored meanwhile may cover
    /// indices before that, which were reported already: its span starts at the search
    /// position instead, so that no index is reported twice and spans stay ascending.
    ///
    /// This is the fast path, small enough to inline into the caller's loop; everything
    /// else is [`Scan::next_slow`].
    #[inline(always)]
    fn next<T>(&mut self, xa: &XArray<T, SLOTS>, guard: &Guard) -> Option<(u64, u64, usize)> {
        let range = self.remaining?;
        if let Some(scan) = &mut self.node_scan {
            // SAFETY: the node was found under `guard`, which has stayed pinned since
            // (the caller's contract), so it is still allocated. If it was unlinked
            // meanwhile, it holds the entries of the moment it was unlinked: a reading
            // that a walk started at that moment would also have produced.
            let node = unsafe { &*scan.node };
            while scan.pending != 0 {
                let offset = scan.pending.trailing_zeros() as usize;
                scan.pending &= scan.pending - 1;
                let word = node.load(offset);
                if word == entry::EMPTY {
                    continue;
                }
                if entry::is_node(word) || entry::is_record(word) {
                    return self.next_slow(xa, guard, range, Some(offset));
                }
                // A plain entry covers its slot's whole block, which lies after the last
                // entry reported: no clipping.
                let shift = node.shift as u32;
                let slot_first = scan.base + ((offset as u64) << shift);
                let slot_last = walk::slot_last(slot_first, shift);
                self.remaining = (slot_last < range.last).then(|| Inclusive {
                    first: slot_last + 1,
                    last: range.last,
                });
                self.resumed = true;
                return Some((slot_first.max(range.first), slot_last, word));
            }
        }
        self.next_slow(xa, guard, range, None)
    }

    /// The rest of [`Scan::next`]: the node scan stopped at slot `stopped_at` (a child
    /// or a lock record: search on from there, in the same node) or ran out (`None`: go
    /// on after the node), or there is none yet; then a search from the head.
    #[inline(never)]
    fn next_slow<T>(
        &mut self,
        xa: &XArray<T, SLOTS>,
        guard: &Guard,
        mut range: Inclusive,
        stopped_at: Option<usize>,
    ) -> Option<(u64, u64, usize)> {
        let mut found = None;
        if let Some(scan) = self.node_scan.take() {
            // SAFETY: as in `next`.
            let node = unsafe { &*scan.node };
            let shift = node.shift as u32;
            let last = walk::node_last::<SLOTS>(scan.base, shift);
            // Whether the node is known to hold nothing more of the range once no entry
            // was found in it. Slots not in `pending` lie outside the range or behind the
            // last entry reported, so a scan that ran out says so at once.
            let mut node_done = true;
            if let Some(offset) = stopped_at {
                let from = (scan.base + ((offset as u64) << shift)).max(range.first);
                let upto = range.last.min(last);
                match walk::find_in(guard, node, scan.base, from, upto, self.mark) {
                    Some(Some(hit)) => found = Some(hit),
                    Some(None) => {}
                    // A lock record changed into a node under the search: the walk from
                    // the head below looks again.
                    None => {
                        range.first = from;
                        node_done = false;
                    }
                }
            }
            if found.is_none() && node_done {
                if last >= range.last {
                    self.remaining = None;
                    return None;
                }
                range.first = range.first.max(last + 1);
                if !scan.parent.is_null() {
                    found = self.search_parent(guard, &mut range, scan.parent, scan.parent_base)?;
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
        self.node_scan = (!found.node.is_null()).then(|| {
            // SAFETY: found under `guard`, still pinned (as above).
            let node = unsafe { &*found.node };
            NodeScan {
                node: found.node,
                base: found.base,
                pending: self.pending_after(node, found.base, found.last, range.last),
                parent: found.parent,
                parent_base: found.parent_base,
            }
        });
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
        Some((first, last, found.word))
    }

    /// After a node ran out: the next entry of `range` inside `parent` (whose first
    /// index is `base`), searched under `guard`, which has stayed pinned since `parent`
    /// was found. `Some(Some(..))`: the entry. `Some(None)`: none there, and `range` now
    /// starts after the parent (or is as it was, if the parent covers none of it or a
    /// lock record changed under the search): search from the head. `None`: the range
    /// holds nothing more, and the iteration is over.
    #[inline]
    fn search_parent(
        &mut self,
        guard: &Guard,
        range: &mut Inclusive,
        parent: *const Node<SLOTS>,
        base: u64,
    ) -> Option<Option<walk::Found<SLOTS>>> {
        // SAFETY: as in `next`: found under `guard`, which is still pinned.
        let node = unsafe { &*parent };
        node.visit();
        let last = walk::node_last::<SLOTS>(base, node.shift as u32);
        // An unlinked parent holds what it held when it was unlinked: what was stored in
        // its place since (a multi-index entry over it, say) is only seen from the head.
        if range.first > last || node.is_obsolete() {
            return Some(None);
        }
        match walk::find_in(
            guard,
            node,
            base,
            range.first,
            range.last.min(last),
            self.mark,
        ) {
            Some(Some(hit)) => Some(Some(hit)),
            Some(None) if last >= range.last => {
                self.remaining = None;
                None
            }
            Some(None) => {
                range.first = last + 1;
                Some(None)
            }
            // A lock record changed into a node under the search: from the head.
            None => Some(None),
        }
    }

    /// The slots of `node` (whose first index is `base`) after the one holding index
    /// `after`, up to the one holding `last`, filtered by the mark's bitmap.
    #[inline]
    fn pending_after(&self, node: &Node<SLOTS>, base: u64, after: u64, last: u64) -> u64 {
        let shift = node.shift as u32;
        let next = ((after - base) >> shift) + 1;
        let end = ((last - base) >> shift).min(Geometry::<SLOTS>::slots_in_range(shift) as u64 - 1);
        if next > end {
            return 0;
        }
        let bits = walk::range_bits(next as usize, end as usize);
        match self.mark {
            Some(m) => bits & node.mark_bits(m),
            None => bits,
        }
    }

    /// Drops the node scan (before the guard is re-pinned).
    fn forget_hint(&mut self) {
        self.node_scan = None;
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

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.since_repin += 1;
        if self.since_repin == REPIN_EVERY {
            self.since_repin = 0;
            self.scan.forget_hint();
            self.guard.repin();
        }
        let (first, last, word) = self.scan.next(self.xa, &self.guard)?;
        // SAFETY: the word was read under `self.guard`, which is still pinned.
        Some((first..=last, unsafe { decode_owned(word) }))
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

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (first, last, word) = self.scan.next(self.xa, self.guard)?;
        // SAFETY: the word was read under `self.guard`, which outlives 'g.
        Some((first..=last, unsafe { decode_ref(word) }))
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

/// The item a non-node word holds, borrowed; `None` for every other kind. What
/// [`decode_ref`] then [`EntryRef::item`] give, without building the entry (the lookups
/// that want only items skip decoding lock words and values).
///
/// # Safety
/// `word` was read from a tree under a guard that stays pinned for `'g`.
#[inline(always)]
pub(crate) unsafe fn item_ref<'g, T>(word: usize) -> Option<&'g T> {
    (entry::kind(word) == entry::Kind::Item).then(|| {
        // SAFETY: the tree holds a strong reference to the item that is released only
        // after the epoch passes the caller's pin, which lasts for 'g.
        unsafe { &*entry::word_item::<T>(word) }
    })
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
    use crate::{Entry, XArray};
    use core::ops::RangeInclusive;
    use std::sync::Arc;

    /// The leaf-local fast path hands over to the search at every kind of slot it cannot
    /// report itself (a child node, a lock record) and after a node runs out, and
    /// `iter`, `iter_marked` and a loop of `find`s agree on every sub-range.
    #[test]
    fn node_scan_agrees_with_find() {
        use crate::xarray::{LockMode, Mark};
        let xa: XArray<u64, 4> = XArray::with_slots();
        for i in [0, 1, 3, 9, 10, 17, 18, 19, 64, 65, 200, 1 << 20] {
            xa.store(i, Arc::new(i)).unwrap();
        }
        xa.store_range(4..8, 5).unwrap(); // a multi-index entry beside leaves
        xa.store_range(20..24, 8).unwrap(); // ... followed in its node by a lock record
        xa.store_range(32..48, 6).unwrap(); // ... followed in its node by a child
        xa.store(50, Arc::new(50)).unwrap();
        let _record = xa.lock_range(25..27, LockMode::Exclusive).unwrap();
        let _lock = xa.lock_range(66..67, LockMode::Shared).unwrap();
        for i in [1, 5, 18, 50, 65, 1 << 20] {
            xa.set_mark(i, Mark::M1);
        }
        let spans = |it: &mut dyn Iterator<Item = (RangeInclusive<u64>, Entry<u64>)>| {
            it.map(|(span, _)| span).collect::<Vec<_>>()
        };
        let bounds = [
            0,
            1,
            2,
            4,
            6,
            9,
            16,
            21,
            22,
            24,
            26,
            40,
            50,
            64,
            66,
            100,
            1 << 20,
            u64::MAX,
        ];
        for &first in &bounds {
            for &last in bounds.iter().filter(|&&last| last >= first) {
                let mut by_find = Vec::new();
                let mut from = first;
                while let Some((span, _)) = xa.find(from) {
                    if *span.start() > last {
                        break;
                    }
                    let start = if by_find.is_empty() {
                        *span.start()
                    } else {
                        from.max(*span.start())
                    };
                    by_find.push(start..=*span.end());
                    match span.end().checked_add(1) {
                        Some(next) if *span.end() < last => from = next,
                        _ => break,
                    }
                }
                assert_eq!(
                    spans(&mut xa.iter(first..=last)),
                    by_find,
                    "{first}..={last}"
                );
                let guard = xa.read();
                let borrowed: Vec<_> = guard.iter(first..=last).map(|(s, _)| s).collect();
                assert_eq!(borrowed, by_find, "{first}..={last}");
                let marked: Vec<_> = by_find
                    .iter()
                    .filter(|span| xa.get_mark(*span.end(), Mark::M1))
                    .cloned()
                    .collect();
                let got = spans(&mut xa.iter_marked(first..=last, Mark::M1));
                assert_eq!(got, marked, "marked {first}..={last}");
            }
        }
    }

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
