package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/provenance"
)

// provenanceFixture is a git checkout with one commit, two artifacts and
// two ed25519 key pairs, all generated in a temp dir.
type provenanceFixture struct {
	dir, src, evidence         string
	artifacts                  []string
	key, pub, otherPub, keyPEM string
}

func newProvenanceFixture(t *testing.T) provenanceFixture {
	t.Helper()
	f := provenanceFixture{dir: t.TempDir()}
	f.src = filepath.Join(f.dir, "src")
	f.evidence = filepath.Join(f.dir, "evidence")
	if err := os.MkdirAll(f.src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"commit", "-q", "--allow-empty", "-m", "release v1.4.0"},
	} {
		cmd := exec.Command("git", append([]string{"-C", f.src, "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	for _, name := range []string{"canarybot-linux-amd64", "checksums.txt"} {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, []byte(name+" contents\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f.artifacts = append(f.artifacts, p)
	}
	f.key, f.pub, f.keyPEM = edKey(t, f.dir, "release")
	_, f.otherPub, _ = edKey(t, f.dir, "other")
	return f
}

func edKey(t *testing.T, dir, name string) (keyPath, pubPath, keyPEM string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	keyPath, pubPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub.pem")
	if err := os.WriteFile(keyPath, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, pubPath, keyPEM
}

// TestProvenanceAndVerifyCLI runs the commands in the order an operator
// would: sign, verify, tamper, verify again. Not parallel: it sets the
// environment the commands read.
func TestProvenanceAndVerifyCLI(t *testing.T) {
	t.Setenv("GITHUB_ACTIONS", "")
	f := newProvenanceFixture(t)
	envelope := filepath.Join(f.evidence, "v1.4.0", "build_provenance_v1.4.0.json")
	savedPub := filepath.Join(f.evidence, "v1.4.0", "build_provenance_v1.4.0.pub.pem")
	art := func(paths ...string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, "--artifact", p)
		}
		return out
	}
	prov := func(extra ...string) []string {
		return append([]string{"provenance", "v1.4.0", "--evidence-dir", f.evidence, "--source", f.src}, extra...)
	}
	tampered := filepath.Join(f.dir, "tampered", "canarybot-linux-amd64")
	if err := os.MkdirAll(filepath.Dir(tampered), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, []byte("trojan\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stranger := filepath.Join(f.dir, "stranger.bin")
	if err := os.WriteFile(stranger, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbageKey := filepath.Join(f.dir, "garbage.pem")
	if err := os.WriteFile(garbageKey, []byte("not a key"), 0o644); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name     string
		envKey   string
		args     []string
		wantCode int
		want     []string
		wantNot  []string
	}{
		{"sign with --key", "", append(prov("--key", f.key), art(f.artifacts...)...), exitComplete,
			[]string{"attested:", "subject:    canarybot-linux-amd64 sha256:", "subject:    checksums.txt", provenance.LocalBuildType, "build_provenance_v1.4.0.json"}, []string{"UNATTESTED"}},
		{"evidence manifest records it", "", []string{"evidence", "verify", filepath.Join(f.evidence, "v1.4.0")}, exitComplete, nil, nil},
		{"verify with artifacts", "", append([]string{"verify", envelope, "--key", f.pub}, art(f.artifacts...)...), exitComplete,
			[]string{"signature:    ok", "payload type: ok", "artifact:     ok canarybot-linux-amd64", "artifact:     ok checksums.txt", "verified:"}, []string{"NOT checked"}},
		{"verify envelope only says digests unchecked", "", []string{"verify", envelope, "--key", f.pub}, exitComplete, []string{"NOT checked"}, nil},
		{"tampered artifact", "", append([]string{"verify", envelope, "--key", f.pub}, art(tampered)...), exitFailure,
			[]string{"NOT verified", tampered, "does not match"}, []string{"artifact:     ok"}},
		{"unknown artifact", "", append([]string{"verify", envelope, "--key", f.pub}, art(stranger)...), exitFailure,
			[]string{"not a subject", stranger}, nil},
		{"wrong key", "", []string{"verify", envelope, "--key", f.otherPub}, exitFailure, []string{"signature does not verify"}, nil},
		{"missing envelope", "", []string{"verify", filepath.Join(f.dir, "nope.json"), "--key", f.pub}, exitBadInput, []string{"nope.json"}, nil},
		{"missing --key", "", []string{"verify", envelope}, exitBadInput, []string{"--key is required"}, nil},
		{"unreadable key", "", []string{"verify", envelope, "--key", garbageKey}, exitBadInput, []string{"garbage.pem", "no PEM block"}, nil},
		{"private key given to verify", "", []string{"verify", envelope, "--key", f.key}, exitBadInput, []string{"public key"}, nil},
		{"missing artifact", "", append([]string{"verify", envelope, "--key", f.pub}, art(filepath.Join(f.dir, "gone", "checksums.txt"))...), exitBadInput, []string{"gone"}, nil},
		{"no --artifact", "", prov("--key", f.key), exitBadInput, []string{"--artifact is required"}, nil},
		{"source not a repository", "", append([]string{"provenance", "v1.4.0", "--evidence-dir", f.evidence, "--source", f.dir, "--key", f.key}, art(f.artifacts...)...), exitBadInput,
			[]string{"not a git checkout", f.dir}, nil},
		{"bad key file", "", append(prov("--key", garbageKey), art(f.artifacts...)...), exitBadInput, []string{"garbage.pem"}, nil},
		{"key from the environment", f.keyPEM, append(prov(), art(f.artifacts...)...), exitComplete, []string{"attested:"}, []string{"UNATTESTED"}},
		{"verify env-key provenance", "", append([]string{"verify", envelope, "--key", f.pub}, art(f.artifacts...)...), exitComplete, []string{"verified:"}, nil},
		{"no key: ephemeral", "", append(prov(), art(f.artifacts...)...), exitComplete, []string{"UNATTESTED", "ephemeral"}, []string{"attested:"}},
		{"ephemeral verifies with its saved public half", "", append([]string{"verify", envelope, "--key", savedPub}, art(f.artifacts...)...), exitComplete, []string{"verified:"}, nil},
		{"ephemeral does not verify with the release key", "", []string{"verify", envelope, "--key", f.pub}, exitFailure, []string{"signature does not verify"}, nil},
	}
	secret := strings.Split(f.keyPEM, "\n")[1] // the key's base64 body
	for _, s := range steps {
		t.Setenv("CANARYBOT_SIGNING_KEY", s.envKey)
		out, code := cli(t, s.args...)
		if code != s.wantCode {
			t.Errorf("%s: exit %d, want %d:\n%s", s.name, code, s.wantCode, out)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", s.name, w, out)
			}
		}
		for _, w := range s.wantNot {
			if strings.Contains(out, w) {
				t.Errorf("%s: output has %q:\n%s", s.name, w, out)
			}
		}
		if strings.Contains(out, secret) {
			t.Errorf("%s: output shows the private key", s.name)
		}
	}
	// Nothing in the evidence may carry the private key.
	files, err := filepath.Glob(filepath.Join(f.evidence, "v1.4.0", "*"))
	if err != nil || len(files) < 3 {
		t.Fatalf("evidence files %v: %v", files, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), secret) || strings.Contains(string(b), "PRIVATE KEY") {
			t.Errorf("%s carries private key material", p)
		}
	}
}
