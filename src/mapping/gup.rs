//! Direct writes whose source buffer may be a mapping of the same file (the gup
//! recursion): fault in, lock, pin without blocking, retry, fall back to buffered IO.
//!
//! A direct write locks its pages, then pins the user's buffer. If the buffer is a
//! memory mapping of those pages, pinning faults on a page the writer itself locked: a
//! blocking fault waits for itself forever (here it gets `WouldDeadlock` instead). If the
//! buffer maps another file that another thread's direct write has locked, whose buffer
//! maps this one, blocking faults deadlock in a cycle. So pinning never blocks: the
//! source is faulted in *before* the lock, with nothing held, and only pinned (resident
//! pages, no waiting) under it. A pin that fails (the lock evicted the very pages, or
//! another writer holds them) drops the lock and tries again, at most `retries` times,
//! then the write goes through the page cache, which needs no pin. Nothing waits while
//! holding a lock that the thing it waits for might need, and the retries are bounded.

use core::fmt;
use core::ops::{RangeBounds, RangeInclusive};
use std::sync::Arc;

use super::direct::{DirectIo, DirectIoKind};
use super::error::MappingError;
use super::page::Page;
use super::Mapping;

/// The source buffer of a direct write, which may be a memory mapping.
pub trait WriteSource {
    /// The pinned buffer (pages that stay valid while it lives).
    type Pinned;
    /// The error of faulting the buffer in.
    type Error;

    /// Makes the buffer resident, waiting as needed. Called with nothing locked.
    fn fault_in(&mut self) -> Result<(), Self::Error>;

    /// Pins the buffer without waiting: `None` if any part is not resident or is
    /// locked. Called while the destination's pages are locked.
    fn pin(&mut self) -> Option<Self::Pinned>;
}

/// Which way [`Mapping::direct_write_from`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritePath {
    /// Directly, after this many failed pins.
    Direct {
        /// Pins that failed before the one that succeeded.
        retries: usize,
    },
    /// Through the page cache, after every pin failed.
    Buffered,
}

/// A [`WriteSource`] that is a range of pages of a [`Mapping`] (an mmap of a file): it
/// faults them in with `fill` and pins them with lock-free lookups.
pub struct MappedBuffer<'m, P: Send + Sync + 'static, F, const SLOTS: usize = 64> {
    mapping: &'m Mapping<P, SLOTS>,
    pages: RangeInclusive<u64>,
    fill: F,
}

impl<'m, P: Send + Sync + 'static, F, const SLOTS: usize> MappedBuffer<'m, P, F, SLOTS> {
    /// The pages `pages` of `mapping`, read in with `fill` when missing.
    pub fn new(mapping: &'m Mapping<P, SLOTS>, pages: RangeInclusive<u64>, fill: F) -> Self {
        MappedBuffer {
            mapping,
            pages,
            fill,
        }
    }
}

impl<P, F, E, const SLOTS: usize> WriteSource for MappedBuffer<'_, P, F, SLOTS>
where
    P: Send + Sync + 'static,
    F: FnMut(u64) -> Result<P, E>,
{
    type Pinned = Vec<Arc<Page<P>>>;
    type Error = MappingError<E>;

    fn fault_in(&mut self) -> Result<(), MappingError<E>> {
        for index in self.pages.clone() {
            self.mapping.fault(index, &mut self.fill)?;
        }
        Ok(())
    }

    fn pin(&mut self) -> Option<Vec<Arc<Page<P>>>> {
        self.pages
            .clone()
            .map(|index| self.mapping.get(index).filter(|page| !page.is_evicted()))
            .collect()
    }
}

impl<P: Send + Sync + 'static, F, const SLOTS: usize> fmt::Debug for MappedBuffer<'_, P, F, SLOTS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedBuffer")
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}

impl<P: Send + Sync + 'static, const SLOTS: usize> Mapping<P, SLOTS> {
    /// A direct write of `bytes` from `source`, which may be a mapping of this very
    /// range (or of a file whose own direct write maps this one): never deadlocks,
    /// never livelocks (see the [module docs](super)).
    ///
    /// Up to `retries + 1` times: fault the source in with nothing locked, start the
    /// direct IO ([`direct_io`](Self::direct_io) with `flush`), pin the source without
    /// blocking, and on success run `direct(io, pinned)` and return. If no pin succeeds,
    /// run `buffered(self)`, which writes through the page cache.
    ///
    /// ```
    /// use rangelock::mapping::{DirectIoKind, MappedBuffer, Mapping, WritePath};
    ///
    /// let file: Mapping<u64> = Mapping::new();
    /// file.set_size(4 * 4096);
    /// let read = |i: u64| Ok::<u64, ()>(i * 10);
    /// // The source buffer maps pages 0..=1 of the same file, the target is bytes 0..8192.
    /// let mut source = MappedBuffer::new(&file, 0..=1, read);
    /// let path = file
    ///     .direct_write_from(
    ///         0..8192,
    ///         &mut source,
    ///         2,
    ///         |_, _| Ok(()),
    ///         |_io, _pinned| unreachable!("the pages it maps are the ones being written"),
    ///         |file| {
    ///             for i in 0..2 {
    ///                 file.write(i, read, |p| *p += 1)?;
    ///             }
    ///             Ok(())
    ///         },
    ///     )
    ///     .unwrap();
    /// assert_eq!(path, WritePath::Buffered);
    /// assert_eq!(file.get(1).unwrap().read(|p| *p), 11);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn direct_write_from<S: WriteSource>(
        &self,
        bytes: impl RangeBounds<u64> + Clone,
        source: &mut S,
        retries: usize,
        mut flush: impl FnMut(u64, &P) -> Result<(), S::Error>,
        direct: impl FnOnce(&DirectIo<'_, P, SLOTS>, S::Pinned) -> Result<(), S::Error>,
        buffered: impl FnOnce(&Self) -> Result<(), S::Error>,
    ) -> Result<WritePath, MappingError<S::Error>> {
        for attempt in 0..=retries {
            source.fault_in().map_err(MappingError::Io)?;
            let io = self.direct_io(bytes.clone(), DirectIoKind::Write, &mut flush)?;
            if let Some(pinned) = source.pin() {
                direct(&io, pinned).map_err(MappingError::Io)?;
                return Ok(WritePath::Direct { retries: attempt });
            }
        }
        buffered(self).map_err(MappingError::Io)?;
        Ok(WritePath::Buffered)
    }
}
