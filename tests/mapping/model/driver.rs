//! The driver of the model test: runs one operation sequence on a mapping and on the
//! sequential model (`support/page_cache_model.rs`) side by side, and compares every
//! answer, callback and piece of state after each operation.
//!
//! Every other step runs as a task: a fault, direct IO or edit at an odd step calls the
//! asynchronous variant (`fault_async`, `direct_io_async`, `truncate_async`, ...) and
//! must resolve on its first poll (nothing else runs, so nothing may make it wait),
//! unless its pages meet a direct IO the driver holds: there a thread is told
//! `WouldDeadlock` and a task would wait for ever, so the step stays blocking. Both
//! kinds must give the model's answers and callbacks. Only a thread's direct IOs are
//! held on between steps (a thread waits for a task's guard, where the model expects
//! `WouldDeadlock`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::{Bound, RangeInclusive};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use rangelock::mapping::{DetachedDirectIo, DetachedEditGuard, DirectIo, DirectIoKind, EditGuard};
use rangelock::mapping::{Mapping, MappingError, Page, PageGeometry};
use rangelock::mapping::{DIRTY, WRITEBACK};
use rangelock::{Entry, LockMode, XArray};

use crate::support::mapping_ops::{Op, Pages};
use crate::support::page_cache_model::{dev_write, disk_edit, io_sectors};
use crate::support::page_cache_model::{Call, Data, Dev, DiskEdit, Edit, Fail, Geo, Model, Slot};

/// Runs `ops` on both tree shapes. One thread takes the ranges of random operations in
/// random order on purpose: lock-order checking (`--features lockdep`) is off for it.
pub(super) fn run(ops: &[Op]) {
    rangelock::lockdep::unchecked(|| run_unchecked(ops))
}

fn run_unchecked(ops: &[Op]) {
    let wide: Mapping<Data> = Mapping::with_page_size(64).unwrap();
    Driver::new(&wide).run(ops);
    let narrow: Mapping<Data, 4> =
        Mapping::with_tree(XArray::with_slots(), PageGeometry::new(4).unwrap());
    Driver::new(&narrow).run(ops);
}

/// The output of an asynchronous operation that cannot wait: `future` must resolve on
/// its first poll.
#[track_caller]
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an uncontended asynchronous operation waited"),
    }
}

/// An edit's guard: a thread's, or a task's.
enum AnyEdit<'m, const S: usize> {
    Thread(EditGuard<'m, Data, S>),
    Task(DetachedEditGuard<'m, Data, S>),
}

impl<const S: usize> AnyEdit<'_, S> {
    fn pages(&self) -> RangeInclusive<u64> {
        match self {
            AnyEdit::Thread(g) => g.pages(),
            AnyEdit::Task(g) => g.pages(),
        }
    }

    fn size(&self) -> u64 {
        match self {
            AnyEdit::Thread(g) => g.size(),
            AnyEdit::Task(g) => g.size(),
        }
    }

    fn dirty(&self) -> &[(u64, Arc<Page<Data>>)] {
        match self {
            AnyEdit::Thread(g) => g.dirty(),
            AnyEdit::Task(g) => g.dirty(),
        }
    }
}

/// The mapping under test, its device, the callbacks it made, its held direct IOs, and
/// the model beside it.
struct Driver<'m, const S: usize> {
    map: &'m Mapping<Data, S>,
    dev: RefCell<Dev>,
    calls: RefCell<Vec<Call>>,
    held: Vec<DirectIo<'m, Data, S>>,
    model: Model,
    at: String,
}

impl<'m, const S: usize> Driver<'m, S> {
    fn new(map: &'m Mapping<Data, S>) -> Self {
        let g = Geo {
            ps: map.page_size(),
            top: u64::MAX / map.page_size(),
        };
        let model = Model {
            g,
            size: 0,
            cache: BTreeMap::new(),
            dev: Dev::new(),
            held: Vec::new(),
            calls: Vec::new(),
        };
        Driver {
            map,
            dev: RefCell::default(),
            calls: RefCell::default(),
            held: Vec::new(),
            model,
            at: String::new(),
        }
    }

    fn fill(&self, fail: bool) -> impl FnMut(u64) -> Result<Data, Fail> + '_ {
        move |i| {
            self.calls.borrow_mut().push(Call::Fill(i));
            if fail {
                return Err(Fail);
            }
            Ok(self.dev.borrow().get(&i).copied().unwrap_or([0; 4]))
        }
    }

    /// A flush or write-back callback that writes the device, failing at call `fail`.
    fn writer(
        &self,
        call: fn(u64, Data) -> Call,
        fail: Option<usize>,
    ) -> impl FnMut(u64, &Data) -> Result<(), Fail> + '_ {
        let mut n = 0;
        move |i, data| {
            self.calls.borrow_mut().push(call(i, *data));
            n += 1;
            if fail == Some(n - 1) {
                return Err(Fail);
            }
            dev_write(&mut self.dev.borrow_mut(), i, *data);
            Ok(())
        }
    }

    /// [`writer`](Self::writer) as an asynchronous direct IO's `flush`: it is handed the
    /// page, already marked evicted and still dirty.
    fn async_writer(
        &self,
        fail: Option<usize>,
    ) -> impl FnMut(u64, Arc<Page<Data>>) -> std::future::Ready<Result<(), Fail>> + '_ {
        let mut write = self.writer(Call::Flush, fail);
        move |i, page| {
            assert!(
                page.is_evicted() && page.is_dirty(),
                "handed over: {page:?}"
            );
            std::future::ready(page.read(|data| write(i, data)))
        }
    }

    /// Whether the operation of step `step` over pages `p..=q` runs as a task (see the
    /// module docs).
    fn as_task(&self, step: u64, p: u64, q: u64) -> bool {
        step % 2 == 1 && self.model.held_in(p, q).is_none()
    }

    /// The index of the failing call, as the model counts it.
    fn fail_index(&self, dirty: &[u64], fail_at: Option<u8>) -> Option<usize> {
        fail_at
            .filter(|_| !dirty.is_empty())
            .map(|n| usize::from(n) % dirty.len())
    }

    fn run(mut self, ops: &[Op]) {
        for (step, op) in ops.iter().enumerate() {
            self.at = format!("page size {}, step {step}: {op:?}", self.model.g.ps);
            self.step(step as u64, op);
            let (got, want) = (self.calls.take(), std::mem::take(&mut self.model.calls));
            assert_eq!(got, want, "callbacks at {}", self.at);
            self.check();
        }
        self.held.clear();
        self.model.held.clear();
        self.at = "the end (guards dropped)".into();
        self.check();
    }

    fn step(&mut self, step: u64, op: &Op) {
        let (g, map, at) = (self.model.g, self.map, self.at.clone());
        let value = 1000 + step;
        match *op {
            Op::SetSize(pos) => {
                let size = g.byte(pos, 0);
                self.model.size = self.model.size.max(size);
                assert_eq!(map.set_size(size), self.model.size, "{at}");
            }
            Op::Fault { page, fail } | Op::Read { page, fail } => {
                let i = page.at(g.top);
                let want = self.model.fault(i, fail);
                let got = if matches!(op, Op::Fault { .. }) {
                    let page = if self.as_task(step, i, i) {
                        let mut fill = self.fill(fail);
                        ready(map.fault_async(i, async move { fill(i) }))
                    } else {
                        map.fault(i, self.fill(fail))
                    };
                    page.map(|p| p.read(|d| *d))
                } else {
                    map.read(i, self.fill(fail), |d| *d)
                };
                assert_eq!(got, want, "{at}");
            }
            Op::ReadPages {
                first,
                len,
                fail_at,
            } => {
                let (f, len) = (first.at(g.top), u64::from(len));
                let (want_read, want) = self.model.read_pages(f, len, fail_at);
                let (mut read, mut fills) = (Vec::new(), 0u8);
                let fill = |i| {
                    let fail = fail_at == Some(fills);
                    fills += 1;
                    self.fill(fail)(i)
                };
                let got = map.read_pages(f..f + len, fill, |i, d| read.push((i, *d)));
                assert_eq!((read, got), (want_read, want), "{at}");
            }
            Op::Write { page, sector, fail } => {
                let (i, s) = (page.at(g.top), usize::from(sector));
                let want = self.model.fault(i, fail).map(|mut data| {
                    data[s] = value;
                    self.model.cache.insert(i, Slot::Page(data, true));
                });
                assert_eq!(
                    map.write(i, self.fill(fail), |d| d[s] = value),
                    want,
                    "{at}"
                );
            }
            Op::Readahead {
                first,
                len,
                give,
                fail,
            } => {
                let (f, len) = (first.at(g.top), u64::from(len));
                let want = self.model.readahead(f, len, give, fail);
                let got = map.readahead(f..f + len, |indices| {
                    self.calls
                        .borrow_mut()
                        .push(Call::FillBatch(indices.to_vec()));
                    if fail {
                        return Err(Fail);
                    }
                    let n = give.map_or(indices.len(), usize::from);
                    let dev = self.dev.borrow();
                    Ok(indices
                        .iter()
                        .take(n)
                        .map(|i| dev.get(i).copied().unwrap_or([0; 4]))
                        .collect())
                });
                assert_eq!(got, want, "{at}");
            }
            Op::DirtyPages(pages) => {
                let (bounds, dirty) = self.dirty_of(pages);
                assert_eq!(map.dirty_pages(bounds), dirty, "{at}");
            }
            Op::Writeback { pages, fail_at } => {
                let (bounds, dirty) = self.dirty_of(pages);
                let fail = self.fail_index(&dirty, fail_at);
                let want = self.model.write_back(&dirty, fail_at, Call::WriteBack);
                assert_eq!(
                    map.writeback(bounds, self.writer(Call::WriteBack, fail)),
                    want,
                    "{at}"
                );
            }
            Op::Direct {
                bytes,
                write,
                fail_at,
                hold,
            } => self.direct(step, g.bounds(bytes), write, fail_at, hold, value),
            Op::Release(k) => {
                if !self.held.is_empty() {
                    let k = usize::from(k) % self.held.len();
                    drop(self.held.remove(k));
                    self.model.held.remove(k);
                }
            }
            Op::Truncate(pos) => {
                let size = g.byte(pos, 0);
                let want = self.model.edit(
                    size / g.ps,
                    u64::MAX,
                    |i| i * g.ps < size,
                    Ok(size),
                    DiskEdit::Zero(size, u64::MAX),
                );
                let got = if self.as_task(step, size / g.ps, g.top) {
                    ready(map.truncate_async(size)).map(AnyEdit::Task)
                } else {
                    map.truncate(size).map(AnyEdit::Thread)
                };
                self.edited(got, want, DiskEdit::Zero(size, u64::MAX));
            }
            Op::PunchHole(bytes) => {
                let bounds = g.bounds(bytes);
                let want = match g.span(bounds) {
                    None => Err(MappingError::InvalidRange {
                        start: bounds.0,
                        end: bounds.1,
                    }),
                    Some((first, last)) => {
                        let partial = |i: u64| i * g.ps < first || i * g.ps + (g.ps - 1) > last;
                        let size = Ok(self.model.size);
                        self.model.edit(
                            first / g.ps,
                            last / g.ps,
                            partial,
                            size,
                            DiskEdit::Zero(first, last),
                        )
                    }
                };
                let disk = g.span(bounds).map(|(a, b)| DiskEdit::Zero(a, b));
                let (p, q) = g.span(bounds).map_or((0, 0), |(a, b)| (a / g.ps, b / g.ps));
                let got = if self.as_task(step, p, q) {
                    ready(map.punch_hole_async(bounds)).map(AnyEdit::Task)
                } else {
                    map.punch_hole(bounds).map(AnyEdit::Thread)
                };
                self.edited(got, want, disk.unwrap_or(DiskEdit::Zero(1, 0)));
            }
            Op::Collapse(bytes) | Op::Insert(bytes) => {
                let collapse = matches!(op, Op::Collapse(_));
                let bounds = g.bounds(bytes);
                let (want, disk) = self.model.move_range(bounds, collapse);
                let p = g.span(bounds).map_or(0, |(a, _)| a / g.ps);
                let got = match (collapse, self.as_task(step, p, g.top)) {
                    (true, false) => map.collapse_range(bounds).map(AnyEdit::Thread),
                    (false, false) => map.insert_range(bounds).map(AnyEdit::Thread),
                    (true, true) => ready(map.collapse_range_async(bounds)).map(AnyEdit::Task),
                    (false, true) => ready(map.insert_range_async(bounds)).map(AnyEdit::Task),
                };
                self.edited(got, want, disk);
            }
            Op::Drop(page) => {
                let i = page.at(g.top);
                let want = matches!(self.model.page(i), Some((_, false)));
                if want {
                    self.model.cache.remove(&i);
                }
                assert_eq!(map.reclaim(i), want, "{at}");
            }
            Op::Reclaim(page) => {
                let i = page.at(g.top);
                if let Some((_, false)) = self.model.page(i) {
                    self.model.cache.insert(i, Slot::Shadow(value));
                    let page = map.get(i).expect("a cached page");
                    let old =
                        map.pages()
                            .compare_exchange(i, &Entry::Item(page), Entry::Value(value));
                    assert!(old.is_ok(), "{at}");
                }
            }
        }
    }

    /// The page bounds of `pages` and the model's dirty pages in them.
    fn dirty_of(&self, Pages(s, e): Pages) -> ((Bound<u64>, Bound<u64>), Vec<u64>) {
        let top = self.model.g.top;
        let bounds = (s.map(|p| p.at(top)), e.map(|p| p.at(top)));
        let span = self.model.g.span(bounds);
        (
            bounds,
            span.map_or(Vec::new(), |(a, b)| self.model.dirty_in(a, b)),
        )
    }

    /// Compares an edit's guard with the model's, then does what the file system does:
    /// writes the handed-over pages, edits the disk, drops the guard.
    fn edited(&mut self, got: Result<AnyEdit<'_, S>, MappingError>, want: Edit, disk: DiskEdit) {
        let at = &self.at;
        match (got, want) {
            (Ok(guard), Ok((range, size, dirty))) => {
                assert_eq!(guard.pages(), range.0..=range.1, "{at}");
                assert_eq!((guard.size(), self.map.size()), (size, size), "{at}");
                let handed = guard.dirty().iter().map(|(i, page)| {
                    assert!(page.is_evicted() && !page.is_dirty(), "{at}");
                    (*i, page.read(|d| *d))
                });
                let handed: Vec<(u64, Data)> = handed.collect();
                assert_eq!(handed, dirty, "dirty pages handed over at {at}");
                let mut dev = self.dev.borrow_mut();
                for (i, data) in handed {
                    dev_write(&mut dev, i, data);
                }
                disk_edit(self.model.g, &mut dev, disk);
            }
            (Err(got), Err(want)) => assert_eq!(got, want, "{at}"),
            (got, want) => panic!(
                "{at}: got {:?}, want {want:?}",
                got.map(|g| (g.pages(), g.size()))
            ),
        }
    }

    fn direct(
        &mut self,
        step: u64,
        bounds: (Bound<u64>, Bound<u64>),
        write: bool,
        fail_at: Option<u8>,
        hold: bool,
        value: u64,
    ) {
        let (g, at) = (self.model.g, self.at.clone());
        let kind = if write {
            DirectIoKind::Write
        } else {
            DirectIoKind::Read
        };
        let Some((first, last)) = g.span(bounds) else {
            let got = if step % 2 == 1 {
                ready(
                    self.map
                        .direct_io_async(bounds, kind, self.async_writer(None)),
                )
                .map(drop)
            } else {
                self.map
                    .direct_io(bounds, kind, self.writer(Call::Flush, None))
                    .map(drop)
            };
            assert_eq!(
                got,
                Err(MappingError::InvalidRange {
                    start: bounds.0,
                    end: bounds.1
                }),
                "{at}"
            );
            return;
        };
        let (p, q) = (first / g.ps, last / g.ps);
        let dirty = self.model.dirty_in(p, q);
        let fail = self.fail_index(&dirty, fail_at);
        let want = self.model.write_back(&dirty, fail_at, Call::Flush);
        // A thread's guard, or a task's: the latter lives until the IO is done.
        type Guards<'m, const S: usize> = (
            Option<DirectIo<'m, Data, S>>,
            Option<DetachedDirectIo<'m, Data, S>>,
        );
        let got = if self.as_task(step, p, q) {
            let io = ready(
                self.map
                    .direct_io_async(bounds, kind, self.async_writer(fail)),
            );
            io.map(|io| ((io.pages(), io.bytes(), io.kind()), (None, Some(io))))
        } else {
            let io = self
                .map
                .direct_io(bounds, kind, self.writer(Call::Flush, fail));
            io.map(|io| ((io.pages(), io.bytes(), io.kind()), (Some(io), None)))
        };
        let (shape, (io, _task_io)): (_, Guards<'_, S>) = match (got, want) {
            (Ok(io), Ok(_)) => io,
            (Err(got), Err(want)) => return assert_eq!(got, want, "{at}"),
            (Err(got), want) => panic!("{at}: got {got:?}, want {want:?}"),
            (Ok(io), want) => panic!("{at}: got {:?}, want {want:?}", io.0),
        };
        assert_eq!(shape, (p..=q, first..=last, kind), "{at}");
        let locked = self.map.pages().get(p);
        assert!(
            matches!(
                locked,
                Entry::Locked {
                    mode: LockMode::Shared,
                    ..
                }
            ),
            "{at}: {locked:?}"
        );
        let evicted: Vec<u64> = self.model.cache.range(p..=q).map(|(&i, _)| i).collect();
        for i in evicted {
            self.model.cache.remove(&i);
        }
        // The IO itself, on both devices (a read sees what the flush wrote).
        for dev in [&mut *self.dev.borrow_mut(), &mut self.model.dev] {
            let mut read = Vec::new();
            io_sectors(g, (first, last), |page, s| {
                let mut data = dev.get(&page).copied().unwrap_or([0; 4]);
                read.push(data[s]);
                data[s] = value;
                if write {
                    dev_write(dev, page, data);
                }
            });
        }
        // A task's guard is not held on: the model answers `WouldDeadlock` for a held
        // range, which only a thread's own guards give (a thread waits for a task's).
        if let Some(io) = io.filter(|_| hold && self.held.len() < 3) {
            self.held.push(io);
            self.model.held.push((p, q));
        }
    }

    /// The mapping's whole state against the model's.
    fn check(&self) {
        let (map, at) = (self.map, &self.at);
        let (mut cache, mut locks) = (BTreeMap::new(), Vec::<(u64, u64, u64)>::new());
        for (span, entry) in map.pages().iter(..) {
            let (a, b) = (*span.start(), *span.end());
            match entry {
                Entry::Item(page) => {
                    assert_eq!(a, b, "{at}");
                    assert!(
                        page.is_uptodate() && !page.is_evicted() && !page.is_writeback(),
                        "{at}"
                    );
                    assert_eq!(
                        map.pages().get_mark(a, DIRTY),
                        page.is_dirty(),
                        "DIRTY mark of {a} at {at}"
                    );
                    assert!(!map.pages().get_mark(a, WRITEBACK), "{at}");
                    cache.insert(a, Slot::Page(page.read(|d| *d), page.is_dirty()));
                }
                Entry::Value(v) => {
                    assert!(a == b && !map.pages().get_mark(a, DIRTY), "{at}");
                    cache.insert(a, Slot::Shadow(v));
                }
                Entry::Locked { mode, holders } => {
                    assert_eq!(mode, LockMode::Shared, "{at}");
                    match locks.last_mut() {
                        Some(r) if r.1 + 1 == a && r.2 == holders => r.1 = b,
                        _ => locks.push((a, b, holders)),
                    }
                }
                Entry::Empty => panic!("{at}: iter reported an empty span"),
            }
        }
        let m = &self.model;
        assert_eq!(cache, m.cache, "cache at {at}");
        assert_eq!(locks, m.lock_runs(), "lock entries at {at}");
        assert_eq!(
            map.dirty_pages(..),
            m.dirty_in(0, u64::MAX),
            "dirty_pages at {at}"
        );
        let pages = m
            .cache
            .values()
            .filter(|s| matches!(s, Slot::Page(..)))
            .count();
        assert_eq!(map.cached_pages(), pages, "{at}");
        assert_eq!(map.size(), m.size, "{at}");
        assert_eq!(*self.dev.borrow(), m.dev, "device at {at}");
        map.pages()
            .check_invariants()
            .unwrap_or_else(|e| panic!("{at}: {e}"));
    }
}
