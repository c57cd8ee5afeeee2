package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anchore/grype/grype/db/v6/testdb"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/sbom/vuln"
)

// greenButton runs `canarybot green-button args...` in-process as user,
// writing evidence under evidenceRoot. It runs the command on its own so
// the test does not depend on main.go registering it.
func greenButton(t *testing.T, evidenceRoot, user string, args ...string) (string, int) {
	t.Helper()
	return greenButtonConfig(t, "", evidenceRoot, user, args...)
}

// greenButtonConfig is greenButton with canary.yaml at configPath.
func greenButtonConfig(t *testing.T, configPath, evidenceRoot, user string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	g := &globals{out: &out, errOut: &errOut, evidenceDir: evidenceRoot, user: user, configPath: configPath}
	c := newGreenButtonCmd(g)
	c.SilenceUsage, c.SilenceErrors = true, true
	c.SetOut(&out)
	c.SetErr(&errOut)
	c.SetArgs(args)
	err := c.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return out.String() + errOut.String(), exitCode(err)
}

// taggedModule is a git checkout of the sbom package's fixture module,
// tagged v1.4.0, with two artifacts in dist/.
func taggedModule(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "sbom", "testdata", "gomod", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"commit", "-q", "-m", "release v1.4.0"}, {"tag", "v1.4.0"}} {
		cmd := exec.Command("git", append([]string{"-C", src, "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	for _, name := range []string{"canarybot-linux-amd64", "checksums.txt"} {
		if err := os.WriteFile(filepath.Join(src, "dist", name), []byte(name+" contents\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// TestGreenButtonCLI presses the button as an operator would: a GO with
// the release key, checked afterwards; a NO-GO; an unattested run; and
// the inputs it refuses before doing anything. Not parallel: it sets the
// environment the command reads.
func TestGreenButtonCLI(t *testing.T) {
	t.Setenv("GITHUB_ACTIONS", "")
	t.Setenv(provenance.KeyEnv, "")
	dir := t.TempDir()
	src := taggedModule(t, dir)
	evRoot := filepath.Join(dir, "evidence")
	key, pub, keyPEM := edKey(t, dir, "release")
	evDir := filepath.Join(evRoot, "v1.4.0")
	expectFile := filepath.Join(dir, "expected.txt")
	if err := os.WriteFile(expectFile, []byte("# release files\ncanarybot-linux-amd64\n\nchecksums.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyExpect := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(emptyExpect, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"v1.4.0", "--source", src}
	args := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }

	t.Run("GO", func(t *testing.T) {
		out, code := greenButton(t, evRoot, "alice", args("--expected", expectFile, "--key", key,
			"--previous-sbom", filepath.Join("..", "..", "sbom", "testdata", "previous.spdx.json"))...)
		if code != exitComplete {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{
			"✔ release_tag", "✔ sbom", "3/3 packages have a license", "✔ provenance", "✔ license_drift", "✔ artifact_count", "2/2 expected artifacts",
			"– vulnerabilities", "SKIPPED: vulnerabilities skipped: no vulnerability database given",
			"decision: GO (5/6 gates passed, 1 skipped (vulnerabilities)), recorded by alice", "go_nogo_signed_v1.4.0.txt.sig",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "UNATTESTED") || strings.Contains(out, "\r") {
			t.Errorf("output to a non-terminal has UNATTESTED or progress rewrites:\n%s", out)
		}
		// Every file is in a manifest that verifies.
		if out, code := cli(t, "evidence", "verify", evDir); code != exitComplete {
			t.Errorf("evidence verify: exit %d:\n%s", code, out)
		}
		record, err := os.ReadFile(filepath.Join(evDir, "go_nogo_signed_v1.4.0.txt"))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := os.ReadFile(filepath.Join(evDir, "go_nogo_signed_v1.4.0.txt.sig"))
		if err != nil {
			t.Fatal(err)
		}
		pubPEM, err := os.ReadFile(pub)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := provenance.VerifyRecord(context.Background(), sig, pubPEM, record); err != nil {
			t.Errorf("the record does not verify with the release key: %v", err)
		}
		if !strings.Contains(string(record), "by:       alice") || !strings.Contains(string(record), "decision: GO") {
			t.Errorf("record:\n%s", record)
		}
		// The record verifies the way verify.go will hand it over.
		recPath, sigPath := filepath.Join(evDir, "go_nogo_signed_v1.4.0.txt"), filepath.Join(evDir, "go_nogo_signed_v1.4.0.txt.sig")
		tampered := filepath.Join(dir, "go_nogo_signed_v1.4.0.txt")
		if err := os.WriteFile(tampered, bytes.Replace(record, []byte("by:       alice"), []byte("by:       mallory"), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		_, otherPub, _ := edKey(t, dir, "other")
		for _, tt := range []struct {
			name, key string
			artifacts []string
			code      int
			want      []string
		}{
			{"record and file", pub, []string{recPath}, exitComplete, []string{"signature:    ok", "record:       ok", "signed decision: GO", "signed by:       alice", "verified:"}},
			{"envelope only", pub, nil, exitComplete, []string{"file NOT compared"}},
			{"edited record file", pub, []string{tampered}, exitFailure, []string{"NOT verified", tampered, "not what was signed"}},
			{"other key", otherPub, []string{recPath}, exitFailure, []string{"signature does not verify"}},
			{"two files", pub, []string{recPath, tampered}, exitBadInput, []string{"covers one file"}},
			{"private key", key, nil, exitBadInput, []string{"public key"}},
		} {
			var buf bytes.Buffer
			g := &globals{out: &buf, errOut: &buf}
			keyPEM, err := os.ReadFile(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			err = verifyRecord(context.Background(), g, sigPath, tt.key, sig, keyPEM, tt.artifacts)
			if err != nil {
				buf.WriteString(err.Error())
			}
			if code := exitCode(err); code != tt.code {
				t.Errorf("verify record, %s: exit %d, want %d:\n%s", tt.name, code, tt.code, buf.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("verify record, %s: output lacks %q:\n%s", tt.name, w, buf.String())
				}
			}
		}

		// The provenance verifies with the CLI, against the artifacts.
		if out, code := cli(t, "verify", filepath.Join(evDir, "build_provenance_v1.4.0.json"), "--key", pub,
			"--artifact", filepath.Join(src, "dist", "canarybot-linux-amd64"), "--artifact", filepath.Join(src, "dist", "checksums.txt")); code != exitComplete {
			t.Errorf("verify provenance: exit %d:\n%s", code, out)
		}
	})

	t.Run("NO-GO names the gate", func(t *testing.T) {
		out, code := greenButton(t, evRoot, "alice", args("--expect", "canarybot-linux-amd64", "--expect", "canarybot-darwin-arm64", "--key", key)...)
		if code != exitFailure {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []string{"✘ artifact_count", "NO-GO: artifact_count failed", "missing canarybot-darwin-arm64", "decision: NO-GO (4/6 gates passed, 1 skipped (vulnerabilities))"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		record, err := os.ReadFile(filepath.Join(evDir, "go_nogo_signed_v1.4.0.txt"))
		if err != nil || !strings.Contains(string(record), "decision: NO-GO") {
			t.Errorf("the NO-GO is not recorded: %v\n%s", err, record)
		}
	})

	t.Run("key from the environment", func(t *testing.T) {
		t.Setenv(provenance.KeyEnv, keyPEM)
		out, code := greenButton(t, evRoot, "alice", args("--expected", expectFile)...)
		if code != exitComplete || strings.Contains(out, "UNATTESTED") {
			t.Errorf("exit %d, want 0, attested:\n%s", code, out)
		}
	})

	t.Run("ephemeral key says UNATTESTED", func(t *testing.T) {
		out, code := greenButton(t, evRoot, "alice", args("--expected", expectFile)...)
		if code != exitComplete || !strings.Contains(out, "UNATTESTED: signed with an ephemeral key") {
			t.Errorf("exit %d, want 0 and UNATTESTED:\n%s", code, out)
		}
		out, code = greenButton(t, evRoot, "alice", args("--expected", expectFile, "--require-key")...)
		if code != exitFailure || !strings.Contains(out, "NO-GO: provenance failed") {
			t.Errorf("--require-key without a key: exit %d, want 1:\n%s", code, out)
		}
	})

	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"no version", []string{"--expect", "x"}, "takes one <version>"},
		{"no expected list", args(), "--expect NAME"},
		{"empty expected file", args("--expected", emptyExpect), "names no artifact"},
		{"escaping name", args("--expect", "../x"), `bad expected artifact name: "../x"`},
		{"missing previous SBOM", args("--expect", "x", "--previous-sbom", filepath.Join(dir, "nope.json")), "--previous-sbom"},
		{"bad lgpl", args("--expect", "x", "--lgpl", "maybe"), "use fail, warn or allow"},
		{"source not a directory", []string{"v1.4.0", "--source", expectFile, "--expect", "x"}, "is not a directory"},
		{"bad key", args("--expect", "x", "--key", expectFile), "no PEM block"},
		{"bad vuln threshold", args("--expect", "x", "--vuln-fail-on", "severe"), `bad severity "severe": use negligible, low, medium, high, critical or none`},
		{"missing vuln db", args("--expect", "x", "--vuln-db", filepath.Join(dir, "grype")), "--vuln-db: stat " + filepath.Join(dir, "grype")},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			out, code := greenButton(t, evRoot, "alice", tt.args...)
			if code != exitBadInput || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, tt.want, out)
			}
		})
	}
}

func TestInside(t *testing.T) {
	tests := []struct {
		root, dir, want string
		ok              bool
	}{
		{"/r", "/r/release-evidence", "release-evidence", true},
		{"/r", "/r/a/b", "a/b", true},
		{"/r", "/r", "", false},
		{"/r", "/elsewhere", "", false},
		{"/r", "/r/../r2", "", false},
	}
	for _, tt := range tests {
		if got, ok := inside(tt.root, tt.dir); got != tt.want || ok != tt.ok {
			t.Errorf("inside(%s, %s) = %q, %v; want %q, %v", tt.root, tt.dir, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSBOMGenerateCLI(t *testing.T) {
	t.Parallel()
	fixture := filepath.Join("..", "..", "sbom", "testdata", "gomod")
	dir := t.TempDir()
	out, code := cli(t, "sbom", "generate", "v9.9.9", "--dir", fixture, "--output", dir)
	if code != exitComplete || !strings.Contains(out, "license coverage: 3/3 packages have a license (100.0%)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, name := range []string{"sbom_v9.9.9.json", "sbom_v9.9.9.cdx.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Into the evidence, through the manifest.
	out, code = cli(t, "sbom", "generate", "v9.9.9", "--dir", fixture, "--evidence-dir", dir)
	if code != exitComplete {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if out, code := cli(t, "evidence", "verify", filepath.Join(dir, "v9.9.9")); code != exitComplete {
		t.Errorf("evidence verify: exit %d:\n%s", code, out)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--dir", fixture, "--modcache", t.TempDir(), "--output", dir}, exitFailure, "SBOM not written: SBOM has no licenses"},
		{[]string{"--dir", fixture, "--exclude", "build"}, exitBadInput, "start it with ./"},
		{[]string{"--dir", filepath.Join(dir, "missing")}, exitBadInput, "missing"},
	} {
		out, code := cli(t, append([]string{"sbom", "generate", "v9.9.8"}, tt.args...)...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tt.args, code, tt.code, tt.want, out)
		}
	}
}

// TestGreenButtonVulnCLI presses the button with a real grype database,
// built by grype's own builder from the greenbutton package's advisories
// (a critical one for go.etcd.io/bbolt v1.5.0, which the fixture module
// requires, and a medium one for github.com/spf13/pflag), from the flags
// and from canary.yaml.
func TestGreenButtonVulnCLI(t *testing.T) {
	t.Setenv("GITHUB_ACTIONS", "")
	t.Setenv(provenance.KeyEnv, "")
	dir := t.TempDir()
	src := taggedModule(t, dir)
	evRoot := filepath.Join(dir, "evidence")
	key, _, _ := edKey(t, dir, "release")
	in := filepath.Join(dir, "advisories")
	if err := os.CopyFS(in, os.DirFS(filepath.Join("..", "..", "greenbutton", "testdata", "advisories"))); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "grype-db")
	testdb.BuildFromFlatFileDir(t, time.Now(), filepath.Join(db, vuln.SchemaDir), in, "**/*.json")
	yaml := filepath.Join(dir, "canary.yaml")
	if err := os.WriteFile(yaml, []byte("green_button:\n  vuln_db: "+db+"\n  vuln_fail_on: critical\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"v1.4.0", "--source", src, "--expect", "canarybot-linux-amd64", "--key", key}

	tests := []struct {
		name   string
		config string
		args   []string
		code   int
		want   []string
	}{
		{"critical finding is a NO-GO", "", []string{"--vuln-db", db}, exitFailure, []string{
			"✘ vulnerabilities", "NO-GO: vulnerabilities failed: FAIL: 1 finding(s) at or above high", "decision: NO-GO (5/6 gates passed)",
		}},
		{"report only", "", []string{"--vuln-db", db, "--vuln-fail-on", "none"}, exitComplete, []string{
			"✔ vulnerabilities", "PASS (report only, no threshold): 1 critical, 1 medium", "decision: GO (6/6 gates passed)",
		}},
		{"from canary.yaml", yaml, nil, exitFailure, []string{"NO-GO: vulnerabilities failed: FAIL: 1 finding(s) at or above critical"}},
		{"flags over canary.yaml", yaml, []string{"--vuln-fail-on", "none"}, exitComplete, []string{"decision: GO (6/6 gates passed)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := greenButtonConfig(t, tt.config, evRoot, "alice", append(append([]string{}, base...), tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "SKIPPED") {
				t.Errorf("a scan with a database says SKIPPED:\n%s", out)
			}
			report, err := os.ReadFile(filepath.Join(evRoot, "v1.4.0", vuln.EvidenceName("v1.4.0")))
			if err != nil || !strings.Contains(string(report), "GHSA-crit-bolt-0001") {
				t.Errorf("%s: %v\n%s", vuln.EvidenceName("v1.4.0"), err, report)
			}
		})
	}
}

// TestVulnThresholdNames holds canary.yaml's vuln_fail_on names, which
// config spells out to keep grype out of it, to the vuln package's.
func TestVulnThresholdNames(t *testing.T) {
	names := config.VulnSeverities()
	for _, name := range names {
		s, err := vuln.ParseSeverity(name)
		if err != nil {
			t.Errorf("config admits %q, vuln refuses it: %v", name, err)
		}
		if got := vulnThreshold(name); got != s {
			t.Errorf("vulnThreshold(%q) = %s, want %s", name, got, s)
		}
	}
	for s := vuln.Negligible; s <= vuln.Critical; s++ {
		if !slices.Contains(names, s.String()) {
			t.Errorf("config does not admit the threshold %s", s)
		}
	}
	if got := vulnThreshold("severe"); got != vuln.Negligible {
		t.Errorf("an unknown name gives %s, want the strictest, negligible", got)
	}
}
