#!/usr/bin/env bash
# Builder benchmark (docs/BENCHMARKS.md, section "Builder").
#
# Serves a synthetic pack of 300 jars (~1.67 MiB each, ~500 MiB, deterministic
# bytes) from a loopback static server (python3 http.server, backlog 256) as native
# `[[mods]] url + hash` entries, and times the real release binary:
#   1. ROUNDS rounds (default 5), the order alternating, of `rclone copy` of
#      the same files from the same server (the floor; also timed with the
#      `sync` after it, since rclone does not fsync and the store does) and a
#      cold build (empty cache) published to a new directory store,
#   3. rebuild with nothing changed,
#   4. rebuild with one mod changed.
# For each build: wall time, bytes downloaded, objects (blobs) uploaded.
#
#   5. with S3=1, builds to the in-process S3 test server (s3s-fs, SigV4; the
#      testkit example `s3-server`): ROUNDS rounds of a cold build (uploads
#      start as downloads land), beside the same work done one phase after
#      the other (a `--dry-run` cold build, which only downloads, then a
#      publish from that warm cache to a new prefix, which only uploads).
#
# Usage: scripts/bench-build.sh   (env: ROUNDS=5 MODS=300 SIZE=1747626 DOWNLOADS=8 TRANSFERS=8 KEEP=1 S3=1)
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
    if [[ ${S3:-} == 1 ]]; then
        cargo build --release -p atlas-testkit --example s3-server --manifest-path "$root/Cargo.toml" >&2
    fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/atlas-bench-build.XXXXXX")
server_pid='' s3_pid=''
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    [[ -n $s3_pid ]] && kill "$s3_pid" 2>/dev/null || true
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
# Each step writes into a new directory and nothing is deleted until the end:
# deleting 500 MB just before a step made that step pay for it (ext4 discard).
rclone_run() { # $1: round; prints "copy_ms copy_then_sync_ms"
    local t0 t1 t2
    sync
    t0=$(now)
    rclone copy --transfers "$transfers" --http-url "http://127.0.0.1:$port/" :http: "$work/rclone-$1"
    t1=$(now)
    sync
    t2=$(now)
    [[ $(du -cb "$work/rclone-$1"/*.jar | tail -1 | cut -f1) == "$total" ]] || { echo "rclone copied the wrong bytes" >&2; exit 1; }
    echo "$(ms "$t0" "$t1") $(ms "$t0" "$t2")"
}

build() { # $1: store and cache suffix; prints the wall time in ms, leaves the report in $work/report.json
    local t0 t1
    sync
    t0=$(now)
    "$bin" --json publish --repo "$pack" --store "$work/store-$1" --cache-dir "$work/cache-$1" \
        --key-file "$work/key.key" --downloads "$downloads" >"$work/report.json"
    t1=$(now)
    ms "$t0" "$t1"
}

row() { # $1: case, $2: ms, $3: floor ms
    python3 - "$work/report.json" "$1" "$2" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
case, ms, floor = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = r["mods"]
print(f"| {case} | {ms / 1000:.2f} s ({ms / floor:.2f}x rclone) | {m['bytes_downloaded']:,} | {r['blobs_new']} ({r['bytes_new']:,} B) | {r['blobs_reused']} |")
PY
}

rounds=${ROUNDS:-5}
echo "$mods jars, $total bytes, served by python3 http.server (ThreadingHTTPServer, backlog 256) on 127.0.0.1:$port; --downloads $downloads, rclone --transfers $transfers; $rounds rounds, the order alternating"
echo
echo "| round | rclone copy | rclone copy, then sync | cold build (empty cache, empty store) | ratio to rclone copy | ratio to rclone copy, then sync |"
echo "|---|---|---|---|---|---|"
ratios=() durable_ratios=() rclone_all=()
for r in $(seq "$rounds"); do
    if (( r % 2 )); then
        read -r copy_ms durable_ms < <(rclone_run "$r")
        cold_ms=$(build "$r")
    else
        cold_ms=$(build "$r")
        read -r copy_ms durable_ms < <(rclone_run "$r")
    fi
    [[ $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["blobs_new"])' "$work/report.json") == "$mods" ]] \
        || { echo "the cold build did not upload every blob" >&2; exit 1; }
    ratio=$(awk "BEGIN{printf \"%.2f\", $cold_ms/$copy_ms}")
    dratio=$(awk "BEGIN{printf \"%.2f\", $cold_ms/$durable_ms}")
    ratios+=("$ratio") durable_ratios+=("$dratio") rclone_all+=("$copy_ms")
    echo "| $r | $(awk "BEGIN{printf \"%.2f\", $copy_ms/1000}") s | $(awk "BEGIN{printf \"%.2f\", $durable_ms/1000}") s | $(awk "BEGIN{printf \"%.2f\", $cold_ms/1000}") s | $ratio | $dratio |"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
echo
echo "cold build / rclone copy: median $(median "${ratios[@]}") (min $(printf '%s\n' "${ratios[@]}" | sort -n | head -1), max $(printf '%s\n' "${ratios[@]}" | sort -n | tail -1)); / (rclone copy, then sync): median $(median "${durable_ratios[@]}")"
floor=$(median "${rclone_all[@]}")

echo
echo "Rebuilds (into round $rounds's store and cache; x rclone = against the median rclone copy):"
echo
echo "| case | wall time | bytes downloaded | blobs uploaded | blobs reused |"
echo "|---|---|---|---|---|"
row "rebuild, nothing changed" "$(build "$rounds")" "$floor"
python3 - "$files/mod-000.jar" <<'PY'
import sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
data[0] ^= 0xFF
open(p, "wb").write(bytes(data))
PY
write_pack "one mod changed"
row "rebuild, one mod changed" "$(build "$rounds")" "$floor"

[[ ${S3:-} == 1 ]] || exit 0

# S3: the in-process test server as a process; each build to a new prefix.
"$root/target/release/examples/s3-server" bench >"$work/s3.txt" &
s3_pid=$!
for _ in $(seq 100); do [[ -s $work/s3.txt ]] && break; sleep 0.1; done
read -r endpoint access secret region <"$work/s3.txt"
export AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret
s3_build() { # $1: prefix, $2: cache, rest: extra flags; prints the wall time in ms
    local t0 t1
    sync
    t0=$(now)
    "$bin" --json publish --repo "$pack" --store "s3://bench/$1" --s3-endpoint "$endpoint" --s3-region "$region" \
        --s3-path-style --cache-dir "$work/$2" --key-file "$work/key.key" --downloads "$downloads" "${@:3}" >"$work/report.json"
    t1=$(now)
    ms "$t0" "$t1"
}
echo
echo "S3 store (s3s-fs on 127.0.0.1, SigV4); each round a new cache and new prefixes:"
echo
echo "| round | cold build (uploads start as downloads land) | download only (--dry-run) | upload only (warm cache) | the two phases in sequence | overlapped / sequence |"
echo "|---|---|---|---|---|---|"
s3_ratios=()
for r in $(seq "$rounds"); do
    cold=$(s3_build "cold-$r" "s3cache-cold-$r")
    [[ $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["blobs_new"])' "$work/report.json") == "$mods" ]] \
        || { echo "the S3 cold build did not report every blob as new" >&2; exit 1; }
    down=$(s3_build "dry-$r" "s3cache-seq-$r" --dry-run)
    up=$(s3_build "seq-$r" "s3cache-seq-$r")
    ratio=$(awk "BEGIN{printf \"%.2f\", $cold/($down+$up)}")
    s3_ratios+=("$ratio")
    echo "| $r | $(awk "BEGIN{printf \"%.2f\", $cold/1000}") s | $(awk "BEGIN{printf \"%.2f\", $down/1000}") s | $(awk "BEGIN{printf \"%.2f\", $up/1000}") s | $(awk "BEGIN{printf \"%.2f\", ($down+$up)/1000}") s | $ratio |"
done
echo
echo "S3 cold build / (download phase + upload phase): median $(median "${s3_ratios[@]}")"
