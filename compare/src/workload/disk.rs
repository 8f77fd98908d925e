//! [`Disk`]: what the workload needs of a device beyond [`Device`]: direct transfers of
//! sector ranges, on-disk edits, and reads for the oracle's checks. Two implement it: the
//! [`SimDevice`] (one version per sector in memory, a slept or spun latency) and the
//! [`FileDevice`] (a real file opened with `O_DIRECT`). [`DeviceSpec`] names one.

use std::path::PathBuf;

use super::{FileDevice, PageData, SimDevice};
use crate::Device;

/// A device the workload runs on. Every sector holds the version of the write that last
/// wrote it (0: never written).
pub trait Disk: Device<PageData> + Sync {
    /// The number of sectors.
    fn sectors(&self) -> u64;
    /// Bytes per sector (a page is [`SECTORS_PER_PAGE`](super::SECTORS_PER_PAGE) sectors).
    fn sector_size(&self) -> u64;
    /// A direct read of `sectors` (timed as device time).
    fn read_sectors(&self, sectors: core::ops::Range<u64>) -> Vec<u64>;
    /// A direct write of `version` to `sectors` (timed as device time).
    fn write_sectors(&self, sectors: core::ops::Range<u64>, version: u64);
    /// An on-disk edit (truncate, hole punch): `version` to every sector of `sectors`.
    fn edit(&self, sectors: core::ops::Range<u64>, version: u64);
    /// What the device holds now for `sectors`, for the oracle's checks (not timed: it
    /// is no part of any operation's latency).
    fn check(&self, sectors: core::ops::Range<u64>) -> Vec<u64>;
    /// No more latency: the final check runs at full speed.
    fn quiet(&self);
}

/// Which device a workload runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The simulated device, with the workload's [`Latency`](super::Latency).
    #[default]
    Simulated,
    /// A real file at this path, created, sized and removed by the run, read and written
    /// with `O_DIRECT` (the workload's latency is ignored: the disk has its own).
    File(PathBuf),
}

impl DeviceSpec {
    /// `sim` or `file:PATH`.
    pub fn parse(text: &str) -> Result<DeviceSpec, String> {
        match text.split_once(':') {
            _ if text == "sim" => Ok(DeviceSpec::Simulated),
            Some(("file", path)) if !path.is_empty() => Ok(DeviceSpec::File(path.into())),
            _ => Err(format!(
                "--device: {text:?} is neither `sim` nor `file:PATH`"
            )),
        }
    }

    /// Opens the device for a file of `pages` pages.
    pub fn open(
        &self,
        pages: u64,
        page_size: u64,
        latency: super::Latency,
    ) -> Result<Box<dyn Disk>, String> {
        match self {
            DeviceSpec::Simulated => Ok(Box::new(SimDevice::new(pages, page_size, latency))),
            DeviceSpec::File(path) => Ok(Box::new(FileDevice::create(path, pages, page_size)?)),
        }
    }
}
