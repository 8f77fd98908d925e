//! The tree's writers (the rest of `XArray`'s public API, beside `tree.rs`): `store`,
//! `store_value`, `store_range`, `erase`, `erase_range`, `compare_exchange`, the marks
//! and `clear`. Each goes through a [`WriteCursor`], which locks the node that holds
//! the slot it changes (a range write: every node that meets its range, see
//! `range_write.rs`); none of them waits for a lock entry: a locked index is refused
//! with [`XaError::Locked`].

use core::ops::RangeBounds;

use super::cursor::{Located, Slot, WriteCursor};
use super::entry::{self, Entry, Kind, Mark, EMPTY, MAX_VALUE};
use super::error::{CompareExchangeError, StoreError, XaError};
use super::span::{self, Block};
use super::tree::{decode_owned, XArray};
use crate::sync::ItemArc as Arc;

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// Stores `item` at `index` and returns what was there. The index keeps its marks.
    ///
    /// Storing inside a multi-index value splits it: the other indices keep the value.
    /// A locked index ([`Entry::Locked`]) is refused with [`XaError::Locked`], and the
    /// item is handed back.
    pub fn store(&self, index: u64, item: Arc<T>) -> Result<Entry<T>, StoreError<T>> {
        let raw = Arc::into_raw(item);
        self.store_word(index, entry::item_word(raw))
            .map_err(|error| StoreError {
                error,
                // SAFETY: `raw` came from `Arc::into_raw` above and the refused store did
                // not publish it, so this is the only owner.
                item: unsafe { Arc::from_raw(raw) },
            })
    }

    /// Stores the value `value` (at most [`MAX_VALUE`]) at `index`; returns what was there.
    /// A locked index is refused with [`XaError::Locked`].
    pub fn store_value(&self, index: u64, value: u64) -> Result<Entry<T>, XaError> {
        self.store_word(index, checked_value(value)?)
    }

    fn store_word(&self, index: u64, word: usize) -> Result<Entry<T>, XaError> {
        let mut cursor = WriteCursor::new(self);
        let at = cursor.lock_at(index, 0);
        if covers_lock(&cursor, &at, index) {
            return Err(XaError::Locked { index });
        }
        let Some(slot) = cursor.create_plain(Block {
            first: index,
            shift: 0,
        }) else {
            return Err(XaError::Locked { index });
        };
        let old = cursor.word(slot);
        if entry::kind(old) == Kind::Lock {
            return Err(XaError::Locked { index });
        }
        let old = cursor.replace(slot, word);
        Ok(cursor.dispose(old))
    }

    /// Stores `value` over every index of `range` as multi-index entries, one per block of
    /// the range's decomposition into aligned power-of-`SLOTS` blocks, replacing (and
    /// releasing) whatever was there. Each new entry carries the union of the marks of
    /// the entries it replaced.
    ///
    /// Readers see each index change atomically, but not the whole range at once. If any
    /// index of the range is locked, nothing is stored and the error is
    /// [`XaError::Locked`] with the first locked index: the check and the stores are one
    /// step with respect to range locks (every node the range touches is locked while
    /// it is written).
    pub fn store_range(&self, range: impl RangeBounds<u64>, value: u64) -> Result<(), XaError> {
        let range = span::checked(&range)?;
        let word = checked_value(value)?;
        let mut cursor = WriteCursor::new(self);
        cursor
            .write_range(range, word)
            .map_err(|index| XaError::Locked { index })
    }

    /// Stores `word` (a value, or `EMPTY`) over exactly `block`, disposing of what was
    /// there; `Locked` if a lock entry covers part of the block.
    fn write_block(
        cursor: &mut WriteCursor<'_, T, SLOTS>,
        block: Block,
        word: usize,
    ) -> Result<Entry<T>, XaError> {
        let locked = Err(XaError::Locked { index: block.first });
        let at = cursor.lock_at(block.first, block.shift);
        if !at.outside {
            match entry::kind(at.word) {
                // An inline entry over the block's slot or a bigger one.
                Kind::Lock => return locked,
                Kind::Record => {
                    let seen = cursor.located_record(&at);
                    if seen.is_some_and(|r| r.first <= block.last() && block.first <= r.last) {
                        return locked;
                    }
                }
                _ => {}
            }
        }
        if word == EMPTY {
            if at.outside || at.word == EMPTY || entry::is_record(at.word) {
                return Ok(Entry::Empty); // nothing (else) in the block
            }
            if entry::is_node(at.word) && matches!(at.slot, Slot::Head) {
                // The block contains every index the root can hold: empty the tree.
                return match cursor.replace_subtree(Slot::Head, 0, EMPTY) {
                    Ok(old) => {
                        cursor.clear_marks(Slot::Head);
                        Ok(cursor.dispose(old))
                    }
                    Err(index) => Err(XaError::Locked { index }),
                };
            }
        }
        let slot = if at.shift == block.shift && !at.outside {
            at.slot
        } else {
            match cursor.create_plain(block) {
                Some(slot) => slot,
                None => return locked,
            }
        };
        let old = cursor.word(slot);
        let old = match entry::kind(old) {
            Kind::Lock | Kind::Record => return locked,
            Kind::Node => match cursor.replace_subtree(slot, block.first, word) {
                Ok(old) => old,
                Err(index) => return Err(XaError::Locked { index }),
            },
            _ => match cursor.swap(slot, old, word) {
                Ok(old) => old,
                // Only the lock fast path changes a non-node head: a lock appeared.
                Err(_) => return locked,
            },
        };
        if word == EMPTY {
            cursor.clear_marks(slot);
        }
        Ok(cursor.dispose(old))
    }

    /// Empties `index` (and clears its marks); returns what was there. A locked index is
    /// refused with [`XaError::Locked`].
    pub fn erase(&self, index: u64) -> Result<Entry<T>, XaError> {
        let mut cursor = WriteCursor::new(self);
        Self::write_block(
            &mut cursor,
            Block {
                first: index,
                shift: 0,
            },
            EMPTY,
        )
    }

    /// Empties every index of `range`, clearing marks and freeing the nodes that become
    /// empty. Costs O(levels x SLOTS) slot writes plus the entries it removes. If any
    /// index of the range is locked, nothing is erased ([`XaError::Locked`]), as one step
    /// with respect to range locks (see [`store_range`](Self::store_range)).
    pub fn erase_range(&self, range: impl RangeBounds<u64>) -> Result<(), XaError> {
        let range = span::checked(&range)?;
        let mut cursor = WriteCursor::new(self);
        cursor
            .write_range(range, EMPTY)
            .map_err(|index| XaError::Locked { index })
    }

    /// Replaces the entry at `index` with `new` if it is `current` (same item by pointer,
    /// same value, or both empty), and returns the entry it replaced. On failure the
    /// caller gets `new` back, with the entry that was found. A lock entry never matches
    /// (lock entries change only through the lock API), and `new` may not be
    /// [`Entry::Locked`] ([`XaError::Locked`]).
    pub fn compare_exchange(
        &self,
        index: u64,
        current: &Entry<T>,
        new: Entry<T>,
    ) -> Result<Entry<T>, CompareExchangeError<T>> {
        let new_word = match &new {
            Entry::Empty => EMPTY,
            Entry::Value(v) => match checked_value(*v) {
                Ok(word) => word,
                Err(error) => return Err(CompareExchangeError::Refused { error, new }),
            },
            Entry::Item(_) => EMPTY, // encoded below, once the swap is certain
            Entry::Locked { .. } => {
                let error = XaError::Locked { index };
                return Err(CompareExchangeError::Refused { error, new });
            }
        };
        let mut cursor = WriteCursor::new(self);
        let at = cursor.lock_at(index, 0);
        let found = index_word(&cursor, &at, index);
        let matches = |word: usize| match (current, entry::kind(word)) {
            (Entry::Empty, Kind::Empty) => true,
            (Entry::Item(item), Kind::Item) => Arc::as_ptr(item) == entry::word_item::<T>(word),
            (Entry::Value(v), Kind::Value) => *v == entry::word_value(word),
            _ => false,
        };
        let mismatch = |word: usize, new: Entry<T>| {
            // SAFETY: the word was read under the owner's lock, so an item it names is
            // still reachable and the tree's own reference keeps it alive.
            let current = unsafe { decode_owned(word) };
            Err(CompareExchangeError::Mismatch { current, new })
        };
        if !matches(found) {
            return mismatch(found, new);
        }
        let block = Block {
            first: index,
            shift: 0,
        };
        if new.is_empty() {
            // `Locked` here means the fast path locked the empty head after the match:
            // the index was empty when it matched, and empty it stays.
            return Ok(Self::write_block(&mut cursor, block, EMPTY).unwrap_or(Entry::Empty));
        }
        let Some(slot) = cursor.create_plain(block) else {
            // A lock appeared over the index meanwhile: that is what is there now.
            drop(cursor);
            let current = self.get(index);
            return Err(CompareExchangeError::Mismatch { current, new });
        };
        let old = cursor.word(slot);
        if !matches(old) {
            // Only the lock fast path can have changed it (an empty head got locked).
            return mismatch(old, new);
        }
        let new_word = match new {
            Entry::Item(item) => entry::item_word(Arc::into_raw(item)),
            _ => new_word,
        };
        let old = cursor.replace(slot, new_word);
        Ok(cursor.dispose(old))
    }

    /// Sets `mark` on the entry at `index`. Returns `false` (and does nothing) if the
    /// index is empty. Marking one index of a multi-index entry splits it.
    pub fn set_mark(&self, index: u64, mark: Mark) -> bool {
        self.change_mark(index, mark.index(), true)
    }

    /// Clears `mark` on the entry at `index` (a no-op if it was not set).
    pub fn clear_mark(&self, index: u64, mark: Mark) {
        self.change_mark(index, mark.index(), false);
    }

    fn change_mark(&self, index: u64, m: usize, on: bool) -> bool {
        let mut cursor = WriteCursor::new(self);
        let at = cursor.lock_at(index, 0);
        if at.outside
            || matches!(
                entry::kind(at.word),
                Kind::Empty | Kind::Lock | Kind::Record
            )
        {
            return false;
        }
        if cursor.is_marked(at.slot, m) == on {
            if on {
                // Already set, but the writer that set it may still be recomputing the
                // ancestors: this call returns only once the head shows the mark.
                cursor.set_mark(at.slot, m, true);
            }
            return true;
        }
        let slot = if at.shift > 0 {
            match cursor.create_plain(Block {
                first: index,
                shift: 0,
            }) {
                Some(slot) => slot,
                None => return false, // locked meanwhile
            }
        } else {
            at.slot
        };
        if matches!(entry::kind(cursor.word(slot)), Kind::Empty | Kind::Lock) {
            return false; // only the fast path changes a non-node head: locked meanwhile
        }
        cursor.set_mark(slot, m, on);
        true
    }

    /// Empties every index that is not locked, releasing every item and node through
    /// the epoch. Lock entries stay (their guards still own them). Each entry goes in a
    /// step of its own: a writer running meanwhile may see some gone and others not.
    pub fn clear(&self) {
        let mut cursor = WriteCursor::new(self);
        let mut from = 0;
        while let Some(found) = self.find_word(cursor.pinned(), from, u64::MAX, None) {
            if entry::kind(found.word) != Kind::Lock {
                let mut first = found.first.max(from);
                // A multi-index entry found at `from` may start before it: its whole
                // block is erased (it is not locked).
                if found.first < from {
                    first = found.first;
                }
                for block in span::blocks::<SLOTS>(span::Inclusive {
                    first,
                    last: found.last,
                }) {
                    // A lock that appeared meanwhile stays.
                    let _ = Self::write_block(&mut cursor, block, EMPTY);
                }
            }
            match found.last.checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
    }
}

/// Whether the located slot's word locks `index` (an inline lock entry, or a record
/// whose bounds hold it).
fn covers_lock<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &WriteCursor<'_, T, SLOTS>,
    at: &Located<SLOTS>,
    index: u64,
) -> bool {
    entry::kind(index_word(cursor, at, index)) == Kind::Lock
}

/// What the located slot's word means for `index`: a record resolved (its state inside
/// its bounds, `EMPTY` outside).
fn index_word<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &WriteCursor<'_, T, SLOTS>,
    at: &Located<SLOTS>,
    index: u64,
) -> usize {
    if at.outside {
        return EMPTY;
    }
    if !entry::is_record(at.word) {
        return at.word;
    }
    match cursor.located_record(at) {
        Some(seen) if seen.first <= index && index <= seen.last => seen.state,
        _ => EMPTY,
    }
}

/// Encodes a value, refusing one that does not fit.
fn checked_value(value: u64) -> Result<usize, XaError> {
    if value > MAX_VALUE {
        Err(XaError::ValueTooLarge { value })
    } else {
        Ok(entry::value_word(value))
    }
}
