//! Where a tree's nodes live: a per-tree slab of node chunks, and how unlinked nodes
//! come back to it.
//!
//! # Why a slab
//!
//! A lookup is a chain of dependent loads, one node per level. Allocated one by one, a
//! tree's nodes land wherever the allocator puts them, between the items and everything
//! else the program allocates, so a random lookup in a big tree pays a TLB miss at
//! every level and the nodes of one region are nowhere near each other. A slab keeps a
//! tree's nodes together in a few large allocations (the nodes of 1 Mi items fill
//! 9 MB of chunks instead of being spread over the 41 MB heap that also holds the
//! items), and it recycles the nodes of a tree that keeps changing shape (a lock over
//! an empty region builds nodes that its release unlinks) without an allocator call.
//!
//! # Layout
//!
//! A chunk is one allocation: a [`ChunkHeader`], then `len` nodes (`1 <= len <= 64`).
//! Every node records its place in its chunk (`Node::chunk_index`, written when the
//! chunk is made and never again), so the slab finds a node's header by arithmetic on
//! the node's own address. A new chunk holds a quarter of the nodes the slab already
//! has, at most 64 and at least one (with 64 slots: eight chunks of one node, then 2, 2,
//! 3, 3, 4, 5, ... up to 64 at a time) or 1 KiB of nodes if those are small: the nodes a
//! chunk leaves unused are at most a fifth of what the slab holds, or of one chunk, and
//! at most 63 for a big tree. A tree of a few nodes (the page cache of a small file)
//! pays a 48-byte header per node; a big one, per 64 nodes.
//!
//! # Policy
//!
//! * Allocation takes the lowest free node of the lowest-addressed chunk that has one,
//!   so a tree fills its oldest chunks first and the newest ones are the first to empty
//!   out when it shrinks.
//! * A published node comes back once it is unlinked and the epoch has passed it
//!   ([`retire_node`], [`retire_subtree`]); one that was never published comes back at
//!   once (dropping its [`NewNode`]); the tree's drop gives back all of its nodes.
//! * A chunk whose nodes are all free is freed while the slab keeps at least
//!   `max(64, live / 8)` spare nodes without it (`live`: nodes handed out and not
//!   given back). Churn within that many nodes costs no allocator call; a tree that
//!   shrinks for good gives its memory back. Fragmentation (chunks each holding a few
//!   live nodes) can keep more spare nodes than that; allocating from the lowest chunk
//!   first is what drains the others.
//!
//! # Who touches what
//!
//! * A chunk's header: only under the slab's mutex.
//! * A free node: nobody. It was either never published (only its builder ever reached
//!   it) or unlinked and passed by the epoch (no reader or writer can still hold its
//!   address), until the slab hands it to exactly one writer, which resets it.
//! * A chunk's memory is freed only when all of its nodes are free, or with the slab,
//!   which every deferred retirement keeps alive (`Arc`) until it has run.
//!
//! Every node pointer the slab hands out is derived from the chunk's allocation pointer
//! (never from a reference), and slot words carry node addresses with their provenance
//! exposed, so going from a node back to its header stays inside the allocation (Miri,
//! tree borrows).
//!
//! Under `cfg(loom)` every chunk holds one node, built in place with loom's atomics, and
//! no chunk is ever freed: a retired node is poisoned instead (see [`node`](super::node)),
//! so that loom reports a reader that could visit it. Under Miri, too, a chunk holds one
//! node (see [`MAX_CHUNK`]).

use core::marker::PhantomData;
use core::ptr::NonNull;
use std::alloc::Layout;

use crossbeam_epoch::Guard;

use super::entry::{self, Kind};
use super::node::Node;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::ItemArc as Arc;
use crate::sync::{self, Mutex};

/// The most nodes one chunk holds (its bitmaps are one `u64` each).
///
/// Under Miri, 1: slot words carry node addresses as integers, so every access to a
/// node through one is a wildcard access, which Miri's tree borrows checks against the
/// tags of the node's whole allocation; with 64 nodes to an allocation one lib
/// test ran for more than ten minutes instead of 36 seconds. The slab's own tests run
/// under Miri with chunks of 64 (every path of the chunk arithmetic), the other tests
/// with a node per chunk (header and node in one allocation, as in every small tree).
const MAX_CHUNK: usize = if cfg!(any(loom, miri)) { 1 } else { 64 };

/// A new chunk holds `1 / GROWTH` of the nodes the slab has (see the module docs).
const GROWTH: usize = 4;

/// The fewest node bytes a chunk holds: with small nodes (a tree of few slots), one
/// chunk per node would spend more on headers than on nodes.
const MIN_CHUNK_BYTES: usize = if cfg!(loom) { 0 } else { 1024 };

/// The fewest spare nodes a slab keeps before it frees a chunk (see the module docs).
const MIN_SPARE: usize = 64;

/// Retirements between two flushes of the retiring thread's epoch garbage.
///
/// crossbeam-epoch collects garbage from `pin` only every 128 pins, and a few bags at a
/// time; a writer that builds and unlinks many nodes per operation (a lock beyond the
/// root's reach grows the root by up to ten levels and its release shrinks it again)
/// retires them faster than that, and the backlog (and the resident set) grows without
/// bound. Flushing once per bag's worth of retirements collects at the rate garbage is
/// made, so retired nodes come back to the slab.
const FLUSH_EVERY: usize = 64;

/// The start of a chunk, followed by its nodes. Written only under the slab's mutex.
#[repr(C, align(16))]
struct ChunkHeader {
    /// Bit `i`: node `i` is free.
    free: u64,
    /// Bit `i`: node `i` was handed out before, so it must be reset before it is handed
    /// out again (a new chunk is zeroed, which is an empty node already).
    used: u64,
    /// Nodes in the chunk.
    len: usize,
    /// The neighbours in the slab's list of chunks with a free node.
    prev: Option<ChunkPtr>,
    next: Option<ChunkPtr>,
}

/// Bytes from a chunk's start to its first node (a multiple of a node's alignment).
const HEADER: usize = core::mem::size_of::<ChunkHeader>();

/// A chunk's address, sendable between threads through the slab's mutex.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ChunkPtr(NonNull<ChunkHeader>);

// SAFETY: a chunk is owned by its slab and only named here; its header is touched only
// under the slab's mutex, its nodes as the module docs say.
unsafe impl Send for ChunkPtr {}

impl ChunkPtr {
    /// The chunk's header, as a raw pointer: the slab reads and writes its fields in
    /// place, without references, so that no reborrow of the header joins the tags of
    /// the chunk's allocation, which Miri checks every wildcard access to a node
    /// against. Dereferenced only by a caller that holds the slab's mutex, while the
    /// chunk is alive.
    fn h(self) -> *mut ChunkHeader {
        self.0.as_ptr()
    }
}

/// The slab's chunks that have a free node, in one list: those with some node in use
/// first, those whose nodes are all free last. Allocation takes from the front, so it
/// fills chunks that are in use before it touches an idle one, and idle chunks gather at
/// the back, where the trim finds them.
struct SlabState {
    front: Option<ChunkPtr>,
    back: Option<ChunkPtr>,
    /// Chunks the slab owns (in the list or full).
    chunks: usize,
    /// Nodes in all chunks.
    capacity: usize,
    /// Free nodes in all chunks.
    spare: usize,
}

impl SlabState {
    /// Unlinks `chunk` from the list.
    ///
    /// # Safety
    /// `chunk` is alive and in the list; the caller holds the mutex.
    unsafe fn unlink(&mut self, chunk: ChunkPtr) {
        // SAFETY: forwarded from the caller; the neighbours are alive chunks of the list.
        unsafe {
            let (prev, next) = ((*chunk.h()).prev, (*chunk.h()).next);
            ((*chunk.h()).prev, (*chunk.h()).next) = (None, None);
            match prev {
                Some(p) => (*p.h()).next = next,
                None => self.front = next,
            }
            match next {
                Some(n) => (*n.h()).prev = prev,
                None => self.back = prev,
            }
        }
    }

    /// Links `chunk`, not in the list, at the front.
    ///
    /// # Safety
    /// As for [`SlabState::unlink`], but `chunk` is not in the list.
    unsafe fn push_front(&mut self, chunk: ChunkPtr) {
        // SAFETY: forwarded from the caller.
        unsafe {
            (*chunk.h()).prev = None;
            (*chunk.h()).next = self.front;
            match self.front {
                Some(f) => (*f.h()).prev = Some(chunk),
                None => self.back = Some(chunk),
            }
        }
        self.front = Some(chunk);
    }

    /// Links `chunk`, not in the list, at the back.
    ///
    /// # Safety
    /// As for [`SlabState::push_front`].
    unsafe fn push_back(&mut self, chunk: ChunkPtr) {
        // SAFETY: forwarded from the caller.
        unsafe {
            (*chunk.h()).next = None;
            (*chunk.h()).prev = self.back;
            match self.back {
                Some(b) => (*b.h()).next = Some(chunk),
                None => self.front = Some(chunk),
            }
        }
        self.back = Some(chunk);
    }
}

/// A tree's nodes (see the module docs). Shared (`Arc`) between the tree and the
/// deferred retirements that give nodes back, which may run after the tree is gone.
pub(crate) struct NodeSlab<const SLOTS: usize> {
    state: Mutex<SlabState>,
    /// The most nodes one chunk holds: [`MAX_CHUNK`] but in the slab's own tests.
    max_chunk: usize,
    /// Retirements so far (nodes and subtrees), for [`NodeSlab::note_retired`].
    retired: AtomicUsize,
    _nodes: PhantomData<Node<SLOTS>>,
}

// SAFETY: the slab owns its chunks; every access to a header or a free node goes
// through the mutex, and a node handed out is owned by the tree (module docs).
unsafe impl<const SLOTS: usize> Send for NodeSlab<SLOTS> {}
// SAFETY: as above.
unsafe impl<const SLOTS: usize> Sync for NodeSlab<SLOTS> {}

impl<const SLOTS: usize> NodeSlab<SLOTS> {
    /// Bytes of one node in a chunk.
    const NODE: usize = core::mem::size_of::<Node<SLOTS>>();

    pub(crate) fn new() -> Self {
        Self::with_max_chunk(MAX_CHUNK)
    }

    fn with_max_chunk(max_chunk: usize) -> Self {
        const { assert!(HEADER % core::mem::align_of::<Node<SLOTS>>() == 0) };
        assert!((1..=64).contains(&max_chunk));
        NodeSlab {
            max_chunk,
            state: Mutex::new(SlabState {
                front: None,
                back: None,
                chunks: 0,
                capacity: 0,
                spare: 0,
            }),
            retired: AtomicUsize::new(0),
            _nodes: PhantomData,
        }
    }

    fn layout(len: usize) -> Layout {
        let align = core::mem::align_of::<ChunkHeader>().max(core::mem::align_of::<Node<SLOTS>>());
        Layout::from_size_align(HEADER + len * Self::NODE, align).expect("chunk layout")
    }

    /// Node `i` of `chunk`, derived from the chunk's own pointer.
    ///
    /// # Safety
    /// `i` is below the chunk's length.
    unsafe fn node_in(chunk: ChunkPtr, i: usize) -> *mut Node<SLOTS> {
        // SAFETY: inside the chunk's allocation (the caller's bound).
        unsafe { chunk.0.as_ptr().cast::<u8>().add(HEADER + i * Self::NODE) }.cast()
    }

    /// The chunk of a node this slab handed out, and the node's place in it.
    ///
    /// # Safety
    /// `node` came from this slab and its chunk is not freed.
    unsafe fn chunk_of(node: *const Node<SLOTS>) -> (ChunkPtr, usize) {
        // SAFETY: the node lies in a live chunk; `chunk_index` never changes.
        let i = unsafe { core::ptr::addr_of!((*node).chunk_index).read() } as usize;
        // SAFETY: node `i` of a chunk starts `HEADER + i * NODE` bytes after the chunk.
        let header = unsafe { node.cast::<u8>().sub(HEADER + i * Self::NODE) };
        let header = NonNull::new(header as *mut ChunkHeader).expect("a chunk is not null");
        (ChunkPtr(header), i)
    }

    /// Makes a chunk of free nodes, big enough for what the slab holds (module docs), at
    /// the front of the list.
    fn grow(&self, st: &mut SlabState) {
        let least = (MIN_CHUNK_BYTES / Self::NODE).clamp(1, self.max_chunk);
        let len = (st.capacity / GROWTH).clamp(least, self.max_chunk);
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (a header at least).
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(base) = NonNull::new(base.cast::<ChunkHeader>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        let chunk = ChunkPtr(base);
        // SAFETY: a fresh allocation of the chunk's layout, owned by this thread.
        unsafe {
            base.as_ptr().write(ChunkHeader {
                free: full(len),
                used: 0,
                len,
                prev: None,
                next: None,
            })
        };
        for i in 0..len {
            // SAFETY: `i < len`; the zeroed bytes are an empty node outside loom (every
            // field is an integer, an atomic integer or a cell of one), and under loom
            // the node is written whole.
            unsafe { Node::init_in_chunk(Self::node_in(chunk, i), i as u8) };
        }
        // SAFETY: a live chunk, not in the list; we hold the mutex.
        unsafe { st.push_front(chunk) };
        st.chunks += 1;
        st.capacity += len;
        st.spare += len;
    }

    /// A free node, reset to an empty one of shift 0.
    fn take(&self) -> NonNull<Node<SLOTS>> {
        let mut st = sync::lock(&self.state);
        if st.front.is_none() {
            self.grow(&mut st);
        }
        let chunk = st.front.expect("a chunk with a free node");
        let h = chunk.h();
        // SAFETY: the front chunk is alive; we hold the mutex. It is in the list (at the
        // front) for the unlink.
        let (i, fresh) = unsafe {
            let i = (*h).free.trailing_zeros() as usize;
            let bit = 1u64 << i;
            let fresh = (*h).used & bit == 0;
            (*h).free &= !bit;
            (*h).used |= bit;
            if (*h).free == 0 {
                st.unlink(chunk);
            }
            (i, fresh)
        };
        st.spare -= 1;
        drop(st);
        // SAFETY: `i` is a free node of the chunk (its bit was set in `free`).
        let node = unsafe { Self::node_in(chunk, i) };
        if !fresh {
            // SAFETY: a free node is reachable by nobody (module docs); the slab has just
            // handed it to this thread alone.
            unsafe { (*node).reset() };
        }
        NonNull::new(node).expect("a node is not null")
    }

    /// A node of `shift` whose in-range slots all hold `word` (empty or a non-node
    /// entry) with the marks in `mark_mask`, not yet published.
    pub(crate) fn alloc(&self, shift: u32, word: usize, mark_mask: u8) -> NewNode<'_, SLOTS> {
        let node = self.take();
        // SAFETY: the node is this thread's alone until it is published.
        unsafe { (*node.as_ptr()).fill(shift, word, mark_mask) };
        NewNode { node, slab: self }
    }

    /// Gives a node back.
    ///
    /// # Safety
    /// `node` came from this slab, and nobody can reach it any more: it was never
    /// published, or it was unlinked and the epoch has passed it.
    pub(crate) unsafe fn give(&self, node: *const Node<SLOTS>) {
        // SAFETY: forwarded from the caller.
        unsafe { (*node).poison() };
        // SAFETY: forwarded from the caller; the chunk lives while one of its nodes is
        // not free.
        let (chunk, i) = unsafe { Self::chunk_of(node) };
        let mut st = sync::lock(&self.state);
        let h = chunk.h();
        // SAFETY: a live chunk, in the list unless it was full; we hold the mutex.
        unsafe {
            let bit = 1u64 << i;
            debug_assert!((*h).free & bit == 0, "a node given back twice");
            let was_full = (*h).free == 0;
            (*h).free |= bit;
            let idle = (*h).free == full((*h).len);
            if idle {
                if !was_full {
                    st.unlink(chunk);
                }
                st.push_back(chunk);
            } else if was_full {
                st.push_front(chunk);
            }
        }
        st.spare += 1;
        Self::trim(&mut st);
    }

    /// Frees the chunks at the back of the list while all of their nodes are free and
    /// enough spare nodes remain without them (module docs). The idle chunks are the
    /// back of the list: a chunk goes there when its last node comes back and leaves it
    /// when a node is taken from it, which happens only at the front.
    fn trim(st: &mut SlabState) {
        if cfg!(loom) {
            return;
        }
        while let Some(chunk) = st.back {
            // SAFETY: a live chunk of the list; we hold the mutex.
            let (len, free) = unsafe { ((*chunk.h()).len, (*chunk.h()).free) };
            let live = st.capacity - st.spare;
            if free != full(len) || st.spare - len < MIN_SPARE.max(live / 8) {
                return;
            }
            // SAFETY: as above.
            unsafe { st.unlink(chunk) };
            st.chunks -= 1;
            st.capacity -= len;
            st.spare -= len;
            // SAFETY: every node of the chunk is free, so nobody can reach any of them;
            // the chunk came from `alloc_zeroed` with this layout.
            unsafe { std::alloc::dealloc(chunk.0.as_ptr().cast(), Self::layout(len)) };
        }
    }

    /// Counts `n` more retirements; `true` once per [`FLUSH_EVERY`] of them, when the
    /// retiring thread should flush its epoch garbage (see [`FLUSH_EVERY`]).
    pub(crate) fn note_retired(&self, n: usize) -> bool {
        let before = self.retired.fetch_add(n, Ordering::Relaxed);
        before / FLUSH_EVERY != (before + n) / FLUSH_EVERY
    }

    /// Free nodes kept for reuse.
    pub(crate) fn spare(&self) -> usize {
        sync::lock(&self.state).spare
    }

    /// Bytes of all chunks (headers, nodes in use and spare nodes).
    pub(crate) fn reserved_bytes(&self) -> usize {
        let st = sync::lock(&self.state);
        st.chunks * HEADER + st.capacity * Self::NODE
    }
}

/// A bitmap of the first `len` bits.
fn full(len: usize) -> u64 {
    if len == 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    }
}

impl<const SLOTS: usize> Drop for NodeSlab<SLOTS> {
    fn drop(&mut self) {
        let st = sync::lock(&self.state);
        // The tree gave back every node it held and every deferred retirement has run
        // (each keeps the slab alive): every chunk is idle, so in the list. (Only a
        // panic in the middle of a structural change can lose a node that was unlinked
        // and not yet retired; its chunk, full or not, is then leaked with it, never
        // freed under a node that might be in use.)
        if cfg!(loom) {
            return;
        }
        let mut at = st.front;
        while let Some(chunk) = at {
            // SAFETY: a live chunk of the list; the slab is being dropped, so nobody
            // else touches it.
            let (len, idle) = unsafe {
                let h = chunk.h();
                at = (*h).next;
                ((*h).len, (*h).free == full((*h).len))
            };
            if !idle {
                continue;
            }
            // SAFETY: no node of the chunk is reachable (above); the chunk came from
            // `alloc_zeroed` with this layout.
            unsafe { std::alloc::dealloc(chunk.0.as_ptr().cast(), Self::layout(len)) };
        }
    }
}

impl<const SLOTS: usize> core::fmt::Debug for NodeSlab<SLOTS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NodeSlab").finish_non_exhaustive()
    }
}

/// A node from the slab that is not yet published: only its builder reaches it. It is
/// published through [`NewNode::into_raw`]; dropped, it goes back to the slab.
pub(crate) struct NewNode<'s, const SLOTS: usize> {
    node: NonNull<Node<SLOTS>>,
    slab: &'s NodeSlab<SLOTS>,
}

impl<const SLOTS: usize> NewNode<'_, SLOTS> {
    /// The node's pointer, derived from its chunk's: the one every later access goes
    /// through (the writer's, and readers' through the slot word it is published in).
    pub(crate) fn into_raw(self) -> *const Node<SLOTS> {
        let node = self.node.as_ptr();
        core::mem::forget(self);
        node
    }
}

impl<const SLOTS: usize> core::ops::Deref for NewNode<'_, SLOTS> {
    type Target = Node<SLOTS>;

    fn deref(&self) -> &Node<SLOTS> {
        // SAFETY: the node is allocated and this thread's alone until published.
        unsafe { self.node.as_ref() }
    }
}

impl<const SLOTS: usize> Drop for NewNode<'_, SLOTS> {
    fn drop(&mut self) {
        // SAFETY: never published: nobody else can reach it.
        unsafe { self.slab.give(self.node.as_ptr()) };
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

/// Gives back the subtree or item that `word` holds: its nodes to `slab`, its items'
/// references dropped. Returns whether it held a lock entry.
///
/// # Safety
/// `word` is detached and unreachable by any thread; the tree owned what it points to,
/// and its nodes came from `slab`.
pub(crate) unsafe fn free_subtree<T, const SLOTS: usize>(
    slab: &NodeSlab<SLOTS>,
    word: usize,
) -> bool {
    match entry::kind(word) {
        Kind::Node => {
            let node = entry::word_node::<Node<SLOTS>>(word);
            let mut locks = false;
            for offset in 0..SLOTS {
                // SAFETY: the caller guarantees the subtree is unreachable, so its node
                // is still allocated and nobody else reads or writes it.
                let child = unsafe { (*node).slots[offset].load(Ordering::Relaxed) };
                // SAFETY: children of an unreachable subtree are unreachable too.
                locks |= unsafe { free_subtree::<T, SLOTS>(slab, child) };
            }
            // SAFETY: as above; the node came from `slab`.
            unsafe { slab.give(node) };
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

/// Retires a whole detached subtree (nodes back to `slab`, items dropped) or an item,
/// once the epoch has passed it. `T: Send + Sync + 'static` because the deferred free
/// may drop an `Arc<T>` on another thread, at any later time.
pub(crate) fn retire_subtree<T: Send + Sync + 'static, const SLOTS: usize>(
    guard: &Guard,
    slab: &Arc<NodeSlab<SLOTS>>,
    word: usize,
) {
    if matches!(entry::kind(word), Kind::Node | Kind::Item) {
        let slab = Arc::clone(slab);
        let retired = Retired::<T> {
            word,
            _items: PhantomData,
        };
        guard.defer(move || {
            let retired = retired;
            // SAFETY: the caller unlinked `word` from the tree before retiring it, and
            // the epoch runs this only after every thread pinned at that time unpinned,
            // so nothing can still reach it.
            unsafe { free_subtree::<T, SLOTS>(&slab, retired.word) };
        });
    }
}

/// Retires one node, empty or whose children stay in the tree (the old root after a
/// shrink): it goes back to `slab` once the epoch has passed it.
pub(crate) fn retire_node<const SLOTS: usize>(
    guard: &Guard,
    slab: &Arc<NodeSlab<SLOTS>>,
    word: usize,
) {
    debug_assert!(entry::is_node(word));
    let slab = Arc::clone(slab);
    let retired = Retired::<()> {
        word,
        _items: PhantomData,
    };
    guard.defer(move || {
        let retired = retired;
        // SAFETY: as in `retire_subtree`; the node alone is retired, its children (if
        // any) are still linked elsewhere or were retired on their own.
        unsafe { slab.give(entry::word_node(retired.word)) };
    });
}

#[cfg(all(test, not(loom)))]
#[path = "node_slab_tests.rs"]
mod tests;
