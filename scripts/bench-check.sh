#!/usr/bin/env bash
# `atlas-builder check` on real packwiz packs (docs/BENCHMARKS.md, section
# "Checking real packwiz packs").
#
# Runs `atlas-builder check --dir <pack> --json` ROUNDS times (default 5) on
# every fixture of builder/tests/fixtures/packwiz-real and on every extra
# pack directory given as an argument (e.g. a checkout of a pack with
# thousands of index entries), and prints for each: index entries,
# metafiles, errors, warnings, and the median of the `elapsed_ms` the
# check reports (the whole load: reading, TOML parsing, hash verification).
#
# Usage: scripts/bench-check.sh [PACK_DIR...]   (env: ROUNDS=5 PROFILE=release|dev)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-5}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release --locked -p atlas-builder --manifest-path "$root/Cargo.toml" >&2
  bin="$root/target/release/atlas-builder"
else
  cargo build --locked -p atlas-builder --manifest-path "$root/Cargo.toml" >&2
  bin="$root/target/debug/atlas-builder"
fi

packs=("$root"/builder/tests/fixtures/packwiz-real/*/ "$@")
printf '%-28s %8s %10s %7s %9s %10s\n' pack entries metafiles errors warnings median_ms
for dir in "${packs[@]}"; do
  dir=${dir%/}
  times=()
  for _ in $(seq "$rounds"); do
    json=$("$bin" check --dir "$dir" --json 2>/dev/null || true)
    times+=("$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["elapsed_ms"])')")
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%s' "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin); s = r["summary"]
print("%-28s %8d %10d %7d %9d %10s" % (sys.argv[1][-28:], s["index_entries"], s["metafiles"], r["errors"], r["warnings"], sys.argv[2]))
' "$(basename "$dir")" "$median"
done
