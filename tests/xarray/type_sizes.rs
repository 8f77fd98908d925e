//! The `lockdep` feature adds nothing when off: the public types keep the sizes they
//! had before it existed. With it on, a tree (and what embeds one) grows by its class
//! id, a page lock by its token, and the guards not at all.

use std::mem::size_of;

use rangelock::mapping::{Mapping, Page, PageLock};
use rangelock::{DetachedGuard, RangeGuard, RangeLock, XArray};

/// (XArray, Mapping, RangeLock, RangeGuard, DetachedGuard, Page, PageLock): measured
/// before the feature existed, except the guards, which shrank from 80 to 40 bytes when
/// their evicted entries and sealed blocks moved out of line (issue 12).
const WITHOUT: [usize; 7] = [80, 112, 80, 40, 40, 12, 24];
/// The same with `--features lockdep`.
const WITH: [usize; 7] = [88, 120, 88, 40, 40, 12, 32];

fn sizes() -> [usize; 7] {
    [
        size_of::<XArray<u8>>(),
        size_of::<Mapping<u8>>(),
        size_of::<RangeLock>(),
        size_of::<RangeGuard<'static, u8>>(),
        size_of::<DetachedGuard<'static, u8>>(),
        size_of::<Page<u8>>(),
        size_of::<PageLock<'static, u8>>(),
    ]
}

#[test]
fn sizes_are_unchanged_without_lockdep_and_guards_unchanged_with_it() {
    let expected = if cfg!(feature = "lockdep") {
        WITH
    } else {
        WITHOUT
    };
    assert_eq!(sizes(), expected);
}
