#!/usr/bin/env bash
# Step 2 of the Atlas GitHub Action (action.yml): run the installed
# atlas-builder with --github, so it writes the step outputs, the job summary
# and annotations itself. Inputs arrive as environment variables (never
# interpolated into a script); secrets are masked before anything runs.
#
# Environment (set by action.yml):
#   ATLAS_BIN           the binary the install step unpacked
#   ATLAS_COMMAND       publish | check | plan | diff | promote | resign
#   ATLAS_PACK_PATH     the pack directory, relative to the workspace
#   ATLAS_PACK_ID       pack id (promote, resign, diff)
#   ATLAS_CHANNEL       channel (publish: target; promote: --to; resign: the channel)
#   ATLAS_DRY_RUN       `true`: publish --dry-run (no signing key needed)
#   ATLAS_ARGS          extra arguments, split on whitespace (no globbing)
#   ATLAS_IN_STORE, ATLAS_IN_PUBLIC_URL, ATLAS_IN_SIGNING_KEY,
#   ATLAS_IN_CURSEFORGE_API_KEY, ATLAS_IN_S3_ENDPOINT, ATLAS_IN_S3_REGION,
#   ATLAS_IN_AWS_ACCESS_KEY_ID, ATLAS_IN_AWS_SECRET_ACCESS_KEY, ATLAS_IN_MIRROR:
#                       inputs; a non-empty one is exported under the name
#                       atlas-builder reads (ATLAS_STORE, ATLAS_SIGNING_KEY,
#                       AWS_ENDPOINT_URL, ...); an empty one leaves the job's
#                       own variable of that name as it is
set -euo pipefail

die() {
  echo "::error title=atlas::$*"
  echo "atlas: $*" >&2
  exit 2
}

mask() { # mask VALUE: every line of it, before anything could print it
  local line
  while IFS= read -r line; do
    [ -z "$line" ] || echo "::add-mask::$line"
  done <<<"$1"
}

pass() { # pass INPUT_VAR TARGET_VAR [secret]
  local value="${!1:-}"
  unset "$1"
  if [ -n "$value" ]; then
    [ "${3:-}" != secret ] || mask "$value"
    export "$2=$value"
  fi
}

pass ATLAS_IN_SIGNING_KEY ATLAS_SIGNING_KEY secret
pass ATLAS_IN_CURSEFORGE_API_KEY CURSEFORGE_API_KEY secret
pass ATLAS_IN_AWS_SECRET_ACCESS_KEY AWS_SECRET_ACCESS_KEY secret
pass ATLAS_IN_AWS_ACCESS_KEY_ID AWS_ACCESS_KEY_ID
pass ATLAS_IN_STORE ATLAS_STORE
pass ATLAS_IN_PUBLIC_URL ATLAS_PUBLIC_URL
pass ATLAS_IN_S3_ENDPOINT AWS_ENDPOINT_URL
pass ATLAS_IN_S3_REGION AWS_REGION
pass ATLAS_IN_MIRROR ATLAS_MIRROR
# Secrets that came from the job's env rather than inputs are masked too.
for name in ATLAS_SIGNING_KEY CURSEFORGE_API_KEY AWS_SECRET_ACCESS_KEY; do
  [ -z "${!name:-}" ] || mask "${!name}"
done

bin="${ATLAS_BIN:?ATLAS_BIN is not set: the install step did not run}"
command="${ATLAS_COMMAND:-publish}"
pack_path="${ATLAS_PACK_PATH:-.}"
channel="${ATLAS_CHANNEL:-}"
pack_id="${ATLAS_PACK_ID:-}"
extra=()
if [ -n "${ATLAS_ARGS:-}" ]; then
  set -f # no globbing of the extra arguments
  # Every line, split on blanks; read's status is 1 at the end of input.
  IFS=$' \t\n' read -r -d '' -a extra <<<"$ATLAS_ARGS" || true
  set +f
fi

args=("$command")
case "$command" in
  publish)
    args+=(--repo "$pack_path")
    [ -z "$channel" ] || args+=(--channel "$channel")
    if [ "${ATLAS_DRY_RUN:-false}" = true ]; then
      args+=(--dry-run)
    elif [ -z "${ATLAS_SIGNING_KEY:-}" ]; then
      die "input signing-key is empty: publishing signs the channel pointer (pass it from a secret), or set dry-run: true"
    fi
    ;;
  plan | check)
    args+=(--repo "$pack_path")
    ;;
  promote)
    [ -n "$pack_id" ] || die "promote needs the pack-id input"
    args+=(--pack "$pack_id")
    [ -z "$channel" ] || args+=(--to "$channel")
    ;;
  resign)
    [ -n "$pack_id" ] || die "resign needs the pack-id input"
    args+=(--pack "$pack_id")
    [ -z "$channel" ] || args+=(--channel "$channel")
    ;;
  diff)
    [ -n "$pack_id" ] || die "diff needs the pack-id input"
    args+=(--pack "$pack_id")
    ;;
  *)
    die "unknown command \`$command\`: use publish, check, plan, diff, promote or resign"
    ;;
esac
# (`${extra[@]+...}`: an empty array is "unbound" to bash 3.2 under set -u)
args+=(${extra[@]+"${extra[@]}"} --github)

echo "atlas-builder ${args[*]}"
exec "$bin" "${args[@]}"
