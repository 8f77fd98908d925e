//! The workload driver: threads by role against any [`PageCache`](crate::PageCache) over a simulated
//! device, with latency statistics and the consistency oracle.
//!
//! A [`Workload`] is a file size, a [`Latency`], a duration and a list of [`RoleSpec`]s,
//! each a number of threads doing one kind of operation over a region of the file:
//!
//! | role | one operation |
//! |---|---|
//! | [`Role::Fault`] | with probability `1 - hit_ratio` reclaim the page first; fault it in and read it |
//! | [`Role::BufferedRead`] | the same through a buffered read |
//! | [`Role::BufferedWrite`] | a buffered write of one sector |
//! | [`Role::DirectRead`] | a direct read of `io_bytes`, aligned to its size |
//! | [`Role::DirectWrite`] | a direct write of `io_bytes`; thread `t` of `n` writes only the slots `k` with `k % n == t`, so direct writes never overlap one another |
//! | [`Role::Truncate`] | truncate to a random sector boundary in the region, then grow back |
//! | [`Role::Punch`] | punch a hole of `io_bytes` at a random sector boundary in the region |
//! | [`Role::Writeback`] | write back the region (an fsync), then check the device |
//! | [`Role::Mixed`] | fault, buffered read and write, direct read and write, an 8-page write-back (checked) and an 8-page readahead, in turn |
//!
//! [`run`] starts every thread at once (a barrier), stops them after the duration, and
//! returns a [`Report`]: per operation kind the calls, their latency percentiles and the
//! worst *wait* (latency minus the call's own time in the device), the oracle's stale
//! reads and lost writes (see [`oracle`]), the fsync check, and the quiescence check.
//!
//! The fsync check: right after a write-back of a region returns, every sector of the
//! region must hold on the device at least the version of every write that had returned
//! before the write-back began. Sectors cleared by a truncate or hole punch that
//! overlapped the write-back in time are left out (the edit may discard a dirty page
//! before it writes its own version there).
//!
//! [`Workload::validate`] refuses workloads whose direct writes could overlap (more
//! direct-writing threads in a role than IO slots in its region, or two direct-writing
//! roles over the same pages): concurrent direct writes of one sector have no defined
//! order, and the oracle would report it.

mod device;
mod disk;
mod driver;
mod edits;
mod file_device;
pub mod oracle;
mod report;
mod rng;
mod scenario;
mod spec;
mod stats;
mod worker;

pub use device::{device_time, Latency, LatencyMode, SimDevice};
pub use disk::{DeviceSpec, Disk};
pub use driver::{run, run_on};
pub use file_device::{direct_io_dir, FileDevice};
pub use oracle::Oracle;
pub use report::{OpReport, Report};
pub use scenario::{empty_file_sweep, Scenario, Strategy, SweepRow, SCENARIOS};
pub use spec::{Role, RoleSpec, Workload, OPS};
pub use stats::{Histogram, OpStats};

/// Sectors per page (a page's data is one version per sector).
pub const SECTORS_PER_PAGE: usize = 8;

/// A page of the workload's file: the version of each sector.
pub type PageData = [u64; SECTORS_PER_PAGE];
