#!/usr/bin/env bash
# Miri: runs the unit tests and the integration tests under Miri, to catch undefined
# behaviour in the unsafe code (tagged slot words, epoch reclamation, borrowed items).
#
# - Tree Borrows, not Stacked Borrows: crossbeam-epoch's intrusive list trips Stacked
#   Borrows (known upstream, crossbeam #545/#878; crossbeam's own Miri CI moved to Tree
#   Borrows in #996), which would stop every test at its first epoch unregistration.
# - Permissive provenance: crossbeam-epoch and our slot words store pointers as tagged
#   `usize`s (int-to-pointer casts), which strict provenance rejects.
# - Ignore leaks: memory retired into crossbeam-epoch's *global* collector that is not
#   yet reclaimed when the test process exits is still reachable from the collector's
#   static, but only through tagged `usize` words, which Miri's leak checker cannot
#   follow; it reports every such node and queue bag as leaked (measured: 96 reports in
#   tests/smoke.rs alone). Leaks of our own are caught instead by the tests that count
#   drops on trees with their own `Collector` (tests/stress.rs, tests/memory.rs).
# - The tests shrink their sizes under `cfg!(miri)`; Miri also makes crossbeam-epoch use
#   4-object bags, so deferred frees really run inside the tests.
# Not run here:
# - tests/loom.rs: compiled only under `--cfg loom` (empty otherwise);
# - benches and doctests: no unsafe paths that the tests do not already cover.
# Extra arguments are passed to `cargo miri test` (for example `--lib` or a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  rustup component add miri --toolchain nightly
fi
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks}"
# Miri builds into its own subdirectory of the target dir; keep it apart from the
# normal debug build anyway, so switching toolchains does not thrash the cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri}"
if [ "$#" -gt 0 ]; then
  exec cargo +nightly miri test "$@"
fi
# Every integration test file except the loom models.
tests=()
for f in tests/*.rs; do
  name=$(basename "$f" .rs)
  [ "$name" = loom ] && continue
  tests+=(--test "$name")
done
cargo +nightly miri test --lib "${tests[@]}"
