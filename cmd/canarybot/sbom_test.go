package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/demo"
)

func TestSBOMDrift(t *testing.T) {
	t.Parallel()
	td := func(name string) string { return filepath.Join("..", "..", "sbom", "testdata", name) }
	garbage := filepath.Join(t.TempDir(), "garbage.json")
	if err := os.WriteFile(garbage, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"clean", []string{"--previous", td("previous.spdx.json"), "--current", td("clean.spdx.json")}, exitComplete,
			[]string{"already present in the previous release (passes) (1):", "pkg:golang/github.com/acme/oldgpl v1.2.0: GPL-3.0-only (GPL)", "verdict: PASS"}},
		{"new GPL", []string{"--previous", td("previous.spdx.json"), "--current", td("current.spdx.json")}, exitFailure,
			[]string{"NEW copyleft (fails) (5):", "pkg:golang/github.com/acme/newgpl v0.3.0: GPL-2.0-or-later (GPL) in " + td("current.spdx.json") + "#SPDXRef-Package-newgpl", "GPLv2 (GPL)", "verdict: FAIL: 5 new copyleft license(s)"}},
		{"exceptions", []string{"--previous", td("previous.spdx.json"), "--current", td("current.spdx.json"), "--exceptions", td("exceptions.yaml")}, exitFailure,
			[]string{"NEW copyleft (fails) (4):", "exempted (2):", "reason: linked dynamically in the plugin host"}},
		{"LGPL warns", []string{"--previous", td("previous.spdx.json"), "--current", td("lgpl.spdx.json")}, exitComplete,
			[]string{"warnings (LGPL, allowed with --lgpl warn) (1):", "LGPL-3.0-only (LGPL)", "verdict: PASS with 1 warning(s)"}},
		{"LGPL fails", []string{"--previous", td("previous.spdx.json"), "--current", td("lgpl.spdx.json"), "--lgpl", "fail"}, exitFailure,
			[]string{"NEW copyleft (fails) (1):", "LGPL-3.0-only (LGPL)"}},
		{"no licenses", []string{"--previous", td("previous.spdx.json"), "--current", td("nolicenses.spdx.json")}, exitFailure,
			[]string{"has 2 packages and no licenses: nothing was checked — was the Go module cache filled?"}},
		{"cyclonedx", []string{"--previous", td("previous.cdx.json"), "--current", td("current.cdx.json")}, exitFailure,
			[]string{"pkg:npm/both 0.1.0: MIT AND GPL-2.0-only (GPL) in " + td("current.cdx.json") + "#both-ref"}},
		{"missing current", []string{"--previous", td("previous.spdx.json"), "--current", td("missing.json")}, exitBadInput,
			[]string{"--current: bad SBOM", "missing.json"}},
		{"unparseable previous", []string{"--previous", garbage, "--current", td("clean.spdx.json")}, exitBadInput,
			[]string{"--previous: bad SBOM", "is not JSON"}},
		{"no --current", []string{"--previous", td("previous.spdx.json")}, exitBadInput, []string{"--previous and --current are both required"}},
		{"bad exceptions", []string{"--previous", td("previous.spdx.json"), "--current", td("clean.spdx.json"), "--exceptions", td("exceptions_noreason.yaml")}, exitBadInput,
			[]string{"line 4", "has no reason"}},
		{"bad lgpl", []string{"--previous", td("previous.spdx.json"), "--current", td("clean.spdx.json"), "--lgpl", "maybe"}, exitBadInput, []string{"use fail, warn or allow"}},
		{"stray argument", []string{"--previous", td("previous.spdx.json"), "--current", td("clean.spdx.json"), "extra"}, exitBadInput, []string{"drift takes no arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, code := cli(t, append([]string{"sbom", "drift"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d:\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if out, code := cli(t, "sbom", "nope"); code != exitBadInput || !strings.Contains(out, "unknown sbom command") {
		t.Errorf("unknown subcommand: exit %d:\n%s", code, out)
	}
}

// TestBatterySBOMDrift checks that --previous-sbom makes the battery's
// license drift test run on the release's SBOM, and fail it on new GPL.
func TestBatterySBOMDrift(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "sbom", "testdata", "current.spdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "v1.5.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "v1.5.0", "sbom_v1.5.0.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := cli(t, "battery", "v1.5.0", "--base", serveDemo(t, demo.TrackCanary), "--evidence-dir", dir,
		"--previous-sbom", filepath.Join("..", "..", "sbom", "testdata", "previous.spdx.json"))
	if code != exitFailure {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"sbom_license_drift       failed", "FAIL: 5 new copyleft license(s)", "FAIL (1 failed: sbom_license_drift)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	text := readEvidence(t, dir, "v1.5.0", "battery_v1.5.0.txt")
	for _, want := range []string{"## sbom_license_drift: failed", "pkg:golang/github.com/acme/newgpl v0.3.0: GPL-2.0-or-later (GPL)"} {
		if !strings.Contains(text, want) {
			t.Errorf("battery_v1.5.0.txt lacks %q:\n%s", want, text)
		}
	}
}
