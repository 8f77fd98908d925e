#!/usr/bin/env bash
# Every criterion benchmark runs once (test mode): benches keep compiling and working.
# Real measurements are `cargo bench`, never part of CI (shared, noisy machines).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --benches
