//! [`FileDevice`]: the workload's device as a real file opened with `O_DIRECT`, so that
//! every transfer goes through the kernel's block layer to the disk and its latency is
//! the disk's own.
//!
//! # Layout
//!
//! Sector `s` (page size / 8 bytes, 512 with 4 KiB pages) is at byte `s * sector_size`
//! and holds the version of the write that last wrote it in its first 8 bytes (little
//! endian), zeroes after. An edit (truncate, hole punch) writes its version over the
//! sectors it clears, as on the simulated device: the file keeps its size, so the oracle
//! keeps one version per sector.
//!
//! # Direct IO
//!
//! `O_DIRECT` needs the buffer, the offset and the length aligned to the file system's
//! logical block. Transfers are done in whole [`BLOCK`]s (4 KiB, which every Linux file
//! system that supports `O_DIRECT` accepts) from a buffer allocated with that alignment
//! ([`AlignedBuf`], `std::alloc` with a `Layout`). A write of sectors that covers a block
//! only in part reads the block first (read-modify-write), holding that block's stripe
//! lock; every write holds the stripe locks of its first and last block, so two writes
//! of different sectors of one block cannot undo each other.
//!
//! # Crates
//!
//! `libc` for the `O_DIRECT` flag, `statfs` (to name the file system that refused) and
//! `EINVAL`, which `std` does not expose; `std::os::unix::fs::FileExt` for the positioned
//! reads and writes (`pread`/`pwrite`, no shared file offset between threads), and
//! `std::alloc` for the aligned buffers: both suffice, so no crate for them.

use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::device::timed;
use super::{Disk, PageData, SECTORS_PER_PAGE};
use crate::Device;

/// The unit of every transfer, and the buffers' alignment.
pub const BLOCK: u64 = 4096;

/// Stripe locks for read-modify-writes of partly written blocks.
const STRIPES: usize = 64;

/// A zeroed buffer aligned to [`BLOCK`], as `O_DIRECT` needs.
struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBuf {
    fn new(len: u64) -> AlignedBuf {
        let layout = Layout::from_size_align(len.max(BLOCK) as usize, BLOCK as usize)
            .expect("an IO size that fits in memory");
        // SAFETY: the layout's size is at least BLOCK, never zero.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, layout }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live, zero-initialised allocation of `layout.size()` bytes
        // owned by `self`, borrowed mutably for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated by `alloc_zeroed` with this very layout.
        unsafe { alloc::dealloc(self.ptr, self.layout) }
    }
}

/// A real file read and written with `O_DIRECT`, one version per sector, in whole 4 KiB
/// blocks from aligned buffers.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    path: PathBuf,
    sectors: u64,
    sector_size: u64,
    stripes: Vec<Mutex<()>>,
}

impl FileDevice {
    /// Creates (or truncates) the file at `path`, sizes it to `pages` pages of zeroes,
    /// and opens it with `O_DIRECT`. A file system that refuses `O_DIRECT` is an error
    /// that says so and names a directory where it works; the file is removed on drop.
    pub fn create(path: &Path, pages: u64, page_size: u64) -> Result<FileDevice, String> {
        let sector_size = page_size / SECTORS_PER_PAGE as u64;
        if page_size % BLOCK != 0 {
            return Err(format!(
                "a file device needs pages of a multiple of {BLOCK} bytes"
            ));
        }
        let file = match open_direct(path) {
            Ok(file) => file,
            Err(error) => return Err(refused(path, &error)),
        };
        let device = FileDevice {
            file,
            path: path.to_path_buf(),
            sectors: pages * SECTORS_PER_PAGE as u64,
            sector_size,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        };
        device
            .file
            .set_len(pages * page_size)
            .map_err(|e| format!("sizing {}: {e}", path.display()))?;
        // Written once, so every block is allocated and reads are real reads.
        let chunk = (256 * BLOCK).min(pages * page_size).max(BLOCK);
        let mut zeroes = AlignedBuf::new(chunk);
        let mut offset = 0;
        while offset < pages * page_size {
            let len = chunk.min(pages * page_size - offset) as usize;
            device
                .file
                .write_all_at(&zeroes.bytes()[..len], offset)
                .map_err(|e| refused(path, &e))?;
            offset += len as u64;
        }
        Ok(device)
    }

    /// The median time of `n` 4 KiB direct reads spread over the file: the device's own
    /// latency, for the report.
    pub fn latency(&self, n: usize) -> std::time::Duration {
        let blocks = (self.sectors * self.sector_size / BLOCK).max(1);
        let mut buf = AlignedBuf::new(BLOCK);
        let mut times: Vec<_> = (0..n as u64)
            .map(|i| {
                let start = Instant::now();
                let block = (i * 7919) % blocks;
                let _ = self.file.read_exact_at(buf.bytes(), block * BLOCK);
                start.elapsed()
            })
            .collect();
        times.sort();
        times.get(n / 2).copied().unwrap_or_default()
    }

    /// Reads the blocks that hold `sectors` (byte offset of the first block, buffer).
    fn read_blocks(&self, sectors: &core::ops::Range<u64>) -> (u64, AlignedBuf) {
        let (first, end) = self.block_span(sectors);
        let mut buf = AlignedBuf::new(end - first);
        self.file
            .read_exact_at(&mut buf.bytes()[..(end - first) as usize], first)
            .unwrap_or_else(|e| panic!("direct read of {}: {e}", self.path.display()));
        (first, buf)
    }

    fn block_span(&self, sectors: &core::ops::Range<u64>) -> (u64, u64) {
        let start = sectors.start * self.sector_size;
        let end = sectors.end * self.sector_size;
        (start / BLOCK * BLOCK, end.div_ceil(BLOCK) * BLOCK)
    }

    fn versions(&self, sectors: core::ops::Range<u64>) -> Vec<u64> {
        let sectors = sectors.start..sectors.end.min(self.sectors);
        if sectors.is_empty() {
            return Vec::new();
        }
        let (first, mut buf) = self.read_blocks(&sectors);
        let bytes = buf.bytes();
        sectors
            .map(|s| {
                let at = (s * self.sector_size - first) as usize;
                u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
            })
            .collect()
    }

    fn stripe(&self, offset: u64) -> usize {
        (offset / BLOCK) as usize % STRIPES
    }

    /// Writes `version` to `sectors`, read-modify-writing partly covered blocks.
    fn store(&self, sectors: core::ops::Range<u64>, versions: impl Fn(u64) -> u64) {
        let sectors = sectors.start..sectors.end.min(self.sectors);
        if sectors.is_empty() {
            return;
        }
        let (first, end) = self.block_span(&sectors);
        let mut stripes = vec![self.stripe(first), self.stripe(end - BLOCK)];
        stripes.sort_unstable();
        stripes.dedup();
        let _held: Vec<MutexGuard<'_, ()>> = stripes
            .iter()
            .map(|&i| self.stripes[i].lock().unwrap_or_else(|p| p.into_inner()))
            .collect();
        let whole =
            sectors.start * self.sector_size == first && sectors.end * self.sector_size == end;
        let mut buf = if whole {
            AlignedBuf::new(end - first)
        } else {
            self.read_blocks(&sectors).1
        };
        let bytes = buf.bytes();
        for s in sectors {
            let at = (s * self.sector_size - first) as usize;
            bytes[at..at + 8].copy_from_slice(&versions(s).to_le_bytes());
        }
        self.file
            .write_all_at(&bytes[..(end - first) as usize], first)
            .unwrap_or_else(|e| panic!("direct write of {}: {e}", self.path.display()));
    }
}

impl Drop for FileDevice {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn open_direct(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// The error for a path where direct IO failed: which file system refused, and a
/// directory where it works (the first of the candidates that accepts `O_DIRECT`).
fn refused(path: &Path, error: &std::io::Error) -> String {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let _ = std::fs::remove_file(path);
    let what = if error.raw_os_error() == Some(libc::EINVAL) {
        format!("{} does not support O_DIRECT ({})", fs_name(dir), error)
    } else {
        format!("{error}")
    };
    let hint = match direct_io_dir() {
        Some(ok) => format!("; try --device file:{}", ok.join("mixed_io.dev").display()),
        None => "; no candidate directory (., target/, /var/tmp, $HOME) supports it either".into(),
    };
    format!(
        "cannot use {} as a direct-IO device: {what}{hint}",
        path.display()
    )
}

/// The file system type of `dir`, by `statfs`'s magic number.
fn fs_name(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return "its file system".into();
    };
    // SAFETY: `statfs` is plain old data, for which all zeroes is a valid value.
    let mut stat: libc::statfs = unsafe { core::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string and `stat` a valid, writable statfs.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return "its file system".into();
    }
    match stat.f_type as i64 {
        0x0102_1994 => "tmpfs".into(),
        0x794c_7630 => "overlayfs".into(),
        0x6573_5546 => "a FUSE file system".into(),
        magic => format!(
            "the file system of {} (statfs type {magic:#x})",
            dir.display()
        ),
    }
}

/// A directory where a file opened with `O_DIRECT` can be written: the current one, the
/// build's target directory, /var/tmp or $HOME, whichever works first.
pub fn direct_io_dir() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from(".")];
    if let Some(target) = option_env!("CARGO_TARGET_DIR") {
        candidates.push(target.into());
    }
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target"
    )));
    candidates.push("/var/tmp".into());
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(home.into());
    }
    candidates.into_iter().find(|dir| {
        let probe = dir.join(format!(".o_direct_probe.{}", std::process::id()));
        let ok = open_direct(&probe).is_ok_and(|file| {
            let mut buf = AlignedBuf::new(BLOCK);
            file.write_all_at(buf.bytes(), 0).is_ok()
        });
        let _ = std::fs::remove_file(&probe);
        ok
    })
}

impl Device<PageData> for FileDevice {
    fn read_page(&self, index: u64) -> PageData {
        timed(|| {
            let first = index * SECTORS_PER_PAGE as u64;
            let v = self.versions(first..first + SECTORS_PER_PAGE as u64);
            core::array::from_fn(|i| v.get(i).copied().unwrap_or(0))
        })
    }

    fn write_page(&self, index: u64, data: &PageData) {
        timed(|| {
            let first = index * SECTORS_PER_PAGE as u64;
            self.store(first..first + SECTORS_PER_PAGE as u64, |s| {
                data[(s - first) as usize]
            });
        })
    }
}

impl Disk for FileDevice {
    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn sector_size(&self) -> u64 {
        self.sector_size
    }

    fn read_sectors(&self, sectors: core::ops::Range<u64>) -> Vec<u64> {
        timed(|| self.versions(sectors))
    }

    fn write_sectors(&self, sectors: core::ops::Range<u64>, version: u64) {
        timed(|| self.store(sectors, |_| version))
    }

    fn edit(&self, sectors: core::ops::Range<u64>, version: u64) {
        timed(|| self.store(sectors, |_| version))
    }

    fn check(&self, sectors: core::ops::Range<u64>) -> Vec<u64> {
        self.versions(sectors)
    }

    fn quiet(&self) {}
}
