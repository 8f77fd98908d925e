//! Loom models of the races between lock-free readers and the writers of an `XArray`.
//!
//! Run them with `ci/loom.sh`, which sets both cfgs:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     CARGO_TARGET_DIR=target/loom cargo test --release --test loom -- xarray::
//! ```
//!
//! `--cfg loom` swaps the tree's atomics, mutex and cells for loom's (`src/sync.rs`);
//! `--cfg crossbeam_loom` does the same inside crossbeam-epoch, without which loom could
//! not see the epoch's pins, advances and frees at all.
//!
//! # What makes a bug visible
//!
//! * Under `cfg(loom)` a node retired by the tree is not freed but *poisoned* through a
//!   loom `UnsafeCell` that every reader visit reads (`src/xarray/node.rs`): a reader
//!   that visits a node whose reclamation is not ordered after the reader's visit is a
//!   causality violation.
//! * Every item is a [`Page`] whose `Drop` writes a loom `UnsafeCell` that readers read
//!   while they hold the borrowed `&Page`: an item dropped under a reader is reported
//!   the same way.
//! * Writers flush the epoch several times after retiring, so reclamation really runs
//!   inside the models (the final accounting checks that every retired page was dropped).
//! * Each model also asserts that its iterations together reached every side of its
//!   race (the reader saw the entry before and after the write; reclamation ran before
//!   the reader was joined), so a model cannot pass by never exploring the race.
//! * Mutation checks (done by hand): retiring the old root with its children on shrink,
//!   or publishing a new root with a `Relaxed` store, makes these models fail.
//! * [`unpinned_reader_is_caught`] is the negative control: the same race as
//!   [`reader_vs_erase_and_node_free`] with a reader that does not pin. It must fail, or
//!   the other models prove nothing.
//!
//! The trees use 4 slots per node, so two or three operations reach multi-level trees,
//! root growth and shrink, splits and node freeing. They reclaim through
//! crossbeam-epoch's global collector (see [`Epoch`] for why, and the measurements).

#![cfg(loom)]

use std::panic::{self, AssertUnwindSafe};
// Std atomics count drops for the accounting done after every thread is joined (loom
// runs all of its threads on one OS thread, so they are exact); the racy checks use loom.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_epoch::Collector;
use loom::cell::UnsafeCell;
use rangelock::{Entry, EntryRef, XArray};

/// A tree of 4-slot nodes: index `i < 4` lives in a root leaf; `4 <= i < 16` needs a
/// root of shift 2 with leaves below it.
type Tree = XArray<Page, 4>;

/// An item that knows its index and whose drop loom can see.
struct Page {
    index: u64,
    /// `true` until the page is dropped; written by `Drop`, read by [`Page::check`].
    alive: UnsafeCell<bool>,
    /// Incremented by `Drop`; read only after every thread of the model is joined.
    drops: Arc<AtomicUsize>,
}

// SAFETY: the only interior mutability is `alive`, a loom `UnsafeCell` written once by
// `Drop` (which has `&mut self`, so no shared borrow is live in correct code) and read
// through `&self`. Loom checks every one of those accesses: a read that races with the
// drop is reported as a causality violation, which is exactly what the models look for.
unsafe impl Sync for Page {}

impl Page {
    fn new(index: u64, drops: &Arc<AtomicUsize>) -> Arc<Page> {
        Arc::new(Page {
            index,
            alive: UnsafeCell::new(true),
            drops: Arc::clone(drops),
        })
    }

    /// Asserts that this page was not dropped (loom also checks that the drop is not
    /// concurrent with this read) and that it belongs at `index`.
    #[track_caller]
    fn check(&self, index: u64) {
        // SAFETY: a read through loom's cell, checked against the write in `Drop`.
        let alive = self.alive.with(|alive| unsafe { *alive });
        assert!(alive, "reader holds a dropped page (index {index})");
        assert_eq!(self.index, index, "reader got the page of another index");
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: `&mut self`; loom checks that no reader's `check` is concurrent with it.
        self.alive.with_mut(|alive| unsafe { *alive = false });
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Which epoch the tree reclaims through.
///
/// Measured with `LOOM_MAX_PREEMPTIONS=2` on model (a): crossbeam-epoch's global
/// collector takes about 0.8 s, a tree with its own `Collector` about 30 s. The global
/// collector gives each loom thread one participant (a loom thread-local handle), while
/// `XArray::with_collector` registers a fresh participant on every pin (and a fresh
/// participant collects on its first pin), so every read adds a list insertion, a
/// collection and an unregistration to explore. Every model therefore uses
/// [`Epoch::Global`], the production default; the own-collector variant of (a) is
/// `#[ignore]`d for quick local runs, and `ci/loom.sh` runs it (`--include-ignored`).
enum Epoch {
    /// crossbeam-epoch's global collector (`XArray::with_slots`).
    Global,
    /// An owned collector, shared with the tree (`XArray::with_collector`).
    Own(Collector),
}

impl Epoch {
    fn tree(&self) -> Tree {
        match self {
            Epoch::Global => Tree::with_slots(),
            Epoch::Own(collector) => Tree::with_collector(collector.clone()),
        }
    }

    /// One attempt to advance the epoch and run expired deferred frees.
    fn flush(&self) {
        match self {
            Epoch::Global => crossbeam_epoch::pin().flush(),
            Epoch::Own(collector) => collector.register().pin().flush(),
        }
    }

    /// Flushes often enough that everything retired before, with no reader pinned, is
    /// freed: garbage is freed two epoch advances after it was sealed, and each flush
    /// advances at most once.
    fn flush_all(&self) {
        for _ in 0..FLUSHES {
            self.flush();
            // Let the other threads run: loom runs a thread's thread-local destructors
            // (which hand its epoch bag to the global queue) only after `join` has
            // returned, and until they ran the epoch may not be able to advance.
            loom::thread::yield_now();
        }
    }

    /// After every thread is joined: flushes until `drops` reaches `expected` (or a
    /// bound that only a leak exceeds), then asserts it. A joined thread's epoch bag
    /// reaches the global queue only when its thread-local handle is dropped, so the
    /// number of flushes needed depends on the interleaving.
    #[track_caller]
    fn expect_dropped(&self, drops: &AtomicUsize, expected: usize) {
        for _ in 0..4 * FLUSHES {
            if drops.load(Ordering::Relaxed) >= expected {
                break;
            }
            self.flush();
            loom::thread::yield_now();
        }
        assert_eq!(
            drops.load(Ordering::Relaxed),
            expected,
            "retired pages were not freed (or freed twice)"
        );
    }
}

/// How many flushes a writer does after its last change: two epoch advances past the
/// garbage's epoch, plus one, so that garbage no reader protects really is freed inside
/// the model.
const FLUSHES: usize = 3;

/// Runs `f` under loom with the preemption bound from `LOOM_MAX_PREEMPTIONS`, or 2 if it
/// is unset (loom's own default, unbounded, would not finish).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = builder.preemption_bound.or(Some(2));
    builder.check(f);
}

/// Asserts that the entry a reader saw at `index` is one of `allowed`, checking any page
/// it borrowed while the borrow is still live; returns what it was, for [`Outcomes`].
#[track_caller]
fn expect(seen: EntryRef<'_, Page>, index: u64, allowed: &[Expected]) -> String {
    let ok = match seen {
        EntryRef::Empty => allowed.contains(&Expected::Empty),
        EntryRef::Value(v) => allowed.contains(&Expected::Value(v)),
        EntryRef::Item(page) => {
            page.check(index);
            allowed.contains(&Expected::Page)
        }
        // These models never lock a range.
        EntryRef::Locked { .. } => false,
    };
    assert!(
        ok,
        "index {index}: saw {seen_kind}, expected one of {allowed:?}",
        seen_kind = match seen {
            EntryRef::Empty => "empty".to_string(),
            EntryRef::Value(v) => format!("value {v}"),
            EntryRef::Item(_) => "a page".to_string(),
            EntryRef::Locked { .. } => "a lock entry".to_string(),
        }
    );
    match seen {
        EntryRef::Empty => format!("{index}: empty"),
        EntryRef::Value(v) => format!("{index}: value {v}"),
        EntryRef::Item(_) => format!("{index}: page"),
        EntryRef::Locked { .. } => format!("{index}: locked"),
    }
}

/// The outcomes that the iterations of one model reached, so that a model can assert
/// that loom really explored each side of its race (a model whose reader always ran
/// first would pass while proving nothing). Std types: it outlives the iterations.
#[derive(Default)]
struct Outcomes(std::sync::Mutex<std::collections::BTreeSet<String>>);

impl Outcomes {
    fn saw(&self, outcome: String) {
        self.0.lock().unwrap().insert(outcome);
    }
}

/// Runs `f` under [`model`] and then asserts that the iterations together reached every
/// outcome in `required`.
fn model_reaching(
    required: &'static [&'static str],
    f: impl Fn(&Outcomes) + Sync + Send + 'static,
) {
    let outcomes = Arc::new(Outcomes::default());
    let shared = Arc::clone(&outcomes);
    model(move || f(&shared));
    let reached = outcomes.0.lock().unwrap();
    for outcome in required {
        assert!(
            reached.contains(*outcome),
            "no interleaving reached `{outcome}`; reached: {reached:?}"
        );
    }
}

/// Records whether the writer's own flushes, before it joined the reader, already freed
/// the retired page(s): proof that reclamation really runs inside the model.
fn saw_freed_before_join(outcomes: &Outcomes, drops: &AtomicUsize, retired: usize) {
    if drops.load(Ordering::Relaxed) == retired {
        outcomes.saw("freed before join".to_string());
    }
}

/// What a reader may see at an index.
#[derive(Debug, PartialEq)]
enum Expected {
    Empty,
    Value(u64),
    /// The page stored for that index (`Page::check` verifies the index).
    Page,
}

/// (a) Reader vs erase and node freeing: a reader borrows the page at index 5 through a
/// `ReadGuard` while a writer erases it. The leaf, then the root, become empty and are
/// unlinked and retired, the page is retired, and the writer flushes until they are
/// freed. The reader's node visits and its borrowed page must never race with those
/// frees: the guard holds reclamation back until it drops.
fn reader_vs_erase(epoch: Epoch, outcomes: &Outcomes) {
    let drops = Arc::new(AtomicUsize::new(0));
    let xa = loom::sync::Arc::new(epoch.tree());
    xa.store(5, Page::new(5, &drops)).unwrap();

    let reader = {
        let xa = xa.clone();
        loom::thread::spawn(move || {
            let guard = xa.read();
            let seen = guard.entry(5);
            let outcome = expect(seen, 5, &[Expected::Page, Expected::Empty]);
            // Still borrowed: the page must not have been dropped meanwhile.
            if let Some(page) = seen.item() {
                page.check(5);
            }
            outcome
        })
    };

    let old = xa.erase(5).unwrap();
    assert_eq!(old.item().map(|p| p.index), Some(5));
    drop(old);
    epoch.flush_all();
    saw_freed_before_join(outcomes, &drops, 1);
    outcomes.saw(reader.join().unwrap());

    epoch.expect_dropped(&drops, 1);
    assert!(xa.is_empty());
    assert_eq!(xa.node_count(), 0);
    xa.check_invariants().unwrap();
}

#[test]
fn reader_vs_erase_and_node_free() {
    model_reaching(READER_VS_ERASE_OUTCOMES, |outcomes| {
        reader_vs_erase(Epoch::Global, outcomes)
    });
}

/// Model (a) must see the page, see it erased, and free it while the reader is away.
const READER_VS_ERASE_OUTCOMES: &[&str] = &["5: page", "5: empty", "freed before join"];

/// (a) again on a tree with its own `Collector` (`XArray::with_collector`). Ignored in a
/// plain `cargo test --test loom` (about 40x the interleavings of the global collector:
/// such a tree registers a fresh epoch participant on every pin); `ci/loom.sh` runs it
/// with `--include-ignored`.
#[test]
#[ignore = "slow: ~30 s at LOOM_MAX_PREEMPTIONS=2"]
fn reader_vs_erase_and_node_free_own_collector() {
    model_reaching(READER_VS_ERASE_OUTCOMES, |outcomes| {
        reader_vs_erase(Epoch::Own(Collector::new()), outcomes)
    });
}

/// (b1) Reader vs root growth: the tree is a single leaf holding index 1 when a writer
/// stores index 9, which needs a root of shift 2 whose slot 0 is the old leaf. A reader
/// that loaded the old root must still find index 1 there, and sees index 9 either
/// empty (before) or the new page (after), never another index's entry.
#[test]
fn reader_vs_root_growth() {
    model_reaching(&["9: empty", "9: page"], |outcomes| {
        let epoch = Epoch::Global;
        let drops = Arc::new(AtomicUsize::new(0));
        let xa = loom::sync::Arc::new(epoch.tree());
        xa.store(1, Page::new(1, &drops)).unwrap();
        assert_eq!(xa.node_count(), 1);

        let reader = {
            let xa = xa.clone();
            loom::thread::spawn(move || {
                let guard = xa.read();
                let nine = expect(guard.entry(9), 9, &[Expected::Empty, Expected::Page]);
                expect(guard.entry(1), 1, &[Expected::Page]);
                nine
            })
        };

        xa.store(9, Page::new(9, &drops)).unwrap();
        outcomes.saw(reader.join().unwrap());

        assert_eq!(xa.node_count(), 3, "root of shift 2 plus two leaves");
        xa.check_invariants().unwrap();
        drop(xa);
        epoch.expect_dropped(&drops, 2);
    });
}

/// (b2) Reader vs root shrink: the tree is a root of shift 2 over two leaves (indices 1
/// and 9). Erasing 9 empties its leaf (unlinked, retired) and leaves the root holding
/// only the leaf in slot 0, so the tree shrinks: that leaf becomes the head and the old
/// root is retired unchanged. A reader still in the old root walks into the live leaf
/// and must find index 1; index 9 is the page or empty; nothing it visits may be freed
/// while it is pinned.
#[test]
fn reader_vs_root_shrink() {
    model_reaching(&["9: page", "9: empty", "freed before join"], |outcomes| {
        let epoch = Epoch::Global;
        let drops = Arc::new(AtomicUsize::new(0));
        let xa = loom::sync::Arc::new(epoch.tree());
        xa.store(1, Page::new(1, &drops)).unwrap();
        xa.store(9, Page::new(9, &drops)).unwrap();
        assert_eq!(xa.node_count(), 3);

        let reader = {
            let xa = xa.clone();
            loom::thread::spawn(move || {
                let guard = xa.read();
                let nine = expect(guard.entry(9), 9, &[Expected::Page, Expected::Empty]);
                expect(guard.entry(1), 1, &[Expected::Page]);
                nine
            })
        };

        drop(xa.erase(9).unwrap());
        epoch.flush_all();
        saw_freed_before_join(outcomes, &drops, 1);
        outcomes.saw(reader.join().unwrap());

        assert_eq!(xa.node_count(), 1, "shrunk to a single leaf");
        xa.check_invariants().unwrap();
        epoch.expect_dropped(&drops, 1);
    });
}

/// (c) Two writers on one leaf: the tree holds index 0; writer A erases 0 (emptying the
/// leaf, which is freed, and the tree) and then stores 3, while writer B stores 1 and
/// then erases it. Depending on the order the leaf is freed and recreated once or
/// twice, or never emptied. The write lock must serialise them: the final tree holds
/// exactly index 3, passes `check_invariants`, and every other page is dropped once.
#[test]
fn two_writers_on_one_leaf() {
    model(|| {
        let epoch = Epoch::Global;
        let drops = Arc::new(AtomicUsize::new(0));
        let xa = loom::sync::Arc::new(epoch.tree());
        xa.store(0, Page::new(0, &drops)).unwrap();

        let writer_a = {
            let (xa, drops) = (xa.clone(), drops.clone());
            loom::thread::spawn(move || {
                assert_eq!(xa.erase(0).unwrap().item().map(|p| p.index), Some(0));
                assert!(xa.store(3, Page::new(3, &drops)).unwrap().is_empty());
            })
        };

        assert!(xa.store(1, Page::new(1, &drops)).unwrap().is_empty());
        assert_eq!(xa.erase(1).unwrap().item().map(|p| p.index), Some(1));
        writer_a.join().unwrap();

        xa.check_invariants().unwrap();
        let entries: Vec<u64> = xa.iter(..).map(|(span, _)| *span.start()).collect();
        assert_eq!(entries, [3]);
        assert!(matches!(xa.get(3), Entry::Item(page) if page.index == 3));
        assert_eq!(xa.node_count(), 1);
        epoch.expect_dropped(&drops, 2);
    });
}

/// (d) Reader vs range store and split: the tree holds a page at 6 (a root of shift 2
/// over a leaf). A writer stores the value 7 over 0..16, which grows the root to shift
/// 4 and replaces the old root's whole subtree (nodes and page 6, retired) by one
/// multi-index entry in the new root's slot 0; then it stores a page at 5, which splits
/// that entry twice and leaves the root holding only the new child in slot 0, so the
/// tree shrinks again (the root is retired). A reader reads 6 and then 5: 6 is page 6
/// or the value; 5 is empty, the value or page 5; and once it has seen the range store
/// at 6, it must not see 5 from before it.
#[test]
fn reader_vs_range_store_and_split() {
    model_reaching(
        &[
            "6: page, 5: empty",
            "6: value 7, 5: value 7",
            "6: value 7, 5: page",
            "freed before join",
        ],
        |outcomes| {
            let epoch = Epoch::Global;
            let drops = Arc::new(AtomicUsize::new(0));
            let xa = loom::sync::Arc::new(epoch.tree());
            xa.store(6, Page::new(6, &drops)).unwrap();

            let reader = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let guard = xa.read();
                    let six = guard.entry(6);
                    let six_outcome = expect(six, 6, &[Expected::Page, Expected::Value(7)]);
                    let five = guard.entry(5);
                    let five_outcome = if six.item().is_some() {
                        let any = [Expected::Empty, Expected::Value(7), Expected::Page];
                        expect(five, 5, &any)
                    } else {
                        // 6 showed the range store: 5 cannot be from before it.
                        expect(five, 5, &[Expected::Value(7), Expected::Page])
                    };
                    // The borrow of page 6 outlives the range store and its flushes.
                    if let Some(page) = six.item() {
                        page.check(6);
                    }
                    format!("{six_outcome}, {five_outcome}")
                })
            };

            xa.store_range(0..16, 7).unwrap();
            assert_eq!(xa.store(5, Page::new(5, &drops)).unwrap().value(), Some(7));
            epoch.flush_all();
            saw_freed_before_join(outcomes, &drops, 1);
            outcomes.saw(reader.join().unwrap());

            xa.check_invariants().unwrap();
            assert_eq!(xa.get(4).value(), Some(7));
            assert_eq!(xa.get(6).value(), Some(7));
            assert_eq!(xa.get(15).value(), Some(7));
            assert!(xa.get(16).is_empty());
            epoch.expect_dropped(&drops, 1);
        },
    );
}

/// (f) Batched lookups and the leaf-local iteration fast path vs the writer of (d): the
/// reader looks up 6 and 5 in one `get_many` walk (two lanes in lockstep from one read
/// of the head), then iterates `5..=6`. Each lookup must be one that `entry` could have
/// returned (6: the page or the value; 5: empty, the value or page 5), the iteration
/// reports ascending, non-overlapping spans inside what the range held, and every node
/// either path visits stays valid (the poison check) while the writer retires the old
/// root and leaf.
#[test]
fn batched_reader_and_iteration_vs_range_store_and_split() {
    model_reaching(
        &["6: page", "6: value 7", "freed before join"],
        |outcomes| {
            let epoch = Epoch::Global;
            let drops = Arc::new(AtomicUsize::new(0));
            let xa = loom::sync::Arc::new(epoch.tree());
            xa.store(6, Page::new(6, &drops)).unwrap();

            let reader = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let guard = xa.read();
                    let [six, five] = guard.entries_many([6, 5]);
                    let outcome = expect(six, 6, &[Expected::Page, Expected::Value(7)]);
                    expect(
                        five,
                        5,
                        &[Expected::Empty, Expected::Value(7), Expected::Page],
                    );
                    if let Some(page) = six.item() {
                        page.check(6);
                    }
                    let mut next = 0;
                    for (span, entry) in guard.iter(5..=6) {
                        assert!(*span.start() >= next && span.start() <= span.end());
                        next = span.end() + 1;
                        if let Some(page) = entry.item() {
                            page.check(*span.start());
                        }
                    }
                    outcome
                })
            };

            xa.store_range(0..16, 7).unwrap();
            assert_eq!(xa.store(5, Page::new(5, &drops)).unwrap().value(), Some(7));
            epoch.flush_all();
            saw_freed_before_join(outcomes, &drops, 1);
            outcomes.saw(reader.join().unwrap());
            xa.check_invariants().unwrap();
            epoch.expect_dropped(&drops, 1);
        },
    );
}

/// (e) NEGATIVE CONTROL for (a): the same erase-and-free race, but the reader looks up
/// with `get_unpinned`, which does not pin the epoch. The writer's flushes then free
/// (under loom: poison) the leaf the reader visits with nothing ordering the two, and
/// loom must report it. The test checks that the failure is that race (a causality
/// violation on a cell of `src/xarray/node.rs`, the retired node's poison flag) and not
/// something unrelated, then fails on purpose for `should_panic`.
#[test]
#[should_panic(expected = "negative control caught the unpinned reader")]
fn unpinned_reader_is_caught() {
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = builder.preemption_bound.or(Some(2));
        // Record where the racing accesses are, so the message names them.
        builder.location = true;
        builder.check(|| {
            // The tree's own collector: the global collector's thread-local handles
            // would outlive the failed execution and be dropped outside it, which
            // aborts the test binary instead of unwinding to `catch_unwind`.
            let epoch = Epoch::Own(Collector::new());
            let drops = Arc::new(AtomicUsize::new(0));
            let xa = loom::sync::Arc::new(epoch.tree());
            xa.store(5, Page::new(5, &drops)).unwrap();

            let reader = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    // SAFETY: deliberately broken: a writer runs concurrently. Under
                    // loom, retired nodes are poisoned and never freed, so the race is
                    // reported before the page itself can be freed (see the hook).
                    if let Some(page) = unsafe { xa.get_unpinned(5) } {
                        page.check(5);
                    }
                })
            };

            drop(xa.erase(5).unwrap());
            epoch.flush_all();
            reader.join().unwrap();
        });
    }));
    let payload = result.expect_err("loom did not catch a reader that does not pin");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        message.contains("Causality violation") && message.contains("src/xarray/node.rs"),
        "the negative control failed for another reason:\n{message}"
    );
    panic!("negative control caught the unpinned reader:\n{message}");
}

/// Iteration that hops from a leaf that ran out to its parent (the node the search came
/// down from) against a writer that replaces that parent: pages at 1 and 5 sit in two
/// leaves under one root of 16 indices, and the writer stores a value over all 16
/// (the root and both leaves unlinked, the pages retired). The reader's iteration over
/// 0..=7 must report ascending spans, each page it borrows alive and at its index
/// (`Page::check`), and never visit a node after its retirement ran (the poison check
/// of `Node::visit`, which the hop calls on the parent). Both sides of the race are
/// required: the pages only, the value only, and a page followed by the value (the
/// reader found the parent unlinked and went back to the head).
#[test]
fn iteration_hop_to_parent_vs_parent_replaced() {
    model_reaching(
        &["pages", "value", "page then value", "freed before join"],
        |outcomes| {
            let epoch = Epoch::Global;
            let drops = Arc::new(AtomicUsize::new(0));
            let xa = loom::sync::Arc::new(epoch.tree());
            xa.store(1, Page::new(1, &drops)).unwrap();
            xa.store(5, Page::new(5, &drops)).unwrap();

            let reader = {
                let xa = xa.clone();
                loom::thread::spawn(move || {
                    let guard = xa.read();
                    let mut next = 0;
                    let mut kinds = Vec::new();
                    for (span, entry) in guard.iter(0..=7) {
                        assert!(*span.start() >= next && span.start() <= span.end());
                        next = span.end() + 1;
                        match entry {
                            EntryRef::Item(page) => {
                                page.check(*span.start());
                                kinds.push("page");
                            }
                            EntryRef::Value(7) => kinds.push("value"),
                            _ => panic!("unexpected entry at {span:?}"),
                        }
                    }
                    kinds.dedup();
                    kinds.join(" then ")
                })
            };

            xa.store_range(0..16, 7).unwrap();
            epoch.flush_all();
            saw_freed_before_join(outcomes, &drops, 2);
            let seen = reader.join().unwrap();
            outcomes.saw(match seen.as_str() {
                "page" => "pages".to_string(),
                other => other.to_string(),
            });
            xa.check_invariants().unwrap();
            epoch.expect_dropped(&drops, 2);
        },
    );
}
