package forge

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/go-github/v60/github"
)

// DefaultCommitAttempts bounds how often a commit is rebuilt because the
// branch moved under it.
const DefaultCommitAttempts = 5

var (
	// ErrBranchMoving means the branch kept moving while a commit was being
	// made, DefaultCommitAttempts times in a row; nothing was lost, run it
	// again.
	ErrBranchMoving = errors.New("the branch kept moving")
	// ErrNoBranch means the branch to commit to does not exist.
	ErrNoBranch = errors.New("no such branch")
	// ErrBadRepoPath means a file's path in the repository is not a clean
	// relative path.
	ErrBadRepoPath = errors.New("bad path in the repository")
)

// RepoFile is one file to commit: its path in the repository and its bytes.
type RepoFile struct {
	Path string
	Data []byte
}

// CommitResult says what a commit did.
type CommitResult struct {
	// SHA is the new commit, or the branch's head when nothing changed.
	SHA string
	// Committed is false when the branch already held every file as given:
	// no empty commit is made.
	Committed bool
	// Attempts counts the tries, 1 + the rebuilds after the branch moved.
	Attempts int
	Files    int
	Branch   string
}

// EvidenceMessage is the message of an evidence commit:
// "evidence(v1.4.0): stage 25% snapshot".
func EvidenceMessage(version, batch string) string {
	batch = strings.TrimSpace(batch)
	if batch == "" {
		batch = "release evidence"
	}
	return fmt.Sprintf("evidence(%s): %s", version, batch)
}

// CheckRepoFiles refuses paths that are not clean relative paths and
// duplicates, before anything is sent.
func CheckRepoFiles(files []RepoFile) error {
	if len(files) == 0 {
		return fmt.Errorf("%w: no files to commit", ErrBadRepoPath)
	}
	seen := map[string]bool{}
	for _, f := range files {
		p := f.Path
		if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || strings.Contains(p, "\\") || slices.Contains(strings.Split(p, "/"), ".git") {
			return fmt.Errorf("%w: %q; use a relative path such as evidence/v1.4.0/preflight.txt", ErrBadRepoPath, p)
		}
		if seen[p] {
			return fmt.Errorf("%w: %q is given twice", ErrBadRepoPath, p)
		}
		seen[p] = true
	}
	return nil
}

// GitBlobSHA is git's name for a blob holding data (`git hash-object`).
func GitBlobSHA(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// isText tells whether data can go inline as a tree entry's content, which
// GitHub takes as UTF-8 text.
func isText(data []byte) bool { return utf8.Valid(data) && !slices.Contains(data, 0) }

// Committer writes files to a branch in one commit through GitHub's Git
// Data API: no checkout, and the commit lands whole or not at all.
type Committer struct {
	Client      *github.Client
	Owner, Repo string
	Branch      string
	// Author, when set, is the commit's author (and committer); otherwise
	// GitHub uses the token's identity.
	Author *github.CommitAuthor
	// MaxAttempts bounds the rebuilds after the branch moved
	// (DefaultCommitAttempts when 0).
	MaxAttempts int
	Log         *slog.Logger
}

// Commit adds or replaces files on the branch in one commit with message.
// Files it does not name are left as they are (it never deletes). When the
// branch already holds every file with the same bytes it makes no commit.
// When the branch moves between reading its head and moving it (someone
// pushed), the commit is rebuilt on the new head, so neither their change
// nor these files are lost, and retried.
func (c *Committer) Commit(ctx context.Context, message string, files []RepoFile) (CommitResult, error) {
	res := CommitResult{Files: len(files), Branch: c.Branch}
	if err := CheckRepoFiles(files); err != nil {
		return res, err
	}
	if c.Branch == "" {
		return res, fmt.Errorf("%w: no branch given", ErrNoBranch)
	}
	if strings.TrimSpace(message) == "" {
		return res, errors.New("forge: an empty commit message")
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultCommitAttempts
	}
	entries, err := c.treeEntries(ctx, files)
	if err != nil {
		return res, err
	}
	ref := "heads/" + c.Branch
	var made string // the commit of the previous attempt
	for res.Attempts = 1; res.Attempts <= attempts; res.Attempts++ {
		head, _, err := c.Client.Git.GetRef(ctx, c.Owner, c.Repo, ref)
		if httpStatus(err) == http.StatusNotFound {
			return res, fmt.Errorf("%w: %s in %s/%s", ErrNoBranch, c.Branch, c.Owner, c.Repo)
		}
		if err != nil {
			return res, fmt.Errorf("forge: reading %s: %w", ref, err)
		}
		headSHA := head.GetObject().GetSHA()
		if made != "" && headSHA == made {
			// The last update took effect though its answer said otherwise
			// (a lost response retried by the transport).
			res.SHA, res.Committed = made, true
			return res, nil
		}
		parent, _, err := c.Client.Git.GetCommit(ctx, c.Owner, c.Repo, headSHA)
		if err != nil {
			return res, fmt.Errorf("forge: reading commit %s: %w", headSHA, err)
		}
		base := parent.GetTree().GetSHA()
		tree, _, err := c.Client.Git.CreateTree(ctx, c.Owner, c.Repo, base, entries)
		if err != nil {
			return res, fmt.Errorf("forge: creating the tree: %w", err)
		}
		if tree.GetSHA() == base {
			log.Info("github: the branch already holds these files; no commit", "branch", c.Branch, "head", headSHA, "files", len(files))
			res.SHA = headSHA
			return res, nil
		}
		commit, _, err := c.Client.Git.CreateCommit(ctx, c.Owner, c.Repo, &github.Commit{
			Message: github.String(message),
			Tree:    &github.Tree{SHA: tree.SHA},
			Parents: []*github.Commit{{SHA: github.String(headSHA)}},
			Author:  c.Author,
		}, nil)
		if err != nil {
			return res, fmt.Errorf("forge: creating the commit: %w", err)
		}
		made = commit.GetSHA()
		_, _, err = c.Client.Git.UpdateRef(ctx, c.Owner, c.Repo, &github.Reference{
			Ref:    github.String("refs/" + ref),
			Object: &github.GitObject{SHA: commit.SHA},
		}, false)
		if err == nil {
			log.Info("github: committed", "branch", c.Branch, "commit", made, "files", len(files), "attempt", res.Attempts)
			res.SHA, res.Committed = made, true
			return res, nil
		}
		if httpStatus(err) != http.StatusUnprocessableEntity {
			return res, fmt.Errorf("forge: moving %s to %s: %w", ref, made, err)
		}
		// 422 "Update is not a fast forward": someone pushed since GetRef.
		log.Warn("github: the branch moved; rebuilding the commit on its new head", "branch", c.Branch, "was", headSHA, "attempt", res.Attempts)
	}
	res.Attempts = attempts
	return res, fmt.Errorf("%w: %s moved under %d attempts in a row; nothing was lost, run it again", ErrBranchMoving, c.Branch, attempts)
}

// treeEntries makes the tree entries: text inline, binary files as blobs
// uploaded once (a blob does not depend on the branch, so a rebuild reuses
// it).
func (c *Committer) treeEntries(ctx context.Context, files []RepoFile) ([]*github.TreeEntry, error) {
	out := make([]*github.TreeEntry, 0, len(files))
	for _, f := range files {
		e := &github.TreeEntry{Path: github.String(f.Path), Mode: github.String("100644"), Type: github.String("blob")}
		if isText(f.Data) {
			e.Content = github.String(string(f.Data))
		} else {
			blob, _, err := c.Client.Git.CreateBlob(ctx, c.Owner, c.Repo, &github.Blob{
				Content:  github.String(base64.StdEncoding.EncodeToString(f.Data)),
				Encoding: github.String("base64"),
			})
			if err != nil {
				return nil, fmt.Errorf("forge: uploading %s: %w", f.Path, err)
			}
			if want := GitBlobSHA(f.Data); blob.GetSHA() != want {
				return nil, fmt.Errorf("forge: GitHub stored %s as blob %s, want %s: the bytes changed on the way", f.Path, blob.GetSHA(), want)
			}
			e.SHA = blob.SHA
		}
		out = append(out, e)
	}
	return out, nil
}

// httpStatus is the HTTP status of a go-github error, 0 when there is none.
func httpStatus(err error) int {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}
