package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/forge"
)

// evidenceTmpPrefix starts the names of the evidence package's temp files,
// which are never evidence.
const evidenceTmpPrefix = ".canarybot-tmp-"

type evidenceCommitOpts struct {
	message       string
	only          []string
	repoPath      string
	branch        string
	localGit      string
	remote        string
	writeInterval time.Duration
}

// newEvidenceCommitCmd is `canarybot evidence commit <version>`: the
// release's evidence directory into the repository, one commit per batch.
func newEvidenceCommitCmd(g *globals) *cobra.Command {
	o := &evidenceCommitOpts{}
	c := &cobra.Command{
		Use:   "commit <version> [--message WHAT] [--only FILE...] [--local-git[=DIR]]",
		Short: "Commit the release's evidence directory to the repository in one commit",
		Long: `commit writes <evidence-dir>/<version>/ to evidence/<version>/ in the repository in one
commit, with the message "evidence(<version>): <what the batch is>" (--message; default
"release evidence") and the manifest's head as an Evidence-Head trailer. The directory must pass
` + "`canarybot evidence verify`" + ` first: tampered evidence is not committed. --only commits some
files (manifest.json always goes with them). Files are added or replaced, never deleted. When
the branch already holds every file as it is, no commit is made.

By default the commit is made through GitHub's Git Data API (no checkout needed): GITHUB_TOKEN
or a GitHub App, GITHUB_REPOSITORY, GITHUB_API_URL as for freeze; the branch is --branch, else
GITHUB_REF_NAME when the workflow runs on a branch. If someone pushes meanwhile, the commit is
rebuilt on the new head and retried, losing and duplicating nothing.

With --local-git[=DIR] (default: the working directory) the files are copied into that checkout,
committed with git and pushed to --remote (origin); a push rejected because the branch moved is
rebased and retried. GITHUB_TOKEN, when set, authenticates the push (through git's environment,
never on a command line); a checkout that already carries credentials (actions/checkout) keeps
its own.
Exit 0 committed or nothing to commit, 1 failed (run it again), 2 bad input.`,
		Args: func(cmd *cobra.Command, args []string) error {
			// "--local-git DIR" reads DIR as an argument: take it as the flag's.
			if len(args) == 2 && cmd.Flags().Changed("local-git") && o.localGit == "." {
				return nil
			}
			if len(args) != 1 {
				return badInput("evidence commit takes one <version>, e.g. `canarybot evidence commit v1.4.0 --message \"stage 25%% snapshot\"`")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				o.localGit = args[1]
			}
			return o.run(cmd, g, args[0])
		},
	}
	f := c.Flags()
	f.StringVarP(&o.message, "message", "m", "", `what the batch is, e.g. "stage 25% snapshot" (default "release evidence")`)
	f.StringSliceVar(&o.only, "only", nil, "commit only these evidence files (and manifest.json); repeat or comma-separate")
	f.StringVar(&o.repoPath, "path", "evidence/{version}", "where the files go in the repository; {version} is replaced")
	f.StringVar(&o.branch, "branch", "", "branch to commit to (default: GITHUB_REF_NAME on a branch; with --local-git the checked-out branch)")
	f.StringVar(&o.localGit, "local-git", "", "commit and push in this git checkout instead of through the API (default when given alone: the working directory)")
	f.Lookup("local-git").NoOptDefVal = "."
	f.StringVar(&o.remote, "remote", "origin", "remote to push to with --local-git")
	f.DurationVar(&o.writeInterval, "write-interval", time.Second, "least time between two content-creating GitHub calls")
	return c
}

func (o *evidenceCommitOpts) run(cmd *cobra.Command, g *globals, version string) error {
	ctx := cmd.Context()
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.EvidenceDir, version)
	files, head, err := evidenceRepoFiles(dir, strings.ReplaceAll(o.repoPath, "{version}", version), o.only)
	if err != nil {
		return err
	}
	msg := forge.EvidenceMessage(version, o.message) + "\n\nEvidence-Head: " + head
	log := g.logger()

	var res forge.CommitResult
	if cmd.Flags().Changed("local-git") {
		l := &forge.LocalGit{Dir: o.localGit, Remote: o.remote, Branch: o.branch, Token: os.Getenv(forge.EnvToken), Log: log}
		res, err = l.Commit(ctx, msg, files)
	} else {
		var c *forge.Committer
		if c, err = o.committer(g); err != nil {
			return err
		}
		res, err = c.Commit(ctx, msg, files)
	}
	switch {
	case errors.Is(err, forge.ErrBadRepoPath), errors.Is(err, forge.ErrNoBranch), errors.Is(err, forge.ErrNotWorktree):
		return badInput("%v", err)
	case err != nil:
		return fmt.Errorf("evidence commit %s (run it again; nothing is committed twice): %w", version, err)
	}
	subject, _, _ := strings.Cut(msg, "\n")
	if res.Committed {
		fmt.Fprintf(g.out, "committed %s on %s: %d files, %q", res.SHA, res.Branch, res.Files, subject)
		if res.Attempts > 1 {
			fmt.Fprintf(g.out, " (the branch moved %d time(s) meanwhile; rebuilt on its new head)", res.Attempts-1)
		}
		fmt.Fprintln(g.out)
	} else {
		fmt.Fprintf(g.out, "nothing to commit: %s already holds these %d files at %s\n", res.Branch, res.Files, res.SHA)
	}
	fmt.Fprintf(g.out, "evidence head: %s\n", head)
	return nil
}

func (o *evidenceCommitOpts) committer(g *globals) (*forge.Committer, error) {
	branch := o.branch
	if branch == "" && os.Getenv("GITHUB_REF_TYPE") == "branch" {
		branch = os.Getenv("GITHUB_REF_NAME")
	}
	if branch == "" {
		return nil, badInput("name the branch to commit the evidence to with --branch (GITHUB_REF_NAME is not a branch here)")
	}
	client, cfg, err := githubClient(g, o.writeInterval)
	if err != nil {
		return nil, err
	}
	return &forge.Committer{Client: client, Owner: cfg.Owner, Repo: cfg.Repo, Branch: branch, Log: g.logger()}, nil
}

// evidenceRepoFiles reads a release's evidence directory as files under
// repoPath, after checking that it verifies; only, when given, picks
// files (manifest.json always comes along). It returns the manifest's head.
func evidenceRepoFiles(dir, repoPath string, only []string) ([]forge.RepoFile, string, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, "", badInput("no evidence directory %s (check --evidence-dir and the version)", dir)
	}
	rep, err := evidence.Verify(dir)
	if errors.Is(err, evidence.ErrNoManifest) {
		return nil, "", badInput("%v: %s has no manifest.json, so it is not canarybot's evidence", err, dir)
	}
	if err != nil {
		return nil, "", err
	}
	if !rep.OK {
		return nil, "", &exitError{code: exitFailure, err: fmt.Errorf("evidence in %s does not verify, so it is not committed:\n%s", dir, rep)}
	}
	raw, err := os.ReadFile(filepath.Join(dir, evidence.ManifestName))
	if err != nil {
		return nil, "", err
	}
	var m struct{ Head string }
	if err := json.Unmarshal(raw, &m); err != nil || m.Head == "" {
		return nil, "", fmt.Errorf("evidence: %s has no head: %w", evidence.ManifestName, err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, "", err
	}
	want := map[string]bool{}
	for _, n := range only {
		want[strings.TrimSpace(n)] = true
	}
	var files []forge.RepoFile
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || strings.HasPrefix(name, evidenceTmpPrefix) {
			continue
		}
		if len(want) > 0 && !want[name] && name != evidence.ManifestName {
			continue
		}
		delete(want, name)
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, "", err
		}
		files = append(files, forge.RepoFile{Path: strings.TrimSuffix(repoPath, "/") + "/" + name, Data: data})
	}
	delete(want, evidence.ManifestName)
	if len(want) > 0 {
		missing := slices.Sorted(maps.Keys(want))
		return nil, "", badInput("--only names files that are not in %s: %s", dir, strings.Join(missing, ", "))
	}
	if err := forge.CheckRepoFiles(files); err != nil {
		return nil, "", badInput("--path %q: %v", repoPath, err)
	}
	return files, m.Head, nil
}

// githubClient builds the GitHub client from the environment, as the freeze
// does.
func githubClient(g *globals, writeInterval time.Duration) (*github.Client, forge.Config, error) {
	if writeInterval < 0 {
		return nil, forge.Config{}, badInput("--write-interval %s is negative", writeInterval)
	}
	cfg, err := forge.ConfigFromEnv(os.LookupEnv)
	if errors.Is(err, forge.ErrMissingSetting) || errors.Is(err, forge.ErrInvalidSetting) {
		return nil, cfg, badInput("%v", err)
	}
	if err != nil {
		return nil, cfg, err
	}
	topts := forge.DefaultTransportOptions()
	topts.WriteInterval = writeInterval
	topts.Log = g.logger()
	client, err := forge.NewClient(cfg, nil, topts)
	if err != nil {
		return nil, cfg, badInput("%v", err)
	}
	return client, cfg, nil
}
