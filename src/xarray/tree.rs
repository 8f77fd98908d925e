//! `XArray`: the public face of the tree: the type, construction, reads, counts and
//! `Drop` (the writers are in `store.rs`).

use core::fmt;
use core::marker::PhantomData;
use core::ops::{RangeBounds, RangeInclusive};

use crossbeam_epoch::{Collector, Guard};

use super::entry::{self, Entry, Kind, Mark, EMPTY};
use super::iter::Iter;
use super::kept::KeptBudget;
use super::lock_word::LockState;
use super::node::Node;
use super::node_slab::{self, NodeSlab};
use super::read_guard::ReadGuard;
use super::record::RecordPool;
use super::span;
use crate::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use crate::sync::ItemArc as Arc;
use crate::tree_waits::TreeWaits;
use crate::wait_table::WaitTable;

/// A concurrent radix tree mapping every `u64` index to an [`Entry`]: empty, an item
/// (`Arc<T>`), or a 63-bit value.
///
/// Reads are lock-free (crossbeam-epoch); a write locks only the node that holds the
/// slot it changes (short spin locks, never held across user code), so writers of
/// different nodes run in parallel. `SLOTS` is the fan-out (a power of two in
/// `2..=64`); keep the default of 64 except to test (4 reaches deep trees quickly).
///
/// Semantically the tree is a total map from index to entry plus three [`Mark`]s per
/// index. Internally, a value stored over an aligned block of indices occupies one slot
/// (a *multi-index entry*), so [`store_range`](Self::store_range) over `2^40` indices
/// costs O(levels x SLOTS), not O(length). Writing to part of such an entry splits it.
///
/// ```
/// use rangelock::{Entry, Mark, XArray};
/// use std::sync::Arc;
///
/// let pages: XArray<String> = XArray::new();
/// pages.store(7, Arc::new("page seven".to_string())).unwrap();
/// pages.store_range(100..200, 42).unwrap(); // shadow entries over 100 indices
/// pages.set_mark(7, Mark::M0);
///
/// assert_eq!(pages.load(7).as_deref().map(String::as_str), Some("page seven"));
/// assert_eq!(pages.get(150).value(), Some(42));
/// assert!(pages.get_mark(7, Mark::M0));
/// assert!(matches!(pages.get(8), Entry::Empty));
///
/// // A pinned read guard borrows items without touching reference counts.
/// let guard = pages.read();
/// assert_eq!(guard.get(7).map(String::len), Some(10));
/// ```
pub struct XArray<T, const SLOTS: usize = 64> {
    /// This tree's name for the lock layer's held lists and wait table: never reused in
    /// the process (see `identity.rs`).
    pub(crate) id: u64,
    /// Empty, a non-node entry covering all of `u64`, a lock record, or the root node.
    pub(crate) head: AtomicUsize,
    /// The head's spin lock: taken by writers that change a head holding a node (the
    /// root's growth and shrinking) or a head entry other than by the lock layer's fast
    /// paths (see `cursor/mod.rs`).
    pub(crate) head_lock: AtomicU8,
    /// The head's marks: bit `m` set iff some entry carries mark `m`.
    pub(crate) root_marks: AtomicU8,
    /// How many empty nodes lock releases keep linked for the next locker (`kept.rs`).
    pub(crate) kept: KeptBudget,
    /// Retired nodes waiting to be reused (see `node.rs`).
    pub(crate) node_slab: Arc<NodeSlab<SLOTS>>,
    /// Where lock records come from; `None`: the process-wide pool (see `record.rs`).
    records: Option<Arc<RecordPool>>,
    /// Items reachable from the head.
    pub(crate) items: AtomicUsize,
    /// Nodes reachable from the head.
    pub(crate) nodes: AtomicUsize,
    /// `None`: crossbeam-epoch's global collector.
    collector: Option<Collector>,
    /// The lock layer's waits: the table this tree's waiters sleep in and the count of
    /// acquisitions with pending entries (`src/tree_waits.rs`; the tree never looks
    /// inside but for its self-check).
    pub(crate) waits: TreeWaits,
    /// The lock class (`src/lockdep/`; zero-sized without the `lockdep` feature).
    pub(crate) lockdep: crate::lockdep::TreeClass,
    _items: PhantomData<Arc<T>>,
}

// Auto traits: atomics, the mutex and the collector are Send + Sync; the items make the
// tree Send/Sync exactly when `Arc<T>` is, through the PhantomData.

impl<T> XArray<T> {
    /// An empty tree with 64 slots per node, using the global epoch collector.
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn new() -> Self {
        Self::with_slots()
    }
}

impl<T> Default for XArray<T> {
    #[cfg_attr(feature = "lockdep", track_caller)]
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const SLOTS: usize> XArray<T, SLOTS> {
    /// An empty tree with `SLOTS` slots per node (`XArray::<T, 4>::with_slots()`).
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn with_slots() -> Self {
        Self::build(None)
    }

    #[cfg_attr(feature = "lockdep", track_caller)]
    fn build(collector: Option<Collector>) -> Self {
        let _ = super::node::Geometry::<SLOTS>::BITS; // compile-time check of SLOTS
        XArray {
            id: super::identity::next(),
            head: AtomicUsize::new(EMPTY),
            head_lock: AtomicU8::new(0),
            root_marks: AtomicU8::new(0),
            kept: KeptBudget::new(),
            node_slab: Arc::new(NodeSlab::new()),
            // Loom cannot model a process-wide static: every tree gets its own pool.
            records: cfg!(loom).then(|| Arc::new(RecordPool::new())),
            items: AtomicUsize::new(0),
            nodes: AtomicUsize::new(0),
            collector,
            waits: TreeWaits::new(),
            lockdep: crate::lockdep::TreeClass::here(),
            _items: PhantomData,
        }
    }

    /// An empty tree that reclaims through its own epoch `collector` instead of the
    /// global one: useful in tests (dropping the tree and the collector frees everything
    /// that was retired, deterministically) and under loom (fewer states).
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn with_collector(collector: Collector) -> Self {
        Self::build(Some(collector))
    }

    /// This tree, with lock waiters sleeping in `table` instead of the process-wide wait
    /// table: tests use it to count table visits. Call it before the tree is shared.
    pub fn with_wait_table(mut self, table: Arc<WaitTable>) -> Self {
        self.waits.use_table(table);
        self
    }

    /// The pool this tree's lock records come from.
    #[inline]
    pub(crate) fn records(&self) -> &RecordPool {
        match &self.records {
            Some(pool) => pool,
            #[cfg(not(loom))]
            None => super::record::global(),
            #[cfg(loom)]
            None => unreachable!("under loom every tree owns a pool"),
        }
    }

    /// Pins the epoch this tree reclaims through.
    #[inline]
    pub(crate) fn pin(&self) -> Guard {
        match &self.collector {
            None => crossbeam_epoch::pin(),
            Some(collector) => collector.register().pin(),
        }
    }

    /// A pinned read guard: lock-free lookups that borrow items for the guard's lifetime
    /// without touching their reference counts. Keep it short-lived: while it lives,
    /// nothing retired anywhere in its epoch can be freed.
    pub fn read(&self) -> ReadGuard<'_, T, SLOTS> {
        ReadGuard::new(self, self.pin())
    }

    /// The item at `index`, with its reference count raised.
    pub fn load(&self, index: u64) -> Option<Arc<T>> {
        let guard = self.pin();
        let word = self.lookup_word(&guard, index);
        // SAFETY: read from this tree under `guard`, still pinned.
        unsafe { load_item(word) }
    }

    /// The entry at `index`.
    pub fn get(&self, index: u64) -> Entry<T> {
        let guard = self.pin();
        // SAFETY: the word was read under `guard`, which is still pinned.
        unsafe { decode_owned(self.lookup_word(&guard, index)) }
    }

    /// Whether the entry at `index` carries `mark` (always `false` for an empty index).
    pub fn get_mark(&self, index: u64, mark: Mark) -> bool {
        let guard = self.pin();
        self.lookup_mark(&guard, index, mark.index())
    }

    /// Whether any entry carries `mark`: O(1).
    pub fn any_marked(&self, mark: Mark) -> bool {
        self.root_marks.load(Ordering::Acquire) & (1 << mark.index()) != 0
    }

    /// The first entry at or after `from`, with the whole span it covers (which may begin
    /// before `from`, for a multi-index entry).
    pub fn find(&self, from: u64) -> Option<(RangeInclusive<u64>, Entry<T>)> {
        let guard = self.pin();
        let found = self.find_word(&guard, from, u64::MAX, None)?;
        let span = found.first..=found.last;
        // SAFETY: the word was read under `guard`, which is still pinned.
        Some((span, unsafe { decode_owned(found.word) }))
    }

    /// The entries in `range`, in ascending order, each multi-index entry once with the
    /// whole span it covers. Lock-free and not a snapshot (see [`Iter`]). An empty or
    /// inverted range yields nothing.
    pub fn iter(&self, range: impl RangeBounds<u64>) -> Iter<'_, T, SLOTS> {
        Iter::new(self, span::inclusive(&range), None)
    }

    /// Like [`iter`](Self::iter), but only entries that carry `mark`; unmarked subtrees
    /// are skipped without being walked.
    pub fn iter_marked(&self, range: impl RangeBounds<u64>, mark: Mark) -> Iter<'_, T, SLOTS> {
        Iter::new(self, span::inclusive(&range), Some(mark.index()))
    }

    /// The number of items (not values) in the tree, like a page cache's page count.
    pub fn len(&self) -> usize {
        self.items.load(Ordering::Relaxed)
    }

    /// `true` when no index holds anything (no item, value or lock entry).
    pub fn is_empty(&self) -> bool {
        let head = self.head.load(Ordering::Acquire);
        if head == EMPTY {
            return true;
        }
        // Only a tree that keeps empty nodes for lockers (`kept.rs`) can link a node and
        // hold nothing once no writer runs: the others answer from the head alone.
        if !entry::is_node(head) || self.kept.taken() == 0 {
            return false;
        }
        let guard = self.pin();
        let head = self.head.load(Ordering::Acquire);
        if !entry::is_node(head) {
            return head == EMPTY;
        }
        !super::kept::holds_entry::<SLOTS>(super::walk::node_at(head, &guard), 0, &guard, None)
    }

    /// The number of tree nodes currently linked into the tree (on a tree that keeps
    /// empty nodes for lockers, [`with_kept_nodes`](Self::with_kept_nodes), those too).
    pub fn node_count(&self) -> usize {
        self.nodes.load(Ordering::Relaxed)
    }

    /// Bytes used by the linked nodes (items themselves not counted; nor the free
    /// nodes the tree keeps for reuse, see [`cached_nodes`](Self::cached_nodes) and
    /// [`reserved_memory`](Self::reserved_memory)).
    pub fn memory_usage(&self) -> usize {
        self.node_count() * core::mem::size_of::<Node<SLOTS>>()
    }

    /// Free nodes the tree keeps for reuse, beside the linked ones (and the unlinked ones
    /// that readers may still be walking, which come back once the epoch passes them).
    ///
    /// A tree allocates its nodes in chunks of up to 64 and frees a chunk once all of its
    /// nodes are free and it keeps at least `max(64, live / 8)` free nodes without it
    /// (`live`: the nodes in use), so after churn of any shape this settles at that many,
    /// plus what chunks that still hold a node in use keep.
    pub fn cached_nodes(&self) -> usize {
        self.node_slab.spare()
    }

    /// Bytes the tree holds for nodes: its node chunks, with the linked nodes, the free
    /// ones and the nodes that wait for the epoch (items not counted). At least
    /// [`memory_usage`](Self::memory_usage).
    ///
    /// ```
    /// use rangelock::XArray;
    /// use std::sync::Arc;
    ///
    /// let xa = XArray::<u32>::new();
    /// assert_eq!(xa.reserved_memory(), 0);
    /// for i in 0..10_000 {
    ///     xa.store(i, Arc::new(1)).unwrap();
    /// }
    /// assert!(xa.reserved_memory() >= xa.memory_usage());
    /// // At most one chunk of 64 nodes beyond the linked ones, plus a header per chunk.
    /// assert!(xa.reserved_memory() <= xa.memory_usage() * 11 / 10 + 64 * 544);
    /// ```
    pub fn reserved_memory(&self) -> usize {
        self.node_slab.reserved_bytes()
    }
}

impl<T, const SLOTS: usize> Drop for XArray<T, SLOTS> {
    fn drop(&mut self) {
        let head = self.head.load(Ordering::Acquire);
        // SAFETY: `&mut self`: no reader or writer can reach the tree any more (read
        // guards and iterators borrow it), and everything retired earlier was unlinked
        // before, so the head's subtree is owned by us alone.
        let locks_left = unsafe { node_slab::free_subtree::<T, SLOTS>(&self.node_slab, head) };
        if locks_left {
            // Only a forgotten guard leaves a lock entry in a tree that can be dropped
            // (a live guard borrows it): let the threads drop its held-list record.
            super::identity::dropped_with_locks(self.id);
        }
    }
}

impl<T, const SLOTS: usize> fmt::Debug for XArray<T, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XArray")
            .field("slots_per_node", &SLOTS)
            .field("items", &self.len())
            .field("nodes", &self.node_count())
            .field("empty", &self.is_empty())
            .finish_non_exhaustive()
    }
}

/// Clones the item an item word points to.
///
/// # Safety
/// `word` is an item word read from this tree under a guard that is still pinned.
pub(crate) unsafe fn clone_item<T>(word: usize) -> Arc<T> {
    let ptr = entry::word_item::<T>(word);
    // SAFETY: the tree holds a strong reference that is released only after the epoch
    // passes the caller's pin, so the allocation is live and the count is >= 1.
    unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    }
}

/// The item a non-node word holds, with its reference count raised; `None` for every
/// other kind (the owned lookups: `load`, `ReadGuard::load`, `ReadGuard::load_many`).
///
/// # Safety
/// `word` was read from this tree under a guard that is still pinned.
#[inline(always)]
pub(crate) unsafe fn load_item<T>(word: usize) -> Option<Arc<T>> {
    (entry::kind(word) == Kind::Item).then(|| {
        // SAFETY: an item word, read as the caller promises.
        unsafe { clone_item(word) }
    })
}

/// Decodes a non-node word into an owned entry.
///
/// # Safety
/// As for [`clone_item`].
pub(crate) unsafe fn decode_owned<T>(word: usize) -> Entry<T> {
    match entry::kind(word) {
        // SAFETY: forwarded from the caller.
        Kind::Item => Entry::Item(unsafe { clone_item(word) }),
        Kind::Value => Entry::Value(entry::word_value(word)),
        Kind::Lock => {
            let state = LockState::of(word);
            Entry::Locked {
                mode: state.mode,
                holders: state.holders,
            }
        }
        Kind::Empty | Kind::Node => Entry::Empty,
        Kind::Record => unreachable!("walks resolve lock records"),
    }
}
