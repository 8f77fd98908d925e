//! Reclaim: dropping a clean page under memory pressure.
//!
//! A page may leave the cache without any range lock when nothing would be lost: it is
//! clean, not under write-back and still in the tree. [`Mapping::reclaim`] takes the page
//! lock (which every writer of the data and of the dirty and writeback flags holds),
//! checks those flags, removes the page only if its slot still holds that very page (a
//! compare-exchange: a lock entry or a newer page is left alone), and marks it evicted
//! before it unlocks. A buffered reader or writer holding a reference to the page sees
//! `evicted` under the page lock and faults again, which reads the device: the data it
//! finds there is the page's, since the page was clean.

use crate::mapping::Mapping;
use crate::xarray::Entry;

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// Drops the page at `index` from the cache if it is clean and not under write-back
    /// (what an LRU does under memory pressure); returns whether it did. Missing, locked,
    /// dirty and write-back pages are left alone.
    ///
    /// ```
    /// use rangelock::mapping::Mapping;
    ///
    /// let file: Mapping<u8> = Mapping::new();
    /// file.set_size(2 * 4096);
    /// file.fault(0, |_| Ok::<_, ()>(1)).unwrap();
    /// file.write(1, |_| Ok::<_, ()>(1), |b| *b = 2).unwrap();
    /// assert!(file.reclaim(0)); // clean: dropped, a fault reads it again
    /// assert!(!file.reclaim(1)); // dirty: kept until written back
    /// assert!(file.get(0).is_none() && file.get(1).is_some());
    /// ```
    pub fn reclaim(&self, index: u64) -> bool {
        let pages = &self.pages;
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
}
