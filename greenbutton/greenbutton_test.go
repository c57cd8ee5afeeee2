package greenbutton

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anchore/grype/grype/db/v6/testdb"

	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/sbom"
	"github.com/canarybot/canarybot/sbom/vuln"
)

var fixedNow = func() time.Time { return time.Date(2026, 3, 4, 9, 58, 0, 0, time.UTC) }

// release is a tagged git checkout of a small Go module (the sbom
// package's fixture go.mod and go.sum) with two built artifacts in dist/.
type release struct {
	src, evidence string
	artifacts     []string
}

func newRelease(t *testing.T, tag string) release {
	t.Helper()
	dir := t.TempDir()
	r := release{src: filepath.Join(dir, "src"), evidence: filepath.Join(dir, "evidence")}
	if err := os.MkdirAll(filepath.Join(r.src, "dist"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join("..", "sbom", "testdata", "gomod", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := [][]string{{"init", "-q"}, {"add", "go.mod", "go.sum"}, {"commit", "-q", "-m", "release"}}
	if tag != "" {
		git = append(git, []string{"tag", tag})
	}
	for _, args := range git {
		cmd := exec.Command("git", append([]string{"-C", r.src, "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	// dist/ is not committed: built files do not dirty the checkout.
	for _, name := range []string{"canarybot-linux-amd64", "checksums.txt"} {
		if err := os.WriteFile(filepath.Join(r.src, "dist", name), []byte(name+" bytes\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r.artifacts = append(r.artifacts, name)
	}
	return r
}

func signingKey(t *testing.T) (*provenance.Key, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := provenance.ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
}

func noEnv(string) string { return "" }

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGateGO runs the ritual as the engine's T-2 gate on a release that
// has everything, then checks its evidence the way an auditor would.
func TestGateGO(t *testing.T) {
	rel := newRelease(t, "v1.4.0")
	key, pub := signingKey(t)
	ev, err := evidence.Open(rel.evidence, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	gb := &GreenButton{
		Source: rel.src, Expected: rel.artifacts, Key: key, Evidence: ev,
		PreviousSBOM: filepath.Join("..", "sbom", "testdata", "previous.spdx.json"),
		Getenv:       noEnv, Now: fixedNow,
	}
	res, err := gb.Run(context.Background(), &rollout.Release{Version: "v1.4.0", IC: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != rollout.GatePassed || !strings.HasPrefix(res.Detail, "GO: 5/6 gates passed, 1 skipped (vulnerabilities)") {
		t.Fatalf("gate %+v, want passed", res)
	}
	dir := ev.Path()

	rep, err := evidence.Verify(dir)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("evidence does not verify: %v %+v", err, rep.Problems)
	}
	for _, name := range gb.Produces("v1.4.0") {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not written: %v", name, err)
		}
	}
	if got := strings.TrimSpace(string(read(t, dir, ReleaseTagFile))); got != "v1.4.0" {
		t.Errorf("release_tag.txt = %q", got)
	}
	if got := string(read(t, dir, ArtifactsFile)); !strings.Contains(got, "present  canarybot-linux-amd64") || !strings.HasSuffix(got, "\n2/2\n") {
		t.Errorf("artifact_count.txt:\n%s", got)
	}
	s, err := sbom.Read(filepath.Join(dir, sbom.CycloneDXName("v1.4.0")))
	if err != nil {
		t.Fatal(err)
	}
	var modules []string
	for _, p := range s.Packages {
		if strings.HasPrefix(p.PURL, "pkg:golang/") {
			modules = append(modules, p.Key)
		}
	}
	if len(modules) != 3 {
		t.Errorf("CycloneDX SBOM has Go modules %v, want the fixture's 3", modules)
	}

	// The provenance verifies with the release key and the artifacts.
	var arts []string
	for _, a := range rel.artifacts {
		arts = append(arts, filepath.Join(rel.src, "dist", a))
	}
	if _, err := provenance.Verify(context.Background(), read(t, dir, provenance.EnvelopeName("v1.4.0")), pub, arts); err != nil {
		t.Errorf("provenance: %v", err)
	}

	// The record is signed with the same key, names who and when, each
	// gate, and the digest of every file beside it.
	record := read(t, dir, provenance.RecordName("v1.4.0"))
	if _, err := provenance.VerifyRecord(context.Background(), read(t, dir, provenance.RecordSignatureName("v1.4.0")), pub, record); err != nil {
		t.Fatalf("record signature: %v", err)
	}
	text := string(record)
	for _, want := range []string{
		"decision: GO (5/6 gates passed, 1 skipped (vulnerabilities))", "by:       alice", "at:       2026-03-04T09:58:00Z", key.KeyID(),
		"release_tag     passed", "sbom            passed  3/3 packages have a license",
		"provenance      passed  2 artifacts attested", "license_drift   passed  PASS (against",
		"artifact_count  passed  2/2 expected artifacts",
		"vulnerabilities skipped no vulnerability database given", "NOT scanned",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("record lacks %q:\n%s", want, text)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, vuln.EvidenceName("v1.4.0"))); !os.IsNotExist(err) {
		t.Errorf("a skipped scan wrote %s: %v", vuln.EvidenceName("v1.4.0"), err)
	}
	if strings.Contains(text, "UNATTESTED") {
		t.Errorf("record signed with a real key says UNATTESTED:\n%s", text)
	}
	for _, name := range []string{ReleaseTagFile, sbom.SPDXName("v1.4.0"), provenance.EnvelopeName("v1.4.0"), DriftName("v1.4.0"), ArtifactsFile} {
		sum := sha256.Sum256(read(t, dir, name))
		if !strings.Contains(text, name) || !strings.Contains(text, hex.EncodeToString(sum[:])) {
			t.Errorf("record lacks %s with its sha256", name)
		}
	}
}

// TestGateNoGo: each broken precondition fails its own gate, the others
// still run, and the NO-GO is recorded and signed all the same.
func TestGateNoGo(t *testing.T) {
	tests := []struct {
		name     string
		tag      string
		setup    func(t *testing.T, rel release, gb *GreenButton)
		failed   []Step
		inDetail string
		viaGate  bool // also run it as the engine's gate
	}{
		{
			name: "missing artifact", tag: "v1.4.0", viaGate: true,
			setup: func(t *testing.T, rel release, gb *GreenButton) {
				gb.Expected = append(gb.Expected, "canarybot-darwin-arm64")
			},
			failed: []Step{StepArtifacts}, inDetail: "2/3 expected artifacts in " + "%s; missing canarybot-darwin-arm64",
		},
		{
			name: "untagged", tag: "",
			failed: []Step{StepReleaseTag}, inDetail: "tag v1.4.0 does not exist",
		},
		{
			name: "module cache empty", tag: "v1.4.0",
			setup: func(t *testing.T, rel release, gb *GreenButton) {
				gb.ModCacheDir = t.TempDir()
			},
			failed: []Step{StepSBOM, StepDrift}, inDetail: "run `go mod download`",
		},
		{
			name: "no artifacts at all", tag: "v1.4.0",
			setup: func(t *testing.T, rel release, gb *GreenButton) {
				gb.ArtifactsDir = t.TempDir()
			},
			failed: []Step{StepProvenance, StepArtifacts}, inDetail: "nothing to attest",
		},
		{
			name: "key required", tag: "v1.4.0",
			setup: func(t *testing.T, rel release, gb *GreenButton) {
				gb.Key, gb.RequireKey = nil, true
			},
			failed: []Step{StepProvenance}, inDetail: "no signing key",
		},
		{
			name: "no expected list", tag: "v1.4.0",
			setup: func(t *testing.T, rel release, gb *GreenButton) {
				gb.Expected = nil
			},
			failed: []Step{StepProvenance, StepArtifacts}, inDetail: "no expected artifact list",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel := newRelease(t, tt.tag)
			key, pub := signingKey(t)
			ev, err := evidence.Open(rel.evidence, "v1.4.0")
			if err != nil {
				t.Fatal(err)
			}
			gb := &GreenButton{Source: rel.src, Expected: rel.artifacts, Key: key, Evidence: ev, Getenv: noEnv, Now: fixedNow, Who: "bob"}
			if tt.setup != nil {
				tt.setup(t, rel, gb)
			}
			var started []Step
			gb.OnStart = func(s Step, i, n int) { started = append(started, s) }
			out, err := gb.Ritual(context.Background(), "v1.4.0")
			if err != nil {
				t.Fatal(err)
			}
			if len(started) != len(Steps()) {
				t.Errorf("gates started %v, want all of %v", started, Steps())
			}
			var failed []Step
			for _, s := range out.Steps {
				if s.Status == rollout.GateFailed {
					failed = append(failed, s.Step)
				}
			}
			if strings.Join(stepStrings(failed), ",") != strings.Join(stepStrings(tt.failed), ",") {
				t.Fatalf("failed gates %v, want %v:\n%s", failed, tt.failed, strings.Join(out.Failures(), "\n"))
			}
			want := tt.inDetail
			if strings.Contains(want, "%s") {
				want = strings.ReplaceAll(want, "%s", filepath.Join(rel.src, "dist"))
			}
			if !strings.Contains(strings.Join(out.Failures(), "\n"), want) {
				t.Errorf("failures lack %q:\n%s", want, strings.Join(out.Failures(), "\n"))
			}
			dir := ev.Path()
			record := read(t, dir, provenance.RecordName("v1.4.0"))
			if !strings.Contains(string(record), "decision: NO-GO") || !strings.Contains(string(record), "by:       bob") {
				t.Errorf("record:\n%s", record)
			}
			// The NO-GO is signed too, with the key whose public half is in
			// the evidence (the ephemeral one when no key was given).
			if gb.Key == nil {
				pub = read(t, dir, provenance.PublicKeyName("v1.4.0"))
				if !strings.Contains(string(record), "UNATTESTED") {
					t.Errorf("record by an ephemeral key does not say UNATTESTED:\n%s", record)
				}
			}
			if _, err := provenance.VerifyRecord(context.Background(), read(t, dir, provenance.RecordSignatureName("v1.4.0")), pub, record); err != nil {
				t.Errorf("NO-GO record signature: %v", err)
			}
			if rep, err := evidence.Verify(dir); err != nil || len(rep.Problems) > 0 {
				t.Errorf("evidence does not verify: %v %+v", err, rep.Problems)
			}

			if !tt.viaGate {
				return
			}
			// As the engine's gate the same release is a failed step that
			// names the gates.
			res, err := gb.Run(context.Background(), &rollout.Release{Version: "v1.4.0"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != rollout.GateFailed || !strings.HasPrefix(res.Detail, "NO-GO: ") || !strings.Contains(res.Detail, string(tt.failed[0])+" failed") {
				t.Errorf("gate result %+v", res)
			}
		})
	}
}

func TestRitualRefuses(t *testing.T) {
	ev, err := evidence.Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		gb   *GreenButton
		want string
	}{
		{"no evidence", &GreenButton{Expected: []string{"a"}}, "no evidence store"},
		{"escaping artifact name", &GreenButton{Expected: []string{"../secret"}, Evidence: ev}, `"../secret"`},
		{"absolute artifact name", &GreenButton{Expected: []string{"/etc/passwd"}, Evidence: ev}, "bad expected artifact name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.gb.Ritual(context.Background(), "v1.4.0"); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func stepStrings(ss []Step) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// vulnDB builds a real grype v6 database with grype's own builder from the
// advisories in testdata/advisories whose file names match include, laid
// out as `grype db update` leaves it (ROOT/6/vulnerability.db). The
// fixture module has go.etcd.io/bbolt v1.5.0 (a critical advisory) and
// github.com/spf13/pflag v1.0.10 (a medium one).
func vulnDB(t *testing.T, include string) string {
	t.Helper()
	in := filepath.Join(t.TempDir(), "advisories")
	// The builder writes its listing and metadata beside the records.
	if err := os.CopyFS(in, os.DirFS(filepath.Join("testdata", "advisories"))); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	testdb.BuildFromFlatFileDir(t, time.Now(), filepath.Join(root, vuln.SchemaDir), in, include)
	return root
}

// TestVulnerabilityGate runs the whole ritual against real grype
// databases: the scan is a gate like the others when a database is given,
// and a skip that never passes, nor fails the decision, when none is.
func TestVulnerabilityGate(t *testing.T) {
	both := vulnDB(t, "**/*.json")
	mediumOnly := vulnDB(t, "**/ghsa-medx-*.json")
	tests := []struct {
		name     string
		db       string
		failOn   vuln.Severity
		status   rollout.GateStatus
		decision string
		detail   []string
		report   []string // in the evidence file; nil: no file
	}{
		{
			name: "critical finding fails", db: both, failOn: vuln.High,
			status: rollout.GateFailed, decision: "NO-GO (5/6 gates passed)",
			detail: []string{"FAIL: 1 finding(s) at or above high (1 critical, 1 medium of", "vulnerabilities_v1.4.0.txt"},
			report: []string{"GHSA-crit-bolt-0001 (CVE-2026-0101)", "go.etcd.io/bbolt", "1.5.1", "critical ✗", "GHSA-medx-pflg-0002", "threshold: high or worse fails"},
		},
		{
			name: "findings below the threshold pass", db: mediumOnly, failOn: vuln.High,
			status: rollout.GatePassed, decision: "GO (6/6 gates passed)",
			detail: []string{"PASS: 1 medium in", "none at or above high"},
			report: []string{"GHSA-medx-pflg-0002", "github.com/spf13/pflag", "verdict: PASS"},
		},
		{
			name: "threshold at the finding fails", db: mediumOnly, failOn: vuln.Medium,
			status: rollout.GateFailed, decision: "NO-GO (5/6 gates passed)",
			detail: []string{"FAIL: 1 finding(s) at or above medium"},
			report: []string{"medium ✗"},
		},
		{
			name: "no database skips", db: "", failOn: vuln.High,
			status: rollout.GateSkipped, decision: "GO (5/6 gates passed, 1 skipped (vulnerabilities))",
			detail: []string{"NOT scanned"},
		},
		{
			name: "a database that is not there fails", db: t.TempDir(), failOn: vuln.High,
			status: rollout.GateFailed, decision: "NO-GO (5/6 gates passed)",
			detail: []string{"no vulnerability database", "grype db update"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel := newRelease(t, "v1.4.0")
			key, pub := signingKey(t)
			ev, err := evidence.Open(rel.evidence, "v1.4.0")
			if err != nil {
				t.Fatal(err)
			}
			gb := &GreenButton{Source: rel.src, Expected: rel.artifacts, Key: key, Evidence: ev, Getenv: noEnv, Now: fixedNow, Who: "carol",
				VulnDB: tt.db, VulnFailOn: tt.failOn}
			out, err := gb.Ritual(context.Background(), "v1.4.0")
			if err != nil {
				t.Fatal(err)
			}
			var got *StepResult
			for i, s := range out.Steps {
				if s.Step == StepVuln {
					got = &out.Steps[i]
					if i == 0 || out.Steps[i-1].Step != StepDrift {
						t.Errorf("the scan runs at %d, not after the drift gate: %v", i, out.Steps)
					}
				} else if s.Status != rollout.GatePassed {
					t.Errorf("gate %s %s: %s", s.Step, s.Status, s.Detail)
				}
			}
			if got == nil {
				t.Fatalf("no %s step in %v", StepVuln, out.Steps)
			}
			if got.Status != tt.status {
				t.Errorf("scan %s, want %s: %s", got.Status, tt.status, got.Detail)
			}
			for _, w := range tt.detail {
				if !strings.Contains(got.Detail, w) {
					t.Errorf("detail %q lacks %q", got.Detail, w)
				}
			}
			if wantGO := strings.HasPrefix(tt.decision, "GO"); out.Passed() != wantGO {
				t.Errorf("passed %v, want %v: %v", out.Passed(), wantGO, out.Failures())
			}
			if skipped := len(out.Skipped()) > 0; skipped != (tt.status == rollout.GateSkipped) {
				t.Errorf("skipped %v for a %s scan", out.Skipped(), tt.status)
			}
			if failed := strings.Join(out.Failures(), "\n"); (tt.status == rollout.GateFailed) != strings.Contains(failed, "vulnerabilities failed") {
				t.Errorf("failures:\n%s", failed)
			}

			dir := ev.Path()
			record := read(t, dir, provenance.RecordName("v1.4.0"))
			line := "vulnerabilities " + string(tt.status)
			if !strings.Contains(string(record), "decision: "+tt.decision+"\n") || !strings.Contains(string(record), line) {
				t.Errorf("record lacks %q or %q:\n%s", "decision: "+tt.decision, line, record)
			}
			if _, err := provenance.VerifyRecord(context.Background(), read(t, dir, provenance.RecordSignatureName("v1.4.0")), pub, record); err != nil {
				t.Errorf("record signature: %v", err)
			}
			name := vuln.EvidenceName("v1.4.0")
			b, err := os.ReadFile(filepath.Join(dir, name))
			if tt.report == nil {
				if !os.IsNotExist(err) {
					t.Errorf("%s written though no scan ran: %v", name, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.report {
				if !strings.Contains(string(b), w) {
					t.Errorf("%s lacks %q:\n%s", name, w, b)
				}
			}
			// The report is covered by the signed record and the manifest.
			sum := sha256.Sum256(b)
			if !strings.Contains(string(record), name) || !strings.Contains(string(record), hex.EncodeToString(sum[:])) {
				t.Errorf("record lacks %s with its sha256:\n%s", name, record)
			}
			if !slices.Contains(gb.Produces("v1.4.0"), name) {
				t.Errorf("Produces %v lacks %s", gb.Produces("v1.4.0"), name)
			}
			if rep, err := evidence.Verify(dir); err != nil || len(rep.Problems) > 0 {
				t.Errorf("evidence does not verify: %v %+v", err, rep.Problems)
			}
		})
	}
}

// TestVulnerabilityGateWithoutSBOM: with a database but no SBOM the scan
// fails rather than passing having scanned nothing.
func TestVulnerabilityGateWithoutSBOM(t *testing.T) {
	rel := newRelease(t, "v1.4.0")
	ev, err := evidence.Open(rel.evidence, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	gb := &GreenButton{Source: rel.src, Expected: rel.artifacts, Evidence: ev, Getenv: noEnv, Now: fixedNow,
		ModCacheDir: t.TempDir(), VulnDB: t.TempDir(), VulnFailOn: vuln.High}
	out, err := gb.Ritual(context.Background(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	failures := strings.Join(out.Failures(), "\n")
	if out.Passed() || !strings.Contains(failures, "vulnerabilities failed: no SBOM to scan: the sbom gate failed") {
		t.Errorf("failures:\n%s", failures)
	}
}

func TestOutcomeDecision(t *testing.T) {
	res := func(step Step, st rollout.GateStatus) StepResult {
		return StepResult{Step: step, Status: st, Detail: "why"}
	}
	tests := []struct {
		name    string
		steps   []StepResult
		passed  bool
		summary string
	}{
		{"all passed", []StepResult{res(StepSBOM, rollout.GatePassed), res(StepVuln, rollout.GatePassed)}, true, "2/2 gates passed"},
		{"scan skipped", []StepResult{res(StepSBOM, rollout.GatePassed), res(StepVuln, rollout.GateSkipped)}, true, "1/2 gates passed, 1 skipped (vulnerabilities)"},
		// Only the optional scan may be skipped: any other gate that
		// checked nothing is a NO-GO.
		{"other gate skipped", []StepResult{res(StepSBOM, rollout.GateSkipped), res(StepVuln, rollout.GatePassed)}, false, "1/2 gates passed, 1 skipped (sbom)"},
		{"nothing but a skip", []StepResult{res(StepVuln, rollout.GateSkipped)}, false, "0/1 gates passed, 1 skipped (vulnerabilities)"},
		{"scan failed", []StepResult{res(StepSBOM, rollout.GatePassed), res(StepVuln, rollout.GateFailed)}, false, "1/2 gates passed"},
		{"nothing ran", nil, false, "0/0 gates passed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Outcome{Steps: tt.steps}
			if o.Passed() != tt.passed || o.Summary() != tt.summary {
				t.Errorf("passed %v %q, want %v %q", o.Passed(), o.Summary(), tt.passed, tt.summary)
			}
		})
	}
}
