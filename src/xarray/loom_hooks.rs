//! Test-only entry points for the loom models (`tests/loom/xarray.rs`); compiled only under
//! `cfg(loom)`.
//!
//! The loom models prove that pinned readers never touch retired memory. A proof like
//! that is only worth something if the same setup *fails* when the protection is
//! missing, so this module offers the one thing the public API must never offer: a
//! lookup that does not pin the epoch. The negative-control model drives it against a
//! writer that erases and reclaims, and must be caught by loom (see
//! [`node`](super::node): retired nodes are poisoned, not freed, under loom).

use super::entry::{self, Kind};
use super::tree::XArray;

impl<T, const SLOTS: usize> XArray<T, SLOTS> {
    /// The item at `index`, found **without pinning the epoch**: the walk and the
    /// borrowed item are protected by nothing.
    ///
    /// It exists only so the loom negative control can show that the loom setup catches
    /// an unpinned reader; nothing else may call it.
    ///
    /// # Safety
    ///
    /// There is no sound way to use the result while any other thread may erase or
    /// store into this tree: a concurrent writer can retire the nodes the walk visits and
    /// the item it returns, and reclamation may then free them. Callers must guarantee
    /// that no writer runs concurrently; the negative control breaks exactly that rule,
    /// on purpose, under loom, where retired nodes are poisoned and never freed, so loom
    /// reports the race on the first retired node the writer reclaims, before the item
    /// itself can be freed.
    #[doc(hidden)]
    pub unsafe fn get_unpinned(&self, index: u64) -> Option<&T> {
        // SAFETY: not safe in general (that is the point): `unprotected()` hands out a
        // guard that protects nothing, and the caller promises (see `# Safety`) that no
        // writer can retire what the walk visits. Under loom, a caller that breaks the
        // promise makes the walk's `Node::visit` race with the poisoning of a retired
        // node, which loom reports as a causality violation.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        let word = self.lookup_word(guard, index);
        (entry::kind(word) == Kind::Item).then(|| {
            // SAFETY: an item word from this tree; the caller's promise keeps the tree's
            // strong reference, hence the item, alive for as long as `&self` is borrowed.
            unsafe { &*entry::word_item::<T>(word) }
        })
    }
}
