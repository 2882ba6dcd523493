#!/bin/sh
# Install Atlas's prebuilt binaries (atlas-fetcher, atlas-builder, and on
# Linux and macOS atlas-runnerd, atlas-runner, atlas-standin) without a Rust
# toolchain, on Linux (x86_64, aarch64; static musl builds) or macOS (Intel,
# Apple silicon):
#
#   curl -fsSL https://raw.githubusercontent.com/atlas-modpacks/atlas/main/scripts/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --version v0.1.0 --bin atlas-fetcher --systemd
#
# It downloads the release archive for this machine (atlas-<target>.tar.gz,
# as .github/workflows/release.yml publishes it) and the release's
# SHA256SUMS, refuses the archive unless its SHA-256 matches (before it is
# unpacked; nothing from it runs or is installed otherwise), then moves each
# binary into place with an atomic rename, so a running atlas-runnerd keeps
# its old executable until it restarts. With --systemd (Linux, as root) it
# also installs every systemd unit the archive ships.
#
# SHA256SUMS comes from the same release: the check catches a corrupted or
# swapped download (from a mirror too), not a compromised release. For the
# strongest pin, give --version and compare SHA256SUMS with the one you trust.
#
# Options and environment variables: `sh install.sh --help` (usage() below).
#
# Exit codes: 0 installed, 1 failed (download, checksum, unpacking,
# installing), 2 bad option or unsupported platform.
#
# POSIX sh (dash, busybox ash, bash, zsh as sh); needs curl or wget, tar,
# and sha256sum, shasum or openssl. Everything happens inside main(), which
# runs on the last line, so a download cut short runs nothing.

set -eu

REPO=atlas-modpacks/atlas

say() { printf 'atlas install: %s\n' "$*" >&2; }

die() { # die CODE MESSAGE
  code=$1
  shift
  say "error: $*"
  exit "$code"
}

usage() {
  cat <<'EOF'
Install Atlas's prebuilt binaries (no Rust toolchain needed).

  curl -fsSL https://raw.githubusercontent.com/atlas-modpacks/atlas/main/scripts/install.sh | sh
  curl -fsSL .../install.sh | sh -s -- [OPTIONS]

Options (each has an environment variable, e.g. for `curl ... | sh`):
  --version V       release tag (v1.2.3) or `latest` (default)    ATLAS_VERSION
  --dir DIR         where the binaries go (default: /usr/local/bin ATLAS_INSTALL_DIR
                    as root, else ~/.local/bin)
  --release-url U   base URL (https://, http://, file://) or a     ATLAS_RELEASE_URL
                    directory holding the assets and SHA256SUMS,
                    instead of the project's GitHub releases (a
                    mirror); --version is then only a label
  --bin NAMES       comma-separated binaries to install (default:  ATLAS_BINS
                    every binary in the archive: atlas-builder,
                    atlas-fetcher, atlas-runnerd, atlas-runner,
                    atlas-standin)
  --systemd         Linux: also install the archive's systemd      ATLAS_SYSTEMD=1
                    units (every *.service and *.timer), with
                    ExecStart= pointing into --dir, and reload
                    systemd; nothing is enabled or started
  --systemd-dir D   where the units go                             ATLAS_SYSTEMD_DIR
                    (default: /usr/local/lib/systemd/system)
  --target TRIPLE   release target instead of this machine's       ATLAS_TARGET
                    (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl,
                    x86_64-apple-darwin, aarch64-apple-darwin)
  -h, --help        this text

The archive (atlas-<target>.tar.gz) is checked against the release's
SHA256SUMS before it is unpacked: on a mismatch nothing runs and nothing is
installed. Exit codes: 0 installed, 1 failed (download, checksum, unpacking,
installing), 2 bad option or unsupported platform.
EOF
}

need_value() { # need_value OPTION VALUE
  [ -n "$2" ] || die 2 "$1 needs a value (see --help)"
}

# uname -> Rust target triple; release.yml's matrix builds exactly these
# (fetcher/tests/it/install_script.rs reads both files).
detect_target() {
  os=$(uname -s)
  arch=$(uname -m)
  if [ "$os" = Darwin ] && [ "$arch" = x86_64 ] &&
    [ "$(sysctl -n hw.optional.arm64 2>/dev/null || true)" = 1 ]; then
    arch=arm64 # a shell under Rosetta on Apple silicon: take the native build
  fi
  case "$os-$arch" in
    Linux-x86_64 | Linux-amd64) echo x86_64-unknown-linux-musl ;;
    Linux-aarch64 | Linux-arm64) echo aarch64-unknown-linux-musl ;;
    Darwin-x86_64) echo x86_64-apple-darwin ;;
    Darwin-arm64 | Darwin-aarch64) echo aarch64-apple-darwin ;;
    *)
      die 2 "no prebuilt Atlas binaries for $os $arch; supported: Linux x86_64/aarch64, macOS x86_64/arm64 (Windows: scripts/install.ps1). Build from source instead: cargo install --locked --git https://github.com/$REPO atlas-fetcher"
      ;;
  esac
}

fetch() { # fetch NAME DEST
  src="$base/$1"
  case "$src" in
    http://* | https://* | file://*)
      # An https:// release never follows a redirect to plain http.
      case "$src" in
        https://*) proto='=https' ;;
        http://*) proto='=http,https' ;;
        *) proto='=file' ;;
      esac
      if command -v curl >/dev/null 2>&1; then
        curl --fail --silent --show-error --location --retry 3 --proto "$proto" \
          --output "$2" "$src" ||
          die 1 "downloading $src failed; check --version ($version) and that the release has $1"
      elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$src" ||
          die 1 "downloading $src failed; check --version ($version) and that the release has $1"
      else
        die 1 "neither curl nor wget is installed; install one of them"
      fi
      ;;
    *)
      cp "$src" "$2" 2>/dev/null || die 1 "reading $src failed; check --release-url"
      ;;
  esac
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$1" | cut -d' ' -f1
  else
    die 1 "no SHA-256 tool (sha256sum, shasum or openssl) found; install coreutils"
  fi
}

# Is $1 (comma-separated) naming $2?
listed() {
  case ",$1," in
    *",$2,"*) return 0 ;;
    *) return 1 ;;
  esac
}

main() {
  version="${ATLAS_VERSION:-latest}"
  dir="${ATLAS_INSTALL_DIR:-}"
  base="${ATLAS_RELEASE_URL:-}"
  bins="${ATLAS_BINS:-}"
  systemd="${ATLAS_SYSTEMD:-0}"
  unit_dir="${ATLAS_SYSTEMD_DIR:-/usr/local/lib/systemd/system}"
  target="${ATLAS_TARGET:-}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --version) need_value "$1" "${2:-}"; version=$2; shift 2 ;;
      --version=*) version=${1#*=}; shift ;;
      --dir) need_value "$1" "${2:-}"; dir=$2; shift 2 ;;
      --dir=*) dir=${1#*=}; shift ;;
      --release-url) need_value "$1" "${2:-}"; base=$2; shift 2 ;;
      --release-url=*) base=${1#*=}; shift ;;
      --bin) need_value "$1" "${2:-}"; bins=$2; shift 2 ;;
      --bin=*) bins=${1#*=}; shift ;;
      --systemd) systemd=1; shift ;;
      --systemd-dir) need_value "$1" "${2:-}"; unit_dir=$2; shift 2 ;;
      --systemd-dir=*) unit_dir=${1#*=}; shift ;;
      --target) need_value "$1" "${2:-}"; target=$2; shift 2 ;;
      --target=*) target=${1#*=}; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die 2 "unknown option \`$1\` (see --help)" ;;
    esac
  done

  case "$version" in
    latest | v[0-9]*.[0-9]*.[0-9]*) ;;
    *) die 2 "--version must be \`latest\` or a release tag such as v1.2.3, not \`$version\`" ;;
  esac
  case "$version" in
    latest) ;;
    *[!0-9A-Za-z.+-]*) die 2 "--version must be \`latest\` or a release tag such as v1.2.3, not \`$version\`" ;;
  esac
  case "$bins" in
    *[!A-Za-z0-9._,-]*) die 2 "--bin takes comma-separated binary names such as atlas-fetcher,atlas-runnerd, not \`$bins\`" ;;
  esac
  case "$systemd" in
    1 | true | yes) systemd=1 ;;
    0 | false | no | '') systemd=0 ;;
    *) die 2 "ATLAS_SYSTEMD must be 1 or 0, not \`$systemd\`" ;;
  esac

  [ -n "$target" ] || target=$(detect_target)
  case "$target" in
    *-windows-*) die 2 "$target: on Windows use scripts/install.ps1" ;;
    *-linux-* | *-apple-darwin) ;;
    *) die 2 "unknown release target \`$target\`" ;;
  esac
  if [ "$systemd" = 1 ]; then
    case "$target" in
      *-linux-*) ;;
      *) die 2 "--systemd is for Linux; on macOS run the binaries from launchd or cron" ;;
    esac
  fi
  asset="atlas-$target.tar.gz"

  if [ -z "$dir" ]; then
    if [ "$(id -u)" = 0 ]; then
      dir=/usr/local/bin
    else
      dir="${HOME:?HOME is not set; give --dir}/.local/bin"
    fi
  fi
  case "$dir" in
    /*) ;;
    *) dir="$(pwd)/$dir" ;;
  esac
  if [ "$systemd" = 1 ]; then
    case "$unit_dir" in
      /*) ;;
      *) die 2 "--systemd-dir must be an absolute path, not \`$unit_dir\`" ;;
    esac
    # The units start /usr/local/bin/atlas-*; they are rewritten to $dir.
    case "$dir" in
      *[!A-Za-z0-9/._-]*) die 2 "--systemd needs an install directory of plain characters (A-Z a-z 0-9 / . _ -), not \`$dir\`" ;;
    esac
  fi

  if [ -z "$base" ]; then
    if [ "$version" = latest ]; then
      base="https://github.com/$REPO/releases/latest/download"
    else
      base="https://github.com/$REPO/releases/download/$version"
    fi
  fi
  base="${base%/}"

  command -v tar >/dev/null 2>&1 || die 1 "tar is not installed"
  work=$(mktemp -d 2>/dev/null || mktemp -d -t atlas-install)
  [ -n "$work" ] && [ -d "$work" ] || die 1 "could not create a temporary directory"
  # shellcheck disable=SC2064 # $work is fixed now; expand it now
  trap "rm -rf '$work'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  say "installing Atlas $version for $target from $base"
  fetch SHA256SUMS "$work/SHA256SUMS"
  fetch "$asset" "$work/$asset"

  # `sha256sum` lines: "<hex>  <name>" (or "<hex> *<name>" in binary mode).
  expected=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print tolower($1); exit }' "$work/SHA256SUMS")
  [ -n "$expected" ] || die 1 "SHA256SUMS of release $version lists no $asset; refusing to install it"
  actual=$(sha256_of "$work/$asset")
  if [ "$actual" != "$expected" ]; then
    rm -f "$work/$asset"
    die 1 "SHA-256 mismatch for $asset: SHA256SUMS says $expected, the download is $actual; refusing to install it (nothing was unpacked, run or installed)"
  fi
  say "SHA-256 of $asset matches SHA256SUMS ($actual)"

  mkdir "$work/unpacked"
  tar -xzf "$work/$asset" -C "$work/unpacked" || die 1 "unpacking $asset failed"

  # The binaries: regular files named atlas-* at the archive's root.
  available=""
  for f in "$work/unpacked"/atlas-*; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    available="$available${available:+,}${f##*/}"
  done
  [ -n "$available" ] || die 1 "$asset holds no atlas-* binaries"
  if [ -z "$bins" ]; then
    bins=$available
  else
    for b in $(printf '%s' "$bins" | tr ',' ' '); do
      listed "$available" "$b" || die 2 "--bin: $asset has no \`$b\`; it has: $available"
    done
  fi
  units=""
  if [ "$systemd" = 1 ]; then
    for f in "$work/unpacked/systemd"/*.service "$work/unpacked/systemd"/*.timer; do
      [ -f "$f" ] && [ ! -L "$f" ] || continue
      units="$units ${f##*/}"
    done
    [ -n "$units" ] || die 1 "--systemd: $asset ships no systemd units (systemd/*.service, *.timer)"
  fi

  mkdir -p "$dir" || die 1 "cannot create $dir; choose another with --dir, or run as root"
  installed=""
  for b in $(printf '%s' "$bins" | tr ',' ' '); do
    listed "$installed" "$b" && continue
    # Copy next to the destination, then rename over it: atomic, and a
    # running binary keeps its old inode.
    tmp="$dir/.$b.atlas-install.$$"
    [ ! -d "$dir/$b" ] || die 1 "$dir/$b is a directory; move it away first"
    if ! { cp "$work/unpacked/$b" "$tmp" && chmod 0755 "$tmp" && mv -f "$tmp" "$dir/$b"; }; then
      rm -f "$tmp"
      die 1 "installing $dir/$b failed; choose another --dir, or run as root"
    fi
    installed="$installed${installed:+,}$b"
    say "installed $dir/$b"
  done

  if [ "$systemd" = 1 ]; then
    mkdir -p "$unit_dir" || die 1 "cannot create $unit_dir; run as root, or give --systemd-dir"
    for u in $units; do
      tmp="$unit_dir/.$u.atlas-install.$$"
      if ! { sed "s|/usr/local/bin/atlas-|$dir/atlas-|g" "$work/unpacked/systemd/$u" >"$tmp" &&
        chmod 0644 "$tmp" && mv -f "$tmp" "$unit_dir/$u"; }; then
        rm -f "$tmp"
        die 1 "installing $unit_dir/$u failed; run as root, or give --systemd-dir"
      fi
      say "installed $unit_dir/$u"
      if [ -e "/etc/systemd/system/$u" ] && [ "$unit_dir" != /etc/systemd/system ]; then
        say "note: /etc/systemd/system/$u exists and takes precedence over $unit_dir/$u; remove it to use the new one (keep your settings in a drop-in: systemctl edit $u)"
      fi
    done
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 &&
      [ "$(id -u)" = 0 ]; then
      systemctl daemon-reload || say "warning: systemctl daemon-reload failed; run it yourself"
    fi
    say "units installed, none enabled. Set each one's Environment= lines in a drop-in"
    say "(systemctl edit atlas-fetcher.service), then e.g.: systemctl enable --now atlas-fetcher.timer"
  fi

  if [ "$systemd" = 0 ] && [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ] &&
    [ -d "$work/unpacked/systemd" ]; then
    say "this host runs systemd: add --systemd to install the units too (atlas-fetcher.timer, atlas-runnerd.service, ...)"
  fi

  case ":${PATH:-}:" in
    *":$dir:"*) ;;
    *)
      say "$dir is not on your PATH; add it (e.g. in ~/.profile):"
      say "  export PATH=\"$dir:\$PATH\""
      ;;
  esac
  # The version the installed (and verified) binaries report.
  label=$version
  for b in atlas-fetcher atlas-builder; do
    if listed "$installed" "$b"; then
      v=$("$dir/$b" --version 2>/dev/null || true)
      [ -z "$v" ] || label=${v##* }
      break
    fi
  done
  say "done: Atlas $label ($installed) in $dir"
}

main "$@"
