#!/usr/bin/env bash
# Builder benchmark (docs/BENCHMARKS.md, section "Builder").
#
# Serves a synthetic pack of 300 jars (~1.67 MiB each, ~500 MiB, deterministic
# bytes) from a loopback static server (python3 http.server, backlog 256) as native
# `[[mods]] url + hash` entries, and times the real release binary:
#   1. `rclone copy` of the same files from the same server (the floor), and
#      the same followed by `sync` (rclone does not fsync; the store does),
#   2. cold build (empty cache) published to a directory store,
#   3. rebuild with nothing changed,
#   4. rebuild with one mod changed.
# For each build: wall time, bytes downloaded, objects (blobs) uploaded.
#
# Usage: scripts/bench-build.sh   (env: MODS=300 SIZE=1747626 DOWNLOADS=8 TRANSFERS=8 KEEP=1)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mods=${MODS:-300}
size=${SIZE:-1747626}
downloads=${DOWNLOADS:-8}
transfers=${TRANSFERS:-8}
bin="$root/target/release/atlas-builder"

command -v rclone >/dev/null || { echo "rclone is required (apt-get install -y rclone)" >&2; exit 1; }
if [[ ${NO_BUILD:-} != 1 ]]; then
    cargo build --release -p atlas-builder --manifest-path "$root/Cargo.toml" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/atlas-bench-build.XXXXXX")
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    [[ ${KEEP:-} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT

files="$work/files" pack="$work/pack"
mkdir -p "$files" "$pack"

# Deterministic jars: SHA-256 in counter mode over the file's index.
python3 - "$files" "$mods" "$size" <<'PY'
import hashlib, sys
out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    seed = f"atlas-bench-{i}".encode()
    blocks = (size + 31) // 32
    data = b"".join(hashlib.sha256(seed + c.to_bytes(8, "little")).digest() for c in range(blocks))[:size]
    with open(f"{out}/mod-{i:03}.jar", "wb") as f:
        f.write(data)
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# python3 -m http.server's listen backlog is 5: with 8 clients connecting at
# once the kernel drops SYNs (ListenOverflows) and each retry costs a second.
python3 - "$files" "$port" >/dev/null 2>&1 <<'PY' &
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
Server(("127.0.0.1", int(sys.argv[2])), handler).serve_forever()
PY
server_pid=$!
for _ in $(seq 50); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
    sleep 0.1
done

write_pack() {
    {
        echo 'id = "bench"'
        echo 'name = "Bench"'
        echo 'version = "1.0.0"'
        echo 'minecraft = "1.21.1"'
        echo 'loader = { kind = "fabric", version = "0.16.9" }'
        for f in "$files"/*.jar; do
            name=$(basename "$f")
            echo
            echo '[[mods]]'
            echo "url = \"http://127.0.0.1:$port/$name\""
            echo "hash = \"sha256:$(sha256sum "$f" | cut -d' ' -f1)\""
        done
    } >"$pack/pack.toml"
    git -C "$pack" add -A
    git -C "$pack" -c user.name=bench -c user.email=bench@localhost commit -qm "$1"
}
git -C "$pack" init -q
write_pack "pack"
"$bin" keygen --out-dir "$work" --name key >/dev/null

total=$(du -cb "$files"/*.jar | tail -1 | cut -f1)
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

# Every timed step starts from a quiescent disk: without `sync` the 500 MB just
# generated (or copied) is still being written back and slows the next fsync.
sync
t0=$(now)
rclone copy --transfers "$transfers" --http-url "http://127.0.0.1:$port/" :http: "$work/rclone"
t1=$(now)
sync
t2=$(now)
rclone_ms=$(ms "$t0" "$t1")
rclone_sync_ms=$(ms "$t0" "$t2")
[[ $(du -cb "$work/rclone"/*.jar | tail -1 | cut -f1) == "$total" ]] || { echo "rclone copied the wrong bytes" >&2; exit 1; }
rm -rf "$work/rclone"

build() {
    local t0 t1
    sync
    t0=$(now)
    "$bin" --json publish --repo "$pack" --store "$work/store" --cache-dir "$work/cache" \
        --key-file "$work/key.key" --downloads "$downloads" >"$work/report.json"
    t1=$(now)
    python3 - "$work/report.json" "$1" "$(ms "$t0" "$t1")" "$rclone_ms" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
case, ms, floor = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = r["mods"]
print(f"| {case} | {ms / 1000:.2f} s ({ms / floor:.2f}x rclone) | {m['bytes_downloaded']:,} | {r['blobs_new']} ({r['bytes_new']:,} B) | {r['blobs_reused']} |")
PY
}

echo "$mods jars, $total bytes, served by python3 http.server (ThreadingHTTPServer, backlog 256) on 127.0.0.1:$port; --downloads $downloads, rclone --transfers $transfers"
echo
echo "| case | wall time | bytes downloaded | blobs uploaded | blobs reused |"
echo "|---|---|---|---|---|"
echo "| rclone copy (floor) | $(awk "BEGIN{printf \"%.2f\", $rclone_ms/1000}") s | $total | | |"
echo "| rclone copy, then sync (durable floor; the builder fsyncs every blob) | $(awk "BEGIN{printf \"%.2f\", $rclone_sync_ms/1000}") s | | | |"
build "cold build (empty cache, empty store)"
build "rebuild, nothing changed"
python3 - "$files/mod-000.jar" <<'PY'
import sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
data[0] ^= 0xFF
open(p, "wb").write(bytes(data))
PY
write_pack "one mod changed"
build "rebuild, one mod changed"
