//! The walks that change lock entries. Every function here runs under the tree's write
//! lock (it takes a [`WriteCursor`]), never sleeps and never runs user code.
//!
//! # Claiming
//!
//! [`claim`] walks the range in ascending index order, one *region* at a time: the part
//! of the range covered by one slot word (the slot found by a lookup of the first
//! unclaimed index). An empty region gets a fresh lock entry per aligned block, so a
//! range with nothing in it costs O(levels x SLOTS) slot writes whatever its length; an
//! item or value is evicted into the claim; a compatible lock entry is split down to the
//! range's blocks and its holder count raised. The first region it may not take stops
//! the walk ([`Step::Blocked`]); what was claimed before it stays claimed while the caller
//! waits (ascending order rules out deadlock between range lockers).
//!
//! # Who may take a lock entry
//!
//! A lock entry may be taken in mode `m` when its holders are compatible with `m` (or it
//! is reserved: no holders), it is not `pending`, and, if its `waiters` flag is set, no
//! acquirer queued on it earlier (smaller `seq`) conflicts with `m`. Newcomers have no
//! `seq` and so queue behind every conflicting waiter: a stream of Shared acquirers cannot
//! starve a queued Exclusive one, nor a stream of direct IO a fault. One exception: a
//! thread that already holds the index Shared may join its Shared holders even so (a
//! recursive Shared acquisition would otherwise wait for itself behind the queued
//! Exclusive waiter).
//!
//! A reserved entry is taken whole or not at all: an acquisition that wants only part of
//! it dissolves it (everyone queued there walks again) rather than leave reserved pieces
//! behind that no waiter would ever come back for.
//!
//! # Nothing lost on failure
//!
//! Before an acquisition sleeps, it marks the entries it made by evicting as `pending`,
//! which nobody may join. So if it fails later (a timeout; a blocking acquisition
//! cannot fail once it has claimed anything, since self-deadlock is refused before it
//! starts), it is their only holder and can put the evicted entries back, with the
//! marks they had when evicted ([`rollback`]). (A mark change attempted on such an index
//! in between was refused: a caller whose marks mirror other state must not use
//! timeouts over ranges whose marks matter, and the page cache does not.)

use smallvec::SmallVec;

use super::evicted::Evicted;
use super::wait_table::{WaitTable, Wake};
use super::{held, LockMode};
use crate::sync::atomic::Ordering;
use crate::sync::ItemArc as Arc;
use crate::xarray::cursor::{Located, Slot, WriteCursor};
use crate::xarray::entry::{self, Kind, EMPTY, MARK_COUNT};
use crate::xarray::lock_word::{LockState, MAX_HOLDERS};
use crate::xarray::node::Geometry;
use crate::xarray::span::{self, Block, Inclusive};
use crate::xarray::tree::{clone_item, decode_owned};

/// An acquisition in progress.
pub(crate) struct Claim<T> {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) mode: LockMode,
    /// The first index not claimed yet (meaningless once `done`).
    pub(crate) next: u64,
    pub(crate) done: bool,
    /// The queue position, from the first time the acquisition had to wait.
    pub(crate) seq: Option<u64>,
    /// Stop at an item instead of evicting it (the fill protocol of a fault).
    pub(crate) keep_items: bool,
    /// Leave the entries made by evicting `pending` when the claim completes (a sealed
    /// acquisition: nobody joins them until the guard unseals).
    pub(crate) seal: bool,
    pub(crate) evicted: Vec<Evicted<T>>,
    /// `evicted[..pending]` are marked pending in the tree.
    pub(crate) pending: usize,
}

impl<T> Claim<T> {
    pub(crate) fn new(range: Inclusive, mode: LockMode, keep_items: bool) -> Self {
        Claim {
            first: range.first,
            last: range.last,
            mode,
            next: range.first,
            done: false,
            seq: None,
            keep_items,
            seal: false,
            evicted: Vec::new(),
            pending: 0,
        }
    }

    /// Whether any index has been claimed.
    fn claimed_any(&self) -> bool {
        self.done || self.next > self.first
    }

    /// The last claimed index (when `claimed_any`).
    fn claimed_last(&self) -> u64 {
        if self.done {
            self.last
        } else {
            self.next - 1
        }
    }
}

/// How far [`claim`] got.
pub(crate) enum Step<T, const SLOTS: usize> {
    /// The whole range is claimed.
    Done,
    /// `index` (the first unclaimed one) is covered by the lock entry `word` in `slot`,
    /// whose first index is `base`, and the claim may not take it now.
    Blocked {
        index: u64,
        base: u64,
        slot: Slot<SLOTS>,
        word: usize,
    },
    /// `keep_items` found this item at the (single) index.
    Hit(Arc<T>),
}

/// The tree id that keys the wait table and the held lists.
pub(crate) fn tree_key<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &WriteCursor<'_, T, SLOTS>,
) -> u64 {
    cursor.tree().id
}

/// The first and last index covered by the slot `found` (from a lookup of `index`).
pub(crate) fn region<const SLOTS: usize>(found: &Located<SLOTS>, index: u64) -> (u64, u64) {
    if found.outside {
        // Beyond the root's reach: nothing is there up to the end of the index space.
        (index, u64::MAX)
    } else if found.shift >= Geometry::<SLOTS>::HEAD_SHIFT {
        (0, u64::MAX)
    } else {
        let base = Geometry::<SLOTS>::slot_base(index, found.shift);
        (base, base + ((1u64 << found.shift) - 1))
    }
}

/// Wakes the waiters of lock entries that the walk split (they queued under the old
/// entry's base, which may no longer name their entry).
fn flush_splits<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
) {
    if cursor.split_waiting.is_empty() {
        return;
    }
    let tree = tree_key(cursor);
    let split: SmallVec<[u64; 2]> = core::mem::take(&mut cursor.split_waiting);
    for base in split {
        table.wake(tree, base, Wake::All);
    }
}

/// Claims as much of `c`'s range as may be taken now, in ascending order.
pub(crate) fn claim<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    c: &mut Claim<T>,
) -> Step<T, SLOTS> {
    let tree = tree_key(cursor);
    let step = loop {
        if c.done {
            break Step::Done;
        }
        let p = c.next;
        let found = cursor.locate(p, 0);
        let (base, end) = region(&found, p);
        let q = end.min(c.last);
        let word = found.word;
        let (new, evict) = match entry::kind(word) {
            Kind::Empty => (LockState::single(c.mode).word(), false),
            Kind::Item if c.keep_items => {
                // SAFETY: an item word read under the write lock: the item is reachable,
                // so the tree's own reference keeps it alive.
                break Step::Hit(unsafe { clone_item(word) });
            }
            Kind::Item | Kind::Value => (LockState::single(c.mode).word(), true),
            Kind::Lock => match may_take(table, tree, c, p, base, word) {
                Some(_) if LockState::of(word).holders == 0 && (p > base || q < end) => {
                    // Taking part of a reserved entry would leave reserved pieces that no
                    // waiter names: dissolve it instead (its waiters re-walk) and look again.
                    dissolve(cursor, table, found.slot, word, base);
                    continue;
                }
                Some(new) => (new.word(), false),
                None => {
                    break Step::Blocked {
                        index: p,
                        base,
                        slot: found.slot,
                        word,
                    }
                }
            },
            Kind::Node => unreachable!("a lookup stops at a non-node word"),
        };
        // The region is exactly the slot found: write it in place (no second walk).
        let exact = (!found.outside && p == base && q == end).then_some(found.slot);
        write_region(
            cursor,
            c,
            Inclusive { first: p, last: q },
            exact,
            word,
            new,
            evict,
        );
    };
    flush_splits(cursor, table);
    step
}

/// The new state of the lock entry `word` (covering `index`, based at `base`) if `c` may
/// take it now (see the module docs).
fn may_take<T>(
    table: &WaitTable,
    tree: u64,
    c: &Claim<T>,
    index: u64,
    base: u64,
    word: usize,
) -> Option<LockState> {
    let state = LockState::of(word);
    if state.pending || (state.holders > 0 && !state.mode.is_compatible(c.mode)) {
        return None;
    }
    let mut waiters = state.waiters;
    if waiters {
        let (_, any) = table.queued(tree, base);
        if !any {
            waiters = false; // a stale flag (its waiters moved on): drop it
        } else if table.older_conflicting(tree, base, c.mode, c.seq.unwrap_or(u64::MAX)) {
            let recursive = state.holders > 0 && held::mode_at(tree, index).is_some();
            if !recursive {
                return None;
            }
        }
    }
    debug_assert!(state.holders < MAX_HOLDERS);
    Some(LockState {
        mode: if state.holders == 0 {
            c.mode
        } else {
            state.mode
        },
        holders: state.holders + 1,
        waiters,
        pending: false,
    })
}

/// Removes the reserved entry `word` (no holders) from `slot` and wakes everyone queued
/// on it: they walk again and find the indices free.
fn dissolve<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    slot: Slot<SLOTS>,
    word: usize,
    base: u64,
) {
    debug_assert_eq!(LockState::of(word).holders, 0);
    cursor
        .swap(slot, word, EMPTY)
        .expect("a reserved entry (waiters flag set) changes only under the write lock");
    cursor.collapse();
    table.wake(tree_key(cursor), base, Wake::All);
}

/// Writes `new` over `range` (all of it covered by `old`), block by block, evicting the
/// old entry into `c` if `evict`. `exact` is the slot just located when `range` is
/// exactly its span. Advances `c.next` past every block written; stops early (leaving
/// the rest to the next round of [`claim`]) if a block no longer holds `old`, which only
/// the lock fast path can cause, on an empty or singly-locked head.
fn write_region<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    c: &mut Claim<T>,
    range: Inclusive,
    exact: Option<Slot<SLOTS>>,
    old: usize,
    new: usize,
    evict: bool,
) {
    for block in span::blocks::<SLOTS>(range) {
        let slot = match exact {
            Some(slot) => slot,
            None => cursor.create(block),
        };
        if cursor.word(slot) != old {
            return;
        }
        if cursor.swap(slot, old, new).is_err() {
            return;
        }
        let marks = if evict { take_marks(cursor, slot) } else { 0 };
        if evict {
            let entry = cursor.dispose(old);
            c.evicted.push(Evicted {
                block,
                entry,
                marks,
            });
        }
        if block.last() >= c.last {
            c.done = true;
            return;
        }
        c.next = block.last() + 1;
    }
}

/// Clears the marks of `slot` and returns them as a bit set.
fn take_marks<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    slot: Slot<SLOTS>,
) -> u8 {
    let mut marks = 0;
    for m in 0..MARK_COUNT {
        if cursor.is_marked(slot, m) {
            marks |= 1 << m;
            cursor.set_mark(slot, m, false);
        }
    }
    marks
}

/// Sets the `waiters` flag of the lock entry `word` in `slot`. `false` if the slot
/// changed (the fast path released an unlocked head): the caller re-walks.
pub(crate) fn set_waiters<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    slot: Slot<SLOTS>,
    word: usize,
) -> bool {
    let state = LockState::of(word);
    if state.waiters {
        return cursor.word(slot) == word;
    }
    let new = LockState {
        waiters: true,
        ..state
    };
    cursor.swap(slot, word, new.word()).is_ok()
}

/// Calls `f` with the slot and word of every lock entry in `first..=last`, splitting
/// entries that reach outside the range; non-lock regions are skipped.
fn for_each_entry<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    first: u64,
    last: u64,
    mut f: impl FnMut(&mut WriteCursor<'_, T, SLOTS>, Slot<SLOTS>, Block, LockState),
) {
    let mut p = first;
    loop {
        let found = cursor.locate(p, 0);
        let (base, end) = region(&found, p);
        let q = end.min(last);
        if entry::kind(found.word) == Kind::Lock {
            let exact = (p == base && q == end).then_some(found.slot);
            for block in span::blocks::<SLOTS>(Inclusive { first: p, last: q }) {
                let slot = match exact {
                    Some(slot) => slot,
                    None => cursor.create(block),
                };
                let word = cursor.word(slot);
                debug_assert_eq!(entry::kind(word), Kind::Lock);
                f(cursor, slot, block, LockState::of(word));
            }
        }
        if q >= last {
            return;
        }
        p = q + 1;
    }
}

/// Drops one holder from every entry of `first..=last` (a guard's release). An entry
/// whose last holder leaves is removed, or kept *reserved* (no holders) while acquirers
/// are queued on it, and the front of its queue is woken.
pub(crate) fn release<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    first: u64,
    last: u64,
) {
    let tree = tree_key(cursor);
    for_each_entry(cursor, first, last, |cursor, slot, block, state| {
        debug_assert!(
            state.holders >= 1,
            "releasing an entry this guard does not hold"
        );
        let old = state.word();
        let (new, wake) = if state.holders > 1 {
            let fewer = LockState {
                holders: state.holders - 1,
                ..state
            };
            (fewer.word(), None)
        } else if !state.waiters {
            (EMPTY, None)
        } else {
            match table.queued(tree, block.first) {
                (true, _) => {
                    let reserved = LockState {
                        holders: 0,
                        pending: false,
                        ..state
                    };
                    (reserved.word(), Some(Wake::Front))
                }
                (false, any) => (EMPTY, any.then_some(Wake::All)),
            }
        };
        cursor
            .swap(slot, old, new)
            .expect("an entry with a holder changes only under the write lock");
        if new == EMPTY {
            cursor.collapse();
        }
        if let Some(which) = wake {
            table.wake(tree, block.first, which);
        }
    });
    flush_splits(cursor, table);
}

/// Turns every (Exclusive, one holder) entry of `first..=last` Shared and wakes the
/// Shared acquirers at the front of their queues.
pub(crate) fn downgrade<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    first: u64,
    last: u64,
) {
    let tree = tree_key(cursor);
    for_each_entry(cursor, first, last, |cursor, slot, block, state| {
        debug_assert_eq!((state.mode, state.holders), (LockMode::Exclusive, 1));
        let shared = LockState {
            mode: LockMode::Shared,
            ..state
        };
        cursor
            .swap(slot, state.word(), shared.word())
            .expect("an entry with a holder changes only under the write lock");
        if state.waiters {
            table.wake(tree, block.first, Wake::SharedFront);
        }
    });
    flush_splits(cursor, table);
}

/// Replaces the one-index Exclusive entry at `index` with `item` (owned by the tree from
/// now on) and wakes everybody waiting for it.
pub(crate) fn publish<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    index: u64,
    item: Arc<T>,
) {
    let found = cursor.locate(index, 0);
    let state = LockState::of(found.word);
    debug_assert_eq!(
        (found.shift, state.mode, state.holders),
        (0, LockMode::Exclusive, 1)
    );
    cursor
        .swap(
            found.slot,
            found.word,
            entry::item_word(Arc::into_raw(item)),
        )
        .expect("a leaf slot changes only under the write lock");
    if state.waiters {
        table.wake(tree_key(cursor), index, Wake::All);
    }
}

/// Counts one more acquisition or guard with entries pending (see
/// `XArray::pending_claims`); under the write lock.
pub(crate) fn pending_opened<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &WriteCursor<'_, T, SLOTS>,
) {
    cursor.tree().pending_claims.fetch_add(1, Ordering::Relaxed);
}

/// Counts one fewer acquisition or guard with entries pending; under the write lock, in
/// the critical section that clears or removes its last pending entry.
pub(crate) fn pending_closed<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &WriteCursor<'_, T, SLOTS>,
) {
    let before = cursor.tree().pending_claims.fetch_sub(1, Ordering::Relaxed);
    debug_assert!(before > 0, "pending acquisitions undercounted");
}

/// Marks the entries evicted since the last call as `pending` (before sleeping).
pub(crate) fn mark_pending<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    c: &mut Claim<T>,
) {
    if c.pending == 0 && !c.evicted.is_empty() {
        pending_opened(cursor);
    }
    for e in &c.evicted[c.pending..] {
        let slot = cursor.create(e.block);
        let state = LockState::of(cursor.word(slot));
        debug_assert!(state.holders == 1 && !state.pending);
        let pending = LockState {
            pending: true,
            ..state
        };
        cursor
            .swap(slot, state.word(), pending.word())
            .expect("an entry with a holder changes only under the write lock");
    }
    c.pending = c.evicted.len();
}

/// Clears the `pending` marks of a completed claim and wakes the Shared acquirers that
/// were waiting to join.
pub(crate) fn clear_pending<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    c: &mut Claim<T>,
) {
    if c.pending > 0 {
        pending_closed(cursor);
    }
    unseal(
        cursor,
        table,
        c.evicted[..c.pending].iter().map(|e| e.block),
    );
    c.pending = 0;
}

/// Clears the `pending` marks of `blocks` (entries made by evicting, held by one claim
/// alone) and wakes the Shared acquirers that were waiting to join them, and the
/// watchers waiting for them to open ([`XArray::wait_sealed`](crate::XArray)).
pub(crate) fn unseal<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    blocks: impl IntoIterator<Item = Block>,
) {
    let tree = tree_key(cursor);
    for block in blocks {
        let slot = cursor.create(block);
        let state = LockState::of(cursor.word(slot));
        debug_assert!(state.holders == 1 && state.pending);
        let clear = LockState {
            pending: false,
            ..state
        };
        cursor
            .swap(slot, state.word(), clear.word())
            .expect("an entry with a holder changes only under the write lock");
        if state.waiters {
            table.wake(tree, block.first, Wake::Unsealed);
        }
    }
}

/// Undoes a failed claim: puts every evicted entry back (with its marks) and releases the
/// rest of the claimed prefix.
pub(crate) fn rollback<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    c: &mut Claim<T>,
) {
    if c.pending > 0 {
        pending_closed(cursor);
    }
    restore(cursor, table, c.evicted.drain(..));
    c.pending = 0;
    if c.claimed_any() {
        let last = c.claimed_last();
        release(cursor, table, c.first, last);
    }
    c.done = false;
    c.next = c.first;
}

/// Puts evicted entries back in place of the lock entries that replaced them (which
/// their claim holds alone: made by eviction, and pending if it ever slept), with their
/// marks, and wakes everybody waiting there.
pub(crate) fn restore<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    evicted: impl IntoIterator<Item = Evicted<T>>,
) {
    let tree = tree_key(cursor);
    for e in evicted {
        let slot = cursor.create(e.block);
        let state = LockState::of(cursor.word(slot));
        debug_assert_eq!(
            state.holders, 1,
            "evicted entries are held by their claim alone"
        );
        let word = match e.entry {
            crate::xarray::Entry::Item(item) => entry::item_word(Arc::into_raw(item)),
            crate::xarray::Entry::Value(value) => entry::value_word(value),
            _ => unreachable!("only items and values are evicted"),
        };
        cursor
            .swap(slot, state.word(), word)
            .expect("an entry with a holder changes only under the write lock");
        for m in 0..MARK_COUNT {
            if e.marks & (1 << m) != 0 {
                cursor.set_mark(slot, m, true);
            }
        }
        if state.waiters {
            table.wake(tree, e.block.first, Wake::All);
        }
    }
}

/// A queued acquirer left for good (timed out or failed) after waiting under key
/// `base`: wakes the others there (some may have deferred to it) and [`settle`]s the key.
pub(crate) fn depart<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    base: u64,
) {
    table.wake(tree_key(cursor), base, Wake::All);
    settle(cursor, table, base);
}

/// Called after a record under key `base` was removed (by its owner, under the write
/// lock that also covered the owner's next walk): waiters there may have been deferring
/// to the record that left. If the entry based at `base` is reserved: with no acquirer
/// queued on it any more it is removed (watchers woken), otherwise the front of its
/// queue is woken. If it is held Shared, the Shared acquirers at the front of its queue
/// are woken (they may join now). Every reservation has an acquirer record and every
/// record's owner removes it and settles, so reserved entries never outlive their
/// waiters, and no queue is stranded behind a record that moved on.
pub(crate) fn settle<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    table: &WaitTable,
    base: u64,
) {
    let found = cursor.locate(base, 0);
    if entry::kind(found.word) != Kind::Lock || region(&found, base).0 != base {
        return;
    }
    let tree = tree_key(cursor);
    let state = LockState::of(found.word);
    if state.holders > 0 {
        // Held: Shared acquirers queued behind the record that left may join now.
        if state.mode == LockMode::Shared && !state.pending && state.waiters {
            table.wake(tree, base, Wake::SharedFront);
        }
        return;
    }
    let (acquirers, _) = table.queued(tree, base);
    if acquirers {
        table.wake(tree, base, Wake::Front);
    } else {
        dissolve(cursor, table, found.slot, found.word, base);
    }
}

/// Decodes the word at `index` under the cursor (for lookups that fall back to the lock).
pub(crate) fn entry_at<T: Send + Sync + 'static, const SLOTS: usize>(
    cursor: &mut WriteCursor<'_, T, SLOTS>,
    index: u64,
) -> (Located<SLOTS>, crate::xarray::Entry<T>) {
    let found = cursor.locate(index, 0);
    // SAFETY: the word was read under the write lock, so an item it names is still
    // reachable and the tree's own reference keeps it alive.
    let entry = unsafe { decode_owned(found.word) };
    (found, entry)
}
