#!/usr/bin/env bash
# The README's test command: installs what the tests run besides Rust
# (scripts/test-prereqs.sh: a JDK, systemd-analyze, Node.js, nginx, Caddy, Chromium,
# and the pinned mcstatus, mcrcon and flying-squid under target/ci-tools/),
# then runs the whole workspace's tests. Extra arguments go to cargo test:
#
#   bash scripts/test.sh
#   bash scripts/test.sh -p atlas-fetcher --test it serve::
#
# Exit status: cargo test's (0 all passed), or 1 when a prerequisite could
# not be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-prereqs.sh
# Chromium was installed above: the pack page's browser test must run, not
# skip (it skips only when Chromium is absent and this is unset).
export ATLAS_REQUIRE_CHROMIUM="${ATLAS_REQUIRE_CHROMIUM:-1}"
# The runner's PyPI client tests also add this themselves; set for any
# python3 a test starts.
export PYTHONPATH="$PWD/target/ci-tools/python${PYTHONPATH:+:$PYTHONPATH}"
if [ "$#" -eq 0 ]; then
  set -- --workspace
fi
exec cargo test --locked "$@"
