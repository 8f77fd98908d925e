//! The hashed wait table: where threads sleep until a lock entry changes.
//!
//! A fixed array of cache-padded buckets, each a mutex-protected list of *records* and a
//! condition variable. A record says: thread `seq` waits, in the tree whose id is `tree`,
//! on the lock entry whose first index is `base`, wanting to acquire in some mode (or
//! just to see the entry go away). The bucket is chosen by hashing `(tree, base)`, so one
//! table serves every tree of a process (a page cache has one tree per file and cannot
//! afford a table each); trees may also own one (tests, loom).
//!
//! # No lost wake-ups
//!
//! There is no tree-wide lock: the lock that orders a waiter with the entry it waits on
//! is that entry's *owner lock*, the spin lock of the node whose slot holds the entry
//! (or the tree's head lock, for an entry in the head); a bucket mutex may be taken
//! under it, never the other way round. A waiter sets the entry's `waiters` flag and
//! registers its record under the owner's lock, lets go of it, then sleeps on the bucket
//! until its record is marked woken. Whoever changes the entry holds the owner's lock, so
//! it sees the flag and, behind it, the record, and marks the record woken under the
//! bucket mutex; the waiter checks the mark under that same mutex before every sleep.
//! The lock-free fast paths of the head only ever change an entry without the flag. The
//! flag is why an uncontended release never visits the table.
//!
//! A record is keyed by the base of the entry it waits on. When that entry is split or
//! pushed down into a child node, its waiters are woken with [`Wake::Moved`] and queue
//! again under the new pieces' bases.
//!
//! # Fairness data
//!
//! Every acquiring record carries `seq`, its place in a global queue order, taken when the
//! acquisition first had to wait and kept across its re-waits. The lock layer grants a
//! contended entry only to acquirers that no older conflicting record precedes (see
//! `claim.rs`), and wakes only the records that can now run.

use core::fmt;
use core::task::Waker;
use std::time::Instant;

use crate::lock_mode::LockMode;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{self, CachePadded, Condvar, Mutex};

/// What a waiter wants from the entry it waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wants {
    /// To acquire it in this mode: takes part in the queue order.
    Acquire(LockMode),
    /// To see it go away (a lookup): never blocks anybody.
    Watch,
}

/// One waiting thread or task.
#[derive(Clone, Debug)]
struct Record {
    tree: u64,
    base: u64,
    wants: Wants,
    seq: u64,
    woken: bool,
    /// Woken by [`Wake::Moved`]: the entry was split or pushed down, not changed.
    moved: bool,
    /// The task to wake, for a record of an asynchronous acquisition (`None`: a thread
    /// sleeping on the bucket's condition variable). Taken by the wake that marks the
    /// record woken, and woken by the caller once it holds no internal lock.
    waker: Option<Waker>,
}

/// Wakers taken from woken records, to be woken once the taker holds no internal lock
/// (a waker may run arbitrary executor code: it must never run under a bucket mutex, a
/// node's spin lock or the head lock).
pub(crate) type Wakers = Vec<Waker>;

/// Which waiters of an entry to wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Everyone (the entry was removed, published, or put back).
    All,
    /// Everyone, and each record learns that the entry only moved (it was split or
    /// pushed down, so the key it queued under may no longer name it): its state did not
    /// change, and a watcher that waits for it to end looks at it again.
    Moved,
    /// The acquirers, by the rule of `All` (a queued acquirer left: those that deferred
    /// to it look again); not the watchers, whose entry did not change.
    Queue,
    /// The entry drained and is now reserved: the front of its queue (the oldest
    /// acquirer, with every Shared acquirer ahead of the oldest Exclusive one if the
    /// oldest is Shared), plus every watcher.
    Front,
    /// The entry became Shared: the Shared acquirers ahead of the oldest Exclusive one.
    SharedFront,
    /// The entry's `pending` flag was cleared (a claim completed, or a sealed guard
    /// opened): the Shared front, as for `SharedFront`, plus every watcher (a
    /// write-back waits for sealed entries to open).
    Unsealed,
}

struct Bucket {
    records: Mutex<Vec<Record>>,
    wake: Condvar,
}

/// A hashed table of wait queues, keyed by (tree, entry base index).
///
/// Trees use one global table by default; [`XArray::with_wait_table`] gives a tree its
/// own, which tests use to count visits ([`WaitTable::visits`]).
///
/// [`XArray::with_wait_table`]: crate::XArray::with_wait_table
pub struct WaitTable {
    buckets: Box<[CachePadded<Bucket>]>,
    next_seq: AtomicU64,
    visits: AtomicUsize,
}

impl WaitTable {
    /// A table with `buckets` buckets (rounded up to a power of two, at least 1).
    pub fn new(buckets: usize) -> Self {
        let n = buckets.max(1).next_power_of_two();
        WaitTable {
            buckets: (0..n)
                .map(|_| {
                    CachePadded::new(Bucket {
                        records: Mutex::new(Vec::new()),
                        wake: Condvar::new(),
                    })
                })
                .collect(),
            next_seq: AtomicU64::new(1),
            visits: AtomicUsize::new(0),
        }
    }

    /// How many times a lock operation has locked one of this table's buckets. An
    /// uncontended lock and unlock never does.
    pub fn visits(&self) -> usize {
        self.visits.load(Ordering::Relaxed)
    }

    /// Every record, for debugging a hang: (tree, base, wants, seq, woken).
    #[doc(hidden)]
    pub fn dump(&self) -> Vec<String> {
        let mut out = Vec::new();
        for bucket in self.buckets.iter() {
            for r in sync::lock(&bucket.records).iter() {
                out.push(format!("{r:?}"));
            }
        }
        out
    }

    /// A fresh queue position (later than every one handed out before).
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn bucket(&self, tree: u64, base: u64) -> &Bucket {
        let hash = (tree ^ base.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let index = (hash >> 32) as usize & (self.buckets.len() - 1);
        self.visits.fetch_add(1, Ordering::Relaxed);
        &self.buckets[index]
    }

    /// Adds a record for `seq` (call with the lock of the entry's owner held: its node's
    /// lock, or the head lock): a thread's, which sleeps in [`wait`](Self::wait), or with
    /// `waker`, a task's, which polls with [`poll_woken`](Self::poll_woken). Both take
    /// part in one queue order.
    pub(crate) fn register(
        &self,
        tree: u64,
        base: u64,
        wants: Wants,
        seq: u64,
        waker: Option<&Waker>,
    ) {
        let bucket = self.bucket(tree, base);
        sync::lock(&bucket.records).push(Record {
            tree,
            base,
            wants,
            seq,
            woken: false,
            moved: false,
            waker: waker.cloned(),
        });
    }

    /// Whether the record of `seq` has been woken (or is gone); if not, `waker` is the
    /// one its wake will take. Checked and stored under the bucket mutex that the wake
    /// takes too, so a wake is never lost between the check and the task's sleep.
    pub(crate) fn poll_woken(&self, tree: u64, base: u64, seq: u64, waker: &Waker) -> bool {
        let bucket = self.bucket(tree, base);
        let mut records = sync::lock(&bucket.records);
        let Some(r) = records
            .iter_mut()
            .find(|r| r.tree == tree && r.base == base && r.seq == seq)
        else {
            return true;
        };
        if r.woken {
            return true;
        }
        match &mut r.waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        false
    }

    /// Removes the record of `seq`; `true` if it was woken only because its entry moved
    /// ([`Wake::Moved`]).
    pub(crate) fn remove(&self, tree: u64, base: u64, seq: u64) -> bool {
        let bucket = self.bucket(tree, base);
        let mut records = sync::lock(&bucket.records);
        if let Some(at) = records
            .iter()
            .position(|r| r.tree == tree && r.base == base && r.seq == seq)
        {
            return records.swap_remove(at).moved;
        }
        false
    }

    /// What is queued on the entry: (any acquirer, any record at all).
    pub(crate) fn queued(&self, tree: u64, base: u64) -> (bool, bool) {
        let bucket = self.bucket(tree, base);
        let records = sync::lock(&bucket.records);
        let mut any = false;
        for r in records.iter().filter(|r| r.tree == tree && r.base == base) {
            if matches!(r.wants, Wants::Acquire(_)) {
                return (true, true); // the answer is known: stop scanning a long queue
            }
            any = true;
        }
        (false, any)
    }

    /// Whether an acquirer queued on the entry before `seq` conflicts with `mode`.
    pub(crate) fn older_conflicting(&self, tree: u64, base: u64, mode: LockMode, seq: u64) -> bool {
        let bucket = self.bucket(tree, base);
        let records = sync::lock(&bucket.records);
        records.iter().any(|r| {
            r.tree == tree
                && r.base == base
                && r.seq < seq
                && matches!(r.wants, Wants::Acquire(m) if !m.is_compatible(mode))
        })
    }

    /// Marks the chosen records of the entry woken and wakes their bucket's sleeping
    /// threads; the wakers of chosen task records are moved to `wakers`, for the caller
    /// to wake when it holds no internal lock.
    pub(crate) fn wake(&self, tree: u64, base: u64, which: Wake, wakers: &mut Wakers) {
        let bucket = self.bucket(tree, base);
        let mut records = sync::lock(&bucket.records);
        let mine = |r: &Record| r.tree == tree && r.base == base;
        // The oldest acquirer, and the oldest Exclusive one, in one pass.
        let mut oldest_any: Option<u64> = None;
        let mut oldest_exclusive = u64::MAX;
        for r in records.iter().filter(|r| mine(r)) {
            if let Wants::Acquire(m) = r.wants {
                oldest_any = Some(oldest_any.map_or(r.seq, |o| o.min(r.seq)));
                if m == LockMode::Exclusive {
                    oldest_exclusive = oldest_exclusive.min(r.seq);
                }
            }
        }
        let mut woke = false;
        for r in records
            .iter_mut()
            .filter(|r| r.tree == tree && r.base == base)
        {
            let chosen = match (which, r.wants) {
                (Wake::All | Wake::Moved, _) => true,
                (Wake::Queue, Wants::Watch) => false,
                (Wake::Queue, Wants::Acquire(_)) => true,
                (Wake::Front, Wants::Watch) => true,
                (Wake::SharedFront, Wants::Watch) => false,
                (Wake::Unsealed, Wants::Watch) => true,
                (Wake::Front, Wants::Acquire(LockMode::Exclusive)) => Some(r.seq) == oldest_any,
                (_, Wants::Acquire(LockMode::Shared)) => r.seq < oldest_exclusive,
                (Wake::SharedFront | Wake::Unsealed, Wants::Acquire(LockMode::Exclusive)) => false,
            };
            if chosen && !r.woken {
                r.woken = true;
                r.moved = which == Wake::Moved;
                match r.waker.take() {
                    Some(waker) => wakers.push(waker),
                    None => woke = true,
                }
            }
        }
        if woke {
            bucket.wake.notify_all();
        }
    }

    /// Sleeps until the record of `seq` is woken (or gone), or until `deadline`.
    /// Returns `false` on timeout. Call with no lock of the tree held.
    pub(crate) fn wait(&self, tree: u64, base: u64, seq: u64, deadline: Option<Instant>) -> bool {
        let bucket = self.bucket(tree, base);
        let mut records = sync::lock(&bucket.records);
        loop {
            let woken = records
                .iter()
                .find(|r| r.tree == tree && r.base == base && r.seq == seq)
                .is_none_or(|r| r.woken);
            if woken {
                return true;
            }
            let (guard, timed_out) = sync::wait_until(&bucket.wake, records, deadline);
            records = guard;
            if timed_out {
                return false;
            }
        }
    }
}

impl fmt::Debug for WaitTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitTable")
            .field("buckets", &self.buckets.len())
            .field("visits", &self.visits())
            .finish_non_exhaustive()
    }
}

/// The process-wide table trees use unless they were given one.
#[cfg(not(loom))]
pub(crate) fn global() -> &'static WaitTable {
    static GLOBAL: std::sync::OnceLock<WaitTable> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(|| WaitTable::new(256))
}
