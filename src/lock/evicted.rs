//! What an acquisition took out of its range: items and values, with their marks.

use core::fmt;
use core::ops::RangeInclusive;

use crate::xarray::span::Block;
use crate::xarray::{Entry, Mark};

/// An entry that [`lock_range`](crate::XArray::lock_range) removed from the locked range
/// and handed to the guard: a cached page (a direct-IO writer must write it back if it
/// was dirty) or a value (shadow) entry, with the indices it covered and its marks.
pub struct Evicted<T> {
    pub(crate) block: Block,
    pub(crate) entry: Entry<T>,
    pub(crate) marks: u8,
}

impl<T> Evicted<T> {
    /// The indices the entry covered.
    pub fn range(&self) -> RangeInclusive<u64> {
        self.block.first..=self.block.last()
    }

    /// The entry: [`Entry::Item`] or [`Entry::Value`].
    pub fn entry(&self) -> &Entry<T> {
        &self.entry
    }

    /// Takes the entry.
    pub fn into_entry(self) -> Entry<T> {
        self.entry
    }

    /// Whether the entry carried `mark` when it was evicted (say, a dirty mark).
    pub fn is_marked(&self, mark: Mark) -> bool {
        self.marks & (1 << mark.index()) != 0
    }

    /// Sets or clears `mark` in what a restore puts back (the page cache rebuilds the
    /// marks of pages it restores from their flags).
    pub(crate) fn set_mark(&mut self, mark: Mark, on: bool) {
        let bit = 1 << mark.index();
        if on {
            self.marks |= bit;
        } else {
            self.marks &= !bit;
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Evicted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evicted")
            .field("range", &self.range())
            .field("entry", &self.entry)
            .field("marks", &self.marks)
            .finish()
    }
}
