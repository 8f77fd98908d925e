//! A range write against the lock fast path on an empty tree (`src/xarray/range_write.rs`).
//!
//! `store_range` checks the head under the head lock, but the fast path can still put a
//! lock into an *empty* head without that lock. Whatever the interleaving, the write
//! either stores every index of its range or, refused, stores none of them; and the lock,
//! while held, still holds its indices. The model must reach both a refusal and a
//! completed store. On the code before the fix (8611708) it fails with "a refused
//! store_range stored [0, 1, 2, 3]"; it needs two preemptions (the lock must come in
//! between the write's check and its first block, and stay held past that block):
//! about 151,000 interleavings, 44 s on 2 cores.

use loom::sync::Arc;
use loom::thread;

use crate::support::loom_harness::model_reaching;
use rangelock::{Entry, LockMode, XArray};

/// 4-slot nodes: the range `0..=9` is three blocks (`0..=3`, `4..=7`, `8..=9`), and the
/// locked `6..=6` lies in the second, so a refusal found late would come after the
/// first block was written.
type Tree = XArray<u64, 4>;

#[test]
fn range_store_vs_head_record_fast_path() {
    model_reaching(&["refused", "stored"], |outcomes| {
        let xa = Arc::new(Tree::with_slots());
        let locker = {
            let xa = Arc::clone(&xa);
            thread::spawn(move || {
                // An empty tree: a record in the head, one compare-exchange.
                let guard = xa.lock_range(6..=6, LockMode::Exclusive).unwrap();
                assert!(
                    matches!(xa.get(6), Entry::Locked { .. }),
                    "index 6 not locked while held"
                );
                drop(guard);
            })
        };
        let stored = xa.store_range(0..=9, 7).is_ok();
        locker.join().unwrap();
        let holding: Vec<u64> = (0..=9).filter(|&i| xa.get(i).value() == Some(7)).collect();
        if stored {
            // The lock came after the store: it evicted index 6 and left it empty.
            let expected: Vec<u64> = (0..=9).filter(|&i| i != 6).collect();
            assert!(
                holding == expected || holding.len() == 10,
                "a completed store_range left {holding:?}"
            );
            outcomes.saw("stored");
        } else {
            assert!(
                holding.is_empty(),
                "a refused store_range stored {holding:?}"
            );
            outcomes.saw("refused");
        }
        xa.check_invariants().unwrap();
    });
}
