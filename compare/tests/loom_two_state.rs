//! Loom model of the comparison's two-state lock (`compare/src/two_state.rs`, built
//! alone under loom as `rangelock_compare::two_state`): each state shared among its own holders
//! and exclusive with the other, and no lost wake-up (a sleeper that missed its wake-up
//! is a loom deadlock).
//!
//! ```sh
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test --release --test loom_two_state
//! ```

#![cfg(loom)]

#[path = "../../tests/support/loom_harness.rs"]
mod loom_harness;

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use rangelock_compare::two_state::{TwoState, TwoStateLock};

use loom_harness::model_reaching;

/// Two holders of the add state and one of the block state race. While a holder is
/// inside, the counter has its state's sign (the states never overlap); every thread
/// gets in (a wake-up lost by the last releasing holder would leave a waiter asleep for
/// ever, which loom reports as a deadlock); the lock ends free. The iterations must see
/// the block state get in both before any add and after one.
#[test]
fn two_state_excludes_the_other_state_and_wakes_its_sleepers() {
    model_reaching(
        &["block went first", "block went after an add"],
        |outcomes| {
            let lock = Arc::new(TwoStateLock::new());
            let adds_done = Arc::new(AtomicUsize::new(0));
            let adders: Vec<_> = (0..2)
                .map(|_| {
                    let (lock, adds_done) = (Arc::clone(&lock), Arc::clone(&adds_done));
                    loom::thread::spawn(move || {
                        let _add = lock.lock(TwoState::Add);
                        assert!(lock.holders() > 0, "add held beside block");
                        adds_done.fetch_add(1, SeqCst);
                    })
                })
                .collect();
            let adds_before_block = {
                let _block = lock.lock(TwoState::Block);
                let holders = lock.holders();
                assert_eq!(holders, -1, "block held beside add");
                adds_done.load(SeqCst)
            };
            for adder in adders {
                adder.join().unwrap();
            }
            assert_eq!(lock.holders(), 0, "the lock ends free");
            outcomes.saw(if adds_before_block == 0 {
                "block went first"
            } else {
                "block went after an add"
            });
        },
    );
}

// Mutation checks, done by hand (`LOOM_MAX_PREEMPTIONS=2`), each failing as it must:
//
// | mutation (compare/src/two_state.rs)                         | how the model fails |
// |--------------------------------------------------------------|---------------------|
// | the last release notifies without taking the sleepers' mutex | loom: deadlock (a lost wake-up) |
// | `try_lock` joins whatever state is held                      | "add held beside block" |
