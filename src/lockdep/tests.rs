//! The checker against a model: random acquisition sequences over a few classes on a few
//! (simulated) threads, each with its own held stack and edge cache over one private
//! graph. The checker must report a cycle exactly when the model's order graph gets one:
//! at the acquisition whose new edge `held -> new` finds a path `new -> ... -> held`.

use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::check;
use super::class::{Node, TreeClass};
use super::graph::OrderGraph;
use super::held::{HeldLock, Instance, ThreadState};
use super::ReportKind;
use crate::lock_mode::LockMode;

const CLASSES: usize = 4;
const THREADS: usize = 3;

/// One step: a simulated thread acquires a class, or releases one it holds.
#[derive(Clone, Copy, Debug)]
struct Step {
    thread: usize,
    class: usize,
    acquire: bool,
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        Step {
            thread: usize::arbitrary(g) % THREADS,
            class: usize::arbitrary(g) % CLASSES,
            // Acquire twice as often as release, so threads hold several locks.
            acquire: u8::arbitrary(g) % 3 != 0,
        }
    }
}

/// The model: an adjacency matrix, and which class each thread holds, in order.
struct Model {
    edges: [[bool; CLASSES]; CLASSES],
    held: [Vec<usize>; THREADS],
}

impl Model {
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = [false; CLASSES];
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if !std::mem::replace(&mut seen[n], true) {
                stack.extend((0..CLASSES).filter(|&m| self.edges[n][m]));
            }
        }
        false
    }

    /// Acquires `class` on `thread`: how many new edges close a cycle.
    fn acquire(&mut self, thread: usize, class: usize) -> usize {
        let mut closing = 0;
        for &h in &self.held[thread] {
            if !self.edges[h][class] {
                closing += self.reaches(class, h) as usize;
                self.edges[h][class] = true;
            }
        }
        self.held[thread].push(class);
        closing
    }
}

fn lock(classes: &[TreeClass], class: usize) -> HeldLock {
    HeldLock {
        instance: Instance::Tree(1_000_000 + class as u64),
        node: Node {
            class: classes[class].id,
            subclass: 0,
        },
        first: 0,
        last: 0,
        mode: LockMode::Exclusive,
    }
}

fn reports_exactly_on_cycles(steps: Vec<Step>) -> bool {
    static NAMES: [&str; CLASSES] = ["model.c0", "model.c1", "model.c2", "model.c3"];
    let classes: Vec<TreeClass> = NAMES.iter().map(|n| TreeClass::named(n)).collect();
    let graph = OrderGraph::new();
    let mut threads: Vec<ThreadState> = (0..THREADS).map(|_| ThreadState::default()).collect();
    let mut model = Model {
        edges: [[false; CLASSES]; CLASSES],
        held: Default::default(),
    };
    for step in steps {
        let state = &mut threads[step.thread];
        let held = model.held[step.thread]
            .iter()
            .position(|&c| c == step.class);
        match (step.acquire, held) {
            (true, None) => {
                let new = lock(&classes, step.class);
                let reports = check::acquire(&graph, state, &new);
                state.push(new);
                let expected = model.acquire(step.thread, step.class);
                if reports.len() != expected
                    || reports
                        .iter()
                        .any(|r| r.kind() != ReportKind::CircularDependency)
                {
                    return false;
                }
            }
            (false, Some(at)) => {
                model.held[step.thread].remove(at);
                state.remove(Instance::Tree(1_000_000 + step.class as u64), 0, 0);
            }
            _ => {}
        }
    }
    true
}

#[test]
fn checker_reports_exactly_when_the_model_has_a_cycle() {
    QuickCheck::new()
        .tests(if cfg!(miri) { 5 } else { 300 })
        .rng(Gen::from_size_and_seed(40, 0x10c4_dec0))
        .quickcheck(reports_exactly_on_cycles as fn(Vec<Step>) -> bool);
}

/// The property is not vacuous: this sequence closes a cycle and must be reported.
#[test]
fn the_model_sees_an_abba() {
    let step = |thread, class, acquire| Step {
        thread,
        class,
        acquire,
    };
    assert!(reports_exactly_on_cycles(vec![
        step(0, 0, true),
        step(0, 1, true),
        step(1, 1, true),
        step(1, 0, true),
    ]));
    let classes: Vec<TreeClass> = ["model.x", "model.y"]
        .iter()
        .map(|n| TreeClass::named(n))
        .collect();
    let graph = OrderGraph::new();
    let (mut t0, mut t1) = (ThreadState::default(), ThreadState::default());
    t0.push(lock(&classes, 0));
    assert!(check::acquire(&graph, &mut t0, &lock(&classes, 1)).is_empty());
    t1.push(lock(&classes, 1));
    let reports = check::acquire(&graph, &mut t1, &lock(&classes, 0));
    assert_eq!(reports.len(), 1);
    assert!(reports[0]
        .message()
        .contains("possible circular locking dependency detected"));
}
