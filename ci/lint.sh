#!/usr/bin/env bash
# House rules that clippy cannot express:
# - synchronisation primitives come only from src/sync.rs, so that loom sees all of
#   them (clippy's disallowed-types resolves re-exports and cannot tell the shim apart);
#   src/baseline/ is exempt: the whole-file locks and the benchmark driver are compiled
#   out of loom builds and are not part of the protocol loom checks;
# - every `unsafe` block in src/ carries a SAFETY argument (clippy's
#   undocumented_unsafe_blocks also enforces this; the grep keeps `unsafe impl` honest).
set -euo pipefail
cd "$(dirname "$0")/.."
# Doc-comment lines are skipped: their examples are user code, run as doc tests.
bad=$(grep -rnE 'std::sync::(atomic|Mutex|Condvar|RwLock|Barrier)|std::thread|std::cell::UnsafeCell|core::sync::atomic' src \
  --include='*.rs' | grep -v '^src/sync.rs:' | grep -v '^src/baseline/' | grep -vE '^[^:]+:[0-9]+:\s*//[/!]' || true)
if [ -n "$bad" ]; then
  echo "synchronisation primitives must come from src/sync.rs:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "lint: ok"
