//! Conformance with the behaviours Linux's `lib/test_xarray.c` checks, written from the
//! catalogue in the research notes (no code or text taken from Linux).
//!
//! Where the kernel's semantics and ours differ, the test checks ours and says so: the
//! kernel treats a multi-order entry as one entry (a store or cmpxchg at any of its
//! indices replaces all of them), while this tree is a per-index map whose multi-index
//! entries are only a compact representation (touching one index splits the entry and
//! the other indices keep their value and marks). "Order `o`" below means a block of
//! `2^o` indices; `store_range` decomposes a range into aligned power-of-`SLOTS` blocks.
//!
//! Not ported (no such API here): ID allocation (`check_xa_alloc*`), reserved entries
//! (`check_reserve`), cursor stepping and `xas_pause` (`check_move`; restarting an
//! iterator is the equivalent, see `pause_and_restart_*`), range preallocation
//! (`check_create_range`), node accounting internals (`check_account`,
//! `check_workingset`; `check_invariants` covers the counts), pointer alignment
//! (`check_align`), and RCU retry placement (`check_xas_retry`, a concurrency matter for
//! the loom models). `check_find_3` (a marked iteration over an inverted range) is in
//! `edges::limits` with the other invalid ranges.
//!
//! By topic: `store` (single-index stores, inserts, compare-exchange, erase), `marks`,
//! `multi_index` (multi-index entries and range stores) and `iteration` (find, iterate,
//! pause, destroy). `cargo test --test xarray conformance::` runs in a few seconds in a
//! debug build; loops shrink under Miri (`cfg!(miri)`).

use std::sync::Arc;

use rangelock::XArray;

/// One `#[test]` per listed fan-out for the generic body `$name::<SLOTS>`.
macro_rules! instantiate {
    ($($name:ident => [$($test:ident: $slots:literal),+ $(,)?]);* $(;)?) => {$(
        mod $name {
            $(
                #[test]
                fn $test() {
                    super::$name::<$slots>()
                }
            )+
        }
    )*};
}

mod iteration;
mod marks;
mod multi_index;
mod store;

fn tree<const S: usize>() -> XArray<u64, S> {
    XArray::with_slots()
}

fn item(x: u64) -> Arc<u64> {
    Arc::new(x)
}
