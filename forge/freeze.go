package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
)

// Defaults of the runbook's freeze.
const (
	DefaultFreezeLabel   = "hold-for-canary"
	DefaultStatusContext = "canary/freeze"
	// ModeStatuses blocks merges through a failing commit status on each
	// PR's head; branch protection must require DefaultStatusContext.
	ModeStatuses = "statuses"
)

// FreezePhase is where a freeze is.
type FreezePhase string

// The phases of a freeze.
const (
	PhaseNone     FreezePhase = ""
	PhaseStarting FreezePhase = "starting"
	PhaseFrozen   FreezePhase = "frozen"
	PhaseLifting  FreezePhase = "lifting"
	PhaseLifted   FreezePhase = "lifted"
)

var (
	// ErrNotFrozen: lift with no freeze started.
	ErrNotFrozen = errors.New("no freeze is in force")
	// ErrOtherFreeze: start of a version while another version's freeze is
	// in force; lift that one first.
	ErrOtherFreeze = errors.New("another release's freeze is in force")
)

// Freeze blocks merges on one repository for a release and lifts the block.
type Freeze struct {
	Client      *github.Client
	Owner, Repo string
	// Label defaults to DefaultFreezeLabel, StatusContext to DefaultStatusContext.
	Label, StatusContext string
	// TargetURL is the link of the failing status (e.g. the release's run);
	// when empty each PR's own page is used.
	TargetURL string
	Progress  Progress
	Now       func() time.Time
}

func (f *Freeze) label() string {
	if f.Label == "" {
		return DefaultFreezeLabel
	}
	return f.Label
}

func (f *Freeze) context() string {
	if f.StatusContext == "" {
		return DefaultStatusContext
	}
	return f.StatusContext
}

func (f *Freeze) now() time.Time {
	if f.Now == nil {
		return time.Now().UTC()
	}
	return f.Now().UTC()
}

func (f *Freeze) check() error {
	switch {
	case f.Client == nil:
		return errors.New("forge: Freeze has no Client")
	case f.Owner == "" || f.Repo == "":
		return errors.New("forge: Freeze has no Owner/Repo")
	case f.Progress == nil:
		return errors.New("forge: Freeze has no Progress")
	}
	return nil
}

// Start freezes merges for version: it ensures the label exists, lists every
// open PR, labels each and sets a failing status on its head. Every change is
// saved to Progress as soon as GitHub confirms it, so Start after an
// interruption carries on where it stopped, and Start on a finished freeze of
// the same version calls nothing.
func (f *Freeze) Start(ctx context.Context, version string) (Summary, error) {
	if err := f.check(); err != nil {
		return Summary{}, err
	}
	if strings.TrimSpace(version) == "" {
		return Summary{}, errors.New("forge: freeze start needs the release version")
	}
	st, err := f.Progress.Load(ctx)
	if err != nil {
		return Summary{}, err
	}
	switch {
	case st.Phase == PhaseNone || st.Phase == PhaseLifted:
		st = FreezeState{Version: version, Owner: f.Owner, Repo: f.Repo, Label: f.label(), Mode: ModeStatuses, Phase: PhaseStarting, Started: f.now(), NextPage: 1}
		if err := f.Progress.Save(ctx, st); err != nil {
			return Summary{}, err
		}
	case st.Owner != f.Owner || st.Repo != f.Repo:
		return summarize(st), f.otherRepo(st)
	case st.Version != version:
		return summarize(st), fmt.Errorf("%w: %s (phase %s); lift it first with `canarybot freeze lift`", ErrOtherFreeze, st.Version, st.Phase)
	case st.Phase == PhaseLifting:
		return summarize(st), fmt.Errorf("the freeze of %s is being lifted; finish with `canarybot freeze lift` before starting it again", st.Version)
	}
	save := func() error { return f.Progress.Save(ctx, st) }

	if !st.LabelReady {
		if err := f.ensureLabel(ctx, version); err != nil {
			return summarize(st), err
		}
		st.LabelReady = true
		if err := save(); err != nil {
			return summarize(st), err
		}
	}

	// Whether a person had labelled a PR is recorded as it is listed, before
	// the freeze touches it, so a resumed freeze still knows.
	for !st.Listed {
		prs, resp, err := f.Client.PullRequests.List(ctx, f.Owner, f.Repo, &github.PullRequestListOptions{
			State: "open", Sort: "created", Direction: "asc",
			ListOptions: github.ListOptions{Page: st.NextPage, PerPage: 100},
		})
		if err != nil {
			return summarize(st), fmt.Errorf("listing open pull requests (page %d): %w", st.NextPage, err)
		}
		for _, pr := range prs {
			st.PRs = mergePR(st.PRs, PRState{Number: pr.GetNumber(), HeadSHA: pr.GetHead().GetSHA(), HadLabel: hasLabel(pr.Labels, st.Label)})
		}
		st.NextPage = resp.NextPage
		st.Listed = resp.NextPage == 0
		if err := save(); err != nil {
			return summarize(st), err
		}
	}

	for i := range st.PRs {
		pr := &st.PRs[i]
		if !pr.HadLabel && !pr.LabelAdded {
			if _, _, err := f.Client.Issues.AddLabelsToIssue(ctx, f.Owner, f.Repo, pr.Number, []string{st.Label}); err != nil {
				return summarize(st), fmt.Errorf("labelling #%d: %w", pr.Number, err)
			}
			pr.LabelAdded = true
			if err := save(); err != nil {
				return summarize(st), err
			}
		}
		if !pr.StatusSet && pr.HeadSHA != "" {
			if err := f.setStatus(ctx, pr, "failure", fmt.Sprintf("Merges frozen for the canary release of %s; wait for the freeze to lift", version)); err != nil {
				return summarize(st), err
			}
			pr.StatusSet = true
			if err := save(); err != nil {
				return summarize(st), err
			}
		}
	}
	if st.Phase != PhaseFrozen {
		st.Phase = PhaseFrozen
		if err := save(); err != nil {
			return summarize(st), err
		}
	}
	return summarize(st), nil
}

// Lift ends the freeze: it removes the label from the PRs the freeze
// labelled (a label a person put on stays) and turns their status to
// success. Like Start, it resumes after an interruption.
func (f *Freeze) Lift(ctx context.Context) (Summary, error) {
	if err := f.check(); err != nil {
		return Summary{}, err
	}
	st, err := f.Progress.Load(ctx)
	if err != nil {
		return Summary{}, err
	}
	switch st.Phase {
	case PhaseNone:
		return summarize(st), ErrNotFrozen
	case PhaseLifted:
		return summarize(st), nil
	}
	if st.Owner != f.Owner || st.Repo != f.Repo {
		// The PR numbers and commits in the progress file are another
		// repository's: acting on them here would touch unrelated PRs.
		return summarize(st), f.otherRepo(st)
	}
	// Lifting a half-started freeze is how an operator backs out of it:
	// only what was done is undone.
	st.Phase = PhaseLifting
	save := func() error { return f.Progress.Save(ctx, st) }
	if err := save(); err != nil {
		return summarize(st), err
	}
	for i := range st.PRs {
		pr := &st.PRs[i]
		if pr.LabelAdded && !pr.LabelRemoved {
			resp, err := f.Client.Issues.RemoveLabelForIssue(ctx, f.Owner, f.Repo, pr.Number, st.Label)
			// 404: someone took it off already, which is the goal.
			if err != nil && (resp == nil || resp.StatusCode != http.StatusNotFound) {
				return summarize(st), fmt.Errorf("unlabelling #%d: %w", pr.Number, err)
			}
			pr.LabelRemoved = true
			if err := save(); err != nil {
				return summarize(st), err
			}
		}
		if pr.StatusSet && !pr.StatusCleared {
			if err := f.setStatus(ctx, pr, "success", fmt.Sprintf("Freeze for %s lifted", st.Version)); err != nil {
				return summarize(st), err
			}
			pr.StatusCleared = true
			if err := save(); err != nil {
				return summarize(st), err
			}
		}
	}
	st.Phase, st.Lifted = PhaseLifted, f.now()
	if err := save(); err != nil {
		return summarize(st), err
	}
	return summarize(st), nil
}

// Status reports the freeze as recorded, without calling GitHub.
func (f *Freeze) Status(ctx context.Context) (Summary, error) {
	if f.Progress == nil {
		return Summary{}, errors.New("forge: Freeze has no Progress")
	}
	st, err := f.Progress.Load(ctx)
	if err != nil {
		return Summary{}, err
	}
	return summarize(st), nil
}

func (f *Freeze) ensureLabel(ctx context.Context, version string) error {
	_, resp, err := f.Client.Issues.GetLabel(ctx, f.Owner, f.Repo, f.label())
	if err == nil {
		return nil
	}
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("looking up label %q: %w", f.label(), err)
	}
	_, resp, err = f.Client.Issues.CreateLabel(ctx, f.Owner, f.Repo, &github.Label{
		Name:        github.String(f.label()),
		Color:       github.String("d93f0b"),
		Description: github.String("Merges frozen for a canary release (canarybot)"),
	})
	// 422: created meanwhile by someone else.
	if err != nil && (resp == nil || resp.StatusCode != http.StatusUnprocessableEntity) {
		return fmt.Errorf("creating label %q: %w", f.label(), err)
	}
	return nil
}

func (f *Freeze) setStatus(ctx context.Context, pr *PRState, state, desc string) error {
	target := f.TargetURL
	if target == "" {
		target = fmt.Sprintf("%s/%s/%s/pull/%d", f.webBase(), f.Owner, f.Repo, pr.Number)
	}
	if len(desc) > 140 { // GitHub's limit
		desc = desc[:140]
	}
	_, _, err := f.Client.Repositories.CreateStatus(ctx, f.Owner, f.Repo, pr.HeadSHA, &github.RepoStatus{
		State:       github.String(state),
		Context:     github.String(f.context()),
		Description: github.String(desc),
		TargetURL:   github.String(target),
	})
	if err != nil {
		return fmt.Errorf("setting %s=%s on #%d (%s): %w", f.context(), state, pr.Number, short(pr.HeadSHA), err)
	}
	return nil
}

// webBase guesses the web root from the API root: api.github.com serves
// github.com, and Enterprise serves both from one host.
func (f *Freeze) webBase() string {
	u := *f.Client.BaseURL
	if u.Host == "api.github.com" {
		return "https://github.com"
	}
	u.Path, u.RawQuery = "", ""
	return strings.TrimRight(u.String(), "/")
}

func hasLabel(labels []*github.Label, name string) bool {
	for _, l := range labels {
		if strings.EqualFold(l.GetName(), name) {
			return true
		}
	}
	return false
}

// mergePR adds pr unless its number is there already (a PR can move between
// pages while they are listed).
func mergePR(prs []PRState, pr PRState) []PRState {
	for _, p := range prs {
		if p.Number == pr.Number {
			return prs
		}
	}
	return append(prs, pr)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func (f *Freeze) otherRepo(st FreezeState) error {
	return fmt.Errorf("%w: the progress file is for %s/%s, not %s/%s; point --progress at this repository's file or fix GITHUB_REPOSITORY",
		ErrOtherFreeze, st.Owner, st.Repo, f.Owner, f.Repo)
}
