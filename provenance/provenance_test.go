package provenance

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

var fixedNow = func() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC) }

// githubEnv reads testdata/github_actions.env into a getenv function.
func githubEnv(t *testing.T, drop ...string) func(string) string {
	t.Helper()
	f, err := os.Open("testdata/github_actions.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	for _, k := range drop {
		delete(env, k)
	}
	return func(k string) string { return env[k] }
}

func noEnv(string) string { return "" }

// artifacts copies the testdata artifacts into a temp dir, so tests may
// tamper with them.
func artifacts(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for _, name := range []string{"checksums.txt", "canarybot-linux-amd64"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// keyPEMs generates a key of kind and returns its private and public PEM.
func keyPEMs(t *testing.T, kind string) (priv, pub []byte) {
	t.Helper()
	var raw any
	var pubKey any
	switch kind {
	case "ed25519":
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw, pubKey = k, p
	case "p256", "p256-sec1":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw, pubKey = k, &k.PublicKey
		if kind == "p256-sec1" {
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), pubPEM(t, pubKey)
		}
	case "p384":
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw, pubKey = k, &k.PublicKey
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		raw, pubKey = k, &k.PublicKey
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	der, err := x509.MarshalPKCS8PrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), pubPEM(t, pubKey)
}

func pubPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// gitRepo makes a repository with one commit tagged v1.4.0, isolated from
// the user's git configuration.
func gitRepo(t *testing.T, remote string) (dir, head string) {
	t.Helper()
	dir = t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q")
	writeFile(t, dir, "main.go", []byte("package main\n"))
	run("add", "main.go")
	run("commit", "-q", "-m", "release")
	run("tag", "v1.4.0")
	if remote != "" {
		run("remote", "add", "origin", remote)
	}
	return dir, run("rev-parse", "HEAD")
}

func mustPredicate(t *testing.T, st *intoto.Statement) *slsa.Provenance {
	t.Helper()
	p, err := Predicate(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("predicate Validate: %v", err)
	}
	return p
}

func TestStatementFromGitHubActions(t *testing.T) {
	t.Parallel()
	arts := artifacts(t)
	st, err := Statement(context.Background(), Options{Version: "v1.4.0", Artifacts: arts, Getenv: githubEnv(t), Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Validate(); err != nil {
		t.Fatalf("statement Validate: %v", err)
	}
	p := mustPredicate(t, st)
	if got, want := p.GetRunDetails().GetBuilder().GetId(), "https://github.com/canarybot/canarybot/.github/workflows/release.yml@refs/tags/v1.4.0"; got != want {
		t.Errorf("builder id %q, want %q", got, want)
	}
	if got := p.GetBuildDefinition().GetBuildType(); got != GitHubBuildType {
		t.Errorf("build type %q", got)
	}
	if got, want := p.GetRunDetails().GetMetadata().GetInvocationId(), "https://github.com/canarybot/canarybot/actions/runs/8842137001/attempts/2"; got != want {
		t.Errorf("invocation id %q, want %q", got, want)
	}
	deps := p.GetBuildDefinition().GetResolvedDependencies()
	if len(deps) != 1 || deps[0].GetUri() != "git+https://github.com/canarybot/canarybot@refs/tags/v1.4.0" || deps[0].GetDigest()["gitCommit"] != "4b825dc642cb6eb9a060e54bf8d69288fbee4904" {
		t.Errorf("resolved dependencies %v", deps)
	}
	wf := p.GetBuildDefinition().GetExternalParameters().GetFields()["workflow"].GetStructValue().GetFields()
	if wf["path"].GetStringValue() != ".github/workflows/release.yml" || wf["ref"].GetStringValue() != "refs/tags/v1.4.0" || wf["repository"].GetStringValue() != "https://github.com/canarybot/canarybot" {
		t.Errorf("workflow parameters %v", wf)
	}
	gh := p.GetBuildDefinition().GetInternalParameters().GetFields()["github"].GetStructValue().GetFields()
	if gh["runner_environment"].GetStringValue() != "github-hosted" || gh["event_name"].GetStringValue() != "push" {
		t.Errorf("internal parameters %v", gh)
	}
	if got := p.GetRunDetails().GetMetadata().GetFinishedOn().AsTime(); !got.Equal(fixedNow()) {
		t.Errorf("finishedOn %v", got)
	}
	// Sorted by name, each with the file's sha256.
	want := []Subject{{"canarybot-linux-amd64", sha(t, arts[1])}, {"checksums.txt", sha(t, arts[0])}}
	got := subjectsOf(st)
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("subjects %v, want %v", got, want)
	}

	// protojson writes the in-toto field names; encoding/json would not.
	b, err := Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["_type"] != intoto.StatementTypeUri || m["predicateType"] != PredicateType {
		t.Errorf("JSON keys: _type=%v predicateType=%v", m["_type"], m["predicateType"])
	}
	pm, _ := m["predicate"].(map[string]any)
	if _, ok := pm["buildDefinition"]; !ok {
		t.Errorf("predicate lacks buildDefinition: %v", pm)
	}
}

func TestGitHubEnvironmentIncomplete(t *testing.T) {
	t.Parallel()
	_, err := Statement(context.Background(), Options{Version: "v1.4.0", Artifacts: artifacts(t), Getenv: githubEnv(t, "GITHUB_SHA", "GITHUB_RUN_ID")})
	if !errors.Is(err, ErrGitHubEnv) {
		t.Fatalf("err %v, want ErrGitHubEnv", err)
	}
	for _, want := range []string{"GITHUB_SHA", "GITHUB_RUN_ID"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestStatementFromLocalGit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, remote, wantRepo string
	}{
		{"no origin", "", ""},
		{"origin with a token", "https://x-access-token:ghs_SECRET@github.com/canarybot/canarybot.git", "https://github.com/canarybot/canarybot.git"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, head := gitRepo(t, tc.remote)
			st, err := Statement(context.Background(), Options{Version: "v1.4.0", Artifacts: artifacts(t), Getenv: noEnv, Dir: dir, Now: fixedNow})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Validate(); err != nil {
				t.Fatalf("statement Validate: %v", err)
			}
			p := mustPredicate(t, st)
			if p.GetRunDetails().GetBuilder().GetId() != LocalBuilderID || p.GetBuildDefinition().GetBuildType() != LocalBuildType {
				t.Errorf("builder %q type %q", p.GetRunDetails().GetBuilder().GetId(), p.GetBuildDefinition().GetBuildType())
			}
			src := p.GetBuildDefinition().GetExternalParameters().GetFields()["source"].GetStructValue().GetFields()
			if src["commit"].GetStringValue() != head || src["describe"].GetStringValue() != "v1.4.0" || src["repository"].GetStringValue() != tc.wantRepo {
				t.Errorf("source %v; want commit %s describe v1.4.0 repository %q", src, head, tc.wantRepo)
			}
			dep := p.GetBuildDefinition().GetResolvedDependencies()[0]
			if dep.GetDigest()["gitCommit"] != head {
				t.Errorf("dependency %v", dep)
			}
			b, _ := Marshal(st)
			if strings.Contains(string(b), "SECRET") {
				t.Errorf("statement carries the remote's credentials: %s", b)
			}
		})
	}
}

func TestLocalGitRefusals(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	if out, err := exec.Command("git", "-C", empty, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	cases := []struct {
		name, dir string
		is        error
		want      string
	}{
		{"not a repository", t.TempDir(), ErrNotGitRepo, "not a git checkout"},
		{"no commit yet", empty, nil, "has no commit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Statement(context.Background(), Options{Version: "v1.4.0", Artifacts: artifacts(t), Getenv: noEnv, Dir: tc.dir})
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.dir) {
				t.Errorf("error %q should say %q and name %s", err, tc.want, tc.dir)
			}
		})
	}
}

func TestSubjectsRefusals(t *testing.T) {
	t.Parallel()
	arts := artifacts(t)
	other := filepath.Join(t.TempDir(), "checksums.txt")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		paths []string
		is    error
		want  string
	}{
		{"none", nil, ErrNoArtifacts, "--artifact"},
		{"same base name", []string{arts[0], other}, ErrDuplicateSubject, "checksums.txt"},
		{"missing", []string{filepath.Join(t.TempDir(), "gone")}, os.ErrNotExist, "gone"},
		{"directory", []string{t.TempDir()}, nil, "not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Subjects(tc.paths)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %v mentioning %q", err, tc.is, tc.want)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"ed25519", "p256", "p256-sec1"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			priv, pub := keyPEMs(t, kind)
			k, err := LoadSigningKey(writeFile(t, t.TempDir(), "key.pem", priv), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			arts := artifacts(t)
			res, err := Generate(context.Background(), Options{Version: "v1.4.0", Artifacts: arts, Getenv: githubEnv(t), Now: fixedNow}, k)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ephemeral {
				t.Error("a loaded key reported as ephemeral")
			}
			if string(res.PublicPEM) != string(pub) {
				t.Errorf("public PEM differs from the key's:\n%s\n%s", res.PublicPEM, pub)
			}
			rep, err := Verify(context.Background(), res.Envelope, pub, arts)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Checked) != 2 || len(rep.Subjects) != 2 || rep.PayloadType != PayloadType || rep.KeyID != res.KeyID || rep.BuildType != GitHubBuildType {
				t.Errorf("report %+v", rep)
			}
			var env dsse.Envelope
			if err := json.Unmarshal(res.Envelope, &env); err != nil || len(env.Signatures) != 1 || env.Signatures[0].KeyID != res.KeyID {
				t.Errorf("envelope %s: %v", res.Envelope, err)
			}
		})
	}
}

// signRaw signs an arbitrary payload, for envelopes Generate would not make.
func signRaw(t *testing.T, k *Key, payloadType string, payload []byte) []byte {
	t.Helper()
	es, err := dsse.NewEnvelopeSigner(signer{k})
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(context.Background(), payloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	priv, pub := keyPEMs(t, "ed25519")
	_, otherPub := keyPEMs(t, "p256")
	k, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	arts := artifacts(t)
	res, err := Generate(ctx, Options{Version: "v1.4.0", Artifacts: arts, Getenv: githubEnv(t), Now: fixedNow}, k)
	if err != nil {
		t.Fatal(err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(res.Envelope, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := env.DecodeB64Payload()
	// Swap a subject's digest for that of a trojan, keeping the JSON valid.
	forged := strings.Replace(string(payload), res.Subjects[0].SHA256, strings.Repeat("ab", 32), 1)
	if forged == string(payload) {
		t.Fatal("tamper did not change the payload")
	}
	env.Payload = base64.StdEncoding.EncodeToString([]byte(forged))
	tampered, _ := json.Marshal(env)

	tamperedArt := artifacts(t)
	if err := os.WriteFile(tamperedArt[1], []byte("trojan\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stranger := writeFile(t, t.TempDir(), "stranger.tar.gz", []byte("x"))

	stmt, _ := Statement(ctx, Options{Version: "v1.4.0", Artifacts: arts, Getenv: githubEnv(t), Now: fixedNow})
	stmtJSON, _ := protojson.Marshal(stmt)
	legacy := strings.Replace(string(stmtJSON), intoto.StatementTypeUri, "https://in-toto.io/Statement/v0.1", 1)

	cases := []struct {
		name      string
		envelope  []byte
		pub       []byte
		artifacts []string
		is        error
		mention   []string
	}{
		{"tampered payload", tampered, pub, nil, ErrSignature, []string{"signature does not verify"}},
		{"wrong key", res.Envelope, otherPub, nil, ErrSignature, []string{"signature does not verify"}},
		{"tampered artifact", res.Envelope, pub, tamperedArt, ErrDigestMismatch, []string{tamperedArt[1], sha(t, tamperedArt[1]), sha(t, arts[1])}},
		{"artifact not a subject", res.Envelope, pub, []string{stranger}, ErrNotASubject, []string{stranger, "canarybot-linux-amd64"}},
		{"wrong payload type", signRaw(t, k, "application/json", stmtJSON), pub, nil, ErrPayloadType, []string{"application/json"}},
		{"signed non-statement", signRaw(t, k, PayloadType, []byte(`{"hello":"world"}`)), pub, nil, ErrStatement, nil},
		{"legacy statement type", signRaw(t, k, PayloadType, []byte(legacy)), pub, nil, ErrStatement, []string{"v0.1"}},
		{"not an envelope", []byte("not json"), pub, nil, ErrNotEnvelope, nil},
		{"private key given as public", res.Envelope, priv, nil, ErrBadKey, []string{"PRIVATE KEY"}},
		{"missing artifact", res.Envelope, pub, []string{filepath.Join(t.TempDir(), "canarybot-linux-amd64")}, os.ErrNotExist, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(ctx, tc.envelope, tc.pub, tc.artifacts)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err %v, want %v", err, tc.is)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if strings.Contains(err.Error(), string(priv[30:60])) {
				t.Errorf("error leaks private key material: %v", err)
			}
		})
	}
}

func TestEphemeralKey(t *testing.T) {
	t.Parallel()
	arts := artifacts(t)
	res, err := Generate(context.Background(), Options{Version: "v1.4.0", Artifacts: arts, Getenv: githubEnv(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Ephemeral {
		t.Error("no key given, but the result is not flagged ephemeral")
	}
	if _, err := Verify(context.Background(), res.Envelope, res.PublicPEM, arts); err != nil {
		t.Errorf("ephemeral public key does not verify its envelope: %v", err)
	}
	if _, err := ParsePublicKey(res.PublicPEM); err != nil {
		t.Errorf("saved public half: %v", err)
	}
}

func TestLoadSigningKey(t *testing.T) {
	t.Parallel()
	edPriv, _ := keyPEMs(t, "ed25519")
	p384, _ := keyPEMs(t, "p384")
	rsaPriv, _ := keyPEMs(t, "rsa")
	_, edPub := keyPEMs(t, "ed25519")
	dir := t.TempDir()
	enc := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("opaque")})
	cases := []struct {
		name    string
		path    string
		env     string
		wantKey bool
		is      error
		mention string
	}{
		{"file", writeFile(t, dir, "ed.pem", edPriv), "", true, nil, ""},
		{"file wins over env", writeFile(t, dir, "ed2.pem", edPriv), "garbage", true, nil, ""},
		{"env PEM text", "", string(edPriv), true, nil, ""},
		{"neither", "", "", false, nil, ""},
		{"env not PEM", "", "/secrets/key.pem", false, ErrBadKey, KeyEnv},
		{"missing file", filepath.Join(dir, "nope.pem"), "", false, os.ErrNotExist, "nope.pem"},
		{"P-384", writeFile(t, dir, "p384.pem", p384), "", false, ErrBadKey, "P-256"},
		{"RSA", writeFile(t, dir, "rsa.pem", rsaPriv), "", false, ErrBadKey, "ed25519 or ECDSA P-256"},
		{"public key", writeFile(t, dir, "pub.pem", edPub), "", false, ErrBadKey, "public key"},
		{"encrypted", writeFile(t, dir, "enc.pem", enc), "", false, ErrBadKey, "encrypted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadSigningKey(tc.path, func(name string) string {
				if name == KeyEnv {
					return tc.env
				}
				return ""
			})
			if tc.is == nil && err != nil {
				t.Fatalf("err %v", err)
			}
			if tc.is != nil {
				if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.mention) {
					t.Fatalf("err %v, want %v mentioning %q", err, tc.is, tc.mention)
				}
				if tc.env != "" && strings.Contains(err.Error(), tc.env) {
					t.Errorf("error echoes the environment variable's value: %v", err)
				}
			}
			if (k != nil) != tc.wantKey {
				t.Fatalf("key %v, want one: %v", k, tc.wantKey)
			}
			if k != nil {
				for _, s := range []string{k.String(), k.GoString()} {
					if strings.Contains(s, "PRIVATE") || !strings.HasPrefix(s, "ed25519 key SHA256:") {
						t.Errorf("key prints as %q", s)
					}
				}
			}
		})
	}
}
