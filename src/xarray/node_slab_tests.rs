//! The slab's bookkeeping against a model: chunk sizes, a node's way back to its
//! chunk, reset on reuse, the order of the chunk list, and the trim bound.

use super::*;
use quickcheck::{Gen, QuickCheck, TestResult};

type Slab = NodeSlab<64>;

/// A slab with the chunks of a normal build (Miri's are smaller, see [`MAX_CHUNK`]).
fn slab() -> Slab {
    Slab::with_max_chunk(64)
}

/// What the slab's state says, read under its mutex.
fn state(slab: &Slab) -> (usize, usize, usize) {
    let st = sync::lock(&slab.state);
    (st.chunks, st.capacity, st.spare)
}

/// Walks the chunk list: checks the links both ways and that idle chunks (all nodes
/// free) form its back; returns (chunks in the list, free nodes in them, idle chunks at
/// the back with their lengths).
fn walk_list(slab: &Slab) -> (usize, usize, Vec<usize>) {
    let st = sync::lock(&slab.state);
    let (mut count, mut free, mut idle) = (0, 0, Vec::new());
    let mut prev = None;
    let mut at = st.front;
    while let Some(chunk) = at {
        // SAFETY: a live chunk of the list; we hold the mutex.
        let header = unsafe { &*chunk.h() };
        assert!(header.prev == prev, "broken back link");
        assert!(header.free != 0, "a full chunk in the list");
        let is_idle = header.free == full(header.len);
        assert!(
            is_idle || idle.is_empty(),
            "a chunk in use behind an idle one"
        );
        if is_idle {
            idle.push(header.len);
        }
        count += 1;
        free += header.free.count_ones() as usize;
        prev = Some(chunk);
        at = header.next;
    }
    assert!(st.back == prev, "the back is not the last chunk");
    (count, free, idle)
}

/// Spare nodes are the free nodes of the listed chunks, and no idle chunk at the back
/// could be trimmed.
fn check(slab: &Slab) {
    let (_, capacity, spare) = state(slab);
    let (_, free, idle) = walk_list(slab);
    assert_eq!(free, spare);
    if let Some(&len) = idle.last() {
        let live = capacity - spare;
        assert!(
            spare - len < MIN_SPARE.max(live / 8),
            "an idle chunk of {len} stays with {spare} spare, {live} live"
        );
    }
}

#[test]
fn chunks_grow_with_the_slab() {
    let slab = slab();
    let n = if cfg!(miri) { 80 } else { 300 };
    let nodes: Vec<_> = (0..n).map(|_| slab.alloc(0, entry::EMPTY, 0)).collect();
    // A quarter of what the slab holds, 1 to 64 at a time.
    let mut lens: Vec<usize> = Vec::new();
    while lens.iter().sum::<usize>() < n {
        lens.push((lens.iter().sum::<usize>() / 4).clamp(1, 64));
    }
    assert_eq!(lens[..12], [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 3]);
    let capacity: usize = lens.iter().sum();
    assert_eq!(state(&slab), (lens.len(), capacity, capacity - n));
    assert_eq!(
        slab.reserved_bytes(),
        lens.len() * HEADER + capacity * core::mem::size_of::<Node<64>>()
    );
    assert_eq!(HEADER, 48);
    // Every node finds its own chunk, and is node `i` of it.
    for node in &nodes {
        let ptr: *const Node<64> = &**node;
        // SAFETY: a node of this slab, its chunk alive.
        let (chunk, i) = unsafe { Slab::chunk_of(ptr) };
        // SAFETY: `i` is the node's place in its chunk.
        assert_eq!(unsafe { Slab::node_in(chunk, i) } as *const Node<64>, ptr);
    }
    check(&slab);
    drop(nodes);
    check(&slab);
}

#[test]
fn a_reused_node_is_empty_again() {
    let slab = slab();
    let node = slab.alloc(6, entry::value_word(9), 0b101);
    assert_eq!(node.shift, 6);
    // SAFETY: this thread's own node, not published.
    assert_eq!(unsafe { node.count() }, 64);
    node.lock_new().keep();
    assert!(!node.make_obsolete(), "a new node is not kept");
    let first: *const Node<64> = node.into_raw();
    // SAFETY: never published.
    unsafe { slab.give(first) };
    let again = slab.alloc(0, entry::EMPTY, 0);
    assert_eq!(
        &*again as *const Node<64>, first,
        "the same node comes back"
    );
    assert_eq!(again.shift, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { again.count() }, 0);
    assert!((0..64).all(|i| again.load(i) == entry::EMPTY));
    assert!((0..3).all(|m| again.mark_bits(m) == 0));
    assert!(again.lock().is_some(), "not locked, not obsolete");
    assert_eq!(again.chunk_index, 0);
}

#[test]
fn a_shrunk_slab_gives_its_memory_back() {
    let slab = slab();
    let n = if cfg!(miri) { 300 } else { 10_000 };
    let nodes: Vec<_> = (0..n).map(|_| slab.alloc(0, entry::EMPTY, 0)).collect();
    drop(nodes);
    check(&slab);
    let (_, capacity, spare) = state(&slab);
    assert_eq!(capacity, spare);
    assert!(
        (MIN_SPARE..MIN_SPARE + 64).contains(&spare),
        "{spare} spare nodes after giving back {n}"
    );
}

#[test]
fn churn_does_not_reach_the_allocator() {
    let slab = slab();
    let kept: Vec<_> = (0..100).map(|_| slab.alloc(0, entry::EMPTY, 0)).collect();
    let before = state(&slab);
    for _ in 0..if cfg!(miri) { 100 } else { 10_000 } {
        let burst: Vec<_> = (0..20).map(|_| slab.alloc(0, entry::EMPTY, 0)).collect();
        drop(burst);
    }
    assert_eq!(state(&slab), before, "chunks were made or freed");
    drop(kept);
}

/// Random sequences of takes and gives against a model of the nodes in use.
#[test]
fn random_sequences_keep_the_books() {
    // Up to 70 nodes per step: past one full chunk. Under Miri, fewer and shorter.
    const BURST: u16 = if cfg!(miri) { 20 } else { 70 };
    fn prop(ops: Vec<(bool, u16)>) -> TestResult {
        let slab = slab();
        let mut live: Vec<NewNode<'_, 64>> = Vec::new();
        for (take, at) in ops {
            if take || live.is_empty() {
                for _ in 0..=at % BURST {
                    live.push(slab.alloc(0, entry::EMPTY, 0));
                }
            } else {
                for _ in 0..=at % BURST {
                    if live.is_empty() {
                        break;
                    }
                    let i = at as usize % live.len();
                    drop(live.swap_remove(i));
                }
            }
            let (_, capacity, spare) = state(&slab);
            assert_eq!(capacity - spare, live.len());
            let mut addrs: Vec<usize> = live.iter().map(|n| &**n as *const _ as usize).collect();
            addrs.sort_unstable();
            addrs.dedup();
            assert_eq!(addrs.len(), live.len(), "a node handed out twice");
            check(&slab);
        }
        drop(live);
        let (_, capacity, spare) = state(&slab);
        TestResult::from_bool(capacity == spare)
    }
    QuickCheck::new()
        .tests(if cfg!(miri) { 2 } else { 200 })
        .rng(Gen::new(if cfg!(miri) { 12 } else { 100 }))
        .quickcheck(prop as fn(Vec<(bool, u16)>) -> TestResult);
}
