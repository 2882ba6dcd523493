#!/usr/bin/env bash
# Checks every systemd unit the project ships (runner/systemd/,
# fetcher/systemd/; the release archive's systemd/ holds the same files):
#
#   1. `systemd-analyze verify` accepts it without a word: an unknown or
#      misspelt key, a bad value or a missing binary fails (verify itself
#      only warns, with exit 0, for the first two). ExecStart= paths under
#      /usr/local/bin/ are pointed at the built binaries, as install.sh
#      points them at its install directory; a template (NAME@.service) is
#      checked through an instance.
#   2. Every .service keeps its sandbox: a non-root User=, the directives
#      the project promises (docs/RUNNER.md, "systemd") and a MemoryMax=.
#   3. `systemd-analyze security --offline` rates each .service's exposure
#      at most 2.5 (on its 0-10 scale: 10 is unsandboxed; the units rate
#      1.4 today). ATLAS_UNIT_EXPOSURE_MAX overrides it, in tenths (25).
#   4. A unit with a misspelt key is refused by the same check (so a check
#      that passes everything fails here).
#
#   bash scripts/check-units.sh            # binaries in target/debug
#   ATLAS_BIN_DIR=/usr/local/bin bash scripts/check-units.sh
#
# Needs systemd-analyze (Debian: apt-get install systemd; .ci/run installs
# it). Exit 0 when every unit passes, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir="$(cd "${ATLAS_BIN_DIR:-target/debug}" && pwd)"
# In tenths: systemd-analyze takes an integer threshold (0-100).
max_exposure="${ATLAS_UNIT_EXPOSURE_MAX:-25}"
command -v systemd-analyze >/dev/null 2>&1 || {
  echo "error: systemd-analyze not found; install systemd (apt-get install systemd)" >&2
  exit 1
}

# Directives every .service must set (name=value, or name= for any value).
required=(
  "NoNewPrivileges=yes" "ProtectSystem=strict" "ProtectHome=" "PrivateTmp=yes"
  "PrivateDevices=yes" "RestrictSUIDSGID=yes" "ProtectKernelTunables=yes"
  "ProtectControlGroups=yes" "RestrictNamespaces=yes" "CapabilityBoundingSet="
  "SystemCallFilter=@system-service" "ReadWritePaths=" "MemoryMax=" "User="
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# check_unit FILE: prints what is wrong with one unit (or "ok"); non-zero
# if anything is.
check_unit() {
  local src=$1 name dir unit out rating="" bad=0
  name=$(basename "$src")
  dir="$work/$(basename "$(dirname "$src")")-$RANDOM"
  mkdir -p "$dir"
  sed "s|/usr/local/bin/atlas-|$bin_dir/atlas-|g" "$src" >"$dir/$name"
  unit="$dir/$name"
  case "$name" in *@.service) unit="$dir/${name%@.service}@check.service" ;; esac
  if ! out=$(systemd-analyze verify "$unit" 2>&1) || [ -n "$out" ]; then
    echo "$src: systemd-analyze verify:"
    printf '  %s\n' "${out//$'\n'/$'\n'  }"
    bad=1
  fi
  case "$name" in
    *.service)
      for want in "${required[@]}"; do
        if ! grep -q "^${want}" "$src"; then
          echo "$src: missing ${want}..."
          bad=1
        fi
      done
      if grep -Eq '^User=(root|0)?$' "$src"; then
        echo "$src: runs as root; run it as the server's user (docs/SECURITY.md)"
        bad=1
      fi
      if ! out=$(systemd-analyze security --offline=true --threshold="$max_exposure" "$unit" 2>&1); then
        echo "$src: systemd-analyze security: exposure over $max_exposure (tenths):"
        echo "$out" | grep -E '✗|Overall' | sed 's/^/  /'
        bad=1
      fi
      rating=" (exposure $(echo "$out" | grep -o 'Overall exposure level for [^:]*: [0-9.]*' | sed 's/.*: //'))"
      ;;
  esac
  [ "$bad" -eq 0 ] && echo "ok  $src$rating"
  return "$bad"
}

failed=0
units=()
for f in */systemd/*.service */systemd/*.timer; do
  [ -e "$f" ] && units+=("$f")
done
[ "${#units[@]}" -gt 0 ] || {
  echo "error: no units under */systemd/" >&2
  exit 1
}
for f in "${units[@]}"; do
  check_unit "$f" || failed=1
done

# The check must be able to fail: a misspelt key in a copy of a real unit.
broken_dir="$work/broken"
mkdir -p "$broken_dir"
sed 's/^ProtectHome=/ProtectHom=/' runner/systemd/atlas-runnerd.service >"$broken_dir/atlas-runnerd.service"
if check_unit "$broken_dir/atlas-runnerd.service" >/dev/null; then
  echo "error: the check accepted a unit with a misspelt key (ProtectHom=)" >&2
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "error: some systemd units failed the checks above" >&2
  exit 1
fi
echo "all ${#units[@]} systemd units pass"
