#!/usr/bin/env bash
# Installs the software the project did not write that the runner's tests
# run against, pinned, into target/ci-tools/ (where the tests look for it):
#
#   target/ci-tools/python/         mcstatus and mcrcon (PyPI), for
#                                   runner/tests/it/pypi_clients.rs
#   target/ci-tools/flying-squid/   flying-squid (npm), a Minecraft server in
#                                   JavaScript, for runner/tests/it/flying_squid.rs
#
#   bash scripts/test-tools.sh
#
# Needs python3 with pip, and Node.js 18 or newer with npm (test-prereqs.sh installs
# Debian's nodejs and npm when node is missing). Reaches only PyPI and the
# npm registry. Runs again in a second when nothing changed: each directory
# keeps a stamp of what it was installed from. Exit 0 done, 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/target/ci-tools"
mkdir -p "$tools"

# --- PyPI: every package pinned, dependencies too (--no-deps).
py_pins=(mcstatus==14.2.0 mcrcon==0.7.0 asyncio-dgram==3.0.0 dnspython==2.9.2)
py_dir="$tools/python"
if [ "$(cat "$py_dir/.atlas-stamp" 2>/dev/null)" != "${py_pins[*]}" ]; then
  rm -rf "$py_dir"
  echo "installing ${py_pins[*]} into $py_dir"
  if ! PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --no-warn-script-location --no-deps --target "$py_dir" "${py_pins[@]}"; then
    echo "error: could not install ${py_pins[*]} from PyPI (python3 -m pip)" >&2
    exit 1
  fi
  echo "${py_pins[*]}" >"$py_dir/.atlas-stamp"
fi

# --- npm: flying-squid and its whole tree as runner/tests/flying-squid's
# package-lock.json pins them (npm ci checks every package's integrity).
fs_src=runner/tests/flying-squid
fs_dir="$tools/flying-squid"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: node and npm are needed for flying-squid (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  echo "error: flying-squid needs Node.js 18 or newer, this is $(node --version)" >&2
  exit 1
fi
stamp=$(cat "$fs_src/package.json" "$fs_src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$fs_dir/.atlas-stamp" 2>/dev/null)" != "$stamp" ] || [ ! -d "$fs_dir/node_modules/flying-squid" ]; then
  rm -rf "$fs_dir"
  mkdir -p "$fs_dir"
  cp "$fs_src/package.json" "$fs_src/package-lock.json" "$fs_dir/"
  echo "installing flying-squid (npm ci, $fs_src/package-lock.json) into $fs_dir"
  if ! (cd "$fs_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    echo "error: could not install flying-squid from the npm registry (npm ci in $fs_dir)" >&2
    exit 1
  fi
  echo "$stamp" >"$fs_dir/.atlas-stamp"
fi
echo "test tools ready in $tools"
