#!/usr/bin/env bash
# Screenshot of the demo pack's page (docs/pack-page.png, shown in the
# README): publishes examples/demo-pack (as 1.0.0 to dev, promoted to
# production, then a 1.1.0 to dev, so the page has two channels and a
# changelog) with its player exports into a temporary directory store,
# serves the store on 127.0.0.1 (python3 -m http.server) and has headless
# Chromium screenshot packs/atlas-demo/index.html. Offline; the public URL
# the page shows is https://cdn.example.com/atlas/ (its links into the
# store are relative, so the local copy renders the same).
#
#   bash scripts/page-screenshot.sh [OUT.png]   # default docs/pack-page.png
#
# Needs git, python3, a JDK (scripts/build-bootstrap.sh) and Chromium
# (apt-get install chromium). ATLAS_BIN_DIR: use built binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/pack-page.png}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
chromium="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$chromium" ]; then
  echo "error: Chromium not found (apt-get install chromium)" >&2
  exit 1
fi
if [ -n "${ATLAS_BIN_DIR:-}" ]; then
  bin="$(cd "$ATLAS_BIN_DIR" && pwd)"
else
  built="$(cargo build --quiet --message-format=json-render-diagnostics --bin atlas-builder --bin atlas-fetcher)"
  builder="$(printf '%s\n' "$built" | sed -n 's/.*"executable":"\([^"]*\/atlas-builder\)".*/\1/p' | tail -n 1)"
  bin="$(dirname "$builder")"
fi
work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Player tools: the bootstrap jar and this machine's fetcher.
case "$(uname -m)" in
  aarch64 | arm64) target=aarch64-unknown-linux-musl ;;
  *) target=x86_64-unknown-linux-musl ;;
esac
bash scripts/build-bootstrap.sh "$work/tools" >/dev/null
mkdir -p "$work/tools/$target"
cp "$bin/atlas-fetcher" "$work/tools/$target/atlas-fetcher"
"$bin/atlas-fetcher" --version | awk '{print $2}' >"$work/tools/VERSION"

# The demo pack in a throwaway repository, so a second build can follow.
repo="$work/repo"
mkdir -p "$repo" && cp -R examples/demo-pack/. "$repo/"
git -C "$repo" init -q -b main
git() { command git -C "$repo" -c user.name=atlas -c user.email=atlas@localhost "$@"; }
git add -A && git commit -q -m "1.0.0"

"$bin/atlas-builder" keygen --out-dir "$work/keys" >/dev/null
common=(--store "$work/store" --key-file "$work/keys/atlas-signing.key"
  --public-url https://cdn.example.com/atlas/ --player-tools "$work/tools")
"$bin/atlas-builder" publish --repo "$repo" --channel dev "${common[@]}" >/dev/null
"$bin/atlas-builder" promote --pack atlas-demo --from dev --to production "${common[@]}" >/dev/null
sed -i 's/^version = "1.0.0"/version = "1.1.0"/' "$repo/pack.toml"
printf '# Render distance the demo pack suggests.\nrender-distance = 12\n' >"$repo/config/demo-render.toml"
git add -A && git commit -q -m "1.1.0"
"$bin/atlas-builder" publish --repo "$repo" --channel dev "${common[@]}" >/dev/null

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 -m http.server --bind 127.0.0.1 --directory "$work/store" "$port" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.html')" 2>/dev/null && break
  sleep 0.1
done
sandbox=()
if [ "$(id -u)" = 0 ]; then sandbox=(--no-sandbox); fi
mkdir -p "$(dirname "$out")"
"$chromium" --headless "${sandbox[@]}" --disable-gpu --hide-scrollbars --no-first-run \
  --disable-background-networking --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
  --user-data-dir="$work/profile" --window-size=1280,2200 --screenshot="$out" \
  "http://127.0.0.1:$port/packs/atlas-demo/index.html" 2>/dev/null
echo "$out"
