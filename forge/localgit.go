package forge

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Identity used for commits when the checkout has none configured (a fresh
// CI runner): GitHub shows it as the Actions bot.
const (
	DefaultGitName  = "github-actions[bot]"
	DefaultGitEmail = "41898282+github-actions[bot]@users.noreply.github.com"
)

var (
	// ErrNotWorktree means LocalGit.Dir is not inside a git worktree.
	ErrNotWorktree = errors.New("not a git worktree")
	// ErrRebaseConflict means someone else changed the same files on the
	// branch: the rebase was undone and nothing was pushed.
	ErrRebaseConflict = errors.New("rebase conflict")
)

// LocalGit commits files in a checkout (a workflow's actions/checkout) and
// pushes them, rebasing and retrying when the push is rejected because the
// branch moved.
type LocalGit struct {
	// Dir is the worktree; file paths are relative to its top.
	Dir string
	// Remote to push to (default origin) and Branch on it (default the
	// branch checked out).
	Remote, Branch string
	// Token authenticates fetch and push over HTTPS (GITHUB_TOKEN in a
	// workflow). It reaches git through its environment as an
	// http.extraheader, never on a command line or in a URL, and is never
	// logged; it is not used when the checkout already has an extraheader
	// (actions/checkout's persisted credentials), which git would send as
	// a second Authorization header.
	Token string
	// Name and Email commit when the checkout has no identity configured
	// (default DefaultGitName, DefaultGitEmail).
	Name, Email string
	// MaxAttempts bounds the pushes (DefaultCommitAttempts when 0).
	MaxAttempts int
	Log         *slog.Logger
	// Git is the git binary (default "git" on PATH).
	Git string
}

// Commit writes files into the worktree, commits them with message (only
// them: other staged changes stay staged) and pushes HEAD to the branch. A
// rerun with the same files makes no commit. A push rejected because the
// branch moved is followed by a fetch, a rebase of the local commits onto
// the new head, and another push.
func (l *LocalGit) Commit(ctx context.Context, message string, files []RepoFile) (CommitResult, error) {
	res := CommitResult{Files: len(files)}
	if err := CheckRepoFiles(files); err != nil {
		return res, err
	}
	if strings.TrimSpace(message) == "" {
		return res, errors.New("forge: an empty commit message")
	}
	g, err := l.runner(ctx)
	if err != nil {
		return res, err
	}
	remote := l.Remote
	if remote == "" {
		remote = "origin"
	}
	branch := l.Branch
	if branch == "" {
		out, err := g.run(ctx, "symbolic-ref", "--short", "-q", "HEAD")
		if err != nil || out == "" {
			return res, fmt.Errorf("%w: HEAD is detached in %s; name the branch to push to", ErrNoBranch, g.top)
		}
		branch = out
	}
	res.Branch = branch
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	attempts := l.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultCommitAttempts
	}
	committed := false
	for res.Attempts = 1; res.Attempts <= attempts; res.Attempts++ {
		for _, f := range files {
			p := filepath.Join(g.top, filepath.FromSlash(f.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return res, fmt.Errorf("forge: %w", err)
			}
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				return res, fmt.Errorf("forge: %w", err)
			}
		}
		if _, err := g.run(ctx, append([]string{"add", "--"}, paths...)...); err != nil {
			return res, err
		}
		if _, err := g.run(ctx, append([]string{"diff", "--cached", "--quiet", "--"}, paths...)...); err != nil {
			if !isExit(err, 1) {
				return res, err
			}
			if _, err := g.run(ctx, append([]string{"commit", "--quiet", "--no-verify", "-m", message, "--only", "--"}, paths...)...); err != nil {
				return res, err
			}
			committed = true
		}
		out, err := g.run(ctx, "push", "--porcelain", remote, "HEAD:refs/heads/"+branch)
		line := pushLine(out, branch)
		if err == nil {
			sha, _ := g.run(ctx, "rev-parse", "HEAD")
			// "=" is "up to date": the branch had it all already (a rebase
			// drops our commit when the branch has the same change).
			upToDate := strings.HasPrefix(line, "=")
			res.SHA, res.Committed = sha, committed && !upToDate
			g.log.Info("git: pushed", "branch", branch, "commit", sha, "up_to_date", upToDate, "attempt", res.Attempts)
			return res, nil
		}
		if !moved(line) {
			return res, err
		}
		g.log.Warn("git: push rejected, the branch moved; rebasing onto it", "branch", branch, "attempt", res.Attempts)
		if _, err := g.run(ctx, "fetch", "--quiet", remote, "refs/heads/"+branch); err != nil {
			return res, err
		}
		if _, err := g.run(ctx, "rebase", "--quiet", "FETCH_HEAD"); err != nil {
			_, _ = g.run(ctx, "rebase", "--abort")
			return res, fmt.Errorf("%w: %s on %s changed the same files since this checkout; nothing was pushed: %w", ErrRebaseConflict, remote, branch, err)
		}
	}
	res.Attempts = attempts
	return res, fmt.Errorf("%w: %s kept moving, %d pushes rejected; the commit is in the checkout, run it again", ErrBranchMoving, branch, attempts)
}

// pushLine is the ref's line in `git push --porcelain`, e.g.
// "!\tHEAD:refs/heads/main\t[rejected] (fetch first)".
func pushLine(out, branch string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, ":refs/heads/"+branch+"\t") {
			return line
		}
	}
	return ""
}

// moved tells whether a push was rejected because the branch moved, as
// opposed to refused (a protected branch, a hook): only the former is
// worth a rebase.
func moved(line string) bool {
	return strings.HasPrefix(line, "!") && strings.Contains(line, "[rejected]") &&
		(strings.Contains(line, "fetch first") || strings.Contains(line, "non-fast-forward") || strings.Contains(line, "stale info"))
}

func isExit(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}

// gitRunner runs git in one worktree with one environment.
type gitRunner struct {
	bin, top string
	env      []string
	secrets  []string
	log      *slog.Logger
}

func (l *LocalGit) runner(ctx context.Context) (*gitRunner, error) {
	g := &gitRunner{bin: l.Git, log: l.Log}
	if g.bin == "" {
		g.bin = "git"
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	// Never wait for a password prompt in CI.
	g.env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	g.top = l.Dir
	top, err := g.run(ctx, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotWorktree, l.Dir, err)
	}
	g.top = top
	if _, err := g.run(ctx, "config", "user.email"); err != nil {
		name, email := l.Name, l.Email
		if name == "" {
			name = DefaultGitName
		}
		if email == "" {
			email = DefaultGitEmail
		}
		g.env = append(g.env, "GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL="+email, "GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL="+email)
	}
	if l.Token != "" {
		if _, err := g.run(ctx, "config", "--get-regexp", `^http\..*extraheader$`); err == nil {
			g.log.Info("git: the checkout has its own credentials; the token is not added")
		} else {
			header := "AUTHORIZATION: basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+l.Token))
			n := 0
			if v, ok := os.LookupEnv("GIT_CONFIG_COUNT"); ok {
				n, _ = strconv.Atoi(v)
			}
			g.env = append(g.env, "GIT_CONFIG_COUNT="+strconv.Itoa(n+1),
				"GIT_CONFIG_KEY_"+strconv.Itoa(n)+"=http.extraheader",
				"GIT_CONFIG_VALUE_"+strconv.Itoa(n)+"="+header)
			g.secrets = []string{l.Token, header, base64.StdEncoding.EncodeToString([]byte("x-access-token:" + l.Token))}
		}
	}
	return g, nil
}

// run runs git with args in the worktree and returns its trimmed stdout;
// an error carries stderr, with the token blanked out.
func (g *gitRunner) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, g.bin, append([]string{"-C", g.top}, args...)...)
	cmd.Env = g.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	g.log.Debug("git", "args", args)
	err := cmd.Run()
	out := g.redact(strings.TrimSpace(stdout.String()))
	if err != nil {
		msg := g.redact(strings.TrimSpace(stderr.String()))
		if msg == "" {
			msg = out
		}
		return out, fmt.Errorf("git %s: %w: %s", args[0], err, msg)
	}
	return out, nil
}

func (g *gitRunner) redact(s string) string {
	for _, secret := range g.secrets {
		s = strings.ReplaceAll(s, secret, "***")
	}
	return s
}
