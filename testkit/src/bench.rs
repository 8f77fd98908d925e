//! The criterion settings the crate's benches share: short runs (20 samples, 0.5 s of
//! warm-up, 1.5 s of measurement), since a full `cargo bench` runs dozens of groups on
//! a 2-core machine; command-line flags (`--measurement-time`, ...) still override them.

use std::time::Duration;

use criterion::Criterion;

/// Criterion configured for the crate's benches (see the module docs).
pub fn short_runs() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
}
