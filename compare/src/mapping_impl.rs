//! [`PageCache`] for [`Mapping`]: the `rangelock` strategy, lock entries in the page
//! index itself.
//!
//! Each operation is the [`Mapping`] call of the same name with the device plugged in:
//! fills read it, `flush` and write-back write it; a direct IO runs `io` while it holds
//! its [`DirectIo`](rangelock::mapping::DirectIo) guard, an edit runs `edit` (after writing
//! the surviving dirty pages its [`EditGuard`](rangelock::mapping::EditGuard) lists) while it
//! holds the guard.

use core::convert::Infallible;
use core::ops::{Range, RangeInclusive};

use rangelock::mapping::{DirectIoKind, EditGuard, Mapping, MappingError};

use crate::page_index;
use crate::{Device, PageCache};

/// A device read as an infallible fill.
fn fill<P>(device: &dyn Device<P>) -> impl FnMut(u64) -> Result<P, Infallible> + '_ {
    move |index| Ok(device.read_page(index))
}

/// A device write as an infallible flush or write-back.
fn flush<P>(device: &dyn Device<P>) -> impl FnMut(u64, &P) -> Result<(), Infallible> + '_ {
    move |index, data| {
        device.write_page(index, data);
        Ok(())
    }
}

/// Writes an edit's surviving dirty pages, then runs `edit` with the range held.
fn finish_edit<P: Send + Sync + 'static, const S: usize>(
    mut guard: EditGuard<'_, P, S>,
    device: &dyn Device<P>,
    edit: &mut dyn FnMut(),
) {
    for (index, page) in guard.dirty() {
        page.read(|data| device.write_page(*index, data));
    }
    guard.dirty_written();
    edit();
}

impl<P: Send + Sync + 'static, const S: usize> PageCache<P> for Mapping<P, S> {
    fn strategy(&self) -> &'static str {
        "rangelock"
    }

    fn page_size(&self) -> u64 {
        Mapping::page_size(self)
    }

    fn size(&self) -> u64 {
        Mapping::size(self)
    }

    fn set_size(&self, size: u64) -> u64 {
        Mapping::set_size(self, size)
    }

    fn fault(
        &self,
        index: u64,
        device: &dyn Device<P>,
        read: &mut dyn FnMut(&P),
    ) -> Result<(), MappingError> {
        let page = Mapping::fault(self, index, fill(device))?;
        page.read(|data| read(data));
        Ok(())
    }

    fn read(
        &self,
        index: u64,
        device: &dyn Device<P>,
        read: &mut dyn FnMut(&P),
    ) -> Result<(), MappingError> {
        Mapping::read(self, index, fill(device), read)
    }

    fn write(
        &self,
        index: u64,
        device: &dyn Device<P>,
        write: &mut dyn FnMut(&mut P),
    ) -> Result<(), MappingError> {
        Mapping::write(self, index, fill(device), write)
    }

    fn readahead(
        &self,
        pages: RangeInclusive<u64>,
        device: &dyn Device<P>,
    ) -> Result<usize, MappingError> {
        Mapping::readahead(self, pages, |indices: &[u64]| {
            Ok(indices.iter().map(|&i| device.read_page(i)).collect())
        })
    }

    fn writeback(
        &self,
        pages: RangeInclusive<u64>,
        device: &dyn Device<P>,
    ) -> Result<usize, MappingError> {
        Mapping::writeback(self, pages, flush(device))
    }

    fn reclaim(&self, index: u64) -> bool {
        Mapping::reclaim(self, index)
    }

    fn direct_io(
        &self,
        bytes: Range<u64>,
        kind: DirectIoKind,
        device: &dyn Device<P>,
        io: &mut dyn FnMut(),
    ) -> Result<(), MappingError> {
        let guard = Mapping::direct_io(self, bytes, kind, flush(device))?;
        io();
        drop(guard);
        Ok(())
    }

    fn truncate(
        &self,
        size: u64,
        device: &dyn Device<P>,
        edit: &mut dyn FnMut(),
    ) -> Result<(), MappingError> {
        finish_edit(Mapping::truncate(self, size)?, device, edit);
        Ok(())
    }

    fn punch_hole(
        &self,
        bytes: Range<u64>,
        device: &dyn Device<P>,
        edit: &mut dyn FnMut(),
    ) -> Result<(), MappingError> {
        finish_edit(Mapping::punch_hole(self, bytes)?, device, edit);
        Ok(())
    }

    fn check_quiescent(&self) -> Result<(), String> {
        page_index::check(self.pages(), |page| {
            page.is_writeback() || page.is_evicted()
        })
    }
}
