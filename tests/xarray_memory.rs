//! Memory: the tree frees what it no longer needs, dense trees cost about 9 bytes per
//! slot, and range stores allocate per level, not per index.
//!
//! A counting global allocator (`testkit/src/counting_alloc.rs`) keeps, per thread, the
//! bytes currently live and the bytes ever allocated. Per thread, because the test
//! harness runs tests in parallel and their allocations would otherwise mix. Every
//! measured test keeps its tree's allocations and frees on its own thread, so the
//! thread's counters see all of them: the leak test uses an owned epoch collector; the
//! other tests use the global one but never retire anything through it (they only store
//! into empty slots and then drop the tree, which frees its nodes directly). So no test's
//! garbage can be freed, or a bag of it queued, on another test's thread in the middle of
//! a measurement.
//!
//! A binary of its own, not a module of `tests/xarray/`: the allocator is per binary,
//! and the argument above holds only if no other test of the binary retires garbage
//! into the global collector (the stress tests do), which a measured thread's pins
//! could then free in the middle of a byte-exact measurement.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;

use crossbeam_epoch::Collector;
use rangelock::XArray;

use rangelock_testkit::counting_alloc::{allocated, live, Counting};
use support::tree_checks::{check, levels, scaled};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Fills a tree with `n` items, erases them all and drops it; returns the live bytes
/// (relative to the start) at the peak, after the erase, and after the drop.
fn fill_erase_drop(n: u64) -> (isize, isize, isize) {
    let start = live();
    // An owned collector: everything the tree retires is freed, on this thread, when the
    // tree (holding the last reference to the collector) is dropped.
    let xa: XArray<u64> = XArray::with_collector(Collector::new());
    let kept = Arc::new(u64::MAX);
    for i in 0..n {
        xa.store(i, Arc::new(i)).unwrap();
        if i % 10_000 == 0 {
            check(&xa);
        }
    }
    xa.store(n, kept.clone()).unwrap();
    check(&xa);
    assert_eq!(xa.len(), n as usize + 1);
    let peak = live() - start;
    for i in 0..=n {
        assert!(xa.erase(i).unwrap().item().is_some());
        if i % 10_000 == 0 {
            check(&xa);
        }
    }
    check(&xa);
    assert!(xa.is_empty());
    assert_eq!(xa.len(), 0);
    assert_eq!(xa.node_count(), 0, "erasing everything leaves no node");
    assert_eq!(xa.memory_usage(), 0);
    let after_erase = live() - start;
    drop(xa);
    assert_eq!(
        Arc::strong_count(&kept),
        1,
        "the tree released its reference"
    );
    drop(kept);
    (peak, after_erase, live() - start)
}

/// Erasing everything returns the tree to no nodes (node_count), and once the tree and
/// its owned collector are dropped, every byte it allocated is freed (the allocator).
///
/// Slack: none. A warm-up cycle runs first, so any one-time lazy allocation of std or
/// crossbeam-epoch on this thread (none is expected) happens before the baseline; after
/// that, every allocation of the measured cycle is the tree's, its items' or its
/// collector's, and all of them must be gone. The smallest thing that could leak is one
/// `Arc<u64>` (24 bytes), so any slack would hide a leaked item.
#[test]
fn erasing_everything_frees_every_byte() {
    let n = scaled(100_000, 300);
    fill_erase_drop(n / 100);
    let (peak, after_erase, after_drop) = fill_erase_drop(n);
    // 100k items of 24 bytes plus ~1600 nodes of 544: the peak is real memory.
    assert!(peak >= (n * 24) as isize, "peak {peak}");
    println!("{n} items: peak {peak} bytes live, {after_erase} after erasing (retired, awaiting the epoch), {after_drop} after the drop");
    assert_eq!(
        after_drop, 0,
        "live bytes after the drop (peak {peak}, after erase {after_erase})"
    );
}

/// A dense tree of a million values: bytes of node memory per slot. The design goal is
/// about 9 (544-byte nodes of 64 slots, plus the few inner nodes); the bound is generous.
#[test]
fn dense_memory_per_slot() {
    let n = scaled(1 << 20, 5000);
    let xa: XArray<u64> = XArray::new();
    let _ = xa.load(0); // registers this thread with the global epoch before measuring
    let start = live();
    for i in 0..n {
        xa.store_value(i, i).unwrap();
    }
    check(&xa);
    let per_slot = xa.memory_usage() as f64 / n as f64;
    let measured = live() - start;
    println!(
        "dense {n} values: {} nodes, {} bytes ({per_slot:.3} bytes/slot); allocator saw {measured}",
        xa.node_count(),
        xa.memory_usage()
    );
    assert!(per_slot < 12.0, "{per_slot} bytes per slot");
    // Values live in the slots: the node chunks are all the memory (no garbage was
    // produced), the linked nodes and at most the last chunk's unused ones and the chunk
    // headers (48 bytes per chunk of up to 64 nodes) beside them.
    let reserved = xa.reserved_memory();
    println!(
        "node chunks: {reserved} bytes ({:.3} bytes/slot)",
        reserved as f64 / n as f64
    );
    assert_eq!(measured, reserved as isize);
    assert!(reserved >= xa.memory_usage());
    let node_bytes = xa.memory_usage() / xa.node_count();
    let unused_nodes = 63 * node_bytes;
    // Chunks of 64 nodes once the tree holds 256, and fewer than 40 before that.
    let headers = 48 * (xa.node_count() / 64 + 40);
    assert!(
        reserved <= xa.memory_usage() + unused_nodes + headers,
        "{reserved} bytes of chunks for {} of nodes",
        xa.memory_usage()
    );
    // One leaf per 64 indices, then one node per 64 nodes below, up to a single root.
    let mut expected = 0;
    let mut width = n;
    loop {
        width = width.div_ceil(64);
        expected += width;
        if width == 1 {
            break;
        }
    }
    assert_eq!(xa.node_count() as u64, expected);
    drop(xa); // not erased: that would retire the nodes through the global epoch

    let xa: XArray<u64, 4> = XArray::with_slots();
    for i in 0..n / 16 {
        xa.store_value(i, i).unwrap();
    }
    check(&xa);
    println!(
        "dense {} values, 4 slots: {:.3} bytes/slot",
        n / 16,
        xa.memory_usage() as f64 / (n / 16) as f64
    );
}

/// What one `store_range` on an empty tree allocates: (nodes, bytes).
fn range_store_cost<const S: usize>(first: u64, last: u64) -> (usize, usize) {
    let xa: XArray<u64, S> = XArray::with_slots();
    let _ = xa.load(0); // registers this thread with the global epoch before measuring
    let before = allocated();
    xa.store_range(first..=last, 1).unwrap();
    let bytes = allocated() - before;
    check(&xa);
    (xa.node_count(), bytes) // the tree is dropped, not erased (see the module docs)
}

/// store_range(0..2^k) on an empty tree allocates O(levels) nodes (at most one per level
/// of the tree its last index needs) and at most 8 KiB with 64 slots, for every k up to
/// 64; so do ranges that start just past an aligned block (1..2^k) or end just before
/// the end of the space.
#[test]
fn range_store_allocates_per_level() {
    let mut most = [0usize; 2];
    let ks: Vec<u32> = if cfg!(miri) {
        vec![0, 1, 6, 7, 13, 32, 63, 64]
    } else {
        (0..=64).collect()
    };
    for k in ks {
        let last = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
        let ranges = [(0, last), (1.min(last), last), (u64::MAX - last, u64::MAX)];
        for (first, last) in ranges {
            let (nodes, bytes) = range_store_cost::<64>(first, last);
            let height = levels::<64>(last);
            assert!(
                nodes <= height,
                "[{first}, {last}]: {nodes} nodes > {height}"
            );
            assert!(bytes <= 8192, "[{first}, {last}]: {bytes} bytes");
            most[0] = most[0].max(bytes);

            let (nodes, bytes) = range_store_cost::<4>(first, last);
            let height = levels::<4>(last);
            assert!(
                nodes <= height,
                "4 slots [{first}, {last}]: {nodes} nodes > {height}"
            );
            // 64-byte nodes, plus the write cursor's path once it outgrows its inline
            // capacity (12 levels; a 4-slot tree has up to 32). Under Miri every node is
            // a slab chunk of its own (`node_slab::MAX_CHUNK`), so each also brings its
            // 48-byte chunk header; natively 16 or more share one.
            let headers = if cfg!(miri) { 48 * nodes } else { 0 };
            assert!(
                bytes <= 4096 + headers,
                "4 slots [{first}, {last}]: {bytes} bytes"
            );
            most[1] = most[1].max(bytes);
        }
        // Unaligned at both ends: at most one path of nodes per end.
        let (nodes, _) = range_store_cost::<64>(1.min(last), u64::MAX - 1);
        assert!(nodes <= 2 * levels::<64>(u64::MAX));
    }
    println!(
        "most bytes one range store allocated: {} (64 slots), {} (4 slots)",
        most[0], most[1]
    );
    // The largest ranges cost no more than a one-index store.
    let (nodes, bytes) = range_store_cost::<64>(0, (1 << 40) - 1);
    println!("store_range(0..2^40): {nodes} nodes, {bytes} bytes");
    assert_eq!(nodes, 1);
}
