#!/usr/bin/env bash
# Puts a canarybot binary on the job's PATH, once per job:
#   $CANARYBOT_BINARY  an existing binary, used as it is;
#   $CANARYBOT_IMAGE   an image built from this repository's Dockerfile
#                      (e.g. ghcr.io/OWNER/canarybot:v1.4.0), pulled;
#   neither            the Dockerfile at the root of the action's repository
#                      is built here.
# The binary is copied out of the image and run on the runner rather than in
# the container: the image is distroless and runs as nonroot, while a step
# needs git and must write into the workspace the runner owns.
set -euo pipefail

dest="${RUNNER_TEMP:?}/canarybot-bin"
mkdir -p "$dest"
if [ -n "${CANARYBOT_BINARY:-}" ]; then
  install -m 0755 "$CANARYBOT_BINARY" "$dest/canarybot"
elif [ ! -x "$dest/canarybot" ]; then
  image="${CANARYBOT_IMAGE:-}"
  if [ -z "$image" ]; then
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    image="canarybot-action:local"
    echo "canarybot: building $root/Dockerfile" >&2
    docker build --quiet --build-arg VERSION="${CANARYBOT_VERSION:-action}" -t "$image" "$root" >/dev/null
  else
    docker pull --quiet "$image" >/dev/null
  fi
  id="$(docker create "$image")"
  trap 'docker rm "$id" >/dev/null' EXIT
  docker cp "$id:/usr/local/bin/canarybot" "$dest/canarybot"
fi
echo "$dest" >> "${GITHUB_PATH:?}"
echo "path=$dest/canarybot" >> "${GITHUB_OUTPUT:?}"
"$dest/canarybot" version >&2
