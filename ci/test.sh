#!/usr/bin/env bash
# The README's test command, exactly: unit, integration and doc tests, the quickcheck
# model, the stress test and the fuzz-corpus replay.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test
