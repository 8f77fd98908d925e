//! Direct IO completed on another thread (`DirectIo::detach`): the detached guard is
//! `Send`, keeps the pages locked until it is dropped wherever it went, and no longer
//! counts as this thread's, so this thread's fault on those pages waits for the
//! completion instead of failing with `WouldDeadlock`. And `fault_async`: the fault
//! whose device read is a future, equal to `fault`, waiting on its page alone, and
//! cancellation-safe.
#![cfg(not(loom))]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Waker};
use std::thread;
use std::time::Duration;

use rangelock::mapping::{DirectIoKind, Mapping, MappingError};
use rangelock::{Entry, LockError};
use rangelock_testkit::executor::block_on;

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

// `Mapping::fault_async`: the fault with a device read that is a future.

/// `fault_async` returns what `fault` returns: a fill, a hit (its fill unpolled), a
/// page past the end of file, a failed read (nothing cached, the next fault fills).
#[test]
fn fault_async_matches_fault() {
    let blocking: Mapping<u64> = Mapping::new();
    let tasks: Mapping<u64> = Mapping::new();
    for file in [&blocking, &tasks] {
        file.set_size(3 * 4096 + 1);
    }
    for (index, fails) in [
        (0, false),
        (0, true),
        (2, true),
        (2, false),
        (3, false),
        (4, false),
    ] {
        let b = blocking
            .fault(index, |i| if fails { Err(i) } else { Ok(i * 10) })
            .map(|page| page.read(|d| *d));
        let t = block_on(tasks.fault_async(index, async move {
            if fails {
                Err(index)
            } else {
                Ok(index * 10)
            }
        }))
        .map(|page| page.read(|d| *d));
        assert_eq!(b, t, "index {index}");
    }
    assert_eq!(
        block_on(tasks.fault_async(4, async { Ok::<_, ()>(0) })).unwrap_err(),
        MappingError::BeyondEof {
            index: 4,
            size: 3 * 4096 + 1
        }
    );
}

/// An async fault on a page under a (detached) direct IO waits for the IO alone: a
/// fault on the page beside it completes meanwhile, and the waiting one fills its page
/// once the IO is dropped.
#[test]
fn fault_async_waits_for_a_direct_io_on_its_page_alone() {
    let file: Arc<Mapping<u64>> = Arc::new(Mapping::new());
    file.set_size(8 * 4096);
    let io = file
        .direct_io(4096..8192, DirectIoKind::Write, |_, _| Ok::<_, ()>(()))
        .unwrap()
        .detach();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let waiting = {
            let file = file.clone();
            tokio::spawn(async move {
                file.fault_async(1, async { Ok::<_, ()>(11) })
                    .await
                    .map(|page| page.read(|d| *d))
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the fault did not wait for the IO");
        let beside = file
            .fault_async(2, async { Ok::<_, ()>(22) })
            .await
            .unwrap();
        assert_eq!(beside.read(|d| *d), 22);
        drop(io);
        let filled = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the fault was not woken by the IO's end")
            .unwrap();
        assert_eq!(filled, Ok(11));
    });
}

/// A fault cancelled while its device read is pending caches nothing and leaves the
/// page unlocked: the next fault fills it, and a truncate over it goes through.
#[test]
fn a_cancelled_fault_async_caches_nothing() {
    let file: Mapping<u64> = Mapping::new();
    file.set_size(4 * 4096);
    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
    {
        let mut fault = Box::pin(file.fault_async(1, async { rx.await.map_err(|_| "cancelled") }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fault.as_mut().poll(&mut cx).is_pending());
        assert!(matches!(file.pages().get(1), Entry::Locked { .. }));
    } // dropped during the read
    drop(tx);
    assert!(file.pages().get(1).is_empty());
    let page = file.fault(1, |_| Ok::<_, ()>(5)).unwrap();
    assert_eq!(page.read(|d| *d), 5);
    drop(file.truncate(0).unwrap());
    assert_eq!(
        block_on(file.fault_async(1, async { Ok::<_, ()>(0) })).unwrap_err(),
        MappingError::BeyondEof { index: 1, size: 0 }
    );
}
