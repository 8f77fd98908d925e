//! Replays the `range_overlap` fuzz corpus and its regression inputs on stable, through
//! the same decoding (`Vec<RangeOp>::arbitrary_take_rest`, as `fuzz_target!` does) and
//! the same driver the fuzz target calls. The fuzzer itself is `cargo +nightly fuzz run
//! range_overlap` in `fuzz/`.
#![cfg(not(loom))]

#[path = "support/range_ops.rs"]
mod range_ops;

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use range_ops::RangeOp;

/// The files under `fuzz/<dir>/range_overlap/`, sorted (none if the folder is absent).
fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join("range_overlap");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable folder").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
// Miri's isolation forbids reading the folder; `tests/lock_model.rs` runs the same driver.
#[cfg_attr(miri, ignore)]
fn range_overlap_corpus_replays() {
    let corpus = inputs("corpus");
    assert!(!corpus.is_empty(), "fuzz/corpus/range_overlap/ is missing");
    let files: Vec<PathBuf> = inputs("regressions").into_iter().chain(corpus).collect();
    let mut failed = Vec::new();
    let mut ops_run = 0;
    for path in &files {
        let bytes = std::fs::read(path).expect("readable input");
        let ops = match Vec::<RangeOp>::arbitrary_take_rest(Unstructured::new(&bytes)) {
            Ok(ops) => ops,
            // The fuzz target would skip such an input; ours always decode.
            Err(e) => panic!("{} does not decode: {e}", path.display()),
        };
        ops_run += ops.len();
        if std::panic::catch_unwind(|| range_ops::run(&ops)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
    eprintln!("replayed {} inputs ({ops_run} operations)", files.len());
}
