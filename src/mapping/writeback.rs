//! Write-back: finding dirty pages by their tree mark and writing them out.

use core::ops::RangeBounds;
use std::panic::{self, AssertUnwindSafe};

use super::error::MappingError;
use super::{Mapping, DIRTY, WRITEBACK};
use crate::xarray::span::{self, Inclusive};

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// The indices of the dirty pages in `pages`, ascending, found by the dirty mark
    /// (no scan of clean pages).
    pub fn dirty_pages(&self, pages: impl RangeBounds<u64>) -> Vec<u64> {
        self.pages
            .iter_marked(pages, DIRTY)
            .filter(|(_, entry)| entry.item().is_some())
            .map(|(span, _)| *span.start())
            .collect()
    }

    /// Writes the dirty pages of `pages` back with `write(index, data)`, in ascending
    /// order, and returns how many it wrote: the page-cache half of an fsync.
    ///
    /// Each page is locked, found still in the mapping and dirty, marked writeback and
    /// clean, and written with its lock held (a buffered write to it waits; a direct IO
    /// evicting it waits, so the device sees this write before the direct one). If
    /// `write` fails or panics, the page is marked dirty again and the error returned
    /// (the panic resumed): the data stays cached.
    ///
    /// **The guarantee**: when it returns `Ok`, every buffered write to `pages` that
    /// completed before the call is on the device (written by this call, by another
    /// write-back, or by the `flush` of a direct IO or the caller of an edit that took the
    /// page over), or was discarded by an edit (truncate, hole punch) that completed
    /// meanwhile. Pages out of sight are waited for: after its pass it waits for pages
    /// under another thread's write-back, then for every entry of the range that is
    /// sealed (a direct IO or an edit handing evicted dirty pages over; in this order,
    /// because a direct IO may evict a page under write-back and then waits for that
    /// write-back under its seal). If a hand-off or a write-back failed during the round
    /// (its page came back dirty, perhaps after the pass went by, and may have been
    /// evicted again since), it goes round again; each extra round needs such a failure.
    /// IMPLEMENTATION.md has the argument over every interleaving.
    ///
    /// A thread that holds a range of this mapping (a direct IO, an edit) gets
    /// [`MappingError::Lock`]`(WouldDeadlock)` when there is something to wait for: the
    /// owner of the hand-off may be queued on that range. Write back after dropping it.
    /// `write` runs under the page lock: it must not fault, lock or write pages of this
    /// mapping.
    ///
    /// ```
    /// use rangelock::mapping::Mapping;
    ///
    /// let file: Mapping<u32> = Mapping::new();
    /// file.set_size(1 << 20);
    /// for i in [3, 9, 200] {
    ///     file.write(i, |_| Ok::<_, ()>(0), |data| *data = 1).unwrap();
    /// }
    /// let mut device = Vec::new();
    /// let written = file.writeback(0..100, |i, data| Ok::<_, ()>(device.push((i, *data)))).unwrap();
    /// assert_eq!((written, device), (2, vec![(3, 1), (9, 1)]));
    /// assert_eq!(file.dirty_pages(..), vec![200]);
    /// ```
    pub fn writeback<E>(
        &self,
        pages: impl RangeBounds<u64>,
        mut write: impl FnMut(u64, &P) -> Result<(), E>,
    ) -> Result<usize, MappingError<E>> {
        let Some(range) = span::inclusive(&pages) else {
            return Ok(0);
        };
        let mut written = 0;
        loop {
            // Before the pass: a return of dirty data that the pass could miss is either
            // done by now (the pass sees its page) or counted against this round.
            let returns = self.returns.snapshot();
            written += self.writeback_pass(range, &mut write)?;
            for (_, entry) in self.pages.iter_marked(range.first..=range.last, WRITEBACK) {
                if let Some(page) = entry.item() {
                    drop(page.lock()); // a write-back in progress holds it until it ends
                }
            }
            self.pages.wait_sealed(range)?;
            if self.returns.quiet_since(returns) {
                return Ok(written);
            }
        }
    }

    /// One pass of [`writeback`](Self::writeback) over the pages marked dirty.
    fn writeback_pass<E>(
        &self,
        range: Inclusive,
        write: &mut impl FnMut(u64, &P) -> Result<(), E>,
    ) -> Result<usize, MappingError<E>> {
        let mut written = 0;
        for (span, entry) in self.pages.iter_marked(range.first..=range.last, DIRTY) {
            let (Some(page), index) = (entry.item(), *span.start()) else {
                continue;
            };
            let mut lock = page.lock();
            if lock.is_evicted() {
                continue; // the evicting thread took the data
            }
            if !lock.is_dirty() {
                self.pages.clear_mark(index, DIRTY); // a stale mark: written already
                continue;
            }
            lock.set_dirty(false);
            lock.set_writeback(true);
            self.pages.set_mark(index, WRITEBACK);
            self.pages.clear_mark(index, DIRTY);
            // A `write` that panics must not leave the page clean and under write-back.
            let result = panic::catch_unwind(AssertUnwindSafe(|| write(index, &lock)));
            if matches!(result, Ok(Ok(()))) {
                lock.set_writeback(false);
                self.pages.clear_mark(index, WRITEBACK);
            } else {
                // The data goes back to dirty: a return (see `returns.rs`), so that a
                // write-back whose pass went by while this one held the page looks again.
                let _returning = self.returns.begin();
                lock.set_dirty(true);
                self.pages.set_mark(index, DIRTY);
                lock.set_writeback(false);
                self.pages.clear_mark(index, WRITEBACK);
            }
            match result {
                Ok(Ok(())) => written += 1,
                Ok(Err(error)) => return Err(MappingError::Io(error)),
                Err(payload) => panic::resume_unwind(payload),
            }
        }
        Ok(written)
    }
}
