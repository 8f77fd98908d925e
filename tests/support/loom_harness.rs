//! The model runner the loom test files share (`tests/loom/lock.rs`,
//! `tests/loom/mapping.rs`): a preemption bound from `LOOM_MAX_PREEMPTIONS` (2 if unset),
//! and a record of the outcomes that a model's iterations reached, so that each model can
//! assert that it explored every side of its race instead of passing by never reaching it.

#![allow(dead_code)]

// Std types observe the models: loom runs all of a model's threads on one OS thread,
// so they are exact, add no scheduling points, and outlive the iterations.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Runs `f` under loom with the preemption bound from `LOOM_MAX_PREEMPTIONS`, or 2 if it
/// is unset (loom's own default, unbounded, would not finish), lowered to `cap` if that
/// is smaller.
pub fn model(cap: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    let bound = builder.preemption_bound.unwrap_or(2);
    builder.preemption_bound = Some(cap.map_or(bound, |cap| bound.min(cap)));
    // Loom's default (1000 scheduling points per execution) is too few once a lock
    // reaches the end of the index space: with 4-slot nodes the slow path of a
    // whole-range lock builds (and its release walks) a 32-level tree. A thread that
    // spins forever still trips this bound.
    builder.max_branches = builder.max_branches.max(20_000);
    builder.check(f);
}

/// The outcomes that the iterations of one model reached.
#[derive(Default)]
pub struct Outcomes(Mutex<BTreeSet<String>>);

impl Outcomes {
    /// Records that this iteration reached `outcome`.
    pub fn saw(&self, outcome: impl Into<String>) {
        self.0.lock().unwrap().insert(outcome.into());
    }
}

/// Runs `f` under [`model`] and then asserts that the iterations together reached every
/// outcome in `required`.
pub fn model_reaching(
    required: &'static [&'static str],
    f: impl Fn(&Outcomes) + Sync + Send + 'static,
) {
    model_reaching_capped(None, required, f)
}

/// [`model_reaching`] with the preemption bound lowered to `cap`.
pub fn model_reaching_capped(
    cap: Option<usize>,
    required: &'static [&'static str],
    f: impl Fn(&Outcomes) + Sync + Send + 'static,
) {
    let outcomes = Arc::new(Outcomes::default());
    let shared = Arc::clone(&outcomes);
    let iterations = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&iterations);
    model(cap, move || {
        count.fetch_add(1, Ordering::Relaxed);
        f(&shared)
    });
    let reached = outcomes.0.lock().unwrap();
    // Shown with `--nocapture`: how big the model is.
    eprintln!(
        "{} interleavings, reached {reached:?}",
        iterations.load(Ordering::Relaxed)
    );
    for outcome in required {
        assert!(
            reached.contains(*outcome),
            "no interleaving reached `{outcome}`; reached: {reached:?}"
        );
    }
}
