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
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/sbom"
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
	if res.Status != rollout.GatePassed || !strings.HasPrefix(res.Detail, "GO: 5/5 gates passed") {
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
		"decision: GO (5/5 gates passed)", "by:       alice", "at:       2026-03-04T09:58:00Z", key.KeyID(),
		"release_tag     passed", "sbom            passed  3/3 packages have a license",
		"provenance      passed  2 artifacts attested", "license_drift   passed  PASS (against",
		"artifact_count  passed  2/2 expected artifacts",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("record lacks %q:\n%s", want, text)
		}
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
				if s.Status != rollout.GatePassed {
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
