//! The page-index walks every comparison page cache shares: write-back, reclaim, and
//! the quiescence check. They take no file lock in any strategy (as in Linux): the page
//! lock and the evicted flag order them with everything else, and the [`DIRTY`] and
//! [`WRITEBACK`] marks of the index mirror the page flags of the same names.

use core::fmt::Debug;
use core::ops::RangeInclusive;
use std::panic::{self, AssertUnwindSafe};

use rangelock::mapping::{DIRTY, WRITEBACK};
use rangelock::xarray::{Entry, XArray};

use crate::page::Page;
use crate::Device;

/// Writes the dirty pages of `range` to `device` and waits for the write-backs of
/// others in it; returns how many pages it wrote. No file lock: each dirty page is
/// marked writeback and its dirty flag cleared under its page lock, written under it,
/// unmarked. A device that panics leaves the page dirty, not clean and under write-back.
pub(crate) fn writeback<P: Send + Sync + 'static>(
    pages: &XArray<Page<P>>,
    range: RangeInclusive<u64>,
    device: &dyn Device<P>,
) -> usize {
    let mut written = 0;
    for (span, entry) in pages.iter_marked(range.clone(), DIRTY) {
        let (Some(page), index) = (entry.item(), *span.start()) else {
            continue;
        };
        let mut lock = page.lock();
        if lock.is_evicted() {
            continue; // the evicting thread wrote it
        }
        if !lock.is_dirty() {
            pages.clear_mark(index, DIRTY); // written already
            continue;
        }
        // Marked writeback before the dirty mark goes, so a concurrent fsync that no
        // longer sees the page dirty sees it under write-back (Linux's PG_writeback).
        lock.set_dirty(false);
        lock.set_writeback(true);
        pages.set_mark(index, WRITEBACK);
        pages.clear_mark(index, DIRTY);
        // Written under the page lock: a writer waits, and so does an eviction. A
        // device that panics leaves the page dirty, not clean and under write-back.
        let result = panic::catch_unwind(AssertUnwindSafe(|| device.write_page(index, &lock)));
        lock.set_writeback(false);
        pages.clear_mark(index, WRITEBACK);
        if let Err(payload) = result {
            lock.set_dirty(true);
            pages.set_mark(index, DIRTY);
            panic::resume_unwind(payload);
        }
        written += 1;
    }
    // Another fsync's write of a page this pass found clean may still be on its way:
    // wait for it (its writer holds the page lock until the device has it).
    for (_, entry) in pages.iter_marked(range, WRITEBACK) {
        if let Some(page) = entry.item() {
            drop(page.lock());
        }
    }
    written
}

/// The indices of `first..=last` that hold no page, ascending: readahead's scan, one
/// pinned iteration over the window (as `Mapping::readahead` finds them), so that the
/// strategies differ in their locks and not in how they look for missing pages.
pub(crate) fn missing<P: Send + Sync + 'static>(
    pages: &XArray<Page<P>>,
    first: u64,
    last: u64,
) -> Vec<u64> {
    let mut holes = Vec::new();
    let guard = pages.read();
    let mut next = Some(first);
    for (span, entry) in guard.iter(first..=last) {
        if let (Some(from), Some(_page)) = (next, entry.item()) {
            holes.extend(from..*span.start());
            next = span.end().checked_add(1);
        }
    }
    holes.extend(next.into_iter().flat_map(|from| from..=last));
    holes
}

/// Drops the page at `index` if it is clean and not under write-back; returns whether it
/// did. It is taken out under its page lock, only if its slot still holds that very page
/// (a lock entry or a newer page is left alone), and marked evicted before the lock goes,
/// so a reader or writer holding it looks the index up again.
pub(crate) fn reclaim<P: Send + Sync + 'static>(pages: &XArray<Page<P>>, index: u64) -> bool {
    let Some(page) = pages.load(index) else {
        return false;
    };
    let mut lock = page.lock();
    if lock.is_dirty() || lock.is_evicted() || page.is_writeback() {
        return false;
    }
    let current = Entry::Item(page.clone());
    if pages
        .compare_exchange(index, &current, Entry::Empty)
        .is_err()
    {
        return false;
    }
    lock.set_evicted(true);
    true
}

/// The quiescence check shared by every strategy: the tree's invariants hold and every
/// entry is a live page (no lock entry, value, or page for which `left_behind` holds:
/// evicted or under write-back).
pub(crate) fn check<T: Debug + Send + Sync + 'static, const SLOTS: usize>(
    pages: &XArray<T, SLOTS>,
    left_behind: impl Fn(&T) -> bool,
) -> Result<(), String> {
    pages.check_invariants()?;
    for (span, entry) in pages.iter(..) {
        match entry {
            Entry::Item(page) if left_behind(&page) => {
                return Err(format!("page {span:?} left as {page:?}"));
            }
            Entry::Item(_) => {}
            Entry::Locked { mode, holders } => {
                return Err(format!("{span:?} left locked {mode:?} x{holders}"));
            }
            Entry::Value(value) => return Err(format!("{span:?} holds value {value}")),
            Entry::Empty => {}
        }
    }
    Ok(())
}
