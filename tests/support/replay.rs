//! Replays a fuzz target's corpus and regression inputs on stable, through the same
//! decoding (`Vec<T>::arbitrary_take_rest`, as `fuzz_target!` does) and the same driver
//! the fuzz target calls. Used by `tests/fuzz_replay/xarray_ops.rs` and `tests/fuzz_replay/range_overlap.rs`.

use std::panic::RefUnwindSafe;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};

/// The files under `fuzz/<dir>/<target>/`, sorted (none if the folder is absent).
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
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

/// Decodes every input of fuzz target `target` (regressions first, then the corpus,
/// which must exist) and runs it through `run`; panics naming the inputs that fail.
pub fn replay<T>(target: &str, run: fn(&[T]))
where
    T: for<'a> Arbitrary<'a> + RefUnwindSafe,
{
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ is missing");
    let files: Vec<PathBuf> = inputs("regressions", target)
        .into_iter()
        .chain(corpus)
        .collect();
    let mut failed = Vec::new();
    let mut ops_run = 0;
    for path in &files {
        let bytes = std::fs::read(path).expect("readable input");
        let ops = match Vec::<T>::arbitrary_take_rest(Unstructured::new(&bytes)) {
            Ok(ops) => ops,
            // The fuzz target would skip such an input; ours always decode.
            Err(e) => panic!("{} does not decode: {e}", path.display()),
        };
        ops_run += ops.len();
        if std::panic::catch_unwind(|| run(&ops)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
    eprintln!("replayed {} inputs ({ops_run} operations)", files.len());
}
