#!/usr/bin/env bash
# Lints: clippy on every target (lib, tests, benches, examples), warnings are errors;
# rustdoc warnings (broken intra-doc links, missing docs) are errors too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features lockdep -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet --features lockdep
