//! A counting global allocator: `System`, keeping per thread the bytes currently live,
//! the high-water mark of that, the bytes ever allocated and the number of allocations.
//! Per thread, because the test harness runs tests in parallel and their allocations
//! would otherwise mix; a bench or an example measures on the thread that does the work.
//!
//! A `#[global_allocator]` belongs to one binary, so each declares its own:
//!
//! ```
//! use rangelock_testkit::counting_alloc::{allocated, Counting};
//!
//! #[global_allocator]
//! static ALLOCATOR: Counting = Counting;
//!
//! fn main() {
//!     let before = allocated();
//!     let v: Vec<u64> = Vec::with_capacity(8);
//!     assert_eq!(allocated() - before, 64);
//!     drop(v);
//! }
//! ```
//!
//! The bookkeeping is a few thread-local cell updates per call (no atomics, nothing
//! shared), so a timed loop that does not allocate pays nothing for it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// `System`, counting per thread.
pub struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The largest `LIVE` since the last [`reset_peak`].
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// Bytes ever allocated by this thread.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    /// Allocations (and reallocations) ever made by this thread.
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn record(allocated: usize, freed: usize) {
    // `try_with`: the allocator may run while the thread's locals are torn down. The
    // cells are `const`-initialised and need no destructor, so they never allocate.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + allocated as isize - freed as isize;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
    if allocated > 0 {
        let _ = ALLOCATED.try_with(|total| total.set(total.get() + allocated));
        let _ = CALLS.try_with(|calls| calls.set(calls.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees carry over; the bookkeeping touches only thread-local cells.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from our caller.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            record(layout.size(), 0);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from our caller.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record(layout.size(), 0);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from our caller.
        unsafe { System.dealloc(ptr, layout) };
        record(0, layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from our caller.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            record(new_size, layout.size());
        }
        new
    }
}

/// Bytes live on this thread (allocated here minus freed here).
pub fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Bytes ever allocated on this thread.
pub fn allocated() -> usize {
    ALLOCATED.with(Cell::get)
}

/// Allocations (and reallocations) ever made on this thread.
pub fn allocations() -> usize {
    CALLS.with(Cell::get)
}

/// Starts a new high-water mark at the current live bytes, and returns them.
pub fn reset_peak() -> isize {
    let now = live();
    PEAK.with(|peak| peak.set(now));
    now
}

/// The most bytes live since the last [`reset_peak`].
pub fn peak() -> isize {
    PEAK.with(Cell::get)
}
