//! Integration tests of the page-cache layer (`Mapping`, `src/mapping/`), one module per
//! topic:
//!
//! - `model`: the quickcheck differential test against a sequential page-cache model;
//! - `oracle`: the multi-threaded consistency oracle (stale reads, lost writes, lost
//!   fsyncs), with failures injected into every callback;
//! - `scenarios`: fstests-style races (direct writes from mapped buffers, pages shared
//!   by sub-page direct IO, truncate against faults, the direct-IO hand-off);
//! - `edits`: size changes and the truncate family against concurrent users;
//! - `writeback`: write-back against concurrent writers and direct IO;
//! - `eviction_undo`: the undo of an eviction, and callbacks that panic;
//! - `detach`: direct IO completed on another thread, and `fault_async`;
//! - `tasks`: direct IO and the edits as futures: `Send`, cancellation at every await
//!   point, timer cancellation beside writers.

#[path = "../support/mod.rs"]
mod support;

mod detach;
mod edits;
mod eviction_undo;
mod model;
mod oracle;
mod scenarios;
mod tasks;
mod writeback;
