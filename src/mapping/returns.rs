//! Dirty data coming back: the count that lets write-back see a page it may have missed.
//!
//! Dirty data normally only moves forward, from the cache towards the device: a
//! write-back takes a dirty page and writes it, a direct IO or an edit evicts a dirty
//! page and hands it to its `flush` or to the caller. Two things move it back into the
//! cache, dirty again, where a write-back pass that already went past the page would not
//! see it: a **hand-off that fails** (a direct IO's `flush` fails or panics, an edit is
//! refused: the evicted pages are put back) and a **write-back that fails** (the page is
//! marked dirty again). [`Mapping::writeback`](super::Mapping::writeback) must look again
//! whenever one of them happened during its round, and only then.
//!
//! Each return is bracketed: [`Returns::begin`] before its first change becomes visible,
//! and the token's drop after its last. A round of write-back reads
//! [`snapshot`](Returns::snapshot) (the returns *done*) before it starts and asks
//! [`quiet_since`](Returns::quiet_since) (no return *begun* since) at its end. Why that
//! is exact, with `SeqCst` on all four operations:
//!
//! * a return that was done before the snapshot put its page back before the round
//!   began: the round's pass sees the page (or it left again, forward);
//! * a return that began before the snapshot but was not done by then keeps
//!   `begun > done` at the snapshot, so `begun` at the end differs from it;
//! * a return that began during the round makes `begun` at the end differ;
//! * a return that begins after the end check: whatever the round observed of it (the
//!   page back in the tree, its seal opened, its page lock free) was written after its
//!   `begin`, so the round observed nothing of it; the page was still on its way forward
//!   throughout the round, and the round waited for that (see `writeback`).
//!
//! The cost is two atomic increments per failure, and two loads per round of write-back.

use crate::sync::atomic::{AtomicU64, Ordering};

/// The begun and done counts of returns of dirty data to a mapping's cache.
#[derive(Debug, Default)]
pub(crate) struct Returns {
    begun: AtomicU64,
    done: AtomicU64,
}

/// A return in progress; its drop counts it done.
#[must_use = "the return is done when the token drops"]
pub(crate) struct Returning<'a>(&'a Returns);

impl Returns {
    /// No return yet.
    pub(crate) fn new() -> Self {
        Returns {
            begun: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// Starts a return: call it before the first change that puts dirty data back.
    pub(crate) fn begin(&self) -> Returning<'_> {
        self.begun.fetch_add(1, Ordering::SeqCst);
        Returning(self)
    }

    /// The returns done so far: what a write-back round reads before it starts.
    pub(crate) fn snapshot(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Whether no return was in progress at `snapshot` nor has begun since.
    pub(crate) fn quiet_since(&self, snapshot: u64) -> bool {
        self.begun.load(Ordering::SeqCst) == snapshot
    }
}

impl Drop for Returning<'_> {
    fn drop(&mut self) {
        self.0.done.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::Returns;

    #[test]
    fn a_return_in_progress_or_begun_since_breaks_the_quiet() {
        let returns = Returns::new();
        let before = returns.snapshot();
        assert!(returns.quiet_since(before));
        let token = returns.begin();
        assert!(!returns.quiet_since(before), "begun during the round");
        let during = returns.snapshot();
        assert!(!returns.quiet_since(during), "in progress at the snapshot");
        drop(token);
        let after = returns.snapshot();
        assert!(returns.quiet_since(after), "done before the snapshot");
    }
}
