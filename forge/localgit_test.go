package forge_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/canarybot/canarybot/forge"
)

// These tests run the real git against bare repositories on disk. They set
// HOME and git's config variables so that no user or system configuration
// leaks in, and so cannot run in parallel.

func hermeticGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed for local-git mode's tests: %v", err)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_COUNT", "")
	for _, k := range []string{"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_DIR", "GIT_WORK_TREE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	os.Unsetenv("GIT_CONFIG_COUNT")
}

// git runs git in dir as a person would (with an identity) and returns its
// trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=A Person", "GIT_AUTHOR_EMAIL=person@example.com",
		"GIT_COMMITTER_NAME=A Person", "GIT_COMMITTER_EMAIL=person@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v in %s: %v\n%s", args, dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// remoteRepo makes a bare repository with one commit on main and returns
// its path.
func remoteRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	bare := filepath.Join(root, "remote.git")
	git(t, root, "init", "--quiet", "--bare", "-b", "main", bare)
	seed := filepath.Join(root, "seed")
	git(t, root, "clone", "--quiet", bare, seed)
	if err := os.WriteFile(filepath.Join(seed, "README.md"), []byte("# exchange\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, seed, "add", "README.md")
	git(t, seed, "commit", "--quiet", "-m", "initial")
	git(t, seed, "push", "--quiet", "origin", "HEAD:refs/heads/main")
	return bare
}

func clone(t *testing.T, url string, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "checkout")
	git(t, ".", append(append([]string{"clone", "--quiet"}, args...), url, dir)...)
	return dir
}

// pushAs commits files in a fresh clone of bare and pushes them to main.
func pushAs(t *testing.T, bare, message string, files map[string]string) {
	t.Helper()
	other := clone(t, bare)
	for p, data := range files {
		full := filepath.Join(other, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		git(t, other, "add", p)
	}
	git(t, other, "commit", "--quiet", "-m", message)
	git(t, other, "push", "--quiet", "origin", "HEAD:refs/heads/main")
}

func history(t *testing.T, bare string) []string {
	t.Helper()
	return strings.Split(git(t, bare, "log", "--format=%s", "main"), "\n")
}

func TestLocalGitCommitsAndPushes(t *testing.T) {
	hermeticGit(t)
	bare := remoteRepo(t)
	work := clone(t, bare)
	files := withBinary(evidenceFiles(t))
	l := &forge.LocalGit{Dir: work}
	msg := forge.EvidenceMessage("v1.4.0", "")

	res, err := l.Commit(context.Background(), msg, files)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Committed || res.Attempts != 1 || res.Branch != "main" || res.SHA != git(t, bare, "rev-parse", "main") {
		t.Errorf("result %+v, remote main %s", res, git(t, bare, "rev-parse", "main"))
	}
	if h := history(t, bare); !slices.Equal(h, []string{msg, "initial"}) {
		t.Errorf("history %q", h)
	}
	for _, f := range files {
		cmd := exec.Command("git", "-C", bare, "show", "main:"+f.Path)
		got, err := cmd.Output()
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("%s on the remote: %q, %v", f.Path, got, err)
		}
	}
	if who := git(t, bare, "log", "-1", "--format=%an <%ae>", "main"); who != forge.DefaultGitName+" <"+forge.DefaultGitEmail+">" {
		t.Errorf("author %q, want the default identity (the checkout has none)", who)
	}

	// Again: nothing to commit, nothing pushed.
	head := git(t, bare, "rev-parse", "main")
	res, err = l.Commit(context.Background(), msg, files)
	if err != nil || res.Committed || git(t, bare, "rev-parse", "main") != head {
		t.Errorf("rerun: %+v, %v; remote main moved from %s", res, err, head)
	}
}

func TestLocalGitRebasesWhenThePushIsRejected(t *testing.T) {
	hermeticGit(t)
	bare := remoteRepo(t)
	work := clone(t, bare)
	// The branch moves after the checkout: the first push is rejected.
	pushAs(t, bare, "someone else's change", map[string]string{"src/app.go": "package app\n"})
	files := evidenceFiles(t)
	msg := forge.EvidenceMessage("v1.4.0", "stage 25% snapshot")

	res, err := (&forge.LocalGit{Dir: work}).Commit(context.Background(), msg, files)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Committed || res.Attempts != 2 {
		t.Errorf("result %+v, want committed on the second push", res)
	}
	if h := history(t, bare); !slices.Equal(h, []string{msg, "someone else's change", "initial"}) {
		t.Errorf("history %q: want ours on top of theirs, nothing lost or twice", h)
	}
	if got := git(t, bare, "show", "main:src/app.go"); got != "package app" {
		t.Errorf("their file: %q", got)
	}
}

func TestLocalGitAlreadyOnTheBranch(t *testing.T) {
	hermeticGit(t)
	bare := remoteRepo(t)
	work := clone(t, bare)
	files := evidenceFiles(t)
	same := map[string]string{}
	for _, f := range files {
		same[f.Path] = string(f.Data)
	}
	pushAs(t, bare, "the same evidence, from elsewhere", same)
	head := git(t, bare, "rev-parse", "main")

	res, err := (&forge.LocalGit{Dir: work}).Commit(context.Background(), forge.EvidenceMessage("v1.4.0", ""), files)
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed || git(t, bare, "rev-parse", "main") != head {
		t.Errorf("result %+v; remote main %s, want it left at %s (no duplicate commit)", res, git(t, bare, "rev-parse", "main"), head)
	}
}

func TestLocalGitConflictPushesNothing(t *testing.T) {
	hermeticGit(t)
	bare := remoteRepo(t)
	work := clone(t, bare)
	files := evidenceFiles(t)
	pushAs(t, bare, "other evidence", map[string]string{files[0].Path: "something else entirely\n"})
	head := git(t, bare, "rev-parse", "main")

	_, err := (&forge.LocalGit{Dir: work}).Commit(context.Background(), forge.EvidenceMessage("v1.4.0", ""), files)
	if !errors.Is(err, forge.ErrRebaseConflict) {
		t.Fatalf("error %v, want ErrRebaseConflict", err)
	}
	if git(t, bare, "rev-parse", "main") != head {
		t.Error("a conflicting commit was pushed")
	}
	if _, err := os.Stat(filepath.Join(work, ".git", "rebase-merge")); !os.IsNotExist(err) {
		t.Errorf("the checkout was left mid-rebase: %v", err)
	}
}

func TestLocalGitBadInput(t *testing.T) {
	hermeticGit(t)
	bare := remoteRepo(t)
	work := clone(t, bare)
	git(t, work, "checkout", "--quiet", "--detach")
	files := evidenceFiles(t)
	if _, err := (&forge.LocalGit{Dir: t.TempDir()}).Commit(context.Background(), "m", files); !errors.Is(err, forge.ErrNotWorktree) {
		t.Errorf("not a worktree: %v", err)
	}
	if _, err := (&forge.LocalGit{Dir: work}).Commit(context.Background(), "m", files); !errors.Is(err, forge.ErrNoBranch) {
		t.Errorf("detached HEAD without a branch: %v", err)
	}
	// With the branch named, a detached checkout (a tag's) pushes fine.
	if res, err := (&forge.LocalGit{Dir: work, Branch: "main"}).Commit(context.Background(), "m", files); err != nil || !res.Committed {
		t.Errorf("detached HEAD with --branch: %+v, %v", res, err)
	}
}

// gitServer serves the bare repositories under root over smart HTTP through
// git's own http-backend, accepting only the basic credentials of token,
// and records each request's Authorization headers.
type gitServer struct {
	*httptest.Server
	mu   sync.Mutex
	auth [][]string
}

func newGitServer(t *testing.T, root, token string) *gitServer {
	t.Helper()
	execPath := git(t, ".", "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull},
	}
	want := "basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	s := &gitServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Values("Authorization")
		s.mu.Lock()
		s.auth = append(s.auth, got)
		s.mu.Unlock()
		if len(got) != 1 || !strings.EqualFold(got[0], want) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestLocalGitPushesWithTheTokenOverHTTP(t *testing.T) {
	hermeticGit(t)
	const token = "ghs_s3cr3tT0k3nValue"
	bare := remoteRepo(t)
	git(t, bare, "config", "http.receivepack", "true")
	srv := newGitServer(t, filepath.Dir(bare), token)
	header := "http.extraheader=AUTHORIZATION: basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	url := srv.URL + "/remote.git"
	files := evidenceFiles(t)

	t.Run("token from the environment", func(t *testing.T) {
		work := clone(t, url, "-c", header)
		git(t, work, "config", "--unset-all", "http.extraheader")
		var logs bytes.Buffer
		l := &forge.LocalGit{Dir: work, Token: token, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		res, err := l.Commit(context.Background(), forge.EvidenceMessage("v1.4.0", ""), files)
		if err != nil || !res.Committed {
			t.Fatalf("%+v, %v", res, err)
		}
		if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))) {
			t.Errorf("the token is in the logs:\n%s", logs.String())
		}
		if cfg, _ := os.ReadFile(filepath.Join(work, ".git", "config")); strings.Contains(string(cfg), "extraheader") {
			t.Errorf("the token was written into the checkout's config:\n%s", cfg)
		}
	})
	t.Run("a wrong token fails without showing it", func(t *testing.T) {
		work := clone(t, url, "-c", header)
		git(t, work, "config", "--unset-all", "http.extraheader")
		const wrong = "ghs_wrongT0k3nValue"
		_, err := (&forge.LocalGit{Dir: work, Token: wrong}).Commit(context.Background(), forge.EvidenceMessage("v1.4.0", "x"), []forge.RepoFile{{Path: "evidence/v1.4.0/x.txt", Data: []byte("x\n")}})
		if err == nil {
			t.Fatal("a push with a wrong token succeeded")
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte("x-access-token:"+wrong))) {
			t.Errorf("the error shows the token: %v", err)
		}
	})
	t.Run("the checkout's own credentials win", func(t *testing.T) {
		// actions/checkout persists an extraheader; adding ours would send
		// two Authorization headers, which the server refuses.
		work := clone(t, url, "-c", header)
		git(t, work, "config", "http.extraheader", strings.TrimPrefix(header, "http.extraheader="))
		srv.mu.Lock()
		srv.auth = nil
		srv.mu.Unlock()
		files := []forge.RepoFile{{Path: "evidence/v1.4.0/y.txt", Data: []byte("y\n")}}
		if res, err := (&forge.LocalGit{Dir: work, Token: "ghs_other"}).Commit(context.Background(), forge.EvidenceMessage("v1.4.0", "y"), files); err != nil || !res.Committed {
			t.Fatalf("%+v, %v", res, err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for _, a := range srv.auth {
			if len(a) != 1 {
				t.Errorf("a request carried %d Authorization headers", len(a))
			}
		}
	})
}
