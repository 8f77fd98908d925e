//! A first tour of `XArray`: items, values, ranges, marks, iteration, erasure, and what
//! the tree costs in memory. Run it with
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! The last section counts real allocations through a small counting global allocator,
//! so the memory figures are measured, not computed from `size_of`.

use std::sync::Arc;

use rangelock::{Entry, Mark, XArray};
use rangelock_testkit::counting_alloc::{live, Counting};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes live on this thread (the example runs on one).
fn live_bytes() -> usize {
    live() as usize
}

/// Dense entries for the memory measurement.
const DENSE: u64 = 1 << 20;
/// Linux's `struct xa_node` on 64-bit: 576 bytes for 64 slots.
const GOAL_BYTES_PER_SLOT: f64 = 576.0 / 64.0;
/// How far above the goal we allow ourselves to be.
const GOAL_SLACK: f64 = 1.2;

fn main() {
    println!("== items: Arc<T> stored at any u64 index ==");
    let pages: XArray<String> = XArray::new();
    for index in [0, 1, 2, 4096, u64::MAX] {
        let old = pages
            .store(index, Arc::new(format!("page {index}")))
            .expect("an item store is never refused");
        println!("store({index}, \"page {index}\") -> replaced {old:?}");
    }
    println!("load(4096)        -> {:?}", pages.load(4096));
    println!("load(3)           -> {:?}", pages.load(3));
    println!(
        "len() = {} items in {} nodes",
        pages.len(),
        pages.node_count()
    );

    println!("\n== values: 63-bit integers (a page cache's shadow entries) ==");
    pages.store_value(10, 42).expect("42 fits in 63 bits");
    println!("store_value(10, 42); get(10) -> {:?}", pages.get(10));
    match pages.store_value(11, u64::MAX) {
        Ok(_) => println!("store_value(11, u64::MAX) unexpectedly stored"),
        Err(error) => println!("store_value(11, u64::MAX) -> error: {error}"),
    }

    println!("\n== ranges: one value over many indices, stored compactly ==");
    pages.store_range(1 << 20..1 << 40, 7).expect("valid range");
    let alone: XArray<String> = XArray::new();
    alone.store_range(1 << 20..1 << 40, 7).expect("valid range");
    println!(
        "store_range(2^20..2^40, 7): {} nodes in a tree of its own, {} slots in all",
        alone.node_count(),
        alone.iter(..).count()
    );
    println!("get(123456789)    -> {:?}", pages.get(123_456_789));

    println!("\n== marks: three bits per entry, propagated up the tree ==");
    for index in [1, 4096] {
        pages.set_mark(index, Mark::M0);
        println!("set_mark({index}, M0) (say, dirty)");
    }
    println!("any_marked(M0)    -> {}", pages.any_marked(Mark::M0));
    println!("get_mark(2, M0)   -> {}", pages.get_mark(2, Mark::M0));
    let dirty: Vec<u64> = pages
        .iter_marked(.., Mark::M0)
        .map(|(span, _)| *span.start())
        .collect();
    println!("iter_marked(.., M0) -> indices {dirty:?}");

    println!("\n== iteration: in index order, each multi-index entry once ==");
    for (span, entry) in pages.iter(..5000) {
        println!("  {span:?} => {}", describe(&entry));
    }
    let blocks = pages.iter(1 << 20..1 << 40).count();
    println!("iter(2^20..2^40) yields {blocks} aligned blocks, not 2^40 indices");

    println!("\n== read guard: batches of lookups that borrow (no refcount) ==");
    {
        let guard = pages.read();
        let total: usize = (0..5).filter_map(|i| guard.get(i)).map(String::len).sum();
        println!("bytes in pages 0..5, borrowed through one guard: {total}");
    }

    println!("\n== erasing ==");
    println!("erase(1)          -> {:?}", pages.erase(1).unwrap());
    println!(
        "get_mark(1, M0)   -> {} (erase clears marks)",
        pages.get_mark(1, Mark::M0)
    );
    pages.erase_range(1 << 20..1 << 40).expect("valid range");
    println!(
        "erase_range(2^20..2^40); get(123456789) -> {:?}",
        pages.get(123_456_789)
    );
    pages.clear();
    println!(
        "clear(): is_empty() = {}, {} nodes",
        pages.is_empty(),
        pages.node_count()
    );

    page_cache();
    memory_per_slot();
}

/// The page cache on lock entries: a fault, a buffered write, two sub-page direct writes
/// sharing a page while a fault waits, a direct write that takes a dirty page over, a
/// truncate, and a direct write whose buffer maps its own range.
fn page_cache() {
    use rangelock::mapping::{DirectIoKind, MappedBuffer, Mapping};
    use std::convert::Infallible;

    println!("\n== the page cache: Mapping<P> on lock entries ==");
    let file: Mapping<String> = Mapping::new();
    file.set_size(8 * 4096);
    let device = |i: u64| Ok::<_, Infallible>(format!("page {i} from disk"));
    let page = file.fault(3, device).unwrap();
    println!("fault(3)          -> {:?}", page.read(String::clone));
    file.write(3, device, |p| p.push_str(", edited")).unwrap();
    println!("write(3); dirty_pages(..) -> {:?}", file.dirty_pages(..));

    let none = |_: u64, _: &String| -> Result<(), Infallible> { Ok(()) };
    let a = file.direct_io(0..512, DirectIoKind::Write, none).unwrap();
    let b = file
        .direct_io(1024..2048, DirectIoKind::Write, none)
        .unwrap();
    println!(
        "two sub-page direct writes into page 0: {:?}",
        file.pages().get(0)
    );
    std::thread::scope(|s| {
        let fault = s.spawn(|| file.fault(0, device).map(|p| p.read(String::clone)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        println!("a fault on page 0 is waiting: {}", !fault.is_finished());
        drop((a, b));
        println!("both done; the fault gets {:?}", fault.join().unwrap());
    });

    let mut handed = Vec::new();
    let dio = file
        .direct_io(
            3 * 4096..4 * 4096,
            DirectIoKind::Write,
            |i, data: &String| {
                handed.push((i, data.clone()));
                Ok::<_, Infallible>(())
            },
        )
        .unwrap();
    println!("a direct write over page 3 takes its dirty data over: {handed:?}");
    drop(dio);

    let edit = file.truncate(2 * 4096).unwrap();
    println!(
        "truncate(8192) holds pages {:?} while the disk changes",
        edit.pages()
    );
    drop(edit);
    println!(
        "fault(5)          -> {:?}",
        file.fault(5, device).map(|_| ())
    );

    let mut source = MappedBuffer::new(&file, 0..=0, device);
    let path = file
        .direct_write_from(
            0..4096,
            &mut source,
            2,
            |_, _| Ok(()),
            |_, _| Ok(()),
            |file| file.write(0, device, |p| p.push_str(", copied")).map(drop),
        )
        .unwrap();
    println!("a direct write whose buffer maps its own page: {path:?}, no deadlock");
}

/// One line for an entry.
fn describe(entry: &Entry<String>) -> String {
    match entry {
        Entry::Empty => "empty".to_string(),
        Entry::Item(item) => format!("item {item:?}"),
        Entry::Value(value) => format!("value {value}"),
        Entry::Locked { mode, holders } => format!("locked {mode:?} x{holders}"),
    }
}

/// Memory per slot for `DENSE` dense entries, counted two ways.
fn memory_per_slot() {
    println!("\n== memory: {DENSE} dense entries ==");
    // Values need no allocation of their own, so every byte counted below is the tree's.
    // A warm-up first, so the epoch's one-time per-thread state is not counted.
    let warm_up: XArray<u64> = XArray::new();
    warm_up.store_value(0, 0).expect("fits");
    drop(warm_up);

    let before = live_bytes();
    let tree: XArray<u64> = XArray::new();
    for index in 0..DENSE {
        tree.store_value(index, index).expect("fits");
    }
    let allocated = live_bytes() - before;
    let reported = tree.memory_usage();
    let reserved = tree.reserved_memory();
    let slots = DENSE as f64;
    let goal = GOAL_BYTES_PER_SLOT * GOAL_SLACK;
    println!(
        "{} nodes; goal: <= {goal:.1} bytes/slot ({GOAL_SLACK}x Linux's {GOAL_BYTES_PER_SLOT} = 576-byte node / 64 slots)",
        tree.node_count()
    );
    for (how, bytes) in [
        ("memory_usage()", reported),
        ("reserved_memory()", reserved),
        ("bytes allocated", allocated),
    ] {
        let per_slot = bytes as f64 / slots;
        println!(
            "{how:>17}: {bytes} bytes = {per_slot:.2} bytes/slot ({:.2}x Linux) {}",
            per_slot / GOAL_BYTES_PER_SLOT,
            if per_slot <= goal { "ok" } else { "OVER GOAL" }
        );
    }
    drop(tree);
    println!(
        "after drop: {} bytes still allocated",
        live_bytes().saturating_sub(before)
    );
}
