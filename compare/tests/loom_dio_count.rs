//! Loom model of the comparison's direct-IO count (`compare/src/dio_count.rs`, built
//! alone under loom as `rangelock_compare::dio_count`): no page-in overlaps a direct IO,
//! no wake-up is lost (a sleeper that missed its wake-up is a loom deadlock), and a
//! page-in that waits is not held off by a direct IO that starts after it began waiting.
//!
//! ```sh
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test --release -p rangelock-compare --test loom_dio_count
//! ```

#![cfg(loom)]

#[path = "../../tests/support/loom_harness.rs"]
mod loom_harness;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use rangelock_compare::dio_count::DioCount;

use loom_harness::{model, model_reaching};

/// Two direct IOs and one page-in race. While the page-in holds its turn no direct IO is
/// in flight, and while a direct IO is in flight no page-in holds its turn; every thread
/// gets through; the count ends at zero. The iterations must see the page-in go both
/// before any direct IO and after one.
#[test]
fn page_in_never_overlaps_a_direct_io_and_wakes_up() {
    model_reaching(
        &["page-in before the direct IOs", "page-in after a direct IO"],
        |reached| {
            let count = Arc::new(DioCount::new());
            let inside = Arc::new(AtomicUsize::new(0));
            let done = Arc::new(AtomicUsize::new(0));
            let page_in = Arc::new(AtomicBool::new(false));
            let dios: Vec<_> = (0..2)
                .map(|_| {
                    let (count, inside, done, page_in) =
                        (count.clone(), inside.clone(), done.clone(), page_in.clone());
                    thread::spawn(move || {
                        let guard = count.begin_dio();
                        inside.fetch_add(1, SeqCst);
                        assert!(!page_in.load(SeqCst), "a direct IO inside a page-in's turn");
                        inside.fetch_sub(1, SeqCst);
                        done.fetch_add(1, SeqCst);
                        drop(guard);
                    })
                })
                .collect();
            let turn = count.page_in();
            page_in.store(true, SeqCst);
            assert_eq!(inside.load(SeqCst), 0, "a page-in beside a direct IO");
            let after = done.load(SeqCst);
            page_in.store(false, SeqCst);
            drop(turn);
            for dio in dios {
                dio.join().unwrap();
            }
            assert_eq!(count.in_flight(), 0);
            assert_eq!(count.page_ins_waiting(), 0);
            reached.saw(if after == 0 {
                "page-in before the direct IOs"
            } else {
                "page-in after a direct IO"
            });
        },
    );
}

/// The starvation tweak: a direct IO is in flight, a page-in waits for it, and a second
/// direct IO arrives after the page-in began waiting. The second direct IO must not get
/// in before the page-in has had its turn (without the tweak it joins the count, which
/// then never reaches zero between the two: a stream of them would starve the page-in).
#[test]
fn a_waiting_page_in_goes_before_later_direct_ios() {
    model(None, || {
        let count = Arc::new(DioCount::new());
        let first = count.begin_dio();
        let paged_in = Arc::new(AtomicBool::new(false));
        let page_in = {
            let (count, paged_in) = (count.clone(), paged_in.clone());
            thread::spawn(move || {
                let turn = count.page_in();
                paged_in.store(true, SeqCst);
                drop(turn);
            })
        };
        while count.page_ins_waiting() == 0 && !paged_in.load(SeqCst) {
            thread::yield_now();
        }
        let later = {
            let (count, paged_in) = (count.clone(), paged_in.clone());
            thread::spawn(move || {
                let guard = count.begin_dio();
                assert!(
                    paged_in.load(SeqCst),
                    "a later direct IO got in before the waiting page-in"
                );
                drop(guard);
            })
        };
        drop(first);
        page_in.join().unwrap();
        later.join().unwrap();
        assert_eq!(count.in_flight(), 0);
    });
}

// | mutation (compare/src/dio_count.rs)                          | how the model fails |
// |---|---|
// | `begin_dio` does not wait while `page_ins_waiting > 0`       | second model: "a later direct IO got in before the waiting page-in" |
// | `page_in` does not wait while `in_flight > 0`                | first model: "a page-in beside a direct IO" |
// | the last direct IO out does not notify                       | loom deadlock (the waiting page-in sleeps for ever) |
// | the last page-in waiter in does not notify                   | second model: deadlock (the later direct IO sleeps for ever) |
