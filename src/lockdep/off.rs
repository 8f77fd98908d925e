//! The hooks without the feature: zero-sized types and empty inline functions, so that
//! every call site compiles to nothing (see `hooks.rs` for what they do when on).

use crate::xarray::span::Inclusive;
use crate::xarray::{LockMode, XArray};

/// A tree's lock class: nothing without the feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TreeClass;

impl TreeClass {
    #[inline(always)]
    pub(crate) fn here() -> Self {
        TreeClass
    }

    #[inline(always)]
    pub(crate) fn named(_name: &'static str) -> Self {
        TreeClass
    }
}

#[inline(always)]
pub(crate) fn check<T, const SLOTS: usize>(
    _: &XArray<T, SLOTS>,
    _: Inclusive,
    _: LockMode,
    _: bool,
) {
}

#[inline(always)]
pub(crate) fn granted<T, const SLOTS: usize>(_: &XArray<T, SLOTS>, _: u64, _: u64, _: LockMode) {}

#[inline(always)]
pub(crate) fn released(_: u64, _: u64, _: u64) {}

#[inline(always)]
pub(crate) fn downgraded(_: u64, _: u64, _: u64) {}

#[inline(always)]
pub(crate) fn set_subclass(_: u8) -> u8 {
    0
}

#[inline(always)]
pub(crate) fn set_unchecked(_: bool) -> bool {
    false
}

/// A held page lock: nothing without the feature.
#[derive(Debug)]
pub(crate) struct PageLockToken;

impl PageLockToken {
    #[inline(always)]
    pub(crate) fn acquire(_page: usize) -> Self {
        PageLockToken
    }
}
