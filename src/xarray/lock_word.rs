//! Lock entries: the meaning of the 61-bit payload of a lock-entry word.
//!
//! A lock entry is a slot state like an item or a value: one word, no allocation. It
//! says that every index the slot covers is locked, in which [`LockMode`], by how many
//! holders, and whether threads may be waiting for it:
//!
//! | payload bits | field     | meaning                                                    |
//! |--------------|-----------|------------------------------------------------------------|
//! | 0            | mode      | 0 [`LockMode::Shared`], 1 [`LockMode::Exclusive`]          |
//! | 1            | `waiters` | the wait table may hold waiters for this entry             |
//! | 2            | `pending` | made by an acquisition that is still waiting further on, and that evicted entries here: nobody may join until it completes (or restores them) |
//! | 3..61        | holders   | how many guards hold these indices (0: reserved, see below) |
//!
//! An entry with `holders == 0` is *reserved*: its holders have drained while waiters
//! were queued on it, and it stays in the tree so that newcomers cannot slip in before
//! the queued waiters run (the `lock` layer's fairness rule). A reserved entry always has
//! `waiters` set and is removed once no acquirer is queued on it.
//!
//! The protocol (who may change these fields, and when) lives in `src/lock/`; this file
//! only encodes and decodes.

use super::entry;
use crate::lock_mode::LockMode;

const MODE_BIT: u64 = 1;
const WAITERS_BIT: u64 = 1 << 1;
const PENDING_BIT: u64 = 1 << 2;
const HOLDERS_SHIFT: u32 = 3;
/// The largest holder count an entry can record (58 bits).
pub(crate) const MAX_HOLDERS: u64 = (1 << (61 - HOLDERS_SHIFT)) - 1;

/// A decoded lock entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LockState {
    pub(crate) mode: LockMode,
    pub(crate) holders: u64,
    pub(crate) waiters: bool,
    pub(crate) pending: bool,
}

impl LockState {
    /// One holder in `mode`, nobody waiting: what an acquisition writes into a free slot.
    #[inline]
    pub(crate) const fn single(mode: LockMode) -> Self {
        LockState {
            mode,
            holders: 1,
            waiters: false,
            pending: false,
        }
    }

    /// The slot word of this state.
    #[inline]
    pub(crate) fn word(self) -> usize {
        debug_assert!(self.holders <= MAX_HOLDERS);
        let mode = match self.mode {
            LockMode::Shared => 0,
            LockMode::Exclusive => MODE_BIT,
        };
        let waiters = if self.waiters { WAITERS_BIT } else { 0 };
        let pending = if self.pending { PENDING_BIT } else { 0 };
        entry::lock_word(mode | waiters | pending | (self.holders << HOLDERS_SHIFT))
    }

    /// Decodes a word whose kind is [`entry::Kind::Lock`].
    #[inline]
    pub(crate) fn of(word: usize) -> Self {
        debug_assert_eq!(entry::kind(word), entry::Kind::Lock);
        let payload = entry::word_lock(word);
        LockState {
            mode: if payload & MODE_BIT != 0 {
                LockMode::Exclusive
            } else {
                LockMode::Shared
            },
            holders: payload >> HOLDERS_SHIFT,
            waiters: payload & WAITERS_BIT != 0,
            pending: payload & PENDING_BIT != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for mode in [LockMode::Shared, LockMode::Exclusive] {
            for holders in [0, 1, 2, 1 << 40, MAX_HOLDERS] {
                for (waiters, pending) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let state = LockState {
                        mode,
                        holders,
                        waiters,
                        pending,
                    };
                    let word = state.word();
                    assert_eq!(entry::kind(word), entry::Kind::Lock);
                    assert_eq!(LockState::of(word), state);
                }
            }
        }
    }

    #[test]
    fn compatibility_table() {
        use LockMode::*;
        assert!(Shared.is_compatible(Shared));
        assert!(!Shared.is_compatible(Exclusive));
        assert!(!Exclusive.is_compatible(Shared));
        assert!(!Exclusive.is_compatible(Exclusive));
    }
}
