//! Tree nodes: `SLOTS` slot words, three mark bitmaps, a lock, and how nodes are retired
//! and recycled.
//!
//! # Layout
//!
//! A node is `SLOTS` atomic slot words (see [`entry`](super::entry)), one `u64` bitmap per
//! mark (bit `i` set means slot `i` or something below it carries the mark), the node's
//! `shift` (the number of index bits below it: a slot of this node covers `2^shift`
//! indices), `count`, the number of non-empty slots, `lock`, a one-byte spin lock whose bit 1
//! says the node is *obsolete* (unlinked) and bit 2 that it is *kept* for lockers
//! (`kept.rs`), and `propagating`, the count of mark
//! recomputations under way above it. With 64 slots that is 512 + 24 + 8 = 544 bytes
//! (the 8: `shift`, `count`, the node's place in its slab chunk, `lock` and
//! `propagating`), 8.5 bytes per slot, aligned to 16 (bit 3 of a slot word tells a node
//! from a lock record).
//!
//! Every write of a slot holds the node's lock, so it is a load and a store, and so is
//! letting go of the lock (only its holder writes the lock byte): no locked
//! read-modify-write instruction but the lock's own compare-exchange. `propagating` is
//! lowered without the lock, which is why it is not in the lock byte.
//!
//! # Who writes what
//!
//! * `slots`, `marks` and `count` are written only by a writer that holds the node's
//!   lock; `slots` and `marks` are read by anyone (lock-free readers pinned in the tree's
//!   epoch, with `Acquire`), `count` only under the lock (loom checks that discipline).
//! * A node is marked kept under its lock (or before it is published) and stays kept
//!   until it is unlinked.
//! * A node is marked obsolete under its lock, by the writer that unlinks it, and never
//!   changes again: a writer that walked to it without a lock finds it obsolete once it
//!   has the lock, and starts again from the head. So a writer that holds the lock of a
//!   node that is not obsolete writes into the live tree.
//! * The lock byte is written only by the lock's holder (taking the lock is a
//!   compare-exchange, which writes nothing when it fails), so the holder's load and
//!   store of it cannot lose another thread's write.
//! * `shift` never changes after the node is published.
//!
//! # Retirement and recycling
//!
//! A node is unlinked from the tree (one store into its parent slot or the head) and
//! then *retired*: once every reader that might still hold a pointer to it has unpinned
//! (crossbeam-epoch), it goes back to its tree's slab
//! ([`node_slab`](super::node_slab)), which hands it to a later structural change, so
//! that the nodes of a tree that keeps changing shape are not allocated again and again.
//! After unlinking, no writer touches the node again (it is obsolete), so a slow reader
//! that still walks it sees the state the tree had when it was unlinked: an older but
//! consistent view.
//!
//! Under `cfg(loom)` a retired node is *poisoned* through a loom `UnsafeCell` that every
//! reader visit touches, and un-poisoned when it is reused: if a reader could visit a
//! node after its retirement ran (an unpinned reader), loom reports the unsynchronised
//! accesses as a causality violation instead of the test reading freed memory.

use super::entry::{self, MARK_COUNT};
use crate::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use crate::sync::{SpinLock, UnsafeCell};

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
const OBSOLETE: u8 = 2;
/// The bit of a node's lock word that says the node counts against its tree's budget of
/// empty nodes kept linked for the next locker (see `xarray/kept.rs`): set by the
/// release that left it empty, and kept until the node is unlinked.
const KEPT: u8 = 4;

/// One node of the tree.
#[repr(C, align(16))]
pub(crate) struct Node<const SLOTS: usize> {
    /// Index bits below this node; a leaf has shift 0.
    pub(crate) shift: u8,
    /// Non-empty slots. Only touched under the node's lock.
    count: UnsafeCell<u8>,
    /// The node's place in its slab chunk (see [`node_slab`](super::node_slab)): written
    /// when the chunk is made, before any thread can reach the node, and never again.
    pub(super) chunk_index: u8,
    /// The node's spin lock (bit 0) and its obsolete flag (bit 1): a byte in what would
    /// otherwise be padding. Only the lock's holder writes it (the obsolete flag is set
    /// under the lock), so letting go of the lock is a plain store (see `sync.rs`).
    lock: AtomicU8,
    /// The number of writers that changed this node's mark summary and have not yet
    /// finished recomputing its ancestors' bits (see [`Node::begin_propagation`]). Kept
    /// out of the lock word because it is lowered without the lock.
    propagating: AtomicU32,
    /// Per mark, one bit per slot.
    pub(crate) marks: [AtomicU64; MARK_COUNT],
    pub(crate) slots: [AtomicUsize; SLOTS],
    /// Loom's use-after-retire detector (see the module docs).
    #[cfg(loom)]
    liveness: UnsafeCell<bool>,
}

// The header (shift, count, chunk index, lock byte, propagation count) fills the 8
// bytes before the marks, with no padding to spare: a 64-slot node is 544 bytes, 8.5
// per slot. A field added there costs 16 bytes a node (the alignment).
#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::offset_of!(Node<64>, marks) == 8);
    assert!(core::mem::size_of::<Node<64>>() == 8 + 8 * MARK_COUNT + 8 * 64);
};

impl<const SLOTS: usize> Node<SLOTS> {
    /// Makes the memory at `node`, zeroed, an empty node (shift 0, no slots used) with
    /// place `chunk_index` in its chunk.
    ///
    /// # Safety
    /// `node` is zeroed memory of a node's layout, inside a chunk being made: only this
    /// thread can reach it.
    #[cfg(not(loom))]
    pub(super) unsafe fn init_in_chunk(node: *mut Self, chunk_index: u8) {
        // SAFETY: all-zero bytes are a valid empty node outside loom (every other field
        // is an integer, an atomic integer or an `UnsafeCell` of one); the caller owns it.
        unsafe { core::ptr::addr_of_mut!((*node).chunk_index).write(chunk_index) };
    }

    /// Under loom the atomics and cells are loom's, which are not plain integers: the
    /// node is written whole.
    ///
    /// # Safety
    /// As above.
    #[cfg(loom)]
    pub(super) unsafe fn init_in_chunk(node: *mut Self, chunk_index: u8) {
        let fresh = Node {
            shift: 0,
            count: UnsafeCell::new(0),
            chunk_index,
            lock: AtomicU8::new(0),
            propagating: AtomicU32::new(0),
            marks: core::array::from_fn(|_| AtomicU64::new(0)),
            slots: core::array::from_fn(|_| AtomicUsize::new(entry::EMPTY)),
            liveness: UnsafeCell::new(true),
        };
        // SAFETY: the caller owns the memory, which holds no node yet.
        unsafe { node.write(fresh) };
    }

    /// Marks a node that goes back to its slab as unreachable: under loom, the write that
    /// every later reader visit is checked against (module docs); nothing otherwise.
    ///
    /// # Safety
    /// Nobody can reach the node any more (the caller is giving it back).
    #[inline(always)]
    pub(super) unsafe fn poison(&self) {
        #[cfg(loom)]
        self.liveness.with_mut(|alive| {
            // SAFETY: forwarded from the caller.
            unsafe { *alive = false }
        });
    }

    /// Makes an empty node (shift 0, no slots used) one of `shift` whose in-range slots
    /// all hold `word` with the marks in `mark_mask`.
    pub(super) fn fill(&mut self, shift: u32, word: usize, mark_mask: u8) {
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

    /// Makes a recycled node a fresh empty one (shift 0, unlocked, not obsolete).
    pub(super) fn reset(&mut self) {
        self.shift = 0;
        self.count = UnsafeCell::new(0);
        self.lock = AtomicU8::new(0);
        self.propagating = AtomicU32::new(0);
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

    /// Whether the node was unlinked, for a reader that holds no lock: a `false` may be
    /// out of date at once (the node is then one a walk started a moment ago could have
    /// reached); a `true` is final.
    #[inline]
    pub(crate) fn is_obsolete(&self) -> bool {
        self.lock.load(Ordering::Acquire) & OBSOLETE != 0
    }

    /// Marks the node obsolete (the caller holds its lock and is unlinking it). Returns
    /// whether the node was counted against the tree's budget of kept empty nodes
    /// ([`Node::mark_kept`]): the caller gives its place back.
    #[must_use = "a kept node's place in the budget must be given back"]
    pub(crate) fn make_obsolete(&self) -> bool {
        let bits = self.lock.load(Ordering::Relaxed);
        debug_assert!(bits & crate::sync::SPIN_LOCKED != 0);
        // Only the lock's holder writes the byte: a load and a store lose nothing.
        self.lock.store(bits | OBSOLETE, Ordering::Relaxed);
        bits & KEPT != 0
    }

    /// Whether the node counts against the tree's budget of kept empty nodes (the
    /// caller holds its lock).
    #[inline]
    pub(crate) fn is_kept(&self) -> bool {
        let bits = self.lock.load(Ordering::Relaxed);
        debug_assert!(bits & crate::sync::SPIN_LOCKED != 0);
        bits & KEPT != 0
    }

    /// Counts the node against the tree's budget of kept empty nodes, for as long as it
    /// stays linked (the caller holds its lock and has taken a place in the budget).
    #[inline]
    pub(crate) fn mark_kept(&self) {
        let bits = self.lock.load(Ordering::Relaxed);
        debug_assert!(bits & crate::sync::SPIN_LOCKED != 0 && bits & KEPT == 0);
        self.lock.store(bits | KEPT, Ordering::Relaxed);
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
        self.propagating.fetch_add(1, Ordering::Relaxed);
    }

    /// Ends what [`Node::begin_propagation`] began: the ancestors' bits have been
    /// recomputed (`Release`: a writer that reads the count as zero under the lock sees
    /// those bits).
    #[inline]
    pub(crate) fn end_propagation(&self) {
        self.propagating.fetch_sub(1, Ordering::Release);
    }

    /// Whether some writer's recomputation of this node's ancestors is still under way.
    #[inline]
    pub(crate) fn propagating(&self) -> bool {
        self.propagating.load(Ordering::Acquire) != 0
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
        // A load and a store, not a swap (an atomic read-modify-write, a locked
        // instruction on x86 that costs as much as the lock itself): every write of a
        // node's slot holds the node's lock, so no other writer can come between the
        // two, and the lock's Acquire already ordered this load after the previous
        // writer's stores (Relaxed is enough). Readers only load; the Release store
        // publishes what `word` points to, as the swap did.
        let slot = &self.slots[offset];
        let old = slot.load(Ordering::Relaxed);
        slot.store(word, Ordering::Release);
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
