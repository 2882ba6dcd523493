#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for SECONDS_PER_TARGET
# seconds (default 20), seeded from fuzz/corpus/<target>/ and replaying
# fuzz/regressions/<target>/ first. Exits non-zero as soon as a target
# crashes; libFuzzer saves the input under fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Works on the stable toolchain: cargo-fuzz needs nightly-only compiler flags
# (-Zsanitizer, sanitizer-coverage passes), which RUSTC_BOOTSTRAP=1 unlocks.
# Installs cargo-fuzz (pinned) into target/fuzz/tools when it is not on PATH.
# Builds into target/fuzz (CI caches target/), with debug assertions and
# overflow checks on and debug info off. New corpus entries the fuzzer finds
# go to target/fuzz/corpus/<target>/, never into the committed seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
case "$secs" in
  '' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
shift $(($# > 0 ? 1 : 0))

export RUSTC_BOOTSTRAP=1
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_RELEASE_DEBUG=0
cargo_fuzz_version=0.13.2
target_dir="$PWD/target/fuzz"
tools="$target_dir/tools"
export PATH="$tools/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz $cargo_fuzz_version into $tools"
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" --root "$tools" --quiet
fi

# cargo fuzz has no --locked: fail here if fuzz/Cargo.lock is out of date.
if ! cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
  echo "error: fuzz/Cargo.lock is out of date (a dependency of proto/ or builder/ changed);" \
    "refresh it with \`cargo metadata --manifest-path fuzz/Cargo.toml >/dev/null\` and commit it" >&2
  exit 1
fi

# -s none: the crates forbid unsafe code; AddressSanitizer would double the
# build and halve the speed for the few unsafe lines in dependencies.
flags=(--fuzz-dir fuzz --target-dir "$target_dir" --debug-assertions --sanitizer none --codegen-units 16)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

echo "== cargo fuzz build (${#targets[@]} targets)"
start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "built in $(($(date +%s) - start)) s"

for t in "${targets[@]}"; do
  work="$target_dir/corpus/$t"
  mkdir -p "$work"
  dirs=("$work" "fuzz/corpus/$t")
  if [ -d "fuzz/regressions/$t" ]; then
    dirs+=("fuzz/regressions/$t")
  fi
  echo "== fuzz $t for ${secs} s"
  # -timeout: an input that takes 10 s is a hang (a bug) as much as a panic.
  cargo fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    { grep -v "^#[0-9]" || true; } || {
    echo "error: fuzz target $t failed; the input is in fuzz/artifacts/$t/ (add it as a regression test)" >&2
    # CI keeps no files: print the input so it can be reproduced from the log.
    for f in "fuzz/artifacts/$t"/*; do
      [ -f "$f" ] && echo "$f (base64): $(base64 -w0 "$f" | head -c 65536)" >&2
    done
    exit 1
  }
done
echo "== all ${#targets[@]} fuzz targets ran ${secs} s each without a crash"
