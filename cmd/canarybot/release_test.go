package main

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/forge/forgetest"
)

var releaseFiles = map[string]string{
	"sbom_v1.4.0.json":             `{"spdxVersion":"SPDX-2.3"}` + "\n",
	"build_provenance_v1.4.0.json": `{"payloadType":"application/vnd.in-toto+json"}` + "\n",
	"release_oneliner.txt":         "v1.4.0 canary: 1%→100%, no rollback\n",
}

func TestReleaseCommand(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	githubEnv(t, fake.URL)
	root := writeEvidence(t, t.TempDir(), releaseFiles)
	args := []string{"release", "v1.4.0", "--evidence-dir", root, "--state", filepath.Join(root, "s.db"), "--write-interval", "0s"}

	out, code := cli(t, args...)
	if code != exitComplete || !strings.Contains(out, "release v1.4.0 (draft, created)") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	rels := fake.Releases()
	if len(rels) != 1 || !rels[0].Draft || len(rels[0].Assets) != 3 || !strings.Contains(rels[0].Body, "v1.4.0 canary: 1%→100%, no rollback") {
		t.Fatalf("releases %+v", rels)
	}
	for _, a := range rels[0].Assets {
		if string(a.Data) != releaseFiles[a.Name] {
			t.Errorf("asset %s: %q", a.Name, a.Data)
		}
	}
	applied := fake.Applied()
	out, code = cli(t, args...)
	if code != exitComplete || !strings.Contains(out, "already attached: ") || !maps.Equal(fake.Applied(), applied) {
		t.Errorf("rerun: exit %d, changes %v (before %v)\n%s", code, fake.Applied(), applied, out)
	}
}

func TestReleaseCommandBadInput(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	githubEnv(t, fake.URL)
	noProvenance := map[string]string{"sbom_v1.4.0.json": "{}\n", "release_oneliner.txt": "x\n"}
	for _, tc := range []struct {
		name  string
		files map[string]string
		extra []string
		want  string
	}{
		{"no provenance", noProvenance, nil, "canarybot provenance v1.4.0"},
		{"no sbom", map[string]string{"build_provenance_v1.4.0.json": "{}\n", "release_oneliner.txt": "x\n"}, nil, "--sbom"},
		{"an extra asset is missing", releaseFiles, []string{"--asset", "/nonexistent/dist.tar.gz"}, "/nonexistent/dist.tar.gz"},
		{"a bad upload URL", releaseFiles, []string{"--upload-url", "ftp://x"}, "--upload-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeEvidence(t, t.TempDir(), tc.files)
			args := append([]string{"release", "v1.4.0", "--evidence-dir", root, "--state", filepath.Join(root, "s.db"), "--write-interval", "0s"}, tc.extra...)
			out, code := cli(t, args...)
			if code != exitBadInput || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, tc.want, out)
			}
		})
	}
	if n := len(fake.Releases()); n != 0 {
		t.Errorf("%d releases created from bad input", n)
	}
}
