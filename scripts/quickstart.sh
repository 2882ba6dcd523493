#!/usr/bin/env bash
# Atlas quickstart: builds the bundled demo pack (examples/demo-pack) from git
# into a local directory store, signs its channels, and installs the
# `production` channel into a server directory with atlas-fetcher.
# Offline, no credentials. Output goes to ./demo (or $ATLAS_DEMO_DIR).
#
# The binaries are built by cargo wherever it puts them (CARGO_TARGET_DIR,
# build.target-dir in .cargo/config.toml, or ./target); the script asks cargo
# where that is and prints it, with the line that puts them on PATH.
set -euo pipefail
# A relative CARGO_TARGET_DIR means relative to where the script was started,
# as it does for cargo itself; pin it before changing directory.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  case "$CARGO_TARGET_DIR" in
    /*) ;;
    *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;;
  esac
  export CARGO_TARGET_DIR
fi
cd "$(dirname "$0")/.."
out="${ATLAS_DEMO_DIR:-demo}"
mkdir -p "$out"

# ATLAS_BIN_DIR: use already built binaries (CI reuses the test build's).
if [ -n "${ATLAS_BIN_DIR:-}" ] && [ -x "$ATLAS_BIN_DIR/atlas-builder" ] && [ -x "$ATLAS_BIN_DIR/atlas-fetcher" ]; then
  bin="$(cd "$ATLAS_BIN_DIR" && pwd)"
else
  echo "==> building atlas-builder and atlas-fetcher"
  # cargo names the executables it built (JSON on stdout, errors as text on
  # stderr), so the target directory is whatever cargo chose.
  built="$(cargo build --quiet --message-format=json-render-diagnostics \
    --bin atlas-builder --bin atlas-fetcher)"
  builder="$(printf '%s\n' "$built" | sed -n 's/.*"executable":"\([^"]*\/atlas-builder\(\.exe\)\{0,1\}\)".*/\1/p' | tail -n 1)"
  if [ -z "$builder" ] || [ ! -x "$builder" ]; then
    echo "error: cargo built atlas-builder but did not say where; look under \$CARGO_TARGET_DIR or ./target" >&2
    exit 1
  fi
  bin="$(dirname "$builder")"
fi

# The pack is built from a git commit. Use this checkout when the demo pack
# is committed in it; otherwise (e.g. a source tarball) make a throwaway
# repository holding just the pack.
repo=examples/demo-pack
if ! git ls-files --error-unmatch examples/demo-pack/pack.toml >/dev/null 2>&1; then
  repo="$out/demo-repo"
  rm -rf "$repo" && mkdir -p "$repo" && cp -R examples/demo-pack/. "$repo/"
  git -C "$repo" init -q -b main
  git -C "$repo" add -A
  git -C "$repo" -c user.name=atlas -c user.email=atlas@localhost commit -q -m "demo pack"
fi

if [ ! -f "$out/keys/atlas-signing.key" ]; then
  echo "==> creating a signing key pair in $out/keys"
  "$bin/atlas-builder" keygen --out-dir "$out/keys"
fi

echo "==> publishing $repo to the store $out/store (channel dev)"
"$bin/atlas-builder" publish --repo "$repo" --store "$out/store" --channel dev \
  --key-file "$out/keys/atlas-signing.key"

echo "==> promoting dev to production"
"$bin/atlas-builder" promote --store "$out/store" --pack atlas-demo --from dev --to production \
  --key-file "$out/keys/atlas-signing.key"

echo "==> installing production into $out/server"
status=0
"$bin/atlas-fetcher" sync --source "$out/store" --pack atlas-demo --channel production \
  --key "$out/keys/atlas-signing.pub" --dir "$out/server" || status=$?
# 0: updated, 3: already current (a second run of this script).
if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
  echo "atlas-fetcher failed with exit code $status" >&2
  exit "$status"
fi

echo "==> installed server directory:"
(cd "$out/server" && find . -path ./.atlas -prune -o -type f -print | sort)
echo "done: $out/server holds the demo pack's server files (client-only files were skipped)."
echo
echo "The binaries (a debug build) are in $bin:"
echo "  $bin/atlas-builder"
echo "  $bin/atlas-fetcher"
echo "To run them by name in this shell (add the line to ~/.profile to keep it):"
echo "  export PATH=\"$bin:\$PATH\""
echo "Then try: atlas-fetcher status --dir $(cd "$out/server" && pwd)"
echo "For optimised binaries on PATH: cargo install --locked --path fetcher (and --path builder),"
echo "or the released ones without Rust: scripts/install.sh (README, \"Install the binaries\")."
