#!/usr/bin/env bash
# The whole test suite a second time with lock-order checking on: any lockdep report
# (which panics by default) is a failure, so this is the "no false report anywhere"
# check of the `lockdep` feature, plus its own tests (tests/lockdep*.rs, the quickcheck
# model in src/lockdep/tests.rs). loom and Miri do not repeat it (lockdep refuses
# `--cfg loom`); the memory-accounting tests of tests/lock_memory.rs are ignored under
# it, since the checker's classes and graph allocate.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --features lockdep
