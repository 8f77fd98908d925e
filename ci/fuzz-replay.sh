#!/usr/bin/env bash
# Replays every committed fuzz corpus and regression input on stable, through the same
# decode-and-run function the cargo-fuzz targets call (no libFuzzer needed). The fuzzer
# itself (nightly) is `cargo +nightly fuzz run <target>` in fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test fuzz_replay -- --nocapture
