//! Tree nodes: `SLOTS` slot words, three mark bitmaps, and how nodes are retired.
//!
//! # Layout
//!
//! A node is `SLOTS` atomic slot words (see [`entry`](super::entry)), one `u64` bitmap per
//! mark (bit `i` set means slot `i` or something below it carries the mark), the node's
//! `shift` (the number of index bits below it: a slot of this node covers `2^shift`
//! indices) and `count`, the number of non-empty slots. With 64 slots that is
//! 512 + 24 + 8 = 544 bytes, 8.5 bytes per slot.
//!
//! # Who writes what
//!
//! * `slots` and `marks` are written only under the tree's write lock, read by anyone
//!   (lock-free readers pinned in the tree's epoch, with `Acquire`).
//! * `count` is only ever touched under the write lock, so it lives in an `UnsafeCell`
//!   (loom checks that discipline).
//! * `shift` never changes after the node is published.
//!
//! # Retirement
//!
//! A node is unlinked from the tree (one store into its parent slot or the head) and
//! then *retired*: freed through crossbeam-epoch once every reader that might still hold
//! a pointer to it has unpinned. After unlinking, no writer touches the node again (a
//! writer only reaches nodes from the head), so a slow reader that still walks it sees
//! the state the tree had when it was unlinked: an older but consistent view.
//!
//! Under `cfg(loom)` a retired node is not deallocated but *poisoned* through a loom
//! `UnsafeCell` that every reader visit touches: if a reader could visit a node after
//! its retirement ran (an unpinned reader), loom reports the unsynchronised accesses as a
//! causality violation instead of the test reading freed memory.

use core::marker::PhantomData;

use crossbeam_epoch::Guard;

use super::entry::{self, Kind, MARK_COUNT};
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::ItemArc as Arc;
use crate::sync::UnsafeCell;

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

/// One node of the tree.
#[repr(C)]
pub(crate) struct Node<const SLOTS: usize> {
    /// Index bits below this node; a leaf has shift 0.
    pub(crate) shift: u8,
    /// Non-empty slots. Only touched under the write lock.
    count: UnsafeCell<u8>,
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
        debug_assert!(!entry::is_node(word));
        let in_range = Geometry::<SLOTS>::slots_in_range(shift);
        let bitmap = Geometry::<SLOTS>::full_bitmap(shift);
        let mut node = Self::zeroed();
        node.shift = shift as u8;
        if word != entry::EMPTY {
            node.count = UnsafeCell::new(in_range as u8);
            for slot in &mut node.slots[..in_range] {
                *slot = AtomicUsize::new(word);
            }
            for (m, bits) in node.marks.iter_mut().enumerate() {
                if mark_mask & (1 << m) != 0 {
                    *bits = AtomicU64::new(bitmap);
                }
            }
        }
        node
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
            marks: core::array::from_fn(|_| AtomicU64::new(0)),
            slots: core::array::from_fn(|_| AtomicUsize::new(entry::EMPTY)),
            liveness: UnsafeCell::new(true),
        })
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
    /// The caller holds the tree's write lock.
    #[inline(always)]
    pub(crate) unsafe fn count(&self) -> usize {
        // SAFETY: the caller holds the write lock, the only context that touches count.
        self.count.with(|c| unsafe { *c }) as usize
    }

    /// Publishes `word` in slot `offset` and returns the word it replaced, keeping
    /// `count` in step.
    ///
    /// # Safety
    /// The caller holds the tree's write lock and this node is reachable from the head
    /// (or about to be published).
    #[inline(always)]
    pub(crate) unsafe fn replace(&self, offset: usize, word: usize) -> usize {
        let old = self.slots[offset].swap(word, Ordering::AcqRel);
        let delta = (word != entry::EMPTY) as i32 - (old != entry::EMPTY) as i32;
        if delta != 0 {
            // SAFETY: the caller holds the write lock, the only context that touches count.
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
    /// Writers only (under the write lock), so a plain read-modify-write suffices.
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

/// A detached piece of tree (a subtree, a single node, or an item) waiting for the
/// epoch to pass. `Send` exactly when the items are, through `PhantomData<Arc<T>>`.
struct Retired<T, const SLOTS: usize> {
    word: usize,
    whole_subtree: bool,
    _items: PhantomData<Arc<T>>,
}

impl<T, const SLOTS: usize> Retired<T, SLOTS> {
    /// Frees the retired memory.
    ///
    /// # Safety
    /// The word is detached from every tree and no thread can reach it any more.
    unsafe fn free(self) {
        match entry::kind(self.word) {
            Kind::Node if self.whole_subtree => {
                // SAFETY: forwarded from the caller.
                unsafe { free_subtree::<T, SLOTS>(self.word) };
            }
            // SAFETY: forwarded from the caller; `whole_subtree == false` means this
            // node alone is retired (its children stay in the tree).
            Kind::Node => unsafe { free_node::<SLOTS>(entry::word_node(self.word)) },
            // SAFETY: forwarded from the caller; the tree owned one strong reference.
            Kind::Item => drop(unsafe { Arc::from_raw(entry::word_item::<T>(self.word)) }),
            Kind::Empty | Kind::Value | Kind::Lock => {}
        }
    }
}

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
        Kind::Lock => true,
        Kind::Empty | Kind::Value => false,
    }
}

/// Publishes-then-retires helpers. `T: Send + Sync + 'static` because the deferred free
/// may drop an `Arc<T>` on another thread, at any later time.
pub(crate) fn retire_subtree<T: Send + Sync + 'static, const SLOTS: usize>(
    guard: &Guard,
    word: usize,
) {
    retire::<T, SLOTS>(guard, word, true);
}

/// Retires one node whose children stay in the tree (the old root after a shrink).
pub(crate) fn retire_node<T: Send + Sync + 'static, const SLOTS: usize>(
    guard: &Guard,
    word: usize,
) {
    retire::<T, SLOTS>(guard, word, false);
}

fn retire<T: Send + Sync + 'static, const SLOTS: usize>(
    guard: &Guard,
    word: usize,
    whole_subtree: bool,
) {
    if matches!(entry::kind(word), Kind::Node | Kind::Item) {
        let retired = Retired::<T, SLOTS> {
            word,
            whole_subtree,
            _items: PhantomData,
        };
        guard.defer(move || {
            // SAFETY: the caller unlinked `word` from the tree before retiring it, and
            // the epoch runs this only after every thread pinned at that time unpinned,
            // so nothing can still reach it. (`Retired` is `Send` because
            // `Arc<T>` is, for `T: Send + Sync`.)
            unsafe { retired.free() }
        });
    }
}
