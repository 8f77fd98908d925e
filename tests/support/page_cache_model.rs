//! The sequential model of `tests/mapping/model/`: a device (page index -> four
//! sectors), a page cache (index -> data and dirty flag, or a shadow value), the file
//! size, the page ranges of the held direct IOs, and the callbacks the mapping should
//! make. The geometry is computed here, not through the crate.

use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included};

use rangelock::mapping::MappingError;
use rangelock::LockError;

use super::mapping_ops::{inclusive, Bytes, Pos};

pub type Data = [u64; 4];
pub type Dev = BTreeMap<u64, Data>;
pub type Res<T> = Result<T, MappingError<Fail>>;
/// An edit's expected guard: its page range, the new size, the dirty pages handed over.
pub type Edit = Result<((u64, u64), u64, Vec<(u64, Data)>), MappingError>;

/// The error of a callback that was told to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fail;

/// A callback the mapping made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Fill(u64),
    FillBatch(Vec<u64>),
    Flush(u64, Data),
    WriteBack(u64, Data),
}

/// A cached entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Page(Data, bool),
    Shadow(u64),
}

/// The geometry, computed here (not through the crate).
#[derive(Clone, Copy)]
pub struct Geo {
    pub ps: u64,
    pub top: u64,
}

impl Geo {
    pub fn sector(self) -> u64 {
        self.ps / 4
    }
    pub fn byte(self, Pos(page, sector, off): Pos, base: u64) -> u64 {
        let page = base.saturating_add(page.at(self.top)).min(self.top);
        page * self.ps + u64::from(sector) * self.sector() + u64::from(off).min(self.sector() - 1)
    }
    /// The bounds as passed to the mapping.
    pub fn bounds(self, b: Bytes) -> (Bound<u64>, Bound<u64>) {
        let start = b.start.map(|p| self.byte(p, 0));
        let base = match b.start {
            Included(p) if b.relative => p.0.at(self.top),
            _ => 0,
        };
        (start, b.end.map(|p| self.byte(p, base)))
    }
    /// First and last byte, if any.
    pub fn span(self, b: (Bound<u64>, Bound<u64>)) -> Option<(u64, u64)> {
        inclusive(b)
    }
    pub fn pages_in(self, size: u64) -> u64 {
        size / self.ps + u64::from(size % self.ps != 0)
    }
}

/// Writes `value` to every sector that `[first, last]` touches, on the first and last
/// four pages of the range (a direct IO's data; a huge range is written sparsely).
pub fn io_sectors(g: Geo, (first, last): (u64, u64), mut f: impl FnMut(u64, usize)) {
    let (p, q) = (first / g.ps, last / g.ps);
    let pages = (p..=q.min(p.saturating_add(3))).chain(q.saturating_sub(3).max(p + 4)..=q);
    for page in pages {
        for s in 0..4u64 {
            let a = page * g.ps + s * g.sector();
            let b = a + (g.sector() - 1);
            if a <= last && b >= first {
                f(page, s as usize);
            }
        }
    }
}

pub fn dev_write(dev: &mut Dev, index: u64, data: Data) {
    if data == [0; 4] {
        dev.remove(&index);
    } else {
        dev.insert(index, data);
    }
}

/// An edit as the file system applies it on disk, after writing the handed-over pages.
#[derive(Clone, Copy, Debug)]
pub enum DiskEdit {
    Zero(u64, u64),
    Collapse(u64, u64),
    Insert(u64, u64),
}

pub fn disk_edit(g: Geo, dev: &mut Dev, edit: DiskEdit) {
    let old = std::mem::take(dev);
    for (page, mut data) in old {
        let to = match edit {
            DiskEdit::Zero(first, last) => {
                for (s, d) in data.iter_mut().enumerate() {
                    let a = page * g.ps + s as u64 * g.sector();
                    if a >= first && a + (g.sector() - 1) <= last {
                        *d = 0;
                    }
                }
                Some(page)
            }
            DiskEdit::Collapse(p, n) if page >= p => page.checked_sub(n).filter(|&to| to >= p),
            DiskEdit::Insert(p, n) if page >= p => page.checked_add(n).filter(|&to| to <= g.top),
            _ => Some(page),
        };
        if let Some(to) = to {
            dev_write(dev, to, data);
        }
    }
}

/// The sequential model.
pub struct Model {
    pub g: Geo,
    pub size: u64,
    pub cache: BTreeMap<u64, Slot>,
    pub dev: Dev,
    /// Page ranges of the held direct IOs, in the order taken.
    pub held: Vec<(u64, u64)>,
    pub calls: Vec<Call>,
}

impl Model {
    pub fn read_dev(&self, i: u64) -> Data {
        self.dev.get(&i).copied().unwrap_or([0; 4])
    }
    /// The first held index in `[first, last]`.
    pub fn held_in(&self, first: u64, last: u64) -> Option<u64> {
        self.held
            .iter()
            .filter(|&&(a, b)| a <= last && b >= first)
            .map(|&(a, _)| a.max(first))
            .min()
    }
    pub fn page(&self, i: u64) -> Option<(Data, bool)> {
        match self.cache.get(&i) {
            Some(&Slot::Page(d, dirty)) => Some((d, dirty)),
            _ => None,
        }
    }
    pub fn dirty_in(&self, first: u64, last: u64) -> Vec<u64> {
        let pages = self.cache.range(first..=last);
        pages
            .filter(|(_, s)| matches!(s, Slot::Page(_, true)))
            .map(|(&i, _)| i)
            .collect()
    }
    pub fn fault(&mut self, i: u64, fail: bool) -> Res<Data> {
        if let Some((data, _)) = self.page(i) {
            return Ok(data);
        }
        if i >= self.g.pages_in(self.size) {
            return Err(MappingError::BeyondEof {
                index: i,
                size: self.size,
            });
        }
        if self.held_in(i, i).is_some() {
            return Err(MappingError::Lock(LockError::WouldDeadlock { index: i }));
        }
        self.calls.push(Call::Fill(i));
        if fail {
            return Err(MappingError::Io(Fail));
        }
        let data = self.read_dev(i);
        self.cache.insert(i, Slot::Page(data, false));
        Ok(data)
    }
    /// Writes the dirty pages `dirty` back in order (failing at `fail_at`), logging
    /// `call`. Returns how many were written, or the error.
    pub fn write_back(
        &mut self,
        dirty: &[u64],
        fail_at: Option<u8>,
        call: fn(u64, Data) -> Call,
    ) -> Res<usize> {
        let fail = fail_at
            .filter(|_| !dirty.is_empty())
            .map(|n| usize::from(n) % dirty.len());
        for (k, &i) in dirty.iter().enumerate() {
            let (data, _) = self.page(i).unwrap();
            self.calls.push(call(i, data));
            if fail == Some(k) {
                return Err(MappingError::Io(Fail));
            }
            dev_write(&mut self.dev, i, data);
            self.cache.insert(i, Slot::Page(data, false));
        }
        Ok(dirty.len())
    }
    /// An edit of pages `[p, last]` keeping the dirty pages `keeps` says: the expected
    /// guard (range, size, dirty list), after which the device is edited.
    pub fn edit(
        &mut self,
        p: u64,
        last: u64,
        keeps: impl Fn(u64) -> bool,
        size: Result<u64, MappingError>,
        disk: DiskEdit,
    ) -> Edit {
        if let Some(index) = self.held_in(p, last) {
            return Err(MappingError::Lock(LockError::WouldDeadlock { index }));
        }
        self.size = size?;
        let gone: Vec<(u64, Slot)> = self.cache.range(p..=last).map(|(&i, &s)| (i, s)).collect();
        let mut dirty = Vec::new();
        for (i, slot) in gone {
            self.cache.remove(&i);
            if let Slot::Page(data, true) = slot {
                if keeps(i) {
                    dirty.push((i, data));
                }
            }
        }
        for &(i, data) in &dirty {
            dev_write(&mut self.dev, i, data);
        }
        disk_edit(self.g, &mut self.dev, disk);
        Ok(((p, last), self.size, dirty))
    }
    /// Lock runs `(first, last, holders)` of the held direct IOs, merged.
    pub fn lock_runs(&self) -> Vec<(u64, u64, u64)> {
        let ends = self
            .held
            .iter()
            .flat_map(|&(a, b)| [Some(a), b.checked_add(1)]);
        let mut starts: Vec<u64> = ends.flatten().collect();
        starts.sort_unstable();
        starts.dedup();
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        for (k, &s) in starts.iter().enumerate() {
            let e = starts.get(k + 1).map_or(u64::MAX, |n| n - 1);
            let count = self.held.iter().filter(|&&(a, b)| a <= s && s <= b).count() as u64;
            match runs.last_mut() {
                _ if count == 0 => {}
                Some(r) if r.1 + 1 == s && r.2 == count => r.1 = e,
                _ => runs.push((s, e, count)),
            }
        }
        runs
    }

    /// `read_pages` of pages `f..f + len` whose fill number `fail_at` fails: the pages
    /// read, in order, and the count or the error.
    pub fn read_pages(
        &mut self,
        f: u64,
        len: u64,
        fail_at: Option<u8>,
    ) -> (Vec<(u64, Data)>, Res<u64>) {
        if len == 0 {
            let range = Err(MappingError::InvalidRange {
                start: Included(f),
                end: Excluded(f),
            });
            return (Vec::new(), range);
        }
        let (mut read, mut fills) = (Vec::new(), 0u8);
        for i in f..f + len {
            let calls = self.calls.len();
            let got = self.fault(i, fail_at == Some(fills));
            fills += u8::from(self.calls.len() > calls);
            match got {
                Ok(data) => read.push((i, data)),
                Err(MappingError::BeyondEof { .. }) => break,
                Err(error) => return (read, Err(error)),
            }
        }
        let n = read.len() as u64;
        (read, Ok(n))
    }

    /// A readahead of pages `f..f + len` whose fill returns `give` pages.
    pub fn readahead(&mut self, f: u64, len: u64, give: Option<u8>, fail: bool) -> Res<usize> {
        let m = self;
        if len == 0 {
            return Err(MappingError::InvalidRange {
                start: Included(f),
                end: Excluded(f),
            });
        }
        let end = m.g.pages_in(m.size);
        let indices: Vec<u64> = (f..(f + len).min(end))
            .filter(|&i| m.page(i).is_none() && m.held_in(i, i).is_none())
            .collect();
        if indices.is_empty() {
            return Ok(0);
        }
        m.calls.push(Call::FillBatch(indices.clone()));
        if fail {
            return Err(MappingError::Io(Fail));
        }
        let n = give.map_or(indices.len(), usize::from).min(indices.len());
        for &i in &indices[..n] {
            let data = m.read_dev(i);
            m.cache.insert(i, Slot::Page(data, false));
        }
        Ok(n)
    }

    /// Collapse or insert in the model: the checks, then the edit.
    pub fn move_range(
        &mut self,
        bounds: (Bound<u64>, Bound<u64>),
        collapse: bool,
    ) -> (Edit, DiskEdit) {
        let (g, size) = (self.g, self.size);
        let Some((first, last)) = g.span(bounds) else {
            return (
                Err(MappingError::InvalidRange {
                    start: bounds.0,
                    end: bounds.1,
                }),
                DiskEdit::Zero(1, 0),
            );
        };
        // A range ending at u64::MAX ends at 2^64, a page boundary.
        if first % g.ps != 0 || (last != u64::MAX && (last + 1) % g.ps != 0) {
            return (
                Err(MappingError::Unaligned {
                    first,
                    last,
                    page_size: g.ps,
                }),
                DiskEdit::Zero(1, 0),
            );
        }
        // The length is at most 2^64 (then `None`).
        let (p, len) = (first / g.ps, (last - first).checked_add(1));
        let outside = Err(MappingError::OutsideFile { first, last, size });
        let (new_size, disk) = if collapse {
            let new_size = match len {
                Some(len) if last < size.saturating_sub(1) && size > 0 => Ok(size - len),
                _ => outside,
            };
            (new_size, DiskEdit::Collapse(p, len.unwrap_or(0) / g.ps))
        } else {
            let added = (last - first).saturating_add(1);
            let grown = len
                .and_then(|len| size.checked_add(len))
                .ok_or(MappingError::TooLarge { size, added });
            let len = len.unwrap_or(0);
            (
                if first >= size { outside } else { grown },
                DiskEdit::Insert(p, len / g.ps),
            )
        };
        let keeps = move |i: u64| !collapse || i * g.ps > last;
        (self.edit(p, u64::MAX, keeps, new_size, disk), disk)
    }
}
