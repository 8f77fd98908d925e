//! What a run reports: per operation kind its statistics, and what the checks found.

use core::time::Duration;

use super::OpStats;

/// One kind of operation's results.
#[derive(Clone, Debug)]
pub struct OpReport {
    /// Its name (one of [`OPS`](super::OPS)).
    pub op: &'static str,
    /// The statistics.
    pub stats: OpStats,
}

/// The results of a [`run`](super::run).
#[derive(Clone, Debug)]
pub struct Report {
    /// The strategy's name.
    pub strategy: &'static str,
    /// Threads.
    pub threads: usize,
    /// How long the threads ran.
    pub elapsed: Duration,
    /// Per operation kind that ran at least once.
    pub ops: Vec<OpReport>,
    /// Sectors read older than a write completed before the read began.
    pub stale_reads: u64,
    /// Sectors whose completed write is not on the device after the final write-back.
    pub lost_writes: u64,
    /// Write-backs checked against the device (see the [module docs](super)).
    pub fsync_checks: u64,
    /// Sectors a checked write-back left older on the device than a write completed
    /// before it began.
    pub fsync_lost: u64,
    /// Problems found by the quiescence check or unexpected errors (empty when clean).
    pub errors: Vec<String>,
}

impl Report {
    /// Every operation's statistics together.
    pub fn total(&self) -> OpStats {
        let mut total = OpStats::default();
        for op in &self.ops {
            total.merge(&op.stats);
        }
        total
    }

    /// Completed calls per second, all kinds together.
    pub fn ops_per_sec(&self) -> f64 {
        self.total().latency.count() as f64 / self.elapsed.as_secs_f64()
    }

    /// The statistics of operation `op`, if it ran.
    pub fn op(&self, op: &str) -> Option<&OpStats> {
        self.ops.iter().find(|o| o.op == op).map(|o| &o.stats)
    }

    /// What the oracle found wrong with the run, if anything: a stale read, a lost
    /// write, a write-back that lost data, an error of the quiescence check, or no
    /// completed call at all.
    pub fn inconsistency(&self) -> Option<String> {
        let lost = (self.stale_reads, self.lost_writes, self.fsync_lost);
        if lost != (0, 0, 0) {
            return Some(format!("(stale reads, lost writes, fsync lost) = {lost:?}"));
        }
        if !self.errors.is_empty() {
            return Some(format!("errors: {:?}", self.errors));
        }
        if self.total().latency.count() == 0 {
            return Some("no call completed".into());
        }
        None
    }
}
