#!/usr/bin/env bash
# Make one release archive, exactly as scripts/install.sh, install.ps1 and
# the GitHub Action (scripts/action/install.sh) expect it:
#
#   bash scripts/package.sh TARGET BIN_DIR OUT_DIR BIN...
#
# writes OUT_DIR/atlas-TARGET.tar.gz (OUT_DIR/atlas-TARGET.zip for a Windows
# target) holding, at its root, each BIN from BIN_DIR (BIN.exe on Windows),
# README.md and CHANGELOG.md; Linux archives also hold systemd/ with every
# systemd unit of the repository (*/systemd/*.service, *.timer), which
# `install.sh --systemd` installs. .github/workflows/release.yml calls it for
# every target; fetcher/tests/it/install_script.rs calls it too, so the test
# installs the archive the release would publish.
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: bash scripts/package.sh TARGET BIN_DIR OUT_DIR BIN..." >&2
  exit 2
fi
target=$1
bin_dir=$2
out_dir=$3
shift 3
root="$(cd "$(dirname "$0")/.." && pwd)"

ext=""
archive=tar.gz
case "$target" in
  *-windows-*)
    ext=.exe
    archive=zip
    ;;
esac

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
for b in "$@"; do
  src="$bin_dir/$b$ext"
  [ -f "$src" ] || {
    echo "package.sh: $src is missing; build it first" >&2
    exit 1
  }
  cp "$src" "$stage/"
  chmod 0755 "$stage/$b$ext"
done
cp "$root/README.md" "$root/CHANGELOG.md" "$stage/"
case "$target" in
  *-linux-*)
    mkdir "$stage/systemd"
    units=0
    for unit in "$root"/*/systemd/*.service "$root"/*/systemd/*.timer; do
      [ -f "$unit" ] || continue
      name="$(basename "$unit")"
      if [ -e "$stage/systemd/$name" ]; then
        echo "package.sh: two systemd units are named $name" >&2
        exit 1
      fi
      cp "$unit" "$stage/systemd/"
      chmod 0644 "$stage/systemd/$name"
      units=$((units + 1))
    done
    [ "$units" -gt 0 ] || {
      echo "package.sh: no systemd units found under $root/*/systemd/" >&2
      exit 1
    }
    ;;
esac

mkdir -p "$out_dir"
out="$(cd "$out_dir" && pwd)/atlas-$target.$archive"
rm -f "$out"
if [ "$archive" = zip ]; then
  # 7z is a native Windows program: give it a Windows path (Git Bash).
  native="$out"
  if command -v cygpath >/dev/null 2>&1; then native="$(cygpath -w "$out")"; fi
  (cd "$stage" && 7z a -tzip "$native" ./*) >/dev/null
else
  (cd "$stage" && tar -czf "$out" -- *)
fi
echo "$out"
