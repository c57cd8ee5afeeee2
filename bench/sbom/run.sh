#!/usr/bin/env bash
# SBOM time and peak memory for this repository: `canarybot sbom generate`
# (syft linked in as a library) beside the syft CLI of the same version on
# the same input, with the same exclusions and the same Go license mode
# (module cache only), both writing SPDX and CycloneDX JSON. One run each.
#
# The syft CLI is built once from the Go module proxy into the cache
# directory below, never into the repository. Needs GNU time
# (/usr/bin/time; `apt-get install time`) and a filled module cache
# (`go mod download`).
#
#   bench/sbom/run.sh            # prints a table and the ratios
#   CANARYBOT_BENCH_CACHE=DIR    # where the two binaries are kept
set -euo pipefail

SYFT_VERSION=v1.57.1
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${CANARYBOT_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/canarybot-bench}
syft_bin=$cache/syft-$SYFT_VERSION/syft
ours_bin=$cache/canarybot
modcache=$(go env GOMODCACHE)

if [ ! -x /usr/bin/time ]; then
	echo "bench/sbom: GNU time is missing: apt-get install time" >&2
	exit 2
fi
if [ -z "$(ls -A "$modcache" 2>/dev/null)" ]; then
	echo "bench/sbom: the module cache $modcache is empty: run go mod download" >&2
	exit 2
fi

if [ ! -x "$syft_bin" ]; then
	echo "building the syft $SYFT_VERSION CLI from the Go module proxy into $(dirname "$syft_bin") (once; several minutes)" >&2
	mkdir -p "$(dirname "$syft_bin")"
	# Outside the repository, so its go.mod and GOFLAGS play no part.
	(cd "$(dirname "$syft_bin")" && GOFLAGS= GOWORK=off GOBIN="$(dirname "$syft_bin")" \
		go install -trimpath -ldflags "-s -w -X main.version=${SYFT_VERSION#v}" "github.com/anchore/syft/cmd/syft@$SYFT_VERSION")
fi
echo "building canarybot from $repo into $ours_bin" >&2
(cd "$repo" && go build -trimpath -ldflags '-s -w' -o "$ours_bin" ./cmd/canarybot)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The same exclusions as sbom.DefaultExcludes, plus the binary a hand-run
# `go build ./cmd/canarybot` leaves at the top (.gitignore names it): a
# clean checkout has none, and it would add its 350 modules a second time.
excludes=("**/testdata" "./bin" "./dist" "./evidence" "./demo-evidence" "**/node_modules" "**/.git")
syft_args=() ours_args=()
for e in "${excludes[@]}"; do syft_args+=(--exclude "$e"); done
syft_args+=(--exclude ./canarybot) ours_args+=(--exclude ./canarybot)

run() { # name, command...: one timed run; "wall_s user_s sys_s maxrss_kb" into $work/name.time
	local name=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1 || {
		echo "bench/sbom: $name failed:" >&2
		cat "$work/$name.log" >&2
		exit 1
	}
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input:   $repo ($(git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo 'not a git checkout')), module cache $modcache"

mkdir -p "$work/syft" "$work/ours"
run syft env SYFT_CHECK_FOR_APP_UPDATE=false \
	SYFT_GOLANG_SEARCH_LOCAL_MOD_CACHE_LICENSES=true SYFT_GOLANG_LOCAL_MOD_CACHE_DIR="$modcache" \
	SYFT_GOLANG_USE_PACKAGES_LIB=false SYFT_GOLANG_SEARCH_REMOTE_LICENSES=false \
	"$syft_bin" scan "dir:$repo" -q "${syft_args[@]}" \
	-o "spdx-json=$work/syft/sbom.json" -o "cyclonedx-json=$work/syft/sbom.cdx.json"
run ours "$ours_bin" sbom generate bench --dir "$repo" --modcache "$modcache" --output "$work/ours" "${ours_args[@]}"

# Distinct package URLs in the CycloneDX output, and SPDX packages with a
# license (syft puts licenses found in files under licenseConcluded).
purls() { grep -o '"purl": *"pkg:[^"]*"' "$1" | sort -u | wc -l; }
licensed() {
	if command -v jq >/dev/null; then
		jq '[.packages[] | select([.licenseConcluded, .licenseDeclared] | any(. != null and . != "NOASSERTION" and . != "NONE"))] | length' "$1"
	else
		echo -1 # no jq: not counted
	fi
}

sp=$(purls "$work/syft/sbom.cdx.json") sl=$(licensed "$work/syft/sbom.json")
op=$(purls "$work/ours/sbom_bench.cdx.json") ol=$(licensed "$work/ours/sbom_bench.json")
awk -v v="$SYFT_VERSION" -v s="$(cat "$work/syft.time")" -v o="$(cat "$work/ours.time")" \
	-v sp="$sp" -v sl="$sl" -v op="$op" -v ol="$ol" 'BEGIN {
	split(s, a, " "); split(o, b, " ")
	printf "\n%-26s %8s %8s %10s %9s %9s\n", "", "wall s", "cpu s", "peak RSS", "packages", "licensed"
	printf "%-26s %8.2f %8.2f %7.0f MB %9d %9d\n", "syft " v " CLI", a[1], a[2] + a[3], a[4] / 1024, sp, sl
	printf "%-26s %8.2f %8.2f %7.0f MB %9d %9d\n", "canarybot sbom generate", b[1], b[2] + b[3], b[4] / 1024, op, ol
	printf "\nratio canarybot/syft: time %.2fx, peak RSS %.2fx\n", b[1] / a[1], b[4] / a[4]
}'
grep 'license coverage' "$work/ours.log" || true
