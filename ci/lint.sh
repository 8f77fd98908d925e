#!/usr/bin/env bash
# House rules that clippy cannot express:
# - synchronisation primitives come only from src/sync.rs, so that loom sees all of
#   them (clippy's disallowed-types resolves re-exports and cannot tell the shim apart);
#   the comparison crate (compare/) is not checked: only its two loom-checked protocols
#   go through its own shim (compare/src/sync.rs), the rest is benchmark code on std;
# - every `unsafe` block in src/ carries a SAFETY argument (clippy's
#   undocumented_unsafe_blocks also enforces this; the grep keeps `unsafe impl` honest).
set -euo pipefail
cd "$(dirname "$0")/.."
# Doc-comment lines are skipped: their examples are user code, run as doc tests.
bad=$(grep -rnE 'std::sync::(atomic|Mutex|Condvar|RwLock|Barrier)|std::thread|std::cell::UnsafeCell|core::sync::atomic' src \
  --include='*.rs' | grep -v '^src/sync.rs:' | grep -vE '^[^:]+:[0-9]+:\s*//[/!]' || true)
if [ -n "$bad" ]; then
  echo "synchronisation primitives must come from src/sync.rs:" >&2
  echo "$bad" >&2
  exit 1
fi
# The library ships no benchmark: nothing under src/ may name the comparison.
if grep -rnE 'baseline|rangelock_compare' src --include='*.rs' | grep -vE '^[^:]+:[0-9]+:\s*//' | grep -q .; then
  echo "src/ must not contain comparison code (it lives in compare/):" >&2
  grep -rnE 'baseline|rangelock_compare' src --include='*.rs' | grep -vE '^[^:]+:[0-9]+:\s*//' >&2
  exit 1
fi
echo "lint: ok"
