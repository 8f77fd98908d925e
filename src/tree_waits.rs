//! `TreeWaits`: what a tree keeps for the lock layer's waits.
//!
//! Two things are per tree and belong to waiting, not to the tree's structure: which
//! [`WaitTable`] the tree's waiters sleep in (the process-wide one, or the tree's own in
//! tests and under loom), and how many acquisitions and guards have entries marked
//! `pending` in the tree (see `lock/fill.rs`, `wait_sealed`). The tree holds a
//! `TreeWaits` because the lock layer's operations are methods of `XArray`; it never
//! reads or changes what is inside, except that its structural self-check compares the
//! pending count with the pending entries it finds. Only the lock layer drives it.
//!
//! # The pending count
//!
//! Raised (`SeqCst`) before the first pending entry of an acquisition or guard is
//! stored, lowered after its last one is cleared or removed: while it reads zero, no
//! entry of the tree is pending, so a caller that must wait for pending entries in a
//! range skips its scan. A caller that saw the effect of an eviction (a page gone from
//! the tree) sees the count that was raised before it.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::ItemArc as Arc;
use crate::wait_table::WaitTable;

/// A tree's wait table and its count of acquisitions with pending entries (see the
/// module docs).
pub(crate) struct TreeWaits {
    /// `None`: the process-wide table.
    table: Option<Arc<WaitTable>>,
    pending: AtomicUsize,
}

impl TreeWaits {
    /// The process-wide table, nothing pending. Under loom, which cannot model a
    /// process-wide static, a table of the tree's own.
    pub(crate) fn new() -> Self {
        TreeWaits {
            table: cfg!(loom).then(|| Arc::new(WaitTable::new(4))),
            pending: AtomicUsize::new(0),
        }
    }

    /// Makes the tree's waiters sleep in `table` (before the tree is shared).
    pub(crate) fn use_table(&mut self, table: Arc<WaitTable>) {
        self.table = Some(table);
    }

    /// The table the tree's waiters sleep in.
    #[inline]
    pub(crate) fn table(&self) -> &WaitTable {
        match &self.table {
            Some(table) => table,
            #[cfg(not(loom))]
            None => crate::wait_table::global(),
            #[cfg(loom)]
            None => unreachable!("under loom every tree owns a table"),
        }
    }

    /// Counts one more acquisition or guard with entries pending: before the first
    /// pending entry is stored, so that anyone who sees that entry sees the count.
    pub(crate) fn pending_opened(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts one fewer: after its last pending entry was cleared or removed.
    pub(crate) fn pending_closed(&self) {
        let before = self.pending.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "pending acquisitions undercounted");
    }

    /// Whether some acquisition or guard may have entries pending (`false`: none has).
    #[inline]
    pub(crate) fn any_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst) != 0
    }

    /// The count itself, for the tree's self-check (`xarray/check.rs`), which runs
    /// while no writer is active.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}
