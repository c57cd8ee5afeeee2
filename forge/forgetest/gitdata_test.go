package forgetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTreesHashAsGitDoes checks the fake's object store against git: the
// same files give the same tree, so "nothing changed" is decided as GitHub
// decides it.
func TestTreesHashAsGitDoes(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: %v", err)
	}
	files := map[string][]byte{
		"README.md":                        []byte("# exchange\n"),
		"evidence/v1.4.0/preflight.txt":    []byte("10/10\n"),
		"evidence/v1.4.0/manifest.json":    []byte("{}\n"),
		"evidence/v1.4.0-rc1/baseline.bin": {0, 1, 2, 0xff},
		"evidence.txt":                     []byte("a file sorting between the tree and its name\n"),
		"src/a/b/c.go":                     []byte("package c\n"),
	}
	f := New(t, "acme", "exchange", 0)
	c, _ := f.Commit(f.Push("main", "m", files))

	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "--quiet")
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("add", "-A")
	if want := run("write-tree"); c.Tree != want {
		t.Errorf("the fake's tree %s, git's %s", c.Tree, want)
	}
	if got, want := BlobSHA(files["README.md"]), run("hash-object", "README.md"); got != want {
		t.Errorf("blob %s, git's %s", got, want)
	}
}
