package forge_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
)

// evidenceFiles reads testdata/evidence/v1.4.0 as files under
// evidence/v1.4.0/ in the repository.
func evidenceFiles(t *testing.T) []forge.RepoFile {
	t.Helper()
	dir := filepath.Join("testdata", "evidence", "v1.4.0")
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []forge.RepoFile
	for _, de := range des {
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, forge.RepoFile{Path: "evidence/v1.4.0/" + de.Name(), Data: data})
	}
	if len(out) < 3 {
		t.Fatalf("testdata has %d evidence files, want several", len(out))
	}
	return out
}

// fakeClient is a token client of fake that never waits.
func fakeClient(t *testing.T, fake *forgetest.Fake) *github.Client {
	t.Helper()
	o := forge.DefaultTransportOptions()
	o.WriteInterval = 0
	o.Sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	c, err := forge.NewClient(forge.Config{APIURL: fake.URL, Owner: fake.Owner, Repo: fake.Repo, Token: "ghp_test"}, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCommitter(t *testing.T, fake *forgetest.Fake) *forge.Committer {
	t.Helper()
	return &forge.Committer{Client: fakeClient(t, fake), Owner: fake.Owner, Repo: fake.Repo, Branch: "main"}
}

func withBinary(files []forge.RepoFile) []forge.RepoFile {
	return append(slices.Clone(files), forge.RepoFile{Path: "evidence/v1.4.0/baseline.bin", Data: []byte{0x1f, 0x8b, 0, 0xff, 0xfe, 1, 2, 3}})
}

// commitCount is the number of commits the fake created.
func commitCount(fake *forgetest.Fake) int { return fake.Applied()["git commit"] }

func TestCommitWritesEveryFileInOneCommit(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	root := fake.Push("main", "initial", map[string][]byte{"README.md": []byte("# exchange\n"), "evidence/v1.3.0/preflight.txt": []byte("old\n")})
	files := withBinary(evidenceFiles(t))

	res, err := newCommitter(t, fake).Commit(context.Background(), forge.EvidenceMessage("v1.4.0", ""), files)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Committed || res.Attempts != 1 || res.SHA != fake.Head("main") {
		t.Fatalf("result %+v, head %s", res, fake.Head("main"))
	}
	c, _ := fake.Commit(res.SHA)
	if c.Message != "evidence(v1.4.0): release evidence" || !slices.Equal(c.Parents, []string{root}) {
		t.Errorf("commit %+v, want the evidence message on top of %s", c, root)
	}
	if n := commitCount(fake); n != 1 {
		t.Errorf("%d commits created, want 1", n)
	}
	got := fake.Files(res.SHA)
	for _, f := range files {
		if !bytes.Equal(got[f.Path], f.Data) {
			t.Errorf("%s in the commit: %q, want %q", f.Path, got[f.Path], f.Data)
		}
	}
	// Nothing else changed: the other files are still there, untouched.
	if string(got["README.md"]) != "# exchange\n" || string(got["evidence/v1.3.0/preflight.txt"]) != "old\n" || len(got) != len(files)+2 {
		t.Errorf("files of the commit: %v", slices.Sorted(maps.Keys(got)))
	}
	// Only the binary file went up as a blob; text went inline.
	if n := fake.Applied()["git blob"]; n != 1 {
		t.Errorf("%d blobs created, want 1 (the binary file)", n)
	}
}

func TestCommitRerunMakesNoCommit(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	fake.Push("main", "initial", map[string][]byte{"README.md": []byte("x\n")})
	files := withBinary(evidenceFiles(t))
	c := newCommitter(t, fake)
	first, err := c.Commit(context.Background(), forge.EvidenceMessage("v1.4.0", ""), files)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Commit(context.Background(), forge.EvidenceMessage("v1.4.0", ""), files)
	if err != nil {
		t.Fatal(err)
	}
	if again.Committed || again.SHA != first.SHA || fake.Head("main") != first.SHA || commitCount(fake) != 1 {
		t.Errorf("rerun: %+v, head %s, %d commits; want no new commit on %s", again, fake.Head("main"), commitCount(fake), first.SHA)
	}
	if n := fake.Applied()["ref heads/main"]; n != 1 {
		t.Errorf("branch moved %d times, want 1", n)
	}

	// One changed file: a commit with exactly that change.
	files[0].Data = append(slices.Clone(files[0].Data), "appended line\n"...)
	third, err := c.Commit(context.Background(), forge.EvidenceMessage("v1.4.0", "stage 25% snapshot"), files)
	if err != nil || !third.Committed {
		t.Fatalf("changed file: %+v, %v", third, err)
	}
	before, after := fake.Files(first.SHA), fake.Files(third.SHA)
	var changed []string
	for p := range after {
		if !bytes.Equal(before[p], after[p]) {
			changed = append(changed, p)
		}
	}
	if !slices.Equal(changed, []string{files[0].Path}) {
		t.Errorf("changed files %v, want only %s", changed, files[0].Path)
	}
}

func TestCommitRebuildsWhenTheBranchMoves(t *testing.T) {
	for _, races := range []int{1, 3} {
		fake := forgetest.New(t, "acme", "exchange", 0)
		fake.Push("main", "initial", map[string][]byte{"README.md": []byte("x\n")})
		fake.RaceRefUpdates("main", races)
		files := evidenceFiles(t)

		res, err := newCommitter(t, fake).Commit(context.Background(), forge.EvidenceMessage("v1.4.0", "stage 25% snapshot"), files)
		if err != nil {
			t.Fatalf("%d races: %v", races, err)
		}
		if !res.Committed || res.Attempts != races+1 {
			t.Errorf("%d races: %+v, want committed on attempt %d", races, res, races+1)
		}
		log := fake.Log("main")
		// Ours on top of the other pushes, each of them kept, none of ours twice.
		var msgs []string
		for _, c := range log {
			msgs = append(msgs, c.Message)
		}
		want := []string{"evidence(v1.4.0): stage 25% snapshot"}
		for i := races; i >= 1; i-- {
			want = append(want, "someone else's change "+string(rune('0'+i)))
		}
		want = append(want, "initial")
		if !slices.Equal(msgs, want) {
			t.Errorf("%d races: history %q, want %q", races, msgs, want)
		}
		got := fake.Files(fake.Head("main"))
		for i := 1; i <= races; i++ {
			if _, ok := got["other/change-"+string(rune('0'+i))+".txt"]; !ok {
				t.Errorf("%d races: the other push %d was lost", races, i)
			}
		}
		for _, f := range files {
			if !bytes.Equal(got[f.Path], f.Data) {
				t.Errorf("%d races: %s lost", races, f.Path)
			}
		}
	}
}

// TestCommitWhenTheBranchUpdateAnswerIsLost: the branch update takes effect
// but its answer is lost (a 502 from a proxy). The transport sends the
// update again; the evidence lands once, and a push that slipped in between
// is kept.
func TestCommitWhenTheBranchUpdateAnswerIsLost(t *testing.T) {
	tests := []struct {
		name     string
		thenRace bool
		// wantCommitted: the repeat itself moved the branch (a no-op that
		// answers 200). After someone else's push the repeat is refused
		// and the rebuilt commit would change nothing: no second commit.
		wantCommitted bool
		wantHistory   []string
	}{
		{name: "repeated as is", wantCommitted: true,
			wantHistory: []string{"evidence(v1.4.0): stage 25% snapshot", "initial"}},
		{name: "someone pushes before the repeat", thenRace: true,
			wantHistory: []string{"someone else's change 1", "evidence(v1.4.0): stage 25% snapshot", "initial"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := forgetest.New(t, "acme", "exchange", 0)
			fake.Push("main", "initial", map[string][]byte{"README.md": []byte("x\n")})
			fake.LoseRefUpdateAnswer("main", tt.thenRace)
			files := evidenceFiles(t)

			res, err := newCommitter(t, fake).Commit(context.Background(), forge.EvidenceMessage("v1.4.0", "stage 25% snapshot"), files)
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if res.Committed != tt.wantCommitted || res.SHA != fake.Head("main") {
				t.Errorf("result %+v, head %s; want committed=%v at the head", res, fake.Head("main"), tt.wantCommitted)
			}
			var msgs []string
			for _, c := range fake.Log("main") {
				msgs = append(msgs, c.Message)
			}
			if !slices.Equal(msgs, tt.wantHistory) {
				t.Errorf("history %q, want %q", msgs, tt.wantHistory)
			}
			got := fake.Files(fake.Head("main"))
			for _, f := range files {
				if !bytes.Equal(got[f.Path], f.Data) {
					t.Errorf("%s is not on the branch as written", f.Path)
				}
			}
			if tt.thenRace {
				if _, ok := got["other/change-1.txt"]; !ok {
					t.Error("the push made between the lost answer and the repeat was lost")
				}
			}
		})
	}
}

func TestCommitGivesUpOnABranchThatKeepsMoving(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	fake.Push("main", "initial", map[string][]byte{"README.md": []byte("x\n")})
	fake.RaceRefUpdates("main", 10)
	c := newCommitter(t, fake)
	c.MaxAttempts = 3
	res, err := c.Commit(context.Background(), "evidence(v1.4.0): x", evidenceFiles(t))
	if !errors.Is(err, forge.ErrBranchMoving) || res.Committed || res.Attempts != 3 {
		t.Fatalf("%+v, %v; want ErrBranchMoving after 3 attempts", res, err)
	}
	for _, c := range fake.Log("main") {
		if strings.HasPrefix(c.Message, "evidence(") {
			t.Errorf("an evidence commit reached the branch: %+v", c)
		}
	}
}

func TestCommitBadInput(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	fake.Push("main", "initial", map[string][]byte{"README.md": []byte("x\n")})
	for _, tc := range []struct {
		name   string
		branch string
		files  []forge.RepoFile
		want   error
	}{
		{"absolute path", "main", []forge.RepoFile{{Path: "/etc/passwd", Data: []byte("x")}}, forge.ErrBadRepoPath},
		{"dot-dot", "main", []forge.RepoFile{{Path: "evidence/../../x", Data: []byte("x")}}, forge.ErrBadRepoPath},
		{"into .git", "main", []forge.RepoFile{{Path: ".git/config", Data: []byte("x")}}, forge.ErrBadRepoPath},
		{"twice", "main", []forge.RepoFile{{Path: "a", Data: []byte("x")}, {Path: "a", Data: []byte("y")}}, forge.ErrBadRepoPath},
		{"none", "main", nil, forge.ErrBadRepoPath},
		{"no such branch", "release", []forge.RepoFile{{Path: "a", Data: []byte("x")}}, forge.ErrNoBranch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCommitter(t, fake)
			c.Branch = tc.branch
			if _, err := c.Commit(context.Background(), "m", tc.files); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	if n := commitCount(fake); n != 0 {
		t.Errorf("%d commits made from bad input", n)
	}
}

// TestGitBlobSHAMatchesGit checks the blob names used to verify uploads
// (and the fake's object store) against git itself.
func TestGitBlobSHAMatchesGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is needed: %v", err)
	}
	for _, data := range [][]byte{nil, []byte("hello\n"), {0, 1, 2, 0xff}} {
		cmd := exec.Command(git, "hash-object", "--stdin")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSpace(string(out))
		if got := forge.GitBlobSHA(data); got != want {
			t.Errorf("GitBlobSHA(%q) = %s, git says %s", data, got, want)
		}
		if got := forgetest.BlobSHA(data); got != want {
			t.Errorf("forgetest.BlobSHA(%q) = %s, git says %s", data, got, want)
		}
	}
}
