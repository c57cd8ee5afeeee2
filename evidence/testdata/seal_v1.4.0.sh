#!/bin/sh
# Recomputes every hash in v1.4.0/manifest.json with printf and sha256sum, so
# the fixture pins the manifest format independently of the Go code.
# Run from evidence/testdata: sh seal_v1.4.0.sh
set -eu
h() { sha256sum | cut -d' ' -f1; }
v=v1.4.0

echo "entries (genesis and each file, then each entry's hash):"
prev=$(printf 'canarybot-evidence-v1\n%s' "$v" | h)
echo "  genesis           $prev"
for f in release_tag.txt preflight.txt rollout_stage_1.txt; do
	sum=$(h < "v1.4.0/$f")
	prev=$(printf '%s\n%s\n%s\n' "$prev" "$f" "$sum" | h)
	echo "  $f sha256 $sum size $(wc -c < "v1.4.0/$f") hash $prev"
done
tail=$prev

echo "expected (genesis, then each item's hash):"
prev=$(printf 'canarybot-evidence-v2 expected\n%s' "$v" | h)
echo "  genesis           $prev"
item() { # name status
	prev=$(printf '%s\n%s\n%s\n' "$prev" "$1" "$2" | h)
	echo "  $1 ($2) hash $prev"
}
item release_tag.txt required
item preflight.txt required
item rollout_stage_1.txt required
item sbom_v1.4.0.json 'waived: green button not configured'
item warroom_log.txt required
echo "expected_head     $prev"

echo "head              $(printf 'canarybot-evidence-v2\n%s\n%s\n' "$tail" "$prev" | h)"
