#!/usr/bin/env bash
# Installs what the test suite runs besides Rust, so that `bash scripts/test.sh`
# (the README's test command) works on a fresh Debian or Ubuntu machine:
#
#   system packages (apt, only those missing):
#     python3, python3-pip  scripts/check-module-cycles.py; pip installs the
#                           pinned PyPI tools below
#     git, curl, tar        repositories the tests create; the action's install
#                           script, which the action test runs as GitHub would
#     openjdk-17-jdk-headless  javac and jar compile the stand-in loader
#                           installer (fetcher provisioning tests) and the
#                           runner's Java stand-in server
#     systemd               systemd-analyze checks the units (scripts/check-units.sh)
#     nodejs, npm           run flying-squid, a Minecraft server in JavaScript,
#                           under atlas-runnerd (runner/tests/it/flying_squid.rs)
#     nginx, caddy          serve a directory store with examples/serve/
#                           (fetcher/tests/it/serve.rs): the versions hosts run
#     g++                   libfuzzer-sys compiles libFuzzer's C++ for .ci/run's
#                           fuzz step (scripts/fuzz.sh)
#     chromium              loads the pack page and the store index headless
#                           (builder/tests/it/page_browser.rs); the test skips
#                           without it unless ATLAS_REQUIRE_CHROMIUM=1
#   pinned tools from PyPI and npm into target/ci-tools/ (scripts/test-tools.sh):
#     mcstatus, mcrcon, flying-squid
#
#   bash scripts/test-prereqs.sh            # both
#   bash scripts/test-prereqs.sh --system   # system packages only
#
# Needs root or sudo for apt when a package is missing; prints the apt line
# to run otherwise. Installing starts no service (nginx would take port 80):
# a policy-rc.d(8) that says no is in place for the install. A second run
# with everything present only checks, in well under a second.
# Exit 0 ready, 1 something could not be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
python3 -m pip --version >/dev/null 2>&1 || missing="$missing python3-pip"
for tool in git curl tar; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
command -v javac >/dev/null 2>&1 || missing="$missing openjdk-17-jdk-headless"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v caddy >/dev/null 2>&1 || missing="$missing caddy"
command -v c++ >/dev/null 2>&1 || missing="$missing g++"
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$missing chromium"

if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "error: the tests need these packages:$missing" >&2
    echo "       install them as root (apt-get install$missing), then run this again" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: the tests need:$missing; install them with your system's package manager, then run this again" >&2
    exit 1
  fi
  echo "installing$missing (apt)"
  policy=/usr/sbin/policy-rc.d placed=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/test-prereqs.sh: no service starts while it installs packages\nexit 101\n' |
      $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"
    placed=yes
    trap '$sudo rm -f "$policy"' EXIT
  fi
  # shellcheck disable=SC2086 # one word per package; $sudo may be empty
  if ! ($sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null; then
    echo "error: apt-get install$missing failed" >&2
    exit 1
  fi
  if [ -n "$placed" ]; then
    $sudo rm -f "$policy"
    trap - EXIT
  fi
fi

if [ "${1:-}" != "--system" ]; then
  bash scripts/test-tools.sh
fi
