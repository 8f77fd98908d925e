//! Lock records: lock entries whose exact bounds are a proper part of one slot's span.
//!
//! A lock entry inline in a slot covers that slot's whole span, an aligned block. A
//! range lock over an unaligned range of an empty region would need one inline entry per
//! block of the range's decomposition (up to 63 per level, with nodes to hold them). A
//! *lock record* covers any `first..=last` inside one slot with one slot word: the word
//! points to the record, which holds the bounds and the entry's state; the indices of
//! the slot's span outside the bounds are empty. A lock of `1000..=1255` on an empty tree
//! is one record in the head.
//!
//! # Who may change a record
//!
//! A record is referenced by exactly one slot. Its bounds never change while a slot
//! references it. Its state (the word an inline lock entry with the same mode, flags and
//! holders would hold, see [`LockState::word`](super::lock_word::LockState::word))
//! changes only under the lock of the node whose slot references it. A record in the
//! *head* never changes at all: it has one holder and no flags, the lock layer's fast
//! path installs it and its fast release takes it out, each with one compare-exchange of
//! the head, and anything else that needs it (a joiner, a waiter, a second lock) first
//! moves it into a root node (under the head lock, by compare-exchange of the head, which
//! fails if the fast release came first). So a compare-exchange of the head that takes a
//! record out proves, at that instant, that the record was the tree's only entry.

//! # Readers, and type-stable memory
//!
//! Records are never freed while their pool lives (the process-wide pool never): a freed
//! record goes back to the pool and may be reused at once, by any tree. A lock-free
//! reader that loaded a record word therefore always reads valid memory, and validates
//! what it read instead of pinning anything ([`read`]): it reads the record's `seq` (even
//! while published, bumped by every publication and every free), the fields, the slot
//! again and `seq` again. If the slot still holds the word and `seq` did not move, the
//! fields are those of the record the slot held all along. No epoch is involved, so a
//! lock and an unlock over an empty region allocate nothing and defer nothing.
//!
//! Records come from a pool: the process-wide one, with a small cache per thread (no
//! atomic read-modify-write on the fast path), or one a tree owns (under loom, where
//! statics of loom's types cannot exist). The pool's memory is the peak number of
//! records in use at once, plus the per-thread caches.

use core::ptr::NonNull;

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{self, Mutex};

/// One record (see the module docs).
#[repr(C, align(64))]
pub(crate) struct LockRecord {
    /// Even while published, odd while free.
    seq: AtomicU64,
    first: AtomicU64,
    last: AtomicU64,
    state: AtomicUsize,
}

impl LockRecord {
    fn new() -> Self {
        LockRecord {
            seq: AtomicU64::new(1),
            first: AtomicU64::new(0),
            last: AtomicU64::new(0),
            state: AtomicUsize::new(0),
        }
    }

    /// The bounds, for a writer that holds the lock of the slot that references it (or
    /// one of its holders: bounds do not change while it is published).
    #[inline]
    pub(crate) fn bounds(&self) -> (u64, u64) {
        (
            self.first.load(Ordering::Acquire),
            self.last.load(Ordering::Acquire),
        )
    }

    /// The state word.
    #[inline]
    pub(crate) fn state(&self) -> usize {
        self.state.load(Ordering::Acquire)
    }

    /// Stores a new state (a record in a node, under the node's lock).
    #[inline]
    pub(crate) fn set_state(&self, state: usize) {
        self.state.store(state, Ordering::Release);
    }
}

/// What a reader found in a record: its bounds and its state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) state: usize,
}

/// Reads the record that `word` (a record word just loaded from `slot`) points to, as
/// one consistent snapshot taken while `slot` held it; `None` if the slot or the record
/// changed meanwhile (the caller loads the slot again).
#[inline]
pub(crate) fn read(slot: &AtomicUsize, word: usize) -> Option<Seen> {
    // SAFETY: record words point into a record pool, whose memory is type-stable: a
    // record is never deallocated while the pool lives, and the pool outlives every tree
    // that uses it (the process-wide one is never dropped; a tree's own one is dropped
    // with the tree, after every reader's borrow of it). So the pointer is valid even if
    // the record was freed and reused since the word was loaded; the checks below tell.
    let record = unsafe { &*super::entry::word_record::<LockRecord>(word) };
    let seq = record.seq.load(Ordering::Acquire);
    if seq & 1 != 0 {
        return None;
    }
    let seen = Seen {
        first: record.first.load(Ordering::Acquire),
        last: record.last.load(Ordering::Acquire),
        state: record.state.load(Ordering::Acquire),
    };
    // Acquire loads above: the loads below are not reordered before them.
    #[cfg(loom)]
    if crate::mutation::active(crate::mutation::Mutation::RecordSeqUnchecked) {
        return (slot.load(Ordering::Acquire) == word).then_some(seen);
    }
    if slot.load(Ordering::Acquire) != word || record.seq.load(Ordering::Acquire) != seq {
        return None;
    }
    Some(seen)
}

/// A pointer to a record in a pool (sendable between threads through the pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecordPtr(NonNull<LockRecord>);

// SAFETY: records are made of atomics and owned by their pool; the pointer is only a
// name for one of them, handed from one thread to another through the pool's mutex.
unsafe impl Send for RecordPtr {}

/// A chunk of records, from `Box::into_raw`: every record pointer the pool hands out is
/// derived from this one pointer, and the chunk is boxed again only to be freed, when
/// the pool is dropped (so no access through a record pointer ever conflicts with a
/// later use of the box, as Miri's tree borrows requires).
struct ChunkPtr(NonNull<[LockRecord]>);

// SAFETY: as for `RecordPtr`: the chunk is owned by its pool and only named here.
unsafe impl Send for ChunkPtr {}

/// How many records a pool allocates at once.
const CHUNK: usize = 32;

/// A pool of type-stable records (see the module docs).
pub(crate) struct RecordPool {
    free: Mutex<Vec<RecordPtr>>,
    /// Every chunk ever allocated, freed when the pool is dropped.
    chunks: Mutex<Vec<ChunkPtr>>,
}

impl RecordPool {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        RecordPool {
            free: Mutex::new(Vec::new()),
            chunks: Mutex::new(Vec::new()),
        }
    }

    // loom's mutexes are not made in const context.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        RecordPool {
            free: Mutex::new(Vec::new()),
            chunks: Mutex::new(Vec::new()),
        }
    }

    /// A free record (odd `seq`), from the free list or a new chunk.
    fn take(&self) -> RecordPtr {
        if let Some(record) = sync::lock(&self.free).pop() {
            return record;
        }
        let chunk: Box<[LockRecord]> = (0..CHUNK).map(|_| LockRecord::new()).collect();
        let chunk = NonNull::from(Box::leak(chunk));
        let base = chunk.cast::<LockRecord>();
        // SAFETY: `i < CHUNK`, the chunk's length: each pointer is inside the chunk.
        let record = |i: usize| RecordPtr(unsafe { base.add(i) });
        let mut free = sync::lock(&self.free);
        free.extend((1..CHUNK).map(record));
        drop(free);
        sync::lock(&self.chunks).push(ChunkPtr(chunk));
        record(0)
    }

    fn give(&self, records: impl IntoIterator<Item = RecordPtr>) {
        sync::lock(&self.free).extend(records);
    }

    /// Publishes a record with these bounds and state: call it before the slot store that
    /// makes it visible.
    #[inline]
    pub(crate) fn alloc(&self, first: u64, last: u64, state: usize) -> *const LockRecord {
        let record = self.take_cached();
        // SAFETY: the pointer came from this pool, whose records are never deallocated
        // while it lives; a free record is referenced by no slot, so only this thread
        // writes it now (readers that still hold an old word of it only read).
        let r = unsafe { record.0.as_ref() };
        let seq = r.seq.load(Ordering::Relaxed);
        debug_assert!(seq & 1 == 1, "allocating a published record");
        r.first.store(first, Ordering::Release);
        r.last.store(last, Ordering::Release);
        r.state.store(state, Ordering::Release);
        r.seq.store(seq.wrapping_add(1), Ordering::Release);
        record.0.as_ptr()
    }

    /// Gives a record back: call it after the last slot store that referenced it.
    #[inline]
    pub(crate) fn free(&self, record: *const LockRecord) {
        // SAFETY: as in `alloc`; the caller has unlinked the record from its slot.
        let r = unsafe { &*record };
        // Only the thread that unlinked the record writes it now (readers only load), so
        // a plain store makes `seq` odd: no read-modify-write needed. Release: a reader
        // that sees the odd `seq` sees it after the slot change that unlinked the record.
        let seq = r.seq.load(Ordering::Relaxed);
        debug_assert!(seq & 1 == 0, "freeing a free record");
        r.seq.store(seq.wrapping_add(1), Ordering::Release);
        let record = RecordPtr(NonNull::from(r));
        self.give_cached(record);
    }

    #[cfg(not(loom))]
    #[inline]
    fn take_cached(&self) -> RecordPtr {
        if self.is_global() {
            if let Some(record) = cache::pop() {
                return record;
            }
        }
        self.take()
    }

    #[cfg(loom)]
    fn take_cached(&self) -> RecordPtr {
        self.take()
    }

    #[cfg(not(loom))]
    #[inline]
    fn give_cached(&self, record: RecordPtr) {
        if !self.is_global() || !cache::push(record) {
            self.give([record]);
        }
    }

    #[cfg(loom)]
    fn give_cached(&self, record: RecordPtr) {
        self.give([record]);
    }

    #[cfg(not(loom))]
    #[inline]
    fn is_global(&self) -> bool {
        core::ptr::eq(self, global())
    }

    /// Records in use (allocated and not free), for tests and `memory_usage`.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        let total = sync::lock(&self.chunks).len() * CHUNK;
        total - sync::lock(&self.free).len()
    }
}

impl Drop for RecordPool {
    fn drop(&mut self) {
        for chunk in sync::lock(&self.chunks).drain(..) {
            // SAFETY: the chunk came from `Box::leak` in `take` and is freed only here; the
            // pool is being dropped, so no record of it is referenced any more (a tree
            // that owns a pool drops it after its slots; the global pool never drops).
            drop(unsafe { Box::from_raw(chunk.0.as_ptr()) });
        }
    }
}

impl core::fmt::Debug for RecordPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecordPool").finish_non_exhaustive()
    }
}

/// The process-wide pool.
#[cfg(not(loom))]
#[inline]
pub(crate) fn global() -> &'static RecordPool {
    static GLOBAL: RecordPool = RecordPool::new();
    &GLOBAL
}

/// The per-thread cache of the process-wide pool: a short stack of free records, so
/// that a lock and an unlock that need a record touch no shared cache line for it.
///
/// The stack lives in a thread-local that needs no destructor (an array of cells and a
/// length), so taking or giving a record costs no lazy-initialisation check. What the
/// thread still caches when it exits goes back to the pool through a second
/// thread-local, `EXIT`, whose destructor is registered the first time the thread
/// caches a record.
#[cfg(not(loom))]
mod cache {
    use super::{global, LockRecord, RecordPtr};
    use core::cell::Cell;
    use core::ptr::NonNull;

    /// Records a thread keeps before it gives some back.
    const KEEP: usize = 32;

    struct Cache {
        len: Cell<usize>,
        records: [Cell<*const LockRecord>; KEEP],
        /// [`EXIT`] has been touched: its destructor will empty this stack.
        registered: Cell<bool>,
    }

    /// Touched once per thread; dropping it at thread exit gives the stack back.
    struct GiveBackOnExit;

    impl Drop for GiveBackOnExit {
        fn drop(&mut self) {
            // `CACHE` has no destructor, so it is still there while this one runs.
            let _ = CACHE.try_with(|cache| {
                let n = cache.len.replace(0);
                global().give(cache.records[..n].iter().map(|r| {
                    RecordPtr(NonNull::new(r.get().cast_mut()).expect("a cached record"))
                }));
                // A lock taken by a later thread-local destructor gives its record to
                // the pool directly.
                cache.registered.set(false);
            });
        }
    }

    crate::sync::thread_local! {
        static CACHE: Cache = const {
            Cache {
                len: Cell::new(0),
                records: [const { Cell::new(core::ptr::null()) }; KEEP],
                registered: Cell::new(false),
            }
        };
        static EXIT: GiveBackOnExit = const { GiveBackOnExit };
    }

    #[inline]
    pub(super) fn pop() -> Option<RecordPtr> {
        CACHE.with(|cache| {
            let len = cache.len.get();
            if len == 0 {
                return None;
            }
            cache.len.set(len - 1);
            NonNull::new(cache.records[len - 1].get().cast_mut()).map(RecordPtr)
        })
    }

    /// `false` if the cache is full or the thread is exiting: the caller gives it back.
    #[inline]
    pub(super) fn push(record: RecordPtr) -> bool {
        CACHE.with(|cache| {
            let len = cache.len.get();
            if len >= KEEP || (!cache.registered.get() && !register(cache)) {
                return false;
            }
            cache.records[len].set(record.0.as_ptr());
            cache.len.set(len + 1);
            true
        })
    }

    /// Registers [`EXIT`]'s destructor. `false` once the thread is exiting.
    #[cold]
    fn register(cache: &Cache) -> bool {
        let registered = EXIT.try_with(|_| ()).is_ok();
        cache.registered.set(registered);
        registered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_a_published_record_and_not_a_freed_one() {
        let pool = RecordPool::new();
        let record = pool.alloc(5, 9, 0b110);
        let word = super::super::entry::record_word(record);
        let slot = AtomicUsize::new(word);
        assert_eq!(
            read(&slot, word),
            Some(Seen {
                first: 5,
                last: 9,
                state: 0b110
            })
        );
        slot.store(0, Ordering::Release);
        assert_eq!(read(&slot, word), None, "the slot moved on");
        slot.store(word, Ordering::Release);
        pool.free(record);
        assert_eq!(read(&slot, word), None, "freed: odd seq");
        // Reused: a stale word that names it again reads the new publication.
        let again = pool.alloc(1, 2, 0b110);
        assert_eq!(again, record, "the free record is reused first");
        assert_eq!(read(&slot, word).map(|s| (s.first, s.last)), Some((1, 2)));
        pool.free(again);
        assert_eq!(pool.in_use(), 0);
    }

    /// A thread's cached records go back to the process-wide pool when it exits: threads
    /// that each fill their cache and exit, one after another, reuse the same records
    /// instead of making the pool grow by a cache's worth per thread.
    #[test]
    #[cfg(not(loom))]
    fn exiting_threads_give_their_cached_records_back() {
        let chunks = || sync::lock(&global().chunks).len();
        let before = chunks();
        let threads = if cfg!(miri) { 4 } else { 40 };
        for _ in 0..threads {
            crate::sync::os_thread::spawn(|| {
                let pool = global();
                let taken: Vec<_> = (0..CHUNK)
                    .map(|i| pool.alloc(i as u64, i as u64, 0))
                    .collect();
                for record in taken {
                    pool.free(record);
                }
            })
            .join()
            .unwrap();
        }
        // Lost caches would add a chunk per thread; other tests running beside this one
        // take a few records of their own.
        let grown = chunks() - before;
        assert!(
            grown <= 4,
            "the pool grew by {grown} chunks over {threads} threads"
        );
    }
}
