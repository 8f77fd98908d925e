//! Direct IO completed on another thread (`DirectIo::detach`): the detached guard is
//! `Send`, keeps the pages locked until it is dropped wherever it went, and no longer
//! counts as this thread's, so this thread's fault on those pages waits for the
//! completion instead of failing with `WouldDeadlock`.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rangelock::mapping::{DirectIoKind, Mapping, MappingError};
use rangelock::{Entry, LockError};

#[test]
fn a_detached_direct_io_completes_on_another_thread() {
    let file: Mapping<u64> = Mapping::new();
    file.set_size(4 * 4096);
    let fill = |i: u64| Ok::<_, ()>(i);
    let io = file
        .direct_io(4096..8192, DirectIoKind::Write, |_, _| Ok::<_, ()>(()))
        .unwrap();
    // Attached: a fault on its page is this thread waiting for itself.
    assert_eq!(
        file.fault(1, fill).unwrap_err(),
        MappingError::Lock(LockError::WouldDeadlock { index: 1 })
    );
    let io = io.detach();
    assert_eq!((io.bytes(), io.pages()), (4096..=8191, 1..=1));
    let completed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let completed = &completed;
    thread::scope(|s| {
        s.spawn(move || {
            let io = rx.recv().unwrap();
            thread::sleep(Duration::from_millis(if cfg!(miri) { 5 } else { 50 }));
            completed.store(true, Ordering::SeqCst);
            drop(io); // the completion
        });
        tx.send(io).unwrap();
        // Detached: this thread's fault waits for the completion, then fills.
        let page = file.fault(1, fill).unwrap();
        assert!(
            completed.load(Ordering::SeqCst),
            "the fault waited for the IO"
        );
        assert_eq!(page.read(|d| *d), 1);
    });
    assert!(file
        .pages()
        .iter(..)
        .all(|(_, e)| !matches!(e, Entry::Locked { .. })));
}
