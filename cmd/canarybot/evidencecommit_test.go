package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/forge/forgetest"
)

// The evidence commit reads GitHub's settings (and git's) from the
// environment, so these tests set it and cannot run in parallel.

// writeEvidence writes files through evidence.Dir, as a release does, and
// returns the evidence root.
func writeEvidence(t *testing.T, root string, files map[string]string) string {
	t.Helper()
	d, err := evidence.Open(root, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := d.Write(context.Background(), name, []byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func manifestHead(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Head string }
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m.Head
}

var stageFiles = map[string]string{
	"preflight.txt":        "preflight v1.4.0: 10/10 passed\n",
	"rollout_stage_25.txt": "10:30 | 3 (25%) | 148ms | 0.3% | IC: Proceed ✅\n",
}

func TestEvidenceCommitThroughTheAPI(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	fake.Push("main", "initial", map[string][]byte{"README.md": []byte("x\n")})
	githubEnv(t, fake.URL)
	root := writeEvidence(t, t.TempDir(), stageFiles)
	common := []string{"--evidence-dir", root, "--state", filepath.Join(root, "state.db"), "--write-interval", "0s", "--branch", "main"}

	out, code := cli(t, append([]string{"evidence", "commit", "v1.4.0"}, common...)...)
	if code != exitComplete || !strings.Contains(out, `committed `) || !strings.Contains(out, "3 files") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	head := fake.Head("main")
	c, _ := fake.Commit(head)
	wantHead := manifestHead(t, filepath.Join(root, "v1.4.0"))
	if !strings.HasPrefix(c.Message, "evidence(v1.4.0): release evidence\n") || !strings.Contains(c.Message, "Evidence-Head: "+wantHead) {
		t.Errorf("message %q, want the subject and the manifest's head %s", c.Message, wantHead)
	}
	files := fake.Files(head)
	for name, data := range stageFiles {
		if string(files["evidence/v1.4.0/"+name]) != data {
			t.Errorf("%s in the repository: %q", name, files["evidence/v1.4.0/"+name])
		}
	}
	if _, ok := files["evidence/v1.4.0/manifest.json"]; !ok {
		t.Error("manifest.json was not committed")
	}

	// A rerun commits nothing.
	out, code = cli(t, append([]string{"evidence", "commit", "v1.4.0"}, common...)...)
	if code != exitComplete || !strings.Contains(out, "nothing to commit") || fake.Head("main") != head {
		t.Errorf("rerun: exit %d, head %s (was %s)\n%s", code, fake.Head("main"), head, out)
	}

	// A batch: one new file, with its message; the manifest comes along.
	writeEvidence(t, root, map[string]string{"summary_stage_25.txt": "stage 25%: all 8 signals Pass\n"})
	out, code = cli(t, append([]string{"evidence", "commit", "v1.4.0", "--only", "summary_stage_25.txt", "-m", "stage 25% snapshot"}, common...)...)
	if code != exitComplete {
		t.Fatalf("batch: exit %d\n%s", code, out)
	}
	c, _ = fake.Commit(fake.Head("main"))
	if !strings.HasPrefix(c.Message, "evidence(v1.4.0): stage 25% snapshot\n") {
		t.Errorf("batch message %q", c.Message)
	}
	var changed []string
	before, after := fake.Files(head), fake.Files(c.SHA)
	for p := range after {
		if string(before[p]) != string(after[p]) {
			changed = append(changed, p)
		}
	}
	slices.Sort(changed)
	if want := []string{"evidence/v1.4.0/manifest.json", "evidence/v1.4.0/summary_stage_25.txt"}; !slices.Equal(changed, want) {
		t.Errorf("the batch changed %v, want %v", changed, want)
	}
}

func TestEvidenceCommitRefuses(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	fake.Push("main", "initial", map[string][]byte{"README.md": []byte("x\n")})
	githubEnv(t, fake.URL)
	root := writeEvidence(t, t.TempDir(), stageFiles)
	tampered := writeEvidence(t, t.TempDir(), stageFiles)
	if err := os.WriteFile(filepath.Join(tampered, "v1.4.0", "preflight.txt"), []byte("all good, trust me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"tampered evidence", nil, []string{"--evidence-dir", tampered, "--branch", "main"}, exitFailure, "does not verify"},
		{"no branch", nil, []string{"--evidence-dir", root}, exitBadInput, "--branch"},
		{"a tag is not a branch", map[string]string{"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.4.0"}, []string{"--evidence-dir", root}, exitBadInput, "--branch"},
		{"unknown --only file", nil, []string{"--evidence-dir", root, "--branch", "main", "--only", "nope.txt"}, exitBadInput, "nope.txt"},
		{"no such release", nil, []string{"--evidence-dir", t.TempDir(), "--branch", "main"}, exitBadInput, "no evidence directory"},
		{"no such branch", nil, []string{"--evidence-dir", root, "--branch", "release"}, exitBadInput, "no such branch"},
		{"a bad --path", nil, []string{"--evidence-dir", root, "--branch", "main", "--path", "../outside"}, exitBadInput, "--path"},
		{"no token", map[string]string{"GITHUB_TOKEN": ""}, []string{"--evidence-dir", root, "--branch", "main"}, exitBadInput, "GITHUB_TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append([]string{"evidence", "commit", "v1.4.0", "--write-interval", "0s", "--state", filepath.Join(t.TempDir(), "s.db")}, tc.args...)
			out, code := cli(t, args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
	if n := fake.Applied()["git commit"]; n != 0 {
		t.Errorf("%d commits made", n)
	}
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=A Person", "GIT_AUTHOR_EMAIL=person@example.com",
		"GIT_COMMITTER_NAME=A Person", "GIT_COMMITTER_EMAIL=person@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestEvidenceCommitLocalGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: %v", err)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GITHUB_TOKEN", "")
	tmp := t.TempDir()
	bare := filepath.Join(tmp, "remote.git")
	gitIn(t, tmp, "init", "--quiet", "--bare", "-b", "main", bare)
	seed := filepath.Join(tmp, "seed")
	gitIn(t, tmp, "clone", "--quiet", bare, seed)
	gitIn(t, seed, "commit", "--quiet", "--allow-empty", "-m", "initial")
	gitIn(t, seed, "push", "--quiet", "origin", "HEAD:refs/heads/main")
	work := filepath.Join(tmp, "work")
	gitIn(t, tmp, "clone", "--quiet", bare, work)
	// The branch moves after the checkout: the first push is rejected.
	gitIn(t, seed, "commit", "--quiet", "--allow-empty", "-m", "someone else's change")
	gitIn(t, seed, "push", "--quiet", "origin", "HEAD:refs/heads/main")
	root := writeEvidence(t, t.TempDir(), stageFiles)

	// "--local-git DIR" with a space, as the help shows it.
	out, code := cli(t, "evidence", "commit", "v1.4.0", "--evidence-dir", root, "--state", filepath.Join(tmp, "s.db"), "--local-git", work, "-m", "stage 25% snapshot")
	if code != exitComplete || !strings.Contains(out, "the branch moved 1 time") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	log := strings.Split(gitIn(t, bare, "log", "--format=%s", "main"), "\n")
	if !slices.Equal(log, []string{"evidence(v1.4.0): stage 25% snapshot", "someone else's change", "initial"}) {
		t.Errorf("remote history %q", log)
	}
	if got := gitIn(t, bare, "show", "main:evidence/v1.4.0/preflight.txt"); got+"\n" != stageFiles["preflight.txt"] {
		t.Errorf("preflight.txt on the remote: %q", got)
	}
	out, code = cli(t, "evidence", "commit", "v1.4.0", "--evidence-dir", root, "--state", filepath.Join(tmp, "s.db"), "--local-git="+work)
	if code != exitComplete || !strings.Contains(out, "nothing to commit") {
		t.Errorf("rerun: exit %d\n%s", code, out)
	}
}
