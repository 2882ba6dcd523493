#!/usr/bin/env bash
# Atlas quickstart: builds the bundled demo pack (examples/demo-pack) from git
# into a local directory store, signs its channels, and installs the
# `production` channel into a server directory with atlas-fetcher.
# Offline, no credentials. Output goes to ./demo (or $ATLAS_DEMO_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${ATLAS_DEMO_DIR:-demo}"
mkdir -p "$out"

# ATLAS_BIN_DIR: use already built binaries (CI reuses the test build's).
if [ -n "${ATLAS_BIN_DIR:-}" ] && [ -x "$ATLAS_BIN_DIR/atlas-builder" ] && [ -x "$ATLAS_BIN_DIR/atlas-fetcher" ]; then
  bin="$(cd "$ATLAS_BIN_DIR" && pwd)"
else
  echo "==> building atlas-builder and atlas-fetcher"
  cargo build --quiet --bin atlas-builder --bin atlas-fetcher
  bin="$(pwd)/target/debug"
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
