//! [`LockMode`]: the vocabulary that the tree's lock entries encode
//! (`xarray/lock_word.rs`), the wait table queues by (`wait_table.rs`) and the range locks
//! grant (`lock/`). It sits below all three so that none of them imports another for it.

/// How a range is locked.
///
/// `Shared` is compatible with `Shared` (several direct-IO operations may cover the same
/// page; the entry counts them), `Exclusive` with nothing (truncate, hole punch, the
/// one-page fill lock of a fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// Compatible with other `Shared` holders.
    Shared,
    /// Compatible with nothing.
    Exclusive,
}

impl LockMode {
    /// Whether a holder in `self` mode and one in `other` mode may overlap.
    #[inline]
    pub fn is_compatible(self, other: LockMode) -> bool {
        self == LockMode::Shared && other == LockMode::Shared
    }

    /// The mode's bit in a word that packs a mode with flags (a guard's, a lock
    /// future's): set for `Exclusive`. Such words are written and read whole, so that
    /// copying them right after they were written does not wait on byte stores.
    pub(crate) const BIT: usize = 1;

    /// The mode as its [`BIT`](Self::BIT), clear for `Shared`.
    #[inline(always)]
    pub(crate) fn bit(self) -> usize {
        match self {
            LockMode::Shared => 0,
            LockMode::Exclusive => Self::BIT,
        }
    }

    /// The mode whose [`BIT`](Self::BIT) `word` carries.
    #[inline(always)]
    pub(crate) fn from_bit(word: usize) -> LockMode {
        if word & Self::BIT != 0 {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        }
    }
}
