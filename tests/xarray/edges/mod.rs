//! Edge-case tests of the public tree API: the edge indices (0, 63, 64, 4095, 4096, 2^32,
//! u64::MAX - 1, u64::MAX), value limits, invalid ranges, values handed back on failure,
//! and the tree's height following its contents.
//!
//! Every test body is generic over the fan-out and runs for `SLOTS` = 64 (the default),
//! 4 (the tiny test geometry), and 2, 8 and 32, whose top node is partial (8 and 32 slots
//! do not divide 64 index bits evenly). `check_invariants` runs after every mutation.
//!
//! By topic: `placement` (entries at the edge indices, alone and together), `limits`
//! (multi-index entries at the top, value limits, invalid ranges, values handed back) and
//! `shape` (height, `clear`, read guards, `len`, long iterations).

use rangelock::XArray;

/// Runs the generic test body `$name::<SLOTS>` as one test per fan-out.
macro_rules! for_each_fan_out {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn slots_64() {
                super::$name::<64>()
            }
            #[test]
            fn slots_32() {
                super::$name::<32>()
            }
            #[test]
            fn slots_8() {
                super::$name::<8>()
            }
            #[test]
            fn slots_4() {
                super::$name::<4>()
            }
            #[test]
            fn slots_2() {
                super::$name::<2>()
            }
        }
    )*};
}

mod limits;
mod placement;
mod shape;

fn tree<const S: usize>() -> XArray<u64, S> {
    XArray::with_slots()
}

/// The neighbours of `index` that exist in `u64`.
fn neighbours(index: u64) -> impl Iterator<Item = u64> {
    [index.checked_sub(1), index.checked_add(1)]
        .into_iter()
        .flatten()
}
