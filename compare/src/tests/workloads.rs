//! The workload driver: validation of workloads and their overrides, the standard
//! scenarios run short against every strategy with the oracle on, the naive control
//! caught, the sweep of scenario e, operation budgets, and refused overlaps.

use super::*;

#[test]
fn workloads_are_validated() {
    let mut w = SCENARIOS[0].workload(4, Duration::from_millis(1)).unwrap();
    assert!(w.validate(4096).is_ok());
    w.roles[0].pages = 0..5000;
    assert!(w.validate(4096).unwrap_err().contains("not in the file"));
    let mut w = SCENARIOS[3].workload(2, Duration::from_millis(1)).unwrap();
    w.roles[0].io_bytes = 100;
    assert!(w.validate(4096).unwrap_err().contains("multiple of 512"));
    let cache = Strategy::RwLock.build();
    assert!(workload::run(cache.as_ref(), &w).is_err());
}

/// Runs `scenario` with `threads` for `millis` against `strategy`, sleeping devices made
/// short so that debug builds get through plenty of operations.
fn short_run(strategy: Strategy, scenario: &str, threads: usize, millis: u64) -> workload::Report {
    let mut w = workload::Scenario::find(scenario)
        .and_then(|s| s.workload(threads, Duration::from_millis(millis)))
        .expect("a workload scenario");
    if w.latency.mode == LatencyMode::Sleep {
        w.latency = Latency {
            mode: LatencyMode::Sleep,
            base: Duration::from_micros(20),
            per_mib: Duration::ZERO,
        };
    }
    workload::run(strategy.build().as_ref(), &w).expect("a valid workload")
}

#[test]
#[cfg_attr(miri, ignore = "timed multi-threaded workloads")]
fn every_compared_strategy_is_consistent_on_every_scenario() {
    for scenario in ["a", "b", "c", "d", "f", "g"] {
        for strategy in Strategy::COMPARED {
            let report = short_run(strategy, scenario, 6, 150);
            if let Some(wrong) = report.inconsistency() {
                panic!("{} on {scenario}: {wrong}: {report:?}", strategy.name());
            }
        }
    }
}

/// The oracle's negative control: with no lock between direct IO and page creation,
/// faults racing direct writes on the same pages cache stale data, and the oracle must
/// see it (within a bounded number of attempts).
#[test]
#[cfg_attr(miri, ignore = "timed multi-threaded workloads")]
fn the_naive_control_is_caught_serving_stale_data() {
    let caught = AtomicUsize::new(0);
    for _ in 0..20 {
        let report = short_run(Strategy::Naive, "b", 8, 200);
        if report.stale_reads > 0 {
            caught.fetch_add(1, Ordering::Relaxed);
            break;
        }
    }
    assert_eq!(
        caught.load(Ordering::Relaxed),
        1,
        "20 runs of the naive control and no stale read"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "1 TiB locks are fine, but the sweep builds 4 trees x 200 calls"
)]
fn the_empty_file_sweep_covers_a_terabyte() {
    for strategy in Strategy::COMPARED {
        let rows = workload::empty_file_sweep(strategy, &[4096, 1 << 40], 3, &|| 0).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.ops_per_sec > 0.0), "{rows:?}");
    }
}

#[test]
#[cfg_attr(miri, ignore = "threads")]
fn a_workload_stops_at_its_operation_budget() {
    let mut w = SCENARIOS[0].workload(4, Duration::from_secs(60)).unwrap();
    w.max_ops = Some(50);
    let report = workload::run(Strategy::RangeLock.build().as_ref(), &w).unwrap();
    let calls = report.total().latency.count();
    assert!(
        (1..=50).contains(&calls),
        "{calls} calls for a budget of 50"
    );
    assert!(
        report.elapsed < Duration::from_secs(30),
        "{:?}",
        report.elapsed
    );
}

/// Every role at once on one small file, for every strategy: buffered writes racing
/// direct IO and edits exercise the hand-off of dirty pages, write-backs are checked
/// (fsync), and every kind of operation must have run.
#[test]
#[cfg_attr(miri, ignore = "timed")]
fn every_strategy_is_consistent_with_every_role_at_once() {
    for strategy in Strategy::COMPARED {
        let w = Workload {
            file_pages: 64,
            latency: Latency {
                mode: LatencyMode::Sleep,
                base: Duration::from_micros(5),
                per_mib: Duration::ZERO,
            },
            duration: Duration::from_millis(200),
            max_ops: None,
            roles: vec![
                RoleSpec {
                    role: Role::Mixed,
                    threads: 3,
                    pages: 0..32,
                    hit_ratio: 0.5,
                    io_bytes: 4096,
                },
                RoleSpec {
                    role: Role::Truncate,
                    threads: 1,
                    pages: 32..64,
                    hit_ratio: 0.0,
                    io_bytes: 0,
                },
                RoleSpec {
                    role: Role::Punch,
                    threads: 1,
                    pages: 0..64,
                    hit_ratio: 0.0,
                    io_bytes: 1024,
                },
                RoleSpec {
                    role: Role::Writeback,
                    threads: 1,
                    pages: 0..64,
                    hit_ratio: 0.0,
                    io_bytes: 0,
                },
            ],
            seed: 7,
        };
        let report = workload::run(strategy.build().as_ref(), &w).unwrap();
        let what = format!("{}: {report:?}", strategy.name());
        // The whole-file locks may starve the mixed threads behind back-to-back edits
        // (the rw lock queues readers behind a waiting writer; the two-state lock has
        // no fairness): only lock entries must get every kind of operation through.
        if strategy == Strategy::RangeLock {
            for op in workload::OPS {
                let stats = report
                    .op(op)
                    .unwrap_or_else(|| panic!("{op} never ran: {what}"));
                assert!(stats.latency.count() > 0, "{op}: {what}");
            }
        }
        assert_eq!(report.inconsistency(), None, "{what}");
        assert!(report.fsync_checks > 0, "no write-back was checked: {what}");
    }
}

#[test]
fn direct_writers_that_could_overlap_are_refused() {
    let spec = |role, threads, pages, io_bytes| RoleSpec {
        role,
        threads,
        pages,
        hit_ratio: 0.0,
        io_bytes,
    };
    let mut w = Workload {
        file_pages: 8,
        latency: Latency::NONE,
        duration: Duration::from_millis(1),
        max_ops: None,
        roles: vec![spec(Role::DirectWrite, 3, 0..1, 2048)],
        seed: 1,
    };
    assert!(w.validate(4096).unwrap_err().contains("only 2 slots"));
    w.roles = vec![
        spec(Role::DirectWrite, 2, 0..4, 4096),
        spec(Role::Mixed, 1, 3..8, 4096),
    ];
    assert!(w
        .validate(4096)
        .unwrap_err()
        .contains("two roles would overlap"));
    w.roles[1].pages = 4..8;
    assert_eq!(w.validate(4096), Ok(()));
    // The standard scenarios grow their regions with the thread count instead.
    for scenario in SCENARIOS.iter().filter(|s| !s.is_sweep()) {
        for threads in [1, 16, 40, 300] {
            let w = scenario.workload(threads, Duration::ZERO).unwrap();
            assert_eq!(
                w.validate(4096),
                Ok(()),
                "{} at {threads} threads",
                scenario.name
            );
            assert_eq!(w.threads(), threads, "{}", scenario.name);
        }
    }
}

#[test]
fn io_size_and_hit_ratio_overrides_keep_workloads_valid() {
    for scenario in SCENARIOS.iter().filter(|s| !s.is_sweep()) {
        for io in [512, 64 << 10, 4 << 20] {
            let w = scenario.workload(16, Duration::ZERO).unwrap();
            let before = w.file_pages;
            let w = w.with_io_bytes(io, 4096).with_hit_ratio(0.25);
            assert_eq!(
                w.validate(4096),
                Ok(()),
                "{} with {io}-byte IO",
                scenario.name
            );
            assert!(
                w.file_pages >= before && w.file_pages % before == 0,
                "{}",
                scenario.name
            );
            for r in &w.roles {
                if matches!(
                    r.role,
                    Role::DirectRead | Role::DirectWrite | Role::Punch | Role::Mixed
                ) {
                    assert_eq!(r.io_bytes, io, "{}", scenario.name);
                }
                if matches!(r.role, Role::Fault | Role::BufferedRead | Role::Mixed) {
                    assert_eq!(r.hit_ratio, 0.25, "{}", scenario.name);
                }
            }
        }
    }
    let mut huge = SCENARIOS[3].workload(1024, Duration::ZERO).unwrap();
    huge = huge.with_io_bytes(64 << 20, 4096);
    assert!(huge.validate(4096).unwrap_err().contains("at most"));
}
