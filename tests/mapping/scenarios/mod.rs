//! Multi-threaded scenarios of the page cache ([`Mapping`]), fstests-style: each test
//! names the race it pins down and checks the data that reaches the "device" (a map of
//! page index to four sectors, `[u64; 4]`, 64-byte pages).
//!
//! * `gup_*`: a direct write whose source buffer maps the same file (exactly the pages
//!   written, part of them, or none) completes, takes the buffered path after its
//!   retries when the source overlaps (`WritePath::Buffered`) and the direct one at once
//!   otherwise (`WritePath::Direct { retries: 0 }`), and writes the right data. A plain
//!   fault on a page of the caller's own direct IO fails with `WouldDeadlock`.
//! * `gup_cycle_of_three_files_*`: three threads, three files, each writing its file
//!   from a mapping of the next (F1 from F2, F2 from F3, F3 from F1): no deadlock, and
//!   each file ends with the copied sectors and its own last write's stamp.
//! * `sub_page_direct_writes_*`: two sub-page direct writes hold one page together
//!   (holder count 2); a fault on it waits for both, then reads both writes.
//! * `buffered_write_racing_*`: a buffered write racing a direct IO's eviction of its
//!   dirty page is handed to `flush` or lands after the IO, never lost.
//! * `truncate_*`: a fault past the new end of file fails once truncate has set the
//!   size; a fault in flight during a truncate completes first and its page is evicted.
//! * `sealed_hand_off_*`: a direct IO that evicted a dirty page is inside its `flush`; a
//!   second direct IO over part of that page does not return (and so cannot do its IO)
//!   before the flush is done, nor does a write-back of the file, while a direct IO over
//!   a page that held nothing returns at once.
//! * `failed_flush_*`: a direct IO whose `flush` fails puts back, with its DIRTY mark, a
//!   page that a buffered write dirtied while it was out of the tree (a regression test).
//!
//! Every test runs under a watchdog (`within`, in `tests/support/mapping_fixture.rs`
//! with the device): a hang fails the test instead of stalling the run. "Has not completed" is checked after [`SETTLE`], a generous margin:
//! a correctness check, not a timing measurement. Miri runs fewer iterations.
#![cfg(not(loom))]

use rangelock::{Entry, LockMode};

use crate::support::mapping_fixture::File;

mod flush;
mod gup;
mod races;

fn assert_locked(file: &File, index: u64, holders: u64) {
    let entry = file.pages().get(index);
    assert!(
        matches!(entry, Entry::Locked { mode: LockMode::Shared, holders: h } if h == holders),
        "page {index}: {entry:?}, expected {holders} shared holders"
    );
}
