//! The fixture of `tests/mapping/scenarios/`: a file of 64-byte pages of four sectors
//! (`[u64; 4]`), its device, and a watchdog that turns a hang into a test failure.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rangelock::mapping::Mapping;

pub type Data = [u64; 4];
pub type File = Mapping<Data>;

pub const PS: u64 = 64;
pub const SECTOR: u64 = PS / 4;
/// How long a blocked thread is given to (wrongly) get through.
pub const SETTLE: Duration = Duration::from_millis(200);
/// The watchdog's limit for one test.
pub const LIMIT: Duration = Duration::from_secs(120);

pub fn iterations(n: usize) -> usize {
    if cfg!(miri) {
        3
    } else {
        n
    }
}

/// Runs `f` on its own thread and waits at most [`LIMIT`] for it: a hang fails the test.
pub fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || tx.send(f()).unwrap());
    match rx.recv_timeout(LIMIT) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hang: not done after {LIMIT:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
    }
}

/// A file's device: page index to sectors (all zero if never written).
#[derive(Default)]
pub struct Device(Mutex<HashMap<u64, Data>>);

impl Device {
    pub fn with(pages: impl IntoIterator<Item = (u64, Data)>) -> Arc<Self> {
        Arc::new(Device(Mutex::new(pages.into_iter().collect())))
    }
    pub fn read(&self, index: u64) -> Data {
        self.0
            .lock()
            .unwrap()
            .get(&index)
            .copied()
            .unwrap_or([0; 4])
    }
    pub fn write(&self, index: u64, data: Data) {
        self.0.lock().unwrap().insert(index, data);
    }
    pub fn write_sector(&self, index: u64, sector: usize, value: u64) {
        self.0.lock().unwrap().entry(index).or_default()[sector] = value;
    }
    /// A fill callback.
    pub fn reader(&self) -> impl Fn(u64) -> Result<Data, Infallible> + Copy + '_ {
        move |index| Ok(self.read(index))
    }
    /// A flush or write-back callback, for callers with error type `E`.
    pub fn writer<E>(&self) -> impl FnMut(u64, &Data) -> Result<(), E> + '_ {
        move |index, data| {
            self.write(index, *data);
            Ok(())
        }
    }
}

pub fn file(pages: u64) -> Arc<File> {
    let file = File::with_page_size(PS).unwrap();
    file.set_size(pages * PS);
    Arc::new(file)
}

/// The device contents the gup tests start from: page `i` holds `[i, 10 + i, 20 + i, 0]`.
pub fn pattern(i: u64) -> Data {
    [i, 10 + i, 20 + i, 0]
}
