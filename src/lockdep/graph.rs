//! The order graph: which class has been taken while holding which.
//!
//! An edge `A -> B` says that some thread acquired a lock of class B while it held one
//! of class A. Each edge keeps what was seen the first time (both locks' modes and
//! ranges, the thread, and a backtrace captured then, once per edge). A cycle in the
//! graph is a possible deadlock: threads that take the edges of the cycle at once can
//! each wait for the next. So the checker reports a cycle the moment the edge that
//! closes it is added, whether or not this run deadlocked.
//!
//! # Read-mostly
//!
//! The graph is read on acquisitions and written only when an edge is new, which in a
//! running program soon stops happening. It lives in an `arc_swap::ArcSwap` holding an
//! immutable [`Snapshot`]: a reader loads the current snapshot (no lock, no write to
//! shared memory beyond arc-swap's debt slots); a writer takes `writer`, copies the
//! snapshot, adds the edge and stores the copy. Threads also cache the edges they have
//! seen (`held.rs`), so a known edge costs a hash-set probe in thread-local memory.
//!
//! # Invariants
//!
//! * Edges are only added, never removed, so a snapshot is a subgraph of every later
//!   one, and a thread's cached edge stays true.
//! * Only the holder of `writer` stores a snapshot, and it checks for the edge again
//!   under it: two threads that see the same new edge add (and report) it once.
//! * The cycle search runs on the snapshot *before* the new edge `A -> B`: a path
//!   `B -> ... -> A` there is exactly a cycle that the new edge closes.

use std::backtrace::Backtrace;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::class::Node;
use super::held::HeldLock;
use crate::sync::process::{LazyLock, Mutex};

/// What was seen the first time an edge was taken.
#[derive(Debug)]
pub(crate) struct EdgeInfo {
    /// The lock held.
    pub(crate) from: HeldLock,
    /// The lock acquired while holding it.
    pub(crate) to: HeldLock,
    /// The thread's name.
    pub(crate) thread: String,
    /// Where the acquisition of `to` was.
    pub(crate) backtrace: Backtrace,
}

/// Packs an edge between two nodes into a `u64`.
pub(crate) fn edge_key(from: Node, to: Node) -> u64 {
    (from.key() as u64) << 32 | to.key() as u64
}

/// One immutable version of the graph.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    edges: HashMap<u64, Arc<EdgeInfo>>,
    /// Successors of each node, by node key.
    out: HashMap<u32, Vec<u32>>,
}

impl Snapshot {
    /// The edges of a shortest path `from -> ... -> to`, if there is one.
    fn path(&self, from: u32, to: u32) -> Option<Vec<Arc<EdgeInfo>>> {
        let mut parent: HashMap<u32, u32> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut chain = Vec::new();
                let mut at = to;
                while at != from {
                    let prev = parent[&at];
                    chain.push(Arc::clone(&self.edges[&((prev as u64) << 32 | at as u64)]));
                    at = prev;
                }
                chain.reverse();
                return Some(chain);
            }
            for &next in self.out.get(&node).into_iter().flatten() {
                if next != from && !parent.contains_key(&next) {
                    parent.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

/// What adding an edge found.
#[derive(Debug)]
pub(crate) enum Added {
    /// The edge was in the graph already.
    Known,
    /// The edge is new; with the existing chain `to -> ... -> from` if it closes a cycle.
    New {
        edge: Arc<EdgeInfo>,
        cycle: Option<Vec<Arc<EdgeInfo>>>,
    },
}

/// The graph: the current snapshot and the lock its writers take.
#[derive(Debug)]
pub(crate) struct OrderGraph {
    snapshot: ArcSwap<Snapshot>,
    writer: Mutex<()>,
}

impl OrderGraph {
    pub(crate) fn new() -> Self {
        OrderGraph {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            writer: Mutex::new(()),
        }
    }

    /// Whether the graph has the edge `key`.
    pub(crate) fn contains(&self, key: u64) -> bool {
        self.snapshot.load().edges.contains_key(&key)
    }

    /// Adds the edge `from.node -> to.node` (if new, capturing the backtrace now) and
    /// says whether it closes a cycle.
    pub(crate) fn add(&self, from: &HeldLock, to: &HeldLock) -> Added {
        let key = edge_key(from.node, to.node);
        if self.contains(key) {
            return Added::Known;
        }
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.snapshot.load_full();
        if current.edges.contains_key(&key) {
            return Added::Known;
        }
        let cycle = current.path(to.node.key(), from.node.key());
        let edge = Arc::new(EdgeInfo {
            from: *from,
            to: *to,
            thread: crate::sync::process::thread_name(),
            backtrace: Backtrace::force_capture(),
        });
        let mut next = Snapshot::clone(&current);
        next.edges.insert(key, Arc::clone(&edge));
        next.out
            .entry(from.node.key())
            .or_default()
            .push(to.node.key());
        self.snapshot.store(Arc::new(next));
        Added::New { edge, cycle }
    }
}

/// The process's graph.
pub(crate) fn global() -> &'static OrderGraph {
    static GRAPH: LazyLock<OrderGraph> = LazyLock::new(OrderGraph::new);
    &GRAPH
}
