#!/usr/bin/env bash
# Builds atlas-bootstrap.jar, the pre-launch program of Atlas instances for
# Prism Launcher and MultiMC (source: fetcher/bootstrap/AtlasBootstrap.java),
# into OUT_DIR (default: target/player-tools). Java 8 bytecode and Java 8
# APIs only (`javac --release 8`): the launchers run it with the Java they
# picked for the instance, which may be 8. Needs a JDK 11 or newer (javac and
# jar); the release workflow, the tests and scripts/page-screenshot.sh use it.
# The jar is reproducible: entries dated 1980-01-01 (`jar --date`).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/player-tools}"
mkdir -p "$out"
for tool in javac jar; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found: install a JDK (e.g. apt-get install openjdk-17-jdk-headless)" >&2
    exit 1
  fi
done
classes="$(mktemp -d)"
trap 'rm -rf "$classes"' EXIT
javac --release 8 -g:none -Xlint:all -Werror -encoding UTF-8 -d "$classes" fetcher/bootstrap/AtlasBootstrap.java
jar --create --file "$out/atlas-bootstrap.jar.tmp" --date=1980-01-01T00:00:02Z \
  --main-class AtlasBootstrap -C "$classes" .
mv "$out/atlas-bootstrap.jar.tmp" "$out/atlas-bootstrap.jar"
echo "$out/atlas-bootstrap.jar"
