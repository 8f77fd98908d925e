//! The public face of lock classes on trees: naming a class, declaring a nesting level.
//! Both exist with or without the feature, so code that uses them compiles either way;
//! without it they change nothing.

use core::ops::RangeBounds;

use crate::lock::{LockError, RangeGuard};
use crate::xarray::{LockMode, XArray};

impl<T, const SLOTS: usize> XArray<T, SLOTS> {
    /// This tree, in the lock class `name` (with the `lockdep` feature; without it, the
    /// tree unchanged). Trees with the same name are one class, wherever they are built;
    /// a tree not named is in the class of the place that built it. Call it before the
    /// tree is shared.
    ///
    /// ```
    /// use rangelock::XArray;
    ///
    /// let i_pages: XArray<Vec<u8>> = XArray::new().with_class("inode.i_pages");
    /// # drop(i_pages);
    /// ```
    pub fn with_class(mut self, name: &'static str) -> Self {
        self.lockdep = crate::lockdep::TreeClass::named(name);
        self
    }
}

impl<T: Send + Sync + 'static, const SLOTS: usize> XArray<T, SLOTS> {
    /// Like [`lock_range`](Self::lock_range), declaring that this tree is taken at
    /// nesting level `subclass` of its class: a thread that holds a range of another
    /// tree of the same class (at level 0, say) may take this one at level 1 without a
    /// report, as long as every thread nests them that way (by inode number, say). Like
    /// the kernel's `mutex_lock_nested`. Without the `lockdep` feature it is
    /// `lock_range`.
    ///
    /// ```
    /// use rangelock::{LockMode, XArray};
    ///
    /// let make = || XArray::<u64>::new().with_class("file");
    /// let (lower_inode, higher_inode) = (make(), make());
    /// let a = lower_inode.lock_range(0..8, LockMode::Exclusive).unwrap();
    /// let b = higher_inode.lock_range_nested(0..8, LockMode::Exclusive, 1).unwrap();
    /// # drop((b, a));
    /// ```
    pub fn lock_range_nested(
        &self,
        range: impl RangeBounds<u64>,
        mode: LockMode,
        subclass: u8,
    ) -> Result<RangeGuard<'_, T, SLOTS>, LockError> {
        super::nested(subclass, || self.lock_range(range, mode))
    }
}
