//! Without a hook, a lockdep report panics, before the acquisition claims anything (a
//! file of its own: the hook is process-wide, and `tests/lockdep.rs` installs one).
#![cfg(feature = "lockdep")]

use rangelock::{LockMode, RangeLock};

#[test]
fn a_report_panics_by_default_and_leaves_nothing_locked() {
    let a = RangeLock::new().with_class("panic.a");
    let b = RangeLock::new().with_class("panic.b");
    {
        let _a = a.lock(0..1, LockMode::Exclusive).unwrap();
        let _b = b.lock(0..1, LockMode::Exclusive).unwrap();
    }
    let _b = b.lock(0..1, LockMode::Exclusive).unwrap();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.lock(0..1, LockMode::Exclusive).map(drop)
    }))
    .unwrap_err();
    let text = panic.downcast_ref::<String>().expect("a formatted panic");
    assert!(text.contains("possible circular locking dependency detected"));
    assert!(a.is_unlocked(), "the panic came before the claim");
}
