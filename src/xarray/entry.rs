//! Slot words: how one machine word encodes every state of a slot.
//!
//! Every slot of the tree (and the tree's head) is one `AtomicUsize`. A slot changes
//! state by a single atomic store or compare-exchange of the whole word, so a lock-free
//! reader always sees one complete state, never a torn mixture.
//!
//! | word (low bits)          | state        | payload                                    |
//! |--------------------------|--------------|--------------------------------------------|
//! | `0`                      | empty        | none                                       |
//! | `p....00` (`p != 0`)     | item         | `Arc::<T>::into_raw` pointer (align >= 4)  |
//! | `v.....1`                | value        | `v` (63 bits: `0..=MAX_VALUE`)              |
//! | `p..0010`                | child node   | pointer to a `Node` (align >= 16)          |
//! | `p..1010`                | lock record  | pointer to a `LockRecord` (align >= 16)    |
//! | `x...110`                | lock entry   | 61 bits, defined by the `lock` layer       |
//!
//! Reading the table from the bottom bit up: bit 0 set means a value; otherwise bit 1
//! clear means an item (or empty, if the whole word is zero); otherwise bit 2 set means a
//! lock entry, and bit 3 tells a node from a lock record. Only the tag of the word decides
//! its state, so no state needs a side table.
//!
//! Lock entries carry their mode, holder count and waiter flag inline in the payload
//! (`lock_word.rs` defines the fields; the `lock` layer defines who may change them). The
//! tree's plain writers refuse to overwrite a lock entry; only the lock layer does.
//!
//! A non-node word in a slot of a node with shift `s` stands for every index that slot
//! covers (`2^s` of them): that is a *multi-index entry*. Items are always stored at a
//! single index (shift 0); values and lock entries may cover spans. A *lock record*
//! (`record.rs`) is the one exception: a lock entry whose exact bounds are a proper part
//! of its slot's span, kept out of line; the rest of the slot's span is empty. Records
//! are how a range lock over an unaligned range of an empty region costs one slot.

use core::fmt;

use crate::lock_mode::LockMode;
use crate::sync::ItemArc as Arc;

/// The largest payload a value (shadow) entry can hold: 63 bits.
pub const MAX_VALUE: u64 = u64::MAX >> 1;

const VALUE_TAG: usize = 0b1;
const INTERNAL_TAG: usize = 0b10;
const INTERNAL_MASK: usize = 0b111;
const POINTER_MASK: usize = 0b1111;
const NODE_TAG: usize = 0b0010;
const RECORD_TAG: usize = 0b1010;
const LOCK_TAG: usize = 0b110;

/// The empty slot word.
pub(crate) const EMPTY: usize = 0;

/// What a raw slot word decodes to (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Empty,
    Item,
    Value,
    Node,
    Lock,
    Record,
}

/// Decodes the tag of a slot word.
#[inline(always)]
pub(crate) fn kind(word: usize) -> Kind {
    if word & VALUE_TAG != 0 {
        Kind::Value
    } else if word & INTERNAL_TAG == 0 {
        if word == EMPTY {
            Kind::Empty
        } else {
            Kind::Item
        }
    } else if word & INTERNAL_MASK == LOCK_TAG {
        Kind::Lock
    } else if word & POINTER_MASK == NODE_TAG {
        Kind::Node
    } else {
        Kind::Record
    }
}

#[inline(always)]
pub(crate) fn is_node(word: usize) -> bool {
    word & POINTER_MASK == NODE_TAG
}

#[inline(always)]
pub(crate) fn is_record(word: usize) -> bool {
    word & POINTER_MASK == RECORD_TAG
}

/// Encodes a value entry. The caller has checked `value <= MAX_VALUE`.
#[inline(always)]
pub(crate) fn value_word(value: u64) -> usize {
    debug_assert!(value <= MAX_VALUE);
    ((value as usize) << 1) | VALUE_TAG
}

#[inline(always)]
pub(crate) fn word_value(word: usize) -> u64 {
    (word >> 1) as u64
}

/// Encodes an item pointer (from `Arc::into_raw`).
#[inline(always)]
pub(crate) fn item_word<T>(ptr: *const T) -> usize {
    let word = ptr as usize;
    // `Arc::into_raw` points at the `T` inside std's `ArcInner`, which starts with two
    // `usize` reference counts, so the address is at least `usize`-aligned whatever `T`
    // is. If std ever changed that, the tags above would collide: refuse loudly.
    assert!(
        word & 0b11 == 0 && word != 0,
        "rangelock: Arc pointer {word:#x} is not 4-byte aligned"
    );
    word
}

#[inline(always)]
pub(crate) fn word_item<T>(word: usize) -> *const T {
    word as *const T
}

#[inline(always)]
pub(crate) fn node_word<N>(ptr: *const N) -> usize {
    let word = ptr as usize;
    debug_assert!(word & POINTER_MASK == 0);
    word | NODE_TAG
}

#[inline(always)]
pub(crate) fn word_node<N>(word: usize) -> *const N {
    (word & !POINTER_MASK) as *const N
}

/// Records are aligned to 64: bits 4 and 5 of a record word are free; bit 4 marks a
/// *busy* head record (one that a writer under the head lock is taking apart, see
/// `cursor/grow.rs`), so that no fast path can take it out, and the record be reused,
/// meanwhile.
const RECORD_BITS: usize = 0b11_1111;
const BUSY: usize = 0b1_0000;

#[inline(always)]
pub(crate) fn record_word<R>(ptr: *const R) -> usize {
    let word = ptr as usize;
    debug_assert!(word & RECORD_BITS == 0, "records are aligned to 64");
    word | RECORD_TAG
}

#[inline(always)]
pub(crate) fn word_record<R>(word: usize) -> *const R {
    (word & !RECORD_BITS) as *const R
}

/// The busy form of a record word (see [`RECORD_BITS`]).
#[inline(always)]
pub(crate) fn busy(word: usize) -> usize {
    debug_assert!(is_record(word));
    word | BUSY
}

/// Whether a record word is the busy form.
#[inline(always)]
pub(crate) fn is_busy(word: usize) -> bool {
    is_record(word) && word & BUSY != 0
}

/// Encodes a lock-entry payload (61 bits) into a slot word.
#[inline(always)]
pub(crate) fn lock_word(payload: u64) -> usize {
    debug_assert!(payload < 1 << 61);
    ((payload as usize) << 3) | LOCK_TAG
}

/// The payload of a lock-entry word.
#[inline(always)]
pub(crate) fn word_lock(word: usize) -> u64 {
    (word >> 3) as u64
}

/// How many marks each entry carries.
pub(crate) const MARK_COUNT: usize = 3;

/// One of the three marks every entry carries.
///
/// Marks are bits attached to an entry, propagated up the tree so that
/// [`XArray::iter_marked`](crate::XArray::iter_marked) skips unmarked subtrees and
/// [`XArray::any_marked`](crate::XArray::any_marked) answers in O(1). A page cache uses them
/// for dirty, writeback and to-write pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Mark {
    /// Mark 0 (the page cache's *dirty*).
    M0 = 0,
    /// Mark 1 (the page cache's *writeback*).
    M1 = 1,
    /// Mark 2 (the page cache's *to-write*).
    M2 = 2,
}

impl Mark {
    /// All three marks, in order.
    pub const ALL: [Mark; 3] = [Mark::M0, Mark::M1, Mark::M2];

    #[inline(always)]
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The state of one index, with items as owned `Arc`s.
///
/// Returned by [`XArray::get`](crate::XArray::get) and by the writers, which return the
/// entry they replaced.
pub enum Entry<T> {
    /// Nothing is stored at this index.
    Empty,
    /// An item (a cached page, say).
    Item(Arc<T>),
    /// A value (shadow) entry: an integer of up to 63 bits.
    Value(u64),
    /// A lock entry: the index is locked by `holders` guards in `mode` (`holders` is 0
    /// while the entry is reserved for queued waiters). Plain stores and erases refuse
    /// it; [`XArray::load_wait`](crate::XArray::load_wait) waits for it to go away.
    Locked {
        /// The mode the index is held in.
        mode: LockMode,
        /// How many guards hold the index (the direct-IO count).
        holders: u64,
    },
}

impl<T> Entry<T> {
    /// `true` for [`Entry::Empty`].
    pub fn is_empty(&self) -> bool {
        matches!(self, Entry::Empty)
    }

    /// The item, if this is one.
    pub fn item(&self) -> Option<&Arc<T>> {
        match self {
            Entry::Item(item) => Some(item),
            _ => None,
        }
    }

    /// The value, if this is one.
    pub fn value(&self) -> Option<u64> {
        match self {
            Entry::Value(value) => Some(*value),
            _ => None,
        }
    }

    /// Identity comparison: the same item (by pointer), the same value, the same lock state,
    /// or both empty.
    pub fn same_as(&self, other: &Entry<T>) -> bool {
        match (self, other) {
            (Entry::Empty, Entry::Empty) => true,
            (Entry::Item(a), Entry::Item(b)) => Arc::ptr_eq(a, b),
            (Entry::Value(a), Entry::Value(b)) => a == b,
            (
                Entry::Locked { mode, holders },
                Entry::Locked {
                    mode: other_mode,
                    holders: other_holders,
                },
            ) => mode == other_mode && holders == other_holders,
            _ => false,
        }
    }
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        match self {
            Entry::Empty => Entry::Empty,
            Entry::Item(item) => Entry::Item(Arc::clone(item)),
            Entry::Value(value) => Entry::Value(*value),
            Entry::Locked { mode, holders } => Entry::Locked {
                mode: *mode,
                holders: *holders,
            },
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Entry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Empty => f.write_str("Empty"),
            Entry::Item(item) => f.debug_tuple("Item").field(item).finish(),
            Entry::Value(value) => f.debug_tuple("Value").field(value).finish(),
            Entry::Locked { mode, holders } => f
                .debug_struct("Locked")
                .field("mode", mode)
                .field("holders", holders)
                .finish(),
        }
    }
}

/// The state of one index, with items borrowed for the life of a [`ReadGuard`].
///
/// [`ReadGuard`]: crate::xarray::ReadGuard
pub enum EntryRef<'g, T> {
    /// Nothing is stored at this index.
    Empty,
    /// An item, borrowed without touching its reference count.
    Item(&'g T),
    /// A value (shadow) entry.
    Value(u64),
    /// A lock entry (see [`Entry::Locked`]).
    Locked {
        /// The mode the index is held in.
        mode: LockMode,
        /// How many guards hold the index.
        holders: u64,
    },
}

impl<'g, T> EntryRef<'g, T> {
    /// `true` for [`EntryRef::Empty`].
    pub fn is_empty(&self) -> bool {
        matches!(self, EntryRef::Empty)
    }

    /// The item, if this is one.
    pub fn item(&self) -> Option<&'g T> {
        match self {
            EntryRef::Item(item) => Some(item),
            _ => None,
        }
    }

    /// The value, if this is one.
    pub fn value(&self) -> Option<u64> {
        match self {
            EntryRef::Value(value) => Some(*value),
            _ => None,
        }
    }
}

impl<T> Clone for EntryRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for EntryRef<'_, T> {}

impl<T: fmt::Debug> fmt::Debug for EntryRef<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryRef::Empty => f.write_str("Empty"),
            EntryRef::Item(item) => f.debug_tuple("Item").field(item).finish(),
            EntryRef::Value(value) => f.debug_tuple("Value").field(value).finish(),
            EntryRef::Locked { mode, holders } => f
                .debug_struct("Locked")
                .field("mode", mode)
                .field("holders", holders)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        assert_eq!(kind(EMPTY), Kind::Empty);
        for v in [0, 1, 2, 1 << 40, MAX_VALUE - 1, MAX_VALUE] {
            let w = value_word(v);
            assert_eq!(kind(w), Kind::Value);
            assert_eq!(word_value(w), v);
        }
        let node = 0x1000usize as *const u64;
        let w = node_word(node);
        assert_eq!(kind(w), Kind::Node);
        assert!(is_node(w) && !is_record(w));
        assert_eq!(word_node::<u64>(w), node);
        let w = record_word(node);
        assert_eq!(kind(w), Kind::Record);
        assert!(is_record(w) && !is_node(w) && !is_busy(w));
        assert_eq!(word_record::<u64>(w), node);
        let b = busy(w);
        assert!(is_record(b) && is_busy(b) && !is_node(b));
        assert_eq!(word_record::<u64>(b), node);
        for p in [0, 1, (1 << 61) - 1] {
            let w = lock_word(p);
            assert_eq!(kind(w), Kind::Lock);
            assert!(!is_node(w) && !is_record(w));
            assert_eq!(word_lock(w), p);
        }
        let arc = Arc::new(7u8);
        let raw = Arc::into_raw(arc);
        let w = item_word(raw);
        assert_eq!(kind(w), Kind::Item);
        // SAFETY: `raw` came from `Arc::into_raw` just above and is converted back once.
        drop(unsafe { Arc::from_raw(word_item::<u8>(w)) });
    }
}
