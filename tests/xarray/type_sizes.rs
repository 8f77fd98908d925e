//! The `lockdep` feature adds nothing when off: the public types keep the sizes they
//! had before it existed. With it on, a page lock grows by its token, and the tree, what
//! embeds one and the guards not at all: the tree's class id fits in the padding beside
//! its one-byte head lock (it added 8 bytes while the head lock was a four-byte word).

use std::mem::size_of;

use rangelock::mapping::{Mapping, Page, PageLock};
use rangelock::{DetachedGuard, RangeGuard, RangeLock, XArray};

/// (XArray, Mapping, RangeLock, RangeGuard, DetachedGuard, Page, PageLock): measured
/// before the feature existed, except the guards, which shrank from 80 to 40 bytes when
/// their evicted entries and sealed blocks moved out of line (issue 12).
const WITHOUT: [usize; 7] = [80, 112, 80, 40, 40, 12, 24];
/// The same with `--features lockdep`.
const WITH: [usize; 7] = [80, 112, 80, 40, 40, 12, 32];

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
