#!/usr/bin/env bash
# `[[files]]` rules over many files (issue 17 item 5; docs/BENCHMARKS.md,
# section "File rules").
#
# Generates a native pack of FILES repository files (files/dNNN/fNNNNNN.txt,
# 100 to a directory) and RULES `[[files]]` rules: a first rule
# `include = ["files/**"]`, then rule k includes the literal path of file
# k mod FILES, with a side cycling through both/client/server. Every file is
# matched by the first rule and by at least one literal rule (by several when
# RULES > FILES), and the last matching rule decides its side. The pack is
# committed to a new git repository (repacked, as a clone is), then timed ROUNDS times (default 3):
#   - `atlas-builder check --repo PACK --json` (plans the commit's files;
#     `check --dir` reads only pack.toml of a native pack),
#   - `atlas-builder publish --repo PACK --store STORE --dry-run --json`.
# Each line prints the median wall and CPU (user + system) time of the
# process, and for check the `elapsed_ms` it reports. Then the same files
# are timed with only the `files/**` rule (pack.toml rewritten and
# committed), in the same conditions: the difference is what the rules cost. The check's side counts are printed once so a
# run can be compared with another build (they must not change).
#
# Usage: scripts/bench-rules.sh
#   env: FILES=100000 RULES=100000 ROUNDS=3 PROFILE=release|dev
#        NO_BUILD=1 (use the binary already built) KEEP=1 (keep the pack)
#        ATLAS_BIN=path (time another binary, e.g. an older build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
files=${FILES:-100000}
rules=${RULES:-100000}
rounds=${ROUNDS:-3}
profile=${PROFILE:-release}
if [ -n "${ATLAS_BIN:-}" ]; then
  bin=$ATLAS_BIN
elif [ "$profile" = release ]; then
  [ -n "${NO_BUILD:-}" ] || cargo build --release --locked -p atlas-builder --manifest-path "$root/Cargo.toml" >&2
  bin="$root/target/release/atlas-builder"
else
  [ -n "${NO_BUILD:-}" ] || cargo build --locked -p atlas-builder --manifest-path "$root/Cargo.toml" >&2
  bin="$root/target/debug/atlas-builder"
fi

work=$(mktemp -d)
if [ -z "${KEEP:-}" ]; then
  trap 'rm -rf "$work"' EXIT
else
  echo "pack kept in $work/pack" >&2
fi
pack="$work/pack"

python3 - "$pack" "$files" "$rules" <<'EOF'
import os, sys
pack, files, rules = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def path(i):
    return f"files/d{i // 100:03d}/f{i:06d}.txt"
for i in range(files):
    p = os.path.join(pack, path(i))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(f"file {i}\n")
sides = ["both", "client", "server"]
with open(os.path.join(pack, "pack.toml"), "w") as f:
    f.write('id = "bench-rules"\nname = "Bench rules"\nversion = "1.0.0"\n'
            'minecraft = "1.21.1"\nloader = { kind = "fabric", version = "0.16.9" }\n\n'
            '[[files]]\ninclude = ["files/**"]\n')
    for k in range(rules):
        f.write(f'\n[[files]]\ninclude = ["{path(k % files)}"]\nside = "{sides[k % 3]}"\n')
EOF
# No background gc or maintenance (it would still be writing in .git when
# the pack is deleted).
gitq() { git -C "$pack" -c gc.auto=0 -c maintenance.auto=false -c user.name=bench -c user.email=bench@example.invalid "$@"; }
gitq init -q
gitq add -A
gitq commit -qm pack
# One pack file, as in a clone (CI checks out a clone): the loose objects
# `git add` wrote would cost a file open per blob.
gitq repack -adq
echo "pack: $files files, $((rules + 1)) [[files]] rules ($rules literal + files/**); binary $bin"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# time_cmd NAME CMD...: runs CMD ROUNDS times (its stdout, JSON, in
# $work/out.json); prints the median wall time, and the median CPU time
# (user + system) of the process, which other work on the cores does not
# inflate as much as the wall time.
time_cmd() {
  local name=$1 walls=() cpus=() reported=() line
  shift
  for _ in $(seq "$rounds"); do
    line=$(python3 - "$work" "$@" <<'PY'
import os, resource, subprocess, sys, time
work, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
with open(os.path.join(work, "out.json"), "wb") as out, open(os.path.join(work, "err.txt"), "wb") as err:
    status = subprocess.run(cmd, stdout=out, stderr=err).returncode
wall = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(status, int(wall * 1000), int((r.ru_utime + r.ru_stime) * 1000))
PY
)
    read -r status wall cpu <<<"$line"
    if [ "$status" != 0 ]; then
      echo "$name: exit $status" >&2
      tail -5 "$work/err.txt" >&2
      exit 1
    fi
    walls+=("$wall")
    cpus+=("$cpu")
    reported+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("elapsed_ms", "-"))' "$work/out.json")")
  done
  printf '%-38s wall %6s ms (%s)  cpu %6s ms (%s)  elapsed_ms %s\n' "$name" \
    "$(printf '%s\n' "${walls[@]}" | median)" "${walls[*]}" \
    "$(printf '%s\n' "${cpus[@]}" | median)" "${cpus[*]}" \
    "$(printf '%s\n' "${reported[@]}" | median)"
}

time_cmd "check --repo (git commit)" "$bin" check --repo "$pack" --json
python3 -c '
import json, sys
r = json.load(open(sys.argv[1])); s = r["summary"]
print("  check: files %d, by side %s, optional %d, errors %d, warnings %d"
      % (s["files"], json.dumps(s["by_side"], sort_keys=True), s["optional"], r["errors"], r["warnings"]))
' "$work/out.json"
time_cmd "publish --dry-run (directory store)" "$bin" publish --repo "$pack" --store "$work/store" --dry-run --json
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("  publish: files %d, build %s (the id covers the commit too)" % (r["files"], r["build"]))
' "$work/out.json"

# The same files with only the general rule: what planning costs without the rules.
python3 - "$pack/pack.toml" <<'EOF2'
import sys
p = sys.argv[1]
text = open(p).read()
open(p, "w").write(text[: text.index("[[files]]")] + '[[files]]\ninclude = ["files/**"]\n')
EOF2
gitq commit -qam "only files/**"
echo "same files, only the files/** rule:"
time_cmd "check --repo (git commit)" "$bin" check --repo "$pack" --json
time_cmd "publish --dry-run (directory store)" "$bin" publish --repo "$pack" --store "$work/store" --dry-run --json
