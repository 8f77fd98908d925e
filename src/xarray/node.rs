//! Tree nodes: `SLOTS` slot words, three mark bitmaps, a lock, and how nodes are retired
//! and recycled.
//!
//! # Layout
//!
//! A node is `SLOTS` atomic slot words (see [`entry`](super::entry)), one `u64` bitmap per
//! mark (bit `i` set means slot `i` or something below it carries the mark), the node's
//! `shift` (the number of index bits below it: a slot of this node covers `2^shift`
//! indices), `count`, the number of non-empty slots, and `lock`, a spin lock word whose
//! bit 1 says the node is *obsolete* (unlinked). With 64 slots that is
//! 512 + 24 + 8 = 544 bytes, 8.5 bytes per slot, aligned to 16 (bit 3 of a slot word
//! tells a node from a lock record).
//!
//! # Who writes what
//!
//! * `slots`, `marks` and `count` are written only by a writer that holds the node's
//!   lock; `slots` and `marks` are read by anyone (lock-free readers pinned in the tree's
//!   epoch, with `Acquire`), `count` only under the lock (loom checks that discipline).
//! * A node is marked obsolete under its lock, by the writer that unlinks it, and never
//!   changes again: a writer that walked to it without a lock finds it obsolete once it
//!   has the lock, and starts again from the head. So a writer that holds the lock of a
//!   node that is not obsolete writes into the live tree.
//! * `shift` never changes after the node is published.
//!
//! # Retirement and recycling
//!
//! A node is unlinked from the tree (one store into its parent slot or the head) and
//! then *retired*: once every reader that might still hold a pointer to it has unpinned
//! (crossbeam-epoch), it goes to its tree's [`NodeCache`] and is reused by a later
//! structural change, so that the nodes of a tree that keeps changing shape are not
//! allocated again and again. After unlinking, no writer touches the node again (it is
//! obsolete), so a slow reader that still walks it sees the state the tree had when it
//! was unlinked: an older but consistent view.
//!
//! Under `cfg(loom)` a retired node is *poisoned* through a loom `UnsafeCell` that every
//! reader visit touches, and un-poisoned when it is reused: if a reader could visit a
//! node after its retirement ran (an unpinned reader), loom reports the unsynchronised
//! accesses as a causality violation instead of the test reading freed memory.

use core::marker::PhantomData;

use crossbeam_epoch::Guard;

use super::entry::{self, Kind, MARK_COUNT};
use crate::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::sync::ItemArc as Arc;
use crate::sync::{self, Mutex, SpinLock, UnsafeCell};

/// Compile-time geometry of a tree with `SLOTS` slots per node.
pub(crate) struct Geometry<const SLOTS: usize>;

impl<const SLOTS: usize> Geometry<SLOTS> {
    /// Index bits consumed per level.
    pub(crate) const BITS: u32 = {
        assert!(
            SLOTS.is_power_of_two() && SLOTS >= 2 && SLOTS <= 64,
            "SLOTS must be a power of two in 2..=64"
        );
        SLOTS.trailing_zeros()
    };
    /// Mask of one level's index bits.
    pub(crate) const MASK: u64 = SLOTS as u64 - 1;
    /// The shift of the highest possible node: the largest multiple of `BITS` below 64.
    pub(crate) const TOP_SHIFT: u32 = (63 / Self::BITS) * Self::BITS;
    /// The span of the head: it covers all of `u64`.
    pub(crate) const HEAD_SHIFT: u32 = 64;

    /// The largest index a node of this shift can hold when it is the root.
    #[inline(always)]
    pub(crate) fn max_index(shift: u32) -> u64 {
        let top = shift + Self::BITS;
        if top >= 64 {
            u64::MAX
        } else {
            (1u64 << top) - 1
        }
    }

    /// The first index of the slot of a node with this shift (`< 64`) that covers `index`.
    #[inline(always)]
    pub(crate) fn slot_base(index: u64, shift: u32) -> u64 {
        debug_assert!(shift < 64);
        index & !((1u64 << shift) - 1)
    }

    /// The slot of `index` in a node of this shift.
    #[inline(always)]
    pub(crate) fn offset(index: u64, shift: u32) -> usize {
        ((index >> shift) & Self::MASK) as usize
    }

    /// How many slots of a node with this shift lie inside the index space (only the
    /// top node may have slots beyond `u64::MAX`).
    #[inline(always)]
    pub(crate) fn slots_in_range(shift: u32) -> usize {
        if shift + Self::BITS > 64 {
            1 << (64 - shift)
        } else {
            SLOTS
        }
    }

    /// A bitmap with one bit per in-range slot of a node with this shift.
    #[inline(always)]
    pub(crate) fn full_bitmap(shift: u32) -> u64 {
        let n = Self::slots_in_range(shift);
        if n == 64 {
            u64::MAX
        } else {
            (1u64 << n) - 1
        }
    }
}

/// The bit of a node's lock word that says it was unlinked.
const OBSOLETE: u32 = 2;
/// One unit of the in-flight mark propagation count kept in the lock word's upper bits
/// (see [`Node::begin_propagation`]).
const PROPAGATING: u32 = 4;

/// One node of the tree.
#[repr(C, align(16))]
pub(crate) struct Node<const SLOTS: usize> {
    /// Index bits below this node; a leaf has shift 0.
    pub(crate) shift: u8,
    /// Non-empty slots. Only touched under the node's lock.
    count: UnsafeCell<u8>,
    /// The node's spin lock (bit 0), its obsolete flag (bit 1), and above them the
    /// number of writers that changed this node's mark summary and have not yet finished
    /// recomputing its ancestors' bits (see [`Node::begin_propagation`]).
    lock: AtomicU32,
    /// Per mark, one bit per slot.
    pub(crate) marks: [AtomicU64; MARK_COUNT],
    pub(crate) slots: [AtomicUsize; SLOTS],
    /// Loom's use-after-retire detector (see the module docs).
    #[cfg(loom)]
    liveness: UnsafeCell<bool>,
}

impl<const SLOTS: usize> Node<SLOTS> {
    /// A node whose in-range slots all hold `word` (empty or a non-node entry) and carry
    /// the marks in `mark_mask` (bit `m` set: every in-range slot carries mark `m`).
    pub(crate) fn filled(shift: u32, word: usize, mark_mask: u8) -> Box<Self> {
        let mut node = Self::zeroed();
        node.fill(shift, word, mark_mask);
        node
    }

    /// Makes an empty node (shift 0, no slots used) one of `shift` whose in-range slots
    /// all hold `word` with the marks in `mark_mask`.
    fn fill(&mut self, shift: u32, word: usize, mark_mask: u8) {
        debug_assert!(!entry::is_node(word));
        self.shift = shift as u8;
        if word == entry::EMPTY {
            return;
        }
        let in_range = Geometry::<SLOTS>::slots_in_range(shift);
        let bitmap = Geometry::<SLOTS>::full_bitmap(shift);
        self.count = UnsafeCell::new(in_range as u8);
        for slot in &mut self.slots[..in_range] {
            *slot = AtomicUsize::new(word);
        }
        for (m, bits) in self.marks.iter_mut().enumerate() {
            if mark_mask & (1 << m) != 0 {
                *bits = AtomicU64::new(bitmap);
            }
        }
    }

    /// An empty node with shift 0, allocated zeroed in place: with 64 slots a node is
    /// 544 bytes, and building it on the stack to move it into a `Box` cost about a
    /// quarter of an erase-and-store cycle on a sparse tree.
    #[cfg(not(loom))]
    fn zeroed() -> Box<Self> {
        let layout = std::alloc::Layout::new::<Self>();
        // SAFETY: the layout is a non-zero-sized type's own layout.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut Self;
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `ptr` is a fresh allocation of `Self`'s layout, and all-zero bytes are
        // a valid `Self` outside loom: every field is an integer, an atomic integer or an
        // `UnsafeCell` of one (shift 0, count 0, no marks, every slot `EMPTY`).
        unsafe { Box::from_raw(ptr) }
    }

    /// Under loom the atomics and cells are loom's, which are not plain integers.
    #[cfg(loom)]
    fn zeroed() -> Box<Self> {
        Box::new(Node {
            shift: 0,
            count: UnsafeCell::new(0),
            lock: AtomicU32::new(0),
            marks: core::array::from_fn(|_| AtomicU64::new(0)),
            slots: core::array::from_fn(|_| AtomicUsize::new(entry::EMPTY)),
            liveness: UnsafeCell::new(true),
        })
    }

    /// A node from `cache` (or a new one) whose in-range slots all hold `word` with the
    /// marks in `mark_mask`, as [`Node::filled`].
    pub(crate) fn from_cache(
        cache: &NodeCache<SLOTS>,
        shift: u32,
        word: usize,
        mark_mask: u8,
    ) -> Box<Self> {
        let Some(mut node) = cache.take() else {
            return Self::filled(shift, word, mark_mask);
        };
        node.reset();
        node.fill(shift, word, mark_mask);
        node
    }

    /// Makes a recycled node a fresh empty one (shift 0, unlocked, not obsolete).
    fn reset(&mut self) {
        self.shift = 0;
        self.count = UnsafeCell::new(0);
        self.lock = AtomicU32::new(0);
        for bits in &mut self.marks {
            *bits = AtomicU64::new(0);
        }
        for slot in &mut self.slots {
            *slot = AtomicUsize::new(entry::EMPTY);
        }
        #[cfg(loom)]
        self.liveness.with_mut(|alive| {
            // SAFETY: we own the node (`&mut self`); loom checks this write against any
            // reader that could still visit it, which only an unpinned one could.
            unsafe { *alive = true }
        });
    }

    /// Takes the node's lock. `None` (and the lock is let go again) if the node is
    /// obsolete: the caller walks again from the head.
    #[inline]
    pub(crate) fn lock(&self) -> Option<SpinLock<'_>> {
        #[cfg(loom)]
        if crate::mutation::active(crate::mutation::Mutation::NodeLockSkipped) {
            let bits = self.lock.load(Ordering::Relaxed);
            return (bits & OBSOLETE == 0).then(|| SpinLock::not_taken(&self.lock));
        }
        let (guard, bits) = SpinLock::lock(&self.lock);
        #[cfg(loom)]
        if crate::mutation::active(crate::mutation::Mutation::ObsoleteIgnored) {
            return Some(guard);
        }
        (bits & OBSOLETE == 0).then_some(guard)
    }

    /// Takes the lock of a node that cannot be obsolete: one this writer has just
    /// built and not yet published.
    #[inline]
    pub(crate) fn lock_new(&self) -> SpinLock<'_> {
        SpinLock::lock(&self.lock).0
    }

    /// Marks the node obsolete (the caller holds its lock and is unlinking it).
    pub(crate) fn make_obsolete(&self) {
        debug_assert!(self.lock.load(Ordering::Relaxed) & crate::sync::SPIN_LOCKED != 0);
        self.lock.fetch_or(OBSOLETE, Ordering::Relaxed);
    }

    /// Counts one more writer that changed this node's mark summary (the caller holds
    /// the lock) and will recompute the ancestors' bits after letting go of it; it calls
    /// [`Node::end_propagation`] once it has. While the count is not zero an ancestor's
    /// bit may lag this node's summary, so a writer that sets a mark here and finds the
    /// summary unchanged cannot stop: it recomputes the ancestors itself (cursor
    /// invariant 4).
    #[inline]
    pub(crate) fn begin_propagation(&self) {
        debug_assert!(self.lock.load(Ordering::Relaxed) & crate::sync::SPIN_LOCKED != 0);
        self.lock.fetch_add(PROPAGATING, Ordering::Relaxed);
    }

    /// Ends what [`Node::begin_propagation`] began: the ancestors' bits have been
    /// recomputed (`Release`: a writer that reads the count as zero under the lock sees
    /// those bits).
    #[inline]
    pub(crate) fn end_propagation(&self) {
        self.lock.fetch_sub(PROPAGATING, Ordering::Release);
    }

    /// Whether some writer's recomputation of this node's ancestors is still under way.
    #[inline]
    pub(crate) fn propagating(&self) -> bool {
        self.lock.load(Ordering::Acquire) >= PROPAGATING
    }

    /// Lets go of a lock taken with [`Node::lock`] or [`Node::lock_new`] and kept.
    #[inline]
    pub(crate) fn unlock(&self) {
        crate::sync::spin_unlock(&self.lock);
    }

    /// Reader-side visit hook: under loom, an access that races with retirement.
    #[inline(always)]
    pub(crate) fn visit(&self) {
        #[cfg(loom)]
        self.liveness.with(|alive| {
            // SAFETY: loom's cell checks this read against the retirement write; the
            // node memory itself is never freed under loom (see the module docs).
            let alive = unsafe { *alive };
            assert!(alive, "rangelock: reader visited a retired node");
        });
    }

    /// Loads slot `offset` for a reader or writer.
    #[inline(always)]
    pub(crate) fn load(&self, offset: usize) -> usize {
        self.slots[offset].load(Ordering::Acquire)
    }

    /// The number of non-empty slots.
    ///
    /// # Safety
    /// The caller holds the node's lock (or owns the node: not yet published, or
    /// unreachable).
    #[inline(always)]
    pub(crate) unsafe fn count(&self) -> usize {
        // SAFETY: the caller holds the lock, the only context that touches count.
        self.count.with(|c| unsafe { *c }) as usize
    }

    /// Publishes `word` in slot `offset` and returns the word it replaced, keeping
    /// `count` in step.
    ///
    /// # Safety
    /// The caller holds the node's lock and the node is not obsolete (or the node is not
    /// yet published and only this thread can reach it).
    #[inline(always)]
    pub(crate) unsafe fn replace(&self, offset: usize, word: usize) -> usize {
        let old = self.slots[offset].swap(word, Ordering::AcqRel);
        let delta = (word != entry::EMPTY) as i32 - (old != entry::EMPTY) as i32;
        if delta != 0 {
            // SAFETY: the caller holds the lock, the only context that touches count.
            self.count
                .with_mut(|c| unsafe { *c = (*c as i32 + delta) as u8 });
        }
        old
    }

    /// The mark bitmap of mark `m`.
    #[inline(always)]
    pub(crate) fn mark_bits(&self, m: usize) -> u64 {
        self.marks[m].load(Ordering::Acquire)
    }

    /// The marks of slot `offset` as a 3-bit mask.
    #[inline(always)]
    pub(crate) fn slot_marks(&self, offset: usize) -> u8 {
        let mut mask = 0;
        for m in 0..MARK_COUNT {
            if self.mark_bits(m) & (1 << offset) != 0 {
                mask |= 1 << m;
            }
        }
        mask
    }

    /// Sets or clears mark `m` on slot `offset`; returns the bitmap before the change.
    /// Writers only (under the node's lock), so a plain read-modify-write suffices.
    #[inline(always)]
    pub(crate) fn set_slot_mark(&self, m: usize, offset: usize, on: bool) -> u64 {
        let old = self.marks[m].load(Ordering::Relaxed);
        let new = if on {
            old | 1 << offset
        } else {
            old & !(1 << offset)
        };
        if new != old {
            self.marks[m].store(new, Ordering::Release);
        }
        old
    }
}

/// A tree's cache of retired nodes, reused by its structural changes once the epoch has
/// passed them (see the module docs). Shared (`Arc`) between the tree and the deferred
/// closures that fill it, which may run after the tree is gone.
pub(crate) struct NodeCache<const SLOTS: usize> {
    nodes: Mutex<Vec<Box<Node<SLOTS>>>>,
    /// Retirements so far (nodes and subtrees), for [`NodeCache::note_retired`].
    retired: AtomicUsize,
}

/// How many retired nodes a tree keeps for reuse; beyond it they are freed.
const CACHE_NODES: usize = 64;

/// Retirements between two flushes of the retiring thread's epoch garbage.
///
/// crossbeam-epoch collects garbage from `pin` only every 128 pins, and a few bags at a
/// time; a writer that builds and unlinks many nodes per operation (a lock beyond the
/// root's reach grows the root by up to ten levels and its release shrinks it again)
/// retires them faster than that, and the backlog (and the resident set) grows without
/// bound. Flushing once per bag's worth of retirements collects at the rate garbage is
/// made, so retired nodes come back to the cache.
const FLUSH_EVERY: usize = 64;

// SAFETY: the cached nodes are unreachable from any tree (retired, and the epoch has
// passed them): plain memory owned by the cache, handed out under its mutex.
unsafe impl<const SLOTS: usize> Send for NodeCache<SLOTS> {}
// SAFETY: as above; every access goes through the mutex.
unsafe impl<const SLOTS: usize> Sync for NodeCache<SLOTS> {}

impl<const SLOTS: usize> NodeCache<SLOTS> {
    pub(crate) fn new() -> Self {
        NodeCache {
            nodes: Mutex::new(Vec::new()),
            retired: AtomicUsize::new(0),
        }
    }

    /// Counts `n` more retirements; `true` once per [`FLUSH_EVERY`] of them, when the
    /// retiring thread should flush its epoch garbage (see [`FLUSH_EVERY`]).
    pub(crate) fn note_retired(&self, n: usize) -> bool {
        let before = self.retired.fetch_add(n, Ordering::Relaxed);
        before / FLUSH_EVERY != (before + n) / FLUSH_EVERY
    }

    fn take(&self) -> Option<Box<Node<SLOTS>>> {
        sync::lock(&self.nodes).pop()
    }

    /// Keeps a retired node for reuse, or frees it if the cache is full.
    ///
    /// # Safety
    /// `node` came from `Box::into_raw`, is unlinked and unreachable by any thread.
    unsafe fn put(&self, node: *const Node<SLOTS>) {
        #[cfg(loom)]
        {
            // SAFETY: forwarded from the caller; the poison write lets loom catch any
            // reader that was not pinned (module docs).
            unsafe { &*node }
                .liveness
                .with_mut(|alive| unsafe { *alive = false });
        }
        // SAFETY: forwarded from the caller.
        let node = unsafe { Box::from_raw(node as *mut Node<SLOTS>) };
        let mut nodes = sync::lock(&self.nodes);
        if nodes.len() < CACHE_NODES {
            nodes.push(node);
        } else {
            drop(nodes);
            // SAFETY: the node came from `Box::into_raw` and is unreachable.
            unsafe { free_node::<SLOTS>(Box::into_raw(node)) };
        }
    }

    /// Nodes kept for reuse.
    pub(crate) fn len(&self) -> usize {
        sync::lock(&self.nodes).len()
    }
}

impl<const SLOTS: usize> Drop for NodeCache<SLOTS> {
    fn drop(&mut self) {
        for node in sync::lock(&self.nodes).drain(..) {
            // SAFETY: cached nodes are unreachable and came from `Box::into_raw`.
            unsafe { free_node::<SLOTS>(Box::into_raw(node)) };
        }
    }
}

/// A retired word (a node, a subtree or an item) in a deferred closure. The closure is
/// `Send` exactly when the items are, through `PhantomData<Arc<T>>`.
struct Retired<T> {
    word: usize,
    _items: PhantomData<Arc<T>>,
}

// SAFETY: a `Retired` is only the name of memory that nobody can reach any more (nodes
// of plain atomics, and items, which are `Send + Sync` where it is constructed).
unsafe impl<T: Send + Sync> Send for Retired<T> {}

/// Frees one node (not its children).
///
/// # Safety
/// `node` came from `Box::into_raw` of a `Node<SLOTS>`, is detached, and unreachable.
pub(crate) unsafe fn free_node<const SLOTS: usize>(node: *const Node<SLOTS>) {
    #[cfg(loom)]
    {
        // SAFETY: the caller guarantees the node is unreachable; the poison write lets
        // loom catch any reader that was not pinned (module docs). The memory is leaked.
        unsafe { &*node }
            .liveness
            .with_mut(|alive| unsafe { *alive = false });
    }
    #[cfg(not(loom))]
    // SAFETY: the caller guarantees the node came from Box::into_raw and is unreachable.
    drop(unsafe { Box::from_raw(node as *mut Node<SLOTS>) });
}

/// Frees the subtree or item that `word` holds, dropping the tree's item references.
/// Returns whether it held a lock entry.
///
/// # Safety
/// `word` is detached and unreachable by any thread; the tree owned what it points to.
pub(crate) unsafe fn free_subtree<T, const SLOTS: usize>(word: usize) -> bool {
    match entry::kind(word) {
        Kind::Node => {
            let node = entry::word_node::<Node<SLOTS>>(word);
            // SAFETY: the caller guarantees the subtree is unreachable, so its node is
            // still allocated and nobody else reads or writes it.
            let node_ref = unsafe { &*node };
            let mut locks = false;
            for slot in &node_ref.slots {
                let child = slot.load(Ordering::Relaxed);
                // SAFETY: children of an unreachable subtree are unreachable too.
                locks |= unsafe { free_subtree::<T, SLOTS>(child) };
            }
            // SAFETY: as above; the node came from Box::into_raw.
            unsafe { free_node::<SLOTS>(node) };
            locks
        }
        Kind::Item => {
            // SAFETY: the tree owned one strong reference to the item.
            drop(unsafe { Arc::from_raw(entry::word_item::<T>(word)) });
            false
        }
        Kind::Lock | Kind::Record => true,
        Kind::Empty | Kind::Value => false,
    }
}

/// Retires a whole detached subtree (nodes freed, items dropped) or an item, once the
/// epoch has passed it. `T: Send + Sync + 'static` because the deferred free may drop an
/// `Arc<T>` on another thread, at any later time.
pub(crate) fn retire_subtree<T: Send + Sync + 'static, const SLOTS: usize>(
    guard: &Guard,
    word: usize,
) {
    if matches!(entry::kind(word), Kind::Node | Kind::Item) {
        let retired = Retired::<T> {
            word,
            _items: PhantomData,
        };
        guard.defer(move || {
            let retired = retired;
            // SAFETY: the caller unlinked `word` from the tree before retiring it, and
            // the epoch runs this only after every thread pinned at that time unpinned,
            // so nothing can still reach it.
            unsafe { free_subtree::<T, SLOTS>(retired.word) };
        });
    }
}

/// Retires one node, empty or whose children stay in the tree (the old root after a
/// shrink): it goes to `cache` once the epoch has passed it.
pub(crate) fn retire_node<const SLOTS: usize>(
    guard: &Guard,
    cache: &Arc<NodeCache<SLOTS>>,
    word: usize,
) {
    debug_assert!(entry::is_node(word));
    let cache = Arc::clone(cache);
    let retired = Retired::<()> {
        word,
        _items: PhantomData,
    };
    guard.defer(move || {
        let retired = retired;
        // SAFETY: as in `retire_subtree`; the node alone is retired, its children (if
        // any) are still linked elsewhere or were retired on their own.
        unsafe { cache.put(entry::word_node(retired.word)) };
    });
}

/// Whether a writer reads again, under its node's lock, the slots it decided on during its
/// unlocked walk: always, unless the loom control `SlotNotReread` (`src/mutation.rs`) is
/// switched on.
#[inline(always)]
pub(crate) fn slots_reread() -> bool {
    #[cfg(loom)]
    return !crate::mutation::active(crate::mutation::Mutation::SlotNotReread);
    #[cfg(not(loom))]
    true
}
