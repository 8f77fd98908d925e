//! Latency statistics: a log-linear histogram (about 3% resolution, fixed memory), and
//! per-operation counters merged from every thread at the end of a run.

use core::time::Duration;

/// Sub-buckets per power of two: 2^5 = 32, so a bucket spans at most 1/32 of its value.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) << SUB_BITS;

/// The bucket of `nanos`: exact below 64 ns, then 32 buckets per power of two.
fn bucket(nanos: u64) -> usize {
    if nanos < 2 * SUB {
        return nanos as usize;
    }
    let exponent = 63 - nanos.leading_zeros();
    let shift = exponent - SUB_BITS;
    (((shift + 1) as usize) << SUB_BITS) + ((nanos >> shift) & (SUB - 1)) as usize
}

/// The smallest value of bucket `b`.
fn bucket_floor(b: usize) -> u64 {
    if b < 2 * SUB as usize {
        return b as u64;
    }
    let shift = (b >> SUB_BITS) as u32 - 1;
    ((b as u64 & (SUB - 1)) | SUB) << shift
}

/// A latency histogram in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }
}

impl core::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    /// Adds `other`'s values.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// The value below which a fraction `q` (0..=1) of the values lie, to the bucket's
    /// resolution (and never above the maximum). Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(bucket_floor(b).min(self.max));
            }
        }
        self.max()
    }
}

/// The statistics of one kind of operation.
#[derive(Clone, Debug, Default)]
pub struct OpStats {
    /// Latency of every call, from before it started to after it returned.
    pub latency: Histogram,
    /// The longest time one call spent not in its own device IO (waiting for locks, for
    /// another thread's fill, for a page lock).
    pub worst_wait: Duration,
    /// Calls refused past the end of file (during a truncate): counted, not failures.
    pub beyond_eof: u64,
}

impl OpStats {
    /// Records one call that took `latency`, `device` of it in its own IO.
    pub fn record(&mut self, latency: Duration, device: Duration) {
        self.latency.record(latency);
        self.worst_wait = self.worst_wait.max(latency.saturating_sub(device));
    }

    /// Adds `other`'s calls.
    pub fn merge(&mut self, other: &OpStats) {
        self.latency.merge(&other.latency);
        self.worst_wait = self.worst_wait.max(other.worst_wait);
        self.beyond_eof += other.beyond_eof;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = 0;
        for nanos in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket(nanos);
            assert!(b >= last && b < BUCKETS, "{nanos}: bucket {b} after {last}");
            last = b;
            let floor = bucket_floor(b);
            assert!(floor <= nanos, "{nanos}: floor {floor}");
            assert!(
                nanos - floor <= nanos / SUB,
                "{nanos}: floor {floor} too coarse"
            );
            assert_eq!(bucket(floor), b);
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let within = |d: Duration, us: f64| (d.as_nanos() as f64 / 1e3 - us).abs() <= us / 30.0;
        assert!(within(h.quantile(0.5), 500.0), "{:?}", h.quantile(0.5));
        assert!(within(h.quantile(0.99), 990.0), "{:?}", h.quantile(0.99));
        assert_eq!(h.max(), Duration::from_micros(1000));
        assert_eq!(
            h.quantile(1.0),
            Duration::from_micros(1000).min(h.quantile(1.0))
        );
        assert_eq!(Histogram::default().quantile(0.5), Duration::ZERO);
    }
}
