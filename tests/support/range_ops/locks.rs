//! The driver's acquisitions and releases, and the tree's side of a live range lock: its
//! guard, attached or detached.

use std::ops::RangeInclusive;
use std::time::Duration;

use rangelock::{DetachedGuard, Evicted, LockError, LockMode, RangeGuard, XArray};

use super::super::arbitrary_indices::{inclusive, Hex};
use super::super::input::{How, Range};
use super::super::model::{first_conflict, GuardModel};
use super::Driver;

/// A live guard of the tree.
pub(super) enum Guard<'a, const SLOTS: usize> {
    Attached(RangeGuard<'a, u64, SLOTS>),
    Detached(DetachedGuard<'a, u64, SLOTS>),
}

impl<const SLOTS: usize> Guard<'_, SLOTS> {
    pub fn range(&self) -> RangeInclusive<u64> {
        match self {
            Guard::Attached(g) => g.range(),
            Guard::Detached(g) => g.range(),
        }
    }

    pub fn mode(&self) -> LockMode {
        match self {
            Guard::Attached(g) => g.mode(),
            Guard::Detached(g) => g.mode(),
        }
    }

    pub fn evicted(&self) -> &[Evicted<u64>] {
        match self {
            Guard::Attached(g) => g.evicted(),
            Guard::Detached(g) => g.evicted(),
        }
    }

    pub fn take_evicted(&mut self) -> Vec<Evicted<u64>> {
        match self {
            Guard::Attached(g) => g.take_evicted(),
            Guard::Detached(g) => g.take_evicted(),
        }
    }
}

impl<'a, const SLOTS: usize> Driver<'a, SLOTS> {
    /// Calls the acquisition `how` names.
    fn call_lock(
        &self,
        range: Range,
        mode: LockMode,
        how: How,
    ) -> Result<RangeGuard<'a, u64, SLOTS>, LockError> {
        let tree: &'a XArray<u64, SLOTS> = self.tree;
        match how {
            How::Try => tree.try_lock_range(range.bounds(), mode),
            How::TimeoutZero => tree.lock_range_timeout(range.bounds(), mode, Duration::ZERO),
            How::Blocking => tree.lock_range(range.bounds(), mode),
        }
    }

    /// One acquisition; `true` if it was granted.
    pub(super) fn lock(&mut self, range: Range, mode: LockMode, how: How) -> bool {
        let Some((first, last)) = inclusive(range.bounds()) else {
            let got = self.call_lock(range, mode, how);
            let want = LockError::InvalidRange {
                start: range.start,
                end: range.end,
            };
            if !matches!(&got, Err(e) if *e == want) {
                self.fail(format_args!("lock of an empty range returned {got:?}"));
            }
            return false;
        };
        // Before it claims anything, the call fails with WouldDeadlock at the first index
        // of the range that this thread holds itself in a conflicting mode (an attached
        // guard): it would have to wait for itself there, and no retry can help. Else
        // the claim walks up from `first` and stops at the first conflicting index,
        // where it would sleep: WouldBlock / TimedOut.
        let attached: Vec<GuardModel> =
            self.models.iter().filter(|g| g.attached).cloned().collect();
        let own = first_conflict(&attached, first, last, mode);
        let deadlock = own.is_some();
        let conflict = own.or_else(|| first_conflict(&self.models, first, last, mode));
        // Only detached guards block it: a blocking call would sleep forever.
        let how = if how == How::Blocking && conflict.is_some() && !deadlock {
            How::Try
        } else {
            how
        };
        let got = self.call_lock(range, mode, how);
        match (got, conflict) {
            (Ok(guard), None) => {
                if guard.range() != (first..=last) || guard.mode() != mode {
                    self.fail(format_args!(
                        "granted guard covers {:?} {:?}",
                        guard.range(),
                        guard.mode()
                    ));
                }
                let evicted = self.store.take(first, last);
                self.check_evicted("evicted", first, last, guard.evicted(), &evicted);
                self.guards.push(Guard::Attached(guard));
                self.models.push(GuardModel {
                    first,
                    last,
                    mode,
                    attached: true,
                    evicted,
                });
                self.probe_range(first, last);
                true
            }
            (Err(error), Some(p)) => {
                let want = if deadlock {
                    LockError::WouldDeadlock { index: p }
                } else if how == How::TimeoutZero {
                    LockError::TimedOut
                } else {
                    LockError::WouldBlock
                };
                if error != want {
                    self.fail(format_args!("lock refused with {error:?}, model {want:?}"));
                }
                // Nothing changed: probed here, the whole map by the caller.
                self.probe_range(first, last);
                false
            }
            (Ok(guard), Some(p)) => self.fail(format_args!(
                "granted {:?} {mode:?}, but index {} is held in a conflicting mode",
                guard.range(),
                Hex(p)
            )),
            (Err(error), None) => self.fail(format_args!("lock refused with {error:?}")),
        }
    }

    /// Drops guard `k` after checking it against its model, then probes its range.
    pub(super) fn unlock(&mut self, k: usize) {
        let guard = self.guards.remove(k);
        let model = self.models.remove(k);
        if guard.range() != (model.first..=model.last) || guard.mode() != model.mode {
            self.fail(format_args!(
                "guard covers {:?} {:?}, model {}..={} {:?}",
                guard.range(),
                guard.mode(),
                Hex(model.first),
                Hex(model.last),
                model.mode
            ));
        }
        self.check_evicted(
            "evicted at release",
            model.first,
            model.last,
            guard.evicted(),
            &model.evicted,
        );
        drop(guard);
        self.probe_range(model.first, model.last);
    }
}
