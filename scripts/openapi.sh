#!/usr/bin/env bash
# Installs GitHub's OpenAPI description (npm package @octokit/openapi) into a
# cache directory and prints the path of generated/api.github.com.json, the
# only file forge/forgetest needs. Safe to run again: with the file in place
# it prints the path and touches nothing. Messages go to stderr, so
#   CANARYBOT_GITHUB_OPENAPI=$(scripts/openapi.sh)
# works. With --check it only prints the path of an installed description
# and fails otherwise, never fetching: the tests use that to stay off the
# network.
#
# The tarball is checked against a pinned integrity hash, so a later run (or
# another machine) validates against byte-identical descriptions; to move to a
# newer release, set OCTOKIT_OPENAPI_VERSION and OCTOKIT_OPENAPI_INTEGRITY
# (from `npm view @octokit/openapi@<ver> dist.integrity`) and update the pins.
set -euo pipefail

ver=${OCTOKIT_OPENAPI_VERSION:-23.0.2}
integrity=${OCTOKIT_OPENAPI_INTEGRITY:-sha512-pV8M7L9GY23AybNvTmo2nyjmpmnt6+2sRE/tqr0ZLQcPS4lnw7u5eZGNmwRNkBC3D7gZXbFx5AHzLUVRBXGDhg==}
cache=${CANARYBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/canarybot}
dir="$cache/octokit-openapi-$ver"
file="$dir/package/generated/api.github.com.json"

if [ -s "$file" ]; then
  echo "$file"
  exit 0
fi
if [ "${1:-}" = --check ]; then
  echo "openapi: @octokit/openapi@$ver is not installed at $dir; run scripts/openapi.sh" >&2
  exit 1
fi

command -v npm >/dev/null 2>&1 || { echo "openapi: npm is needed to fetch @octokit/openapi@$ver (apt-get install npm)" >&2; exit 1; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.octokit-openapi-$ver.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

echo "openapi: fetching @octokit/openapi@$ver (about 28 MB)" >&2
tgz=$(cd "$tmp" && npm pack --silent "@octokit/openapi@$ver")
got="sha512-$(openssl dgst -sha512 -binary "$tmp/$tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "openapi: @octokit/openapi@$ver has integrity $got, want $integrity; not installing it" >&2
  exit 1
fi
# Only the description the fake is checked against (13 MB of the 350 MB unpacked).
tar -xzf "$tmp/$tgz" -C "$tmp" package/package.json package/LICENSE package/generated/api.github.com.json
rm -f "$tmp/$tgz"
# A rename, so a concurrent or interrupted run never leaves half a file at $file.
if ! mv -T "$tmp" "$dir" 2>/dev/null; then
  [ -s "$file" ] || { echo "openapi: could not move the download to $dir" >&2; exit 1; }
fi
trap - EXIT
echo "$file"
