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
# Not run by default (pass them explicitly, e.g. `ci/miri.sh --test edges`):
# - tests/loom.rs: compiled only under `--cfg loom` (empty otherwise);
# - tests/edges.rs and tests/conformance.rs: too slow under Miri as they stand (edges:
#   32 of 86 tests in 37 min, stuck in `height_follows_contents`; conformance: 24 of 64
#   in 25 min, stuck in `iteration_reports_multi_index_entries_once::slots_64`); add
#   them back to the default once their sizes shrink under `cfg!(miri)`;
# - benches and doctests: no unsafe paths that the tests do not already cover.
# The default set is every other test file: the tree's (lib, smoke, stress, memory,
# model), the range locks' (lock_model, lock_fairness, lock_races, lock_safety,
# lock_sealed, lock_stress, lock_wait_table, lock_memory) and the page cache's
# (mapping_model, mapping_oracle, mapping_scenarios, mapping_review, mapping_writeback,
# mapping_async), which shrink their sizes under Miri.
# Measured on 2 shared cores: lib 84 s (21 tests, 12 of them the lock unit tests),
# lock_model 126 s, lock_stress 95 s, mapping_model 69 s, mapping_scenarios 26 s,
# mapping_oracle 25 s, mapping_writeback 11 s, the other lock and mapping files under
# 10 s each; the whole set takes about 20 min.
# Extra arguments are passed to `cargo miri test` instead of the default set.
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
# Every integration test file except the loom models and the slow ones named above.
skip=" loom edges conformance "
tests=()
for f in tests/*.rs; do
  name=$(basename "$f" .rs)
  case "$skip" in *" $name "*) continue ;; esac
  tests+=(--test "$name")
done
cargo +nightly miri test --lib "${tests[@]}"
