#!/usr/bin/env bash
# Formatting: the whole workspace must be rustfmt-clean (fuzz/ is checked separately
# because it is its own crate).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
if [ -f fuzz/Cargo.toml ]; then
  cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
fi
