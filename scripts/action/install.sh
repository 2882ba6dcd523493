#!/usr/bin/env bash
# Step 1 of the Atlas GitHub Action (action.yml): download the prebuilt
# atlas-builder for this runner from the project's GitHub release, check it
# against the release's SHA256SUMS, unpack it into $RUNNER_TEMP and set the
# step output `bin`. Nothing is compiled. A download whose SHA-256 does not
# match is refused before it is unpacked, so nothing from it ever runs.
#
# Environment (set by action.yml from the inputs, never interpolated):
#   ATLAS_VERSION      release tag (v1.2.3) or `latest`; empty: the action's
#                      own ref when it is a full version tag, else `latest`
#   ATLAS_RELEASE_URL  base URL (https://, http://, file://) or directory
#                      holding the assets and SHA256SUMS; overrides GitHub
#   ATLAS_ACTION_REPOSITORY, ATLAS_ACTION_REF  github.action_repository/ref
#   RUNNER_OS, RUNNER_ARCH, RUNNER_TEMP, GITHUB_OUTPUT  given by GitHub
set -euo pipefail

die() {
  echo "::error title=atlas install::$*"
  echo "atlas install: $*" >&2
  exit 1
}

# The runner -> Rust target mapping; .github/workflows/release.yml builds
# exactly these targets (a test reads both files).
case "${RUNNER_OS:-}-${RUNNER_ARCH:-}" in
  Linux-X64) target=x86_64-unknown-linux-musl ;;
  Linux-ARM64) target=aarch64-unknown-linux-musl ;;
  macOS-X64) target=x86_64-apple-darwin ;;
  macOS-ARM64) target=aarch64-apple-darwin ;;
  Windows-X64) target=x86_64-pc-windows-msvc ;;
  *) die "no prebuilt atlas-builder for RUNNER_OS=${RUNNER_OS:-?} RUNNER_ARCH=${RUNNER_ARCH:-?}; supported: Linux X64/ARM64, macOS X64/ARM64, Windows X64" ;;
esac

if [ "$target" = x86_64-pc-windows-msvc ]; then
  asset="atlas-$target.zip"
  exe=atlas-builder.exe
else
  asset="atlas-$target.tar.gz"
  exe=atlas-builder
fi

version="${ATLAS_VERSION:-}"
if [ -z "$version" ]; then
  if [[ "${ATLAS_ACTION_REF:-}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    version="$ATLAS_ACTION_REF"
  else
    version=latest
  fi
fi
if [[ ! "$version" =~ ^(latest|v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?)$ ]]; then
  die "input version must be \`latest\` or a release tag such as v1.2.3, not \`$version\`"
fi

base="${ATLAS_RELEASE_URL:-}"
if [ -z "$base" ]; then
  repo="${ATLAS_ACTION_REPOSITORY:-atlas-modpacks/atlas}"
  [ -n "$repo" ] || repo=atlas-modpacks/atlas
  if [ "$version" = latest ]; then
    base="https://github.com/$repo/releases/latest/download"
  else
    base="https://github.com/$repo/releases/download/$version"
  fi
fi
base="${base%/}"

work="${RUNNER_TEMP:?RUNNER_TEMP is not set}/atlas-action"
rm -rf "$work"
mkdir -p "$work/bin"

fetch() { # fetch NAME DEST
  local src="$base/$1"
  case "$src" in
    http://* | https://* | file://*)
      curl --fail --silent --show-error --location --retry 3 --output "$2" "$src" ||
        die "downloading $src failed; check the version input ($version) and that the release has $1"
      ;;
    *)
      cp "$src" "$2" 2>/dev/null || die "reading $src failed; check the release-url input"
      ;;
  esac
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

echo "Installing atlas-builder $version for $target from $base"
fetch SHA256SUMS "$work/SHA256SUMS"
fetch "$asset" "$work/$asset"

expected="$(awk -v f="$asset" '$2 == f || $2 == "*" f { print tolower($1); exit }' "$work/SHA256SUMS")"
[ -n "$expected" ] || die "SHA256SUMS of release $version lists no $asset; refusing to install it"
actual="$(sha256_of "$work/$asset")"
if [ "$actual" != "$expected" ]; then
  rm -f "$work/$asset"
  die "SHA-256 mismatch for $asset: SHA256SUMS says $expected, the download is $actual; refusing to install it (nothing was run)"
fi
echo "SHA-256 of $asset matches SHA256SUMS ($actual)"

case "$asset" in
  *.zip) (cd "$work/bin" && unzip -q -o "../$asset") || die "unpacking $asset failed" ;;
  *) tar -xzf "$work/$asset" -C "$work/bin" || die "unpacking $asset failed" ;;
esac
bin="$work/bin/$exe"
[ -f "$bin" ] || die "$asset holds no $exe"
chmod +x "$bin"
"$bin" --version
echo "bin=$bin" >>"${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
