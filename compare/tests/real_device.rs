//! A short workload on a real file with `O_DIRECT` through every strategy: the oracle
//! (every read, every checked fsync, read back from the file itself with `O_DIRECT`)
//! finds nothing stale or lost for the compared strategies, and catches the naive
//! control. Skipped, with the reason printed, only where the file system refuses
//! `O_DIRECT` (the file lives in cargo's per-crate temporary directory under `target/`,
//! not `/tmp`, which may be tmpfs).
//!
//! A correctness test, not a benchmark: it asserts nothing about time.

use std::path::PathBuf;
use std::time::Duration;

use rangelock_compare::workload::{
    self, DeviceSpec, FileDevice, Latency, Role, RoleSpec, Scenario, Strategy, Workload,
};

/// The device path, or `None` (with the reason printed) where `O_DIRECT` is refused.
fn device(name: &str) -> Option<DeviceSpec> {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    match FileDevice::create(&path, 16, 4096) {
        Ok(_) => Some(DeviceSpec::File(path)),
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// Every role at once over 64 pages, for 150 ms.
fn every_role() -> Workload {
    let role = |role, threads, pages, io_bytes| RoleSpec {
        role,
        threads,
        pages,
        hit_ratio: 0.5,
        io_bytes,
    };
    Workload {
        file_pages: 64,
        latency: Latency::NONE,
        duration: Duration::from_millis(150),
        max_ops: None,
        roles: vec![
            role(Role::Mixed, 3, 0..32, 4096),
            role(Role::Truncate, 1, 32..64, 0),
            role(Role::Punch, 1, 0..64, 1024),
            role(Role::Writeback, 1, 0..64, 0),
        ],
        seed: 11,
    }
}

#[test]
fn every_strategy_is_consistent_on_a_real_file() {
    let Some(device) = device("every_strategy.dev") else {
        return;
    };
    for strategy in Strategy::COMPARED {
        let report = workload::run_on(strategy.build().as_ref(), &every_role(), &device)
            .unwrap_or_else(|e| panic!("{}: {e}", strategy.name()));
        let what = format!("{}: {report:?}", strategy.name());
        assert_eq!(report.inconsistency(), None, "{what}");
        assert!(report.fsync_checks > 0, "no write-back was checked: {what}");
    }
}

#[test]
fn the_naive_control_is_caught_on_a_real_file() {
    let Some(device) = device("naive.dev") else {
        return;
    };
    let scenario = Scenario::find("b").expect("scenario b");
    for _ in 0..10 {
        let work = scenario
            .workload(8, Duration::from_millis(200))
            .expect("not the sweep");
        let report = workload::run_on(Strategy::Naive.build().as_ref(), &work, &device).unwrap();
        if report.stale_reads + report.lost_writes + report.fsync_lost > 0 {
            return;
        }
    }
    panic!("10 runs of the naive control on a real file and nothing stale or lost");
}
