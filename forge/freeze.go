package forge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Mode is ModeAuto (the default), ModeRulesets or ModeStatuses. Auto
	// uses a ruleset where the token may administer the repository.
	Mode string
	// RulesetName defaults to DefaultRulesetName.
	RulesetName string
	// TargetURL is the link of the failing status (e.g. the release's run);
	// when empty each PR's own page is used.
	TargetURL string
	// ReportThawed makes OnPullRequest set a success status on a PR's head
	// while no freeze is in force. Needed where branch protection requires
	// the freeze's check (ModeStatuses): a required check that never
	// reports blocks the merge as surely as a failing one.
	ReportThawed bool
	// Beacon makes OnPullRequest decide whether a freeze is in force from
	// the label's description on GitHub instead of Progress: a workflow's
	// runner (`freeze sync`) has no progress file.
	Beacon   bool
	Progress Progress
	// OnProgress, if set, is told how far Start and Lift have got (see
	// ProgressLine, which renders it).
	OnProgress func(done, total int, phase string)
	Now        func() time.Time
	Log        *slog.Logger
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

func (f *Freeze) log() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
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
	switch f.Mode {
	case "", ModeAuto, ModeRulesets, ModeStatuses:
		return nil
	}
	return fmt.Errorf("forge: freeze mode %q; use %s, %s or %s", f.Mode, ModeAuto, ModeRulesets, ModeStatuses)
}

// update applies fn to the saved state under Progress's lock.
func (f *Freeze) update(ctx context.Context, fn func(*FreezeState) error) (FreezeState, error) {
	return f.Progress.Update(ctx, fn)
}

// updatePR applies fn to PR n's record.
func (f *Freeze) updatePR(ctx context.Context, n int, fn func(*PRState)) (FreezeState, error) {
	return f.update(ctx, func(st *FreezeState) error {
		if p := st.pr(n); p != nil {
			fn(p)
		}
		return nil
	})
}

// Start freezes merges for version. It blocks first — one ruleset where the
// token may administer the repository, else a failing status on every open
// PR's head — and labels afterwards, so that blocking never waits for the
// labels. Every change is saved to Progress as soon as GitHub confirms it,
// so Start after an interruption carries on where it stopped, and Start on
// a finished freeze of the same version calls nothing.
func (f *Freeze) Start(ctx context.Context, version string) (Summary, error) {
	if err := f.check(); err != nil {
		return Summary{}, err
	}
	if strings.TrimSpace(version) == "" {
		return Summary{}, errors.New("forge: freeze start needs the release version")
	}
	st, err := f.update(ctx, func(st *FreezeState) error {
		switch {
		case st.Phase == PhaseNone || st.Phase == PhaseLifted:
			// The ruleset is reused from one release to the next.
			keep := st.RulesetID
			if st.Owner != f.Owner || st.Repo != f.Repo {
				keep = 0
			}
			*st = FreezeState{Version: version, Owner: f.Owner, Repo: f.Repo, Label: f.label(), Phase: PhaseStarting, Started: f.now(), NextPage: 1, RulesetID: keep}
		case st.Owner != f.Owner || st.Repo != f.Repo:
			return f.otherRepo(*st)
		case st.Version != version:
			return fmt.Errorf("%w: %s (phase %s); lift it first with `canarybot freeze lift`", ErrOtherFreeze, st.Version, st.Phase)
		case st.Phase == PhaseLifting:
			return fmt.Errorf("the freeze of %s is being lifted; finish with `canarybot freeze lift` before starting it again", st.Version)
		}
		return nil
	})
	if err != nil {
		return summarize(st), err
	}

	if st.Mode == "" {
		if st, err = f.block(ctx, st); err != nil {
			return summarize(st), err
		}
	}
	if st.Mode == ModeRulesets && !st.RulesetOn {
		// Resumed after the ruleset was found but before it was enabled.
		id, err := f.enableRuleset(ctx, st.RulesetID)
		if err != nil {
			return summarize(st), err
		}
		if st, err = f.update(ctx, func(s *FreezeState) error { s.RulesetID, s.RulesetOn = id, true; return nil }); err != nil {
			return summarize(st), err
		}
	}

	if !st.LabelReady {
		if err := f.ensureLabel(ctx, beaconText(st.Version, st.Mode)); err != nil {
			return summarize(st), err
		}
		if st, err = f.update(ctx, func(s *FreezeState) error { s.LabelReady = true; return nil }); err != nil {
			return summarize(st), err
		}
	}

	// Whether a person had labelled a PR is recorded as it is listed, before
	// the freeze touches it, so a resumed freeze still knows.
	for !st.Listed {
		page := st.NextPage
		prs, resp, err := f.listOpen(ctx, page)
		if err != nil {
			return summarize(st), fmt.Errorf("listing open pull requests (page %d): %w", page, err)
		}
		st, err = f.update(ctx, func(s *FreezeState) error {
			for _, pr := range prs {
				if p := s.pr(pr.GetNumber()); p != nil {
					// Known from a webhook already: its head is as fresh.
					continue
				}
				s.PRs = append(s.PRs, PRState{Number: pr.GetNumber(), HeadSHA: pr.GetHead().GetSHA(), Via: "start", HadLabel: hasLabel(pr.Labels, s.Label)})
			}
			s.NextPage = resp.NextPage
			s.Listed = resp.NextPage == 0
			return nil
		})
		if err != nil {
			return summarize(st), err
		}
		f.progress(len(st.PRs), 0, ProgressListing)
	}

	if st.Mode == ModeStatuses {
		for i, pr := range st.PRs {
			f.progress(i, len(st.PRs), ProgressBlocking)
			if err := f.fail(ctx, st.Version, pr); err != nil {
				return summarize(st), err
			}
		}
		f.progress(len(st.PRs), len(st.PRs), ProgressBlocking)
	}
	for i, pr := range st.PRs {
		f.progress(i, len(st.PRs), ProgressLabelling)
		if err := f.addLabel(ctx, pr); err != nil {
			return summarize(st), err
		}
	}
	f.progress(len(st.PRs), len(st.PRs), ProgressLabelling)
	st, err = f.update(ctx, func(s *FreezeState) error {
		if s.Phase == PhaseStarting {
			s.Phase = PhaseFrozen
		}
		return nil
	})
	return summarize(st), err
}

// block decides the mode and, in ModeRulesets, enables the ruleset.
func (f *Freeze) block(ctx context.Context, st FreezeState) (FreezeState, error) {
	mode, reason, id := ModeStatuses, "configured", int64(0)
	if f.Mode != ModeStatuses {
		var err error
		id, err = f.enableRuleset(ctx, st.RulesetID)
		switch {
		case err == nil:
			mode, reason = ModeRulesets, fmt.Sprintf("ruleset %d requires %s on the default branch", id, f.context())
		case errors.Is(err, ErrNoAdmin) && f.Mode != ModeRulesets:
			reason = err.Error()
			f.log().Info("github: rulesets unavailable; blocking with a failing status on each PR", "why", err)
		default:
			return st, err
		}
	}
	return f.update(ctx, func(s *FreezeState) error {
		s.Mode, s.ModeReason = mode, reason
		if mode == ModeRulesets {
			s.RulesetID, s.RulesetOn = id, true
		}
		return nil
	})
}

// fail sets the failing status on pr's head unless it has it already.
func (f *Freeze) fail(ctx context.Context, version string, pr PRState) error {
	if pr.HeadSHA == "" || pr.FailedSHA == pr.HeadSHA {
		return nil
	}
	if err := f.setStatus(ctx, pr.Number, pr.HeadSHA, "failure", fmt.Sprintf("Merges frozen for the canary release of %s; wait for the freeze to lift", version)); err != nil {
		return err
	}
	_, err := f.updatePR(ctx, pr.Number, func(p *PRState) {
		// A webhook may have moved the head meanwhile; it fails the new one.
		if p.HeadSHA == pr.HeadSHA {
			p.FailedSHA = pr.HeadSHA
		}
	})
	return err
}

func (f *Freeze) addLabel(ctx context.Context, pr PRState) error {
	if pr.HadLabel || pr.LabelAdded {
		return nil
	}
	if err := f.labelIssue(ctx, pr.Number); err != nil {
		return err
	}
	_, err := f.updatePR(ctx, pr.Number, func(p *PRState) { p.LabelAdded = true })
	return err
}

// Lift ends the freeze: it unblocks first (disables the ruleset, or sets
// success on the current head of every open PR — re-listed, so PRs pushed
// or opened during the freeze are unblocked too), then removes the label
// from the PRs the freeze labelled (a label a person put on stays). Like
// Start, it resumes after an interruption.
func (f *Freeze) Lift(ctx context.Context) (Summary, error) {
	if err := f.check(); err != nil {
		return Summary{}, err
	}
	st, err := f.update(ctx, func(st *FreezeState) error {
		switch {
		case st.Phase == PhaseNone:
			return ErrNotFrozen
		case st.Phase == PhaseLifted:
			return nil
		case st.Owner != f.Owner || st.Repo != f.Repo:
			// The PR numbers and commits in the progress file are another
			// repository's: acting on them here would touch unrelated PRs.
			return f.otherRepo(*st)
		}
		// Lifting a half-started freeze is how an operator backs out of
		// it: only what was done is undone.
		if st.Phase != PhaseLifting {
			st.Phase, st.LiftNextPage, st.LiftListed = PhaseLifting, 1, false
		}
		return nil
	})
	if err != nil || st.Phase == PhaseLifted {
		return summarize(st), err
	}

	if st.Mode == "" && f.Mode != ModeStatuses && !st.RulesetOff {
		// Interrupted while deciding: a ruleset may have been created whose
		// answer was never recorded. Turn it off if there is one.
		if id, err := f.findRuleset(ctx); err == nil && id != 0 {
			if st, err = f.update(ctx, func(s *FreezeState) error { s.RulesetID = id; return nil }); err != nil {
				return summarize(st), err
			}
			if err := f.disableRuleset(ctx, id); err != nil {
				return summarize(st), err
			}
		}
		if st, err = f.update(ctx, func(s *FreezeState) error { s.RulesetOff = true; return nil }); err != nil {
			return summarize(st), err
		}
	}
	if st.Mode == ModeRulesets && st.RulesetID != 0 && !st.RulesetOff {
		if err := f.disableRuleset(ctx, st.RulesetID); err != nil {
			return summarize(st), err
		}
		if st, err = f.update(ctx, func(s *FreezeState) error { s.RulesetOff = true; return nil }); err != nil {
			return summarize(st), err
		}
	}

	for !st.LiftListed {
		page := st.LiftNextPage
		prs, resp, err := f.listOpen(ctx, page)
		if err != nil {
			return summarize(st), fmt.Errorf("listing open pull requests for the lift (page %d): %w", page, err)
		}
		st, err = f.update(ctx, func(s *FreezeState) error {
			for _, pr := range prs {
				p := s.pr(pr.GetNumber())
				if p == nil {
					// Opened during the freeze and never seen: a label on it
					// is a person's.
					s.PRs = append(s.PRs, PRState{Number: pr.GetNumber(), Via: "lift", HadLabel: hasLabel(pr.Labels, s.Label)})
					p = &s.PRs[len(s.PRs)-1]
				}
				p.HeadSHA, p.OpenAtLift = pr.GetHead().GetSHA(), true
			}
			s.LiftNextPage = resp.NextPage
			s.LiftListed = resp.NextPage == 0
			return nil
		})
		if err != nil {
			return summarize(st), err
		}
		f.progress(openAtLift(st), 0, ProgressListing)
	}

	// A PR that `freeze sync` labelled on a workflow runner, which has no
	// copy of this progress, looks here like one a person labelled. The
	// label's history says who added it: a bot account (the workflow's
	// token, a GitHub App) is the freeze; a person's label stays.
	for _, pr := range st.PRs {
		if pr.Via != "lift" || !pr.HadLabel || pr.LabelAdded || pr.OriginChecked || !pr.OpenAtLift {
			continue
		}
		byBot, err := f.labelledByBot(ctx, pr.Number, st.Label)
		if err != nil {
			return summarize(st), err
		}
		if st, err = f.updatePR(ctx, pr.Number, func(p *PRState) {
			p.OriginChecked = true
			if byBot {
				p.HadLabel, p.LabelAdded = false, true
			}
		}); err != nil {
			return summarize(st), err
		}
	}

	if st.Mode == ModeStatuses {
		// Every open PR, not only those the freeze failed: where branch
		// protection requires the check, a head that never got a status
		// (pushed or opened during the freeze with no webhook) is blocked.
		// st is reloaded in the loop and may grow (a webhook): the count
		// is of the PRs this loop goes through.
		total := len(st.PRs)
		for i, pr := range st.PRs {
			f.progress(i, total, ProgressUnblocking)
			if !pr.OpenAtLift || pr.HeadSHA == "" || pr.ClearedSHA == pr.HeadSHA {
				continue
			}
			if err := f.setStatus(ctx, pr.Number, pr.HeadSHA, "success", fmt.Sprintf("Freeze for %s lifted", st.Version)); err != nil {
				return summarize(st), err
			}
			if st, err = f.updatePR(ctx, pr.Number, func(p *PRState) { p.ClearedSHA = pr.HeadSHA }); err != nil {
				return summarize(st), err
			}
		}
		f.progress(total, total, ProgressUnblocking)
	}
	total := len(st.PRs)
	for i, pr := range st.PRs {
		f.progress(i, total, ProgressUnlabelling)
		if !pr.LabelAdded || pr.LabelRemoved {
			continue
		}
		resp, err := f.Client.Issues.RemoveLabelForIssue(ctx, f.Owner, f.Repo, pr.Number, st.Label)
		// 404: someone took it off already, which is the goal.
		if err != nil && (resp == nil || resp.StatusCode != http.StatusNotFound) {
			return summarize(st), fmt.Errorf("unlabelling #%d: %w", pr.Number, err)
		}
		if st, err = f.updatePR(ctx, pr.Number, func(p *PRState) { p.LabelRemoved = true }); err != nil {
			return summarize(st), err
		}
	}
	f.progress(total, total, ProgressUnlabelling)
	if st.LabelReady && !st.LabelCleared {
		if err := f.describeLabel(ctx, beaconText("", "")); err != nil {
			return summarize(st), err
		}
		if st, err = f.update(ctx, func(s *FreezeState) error { s.LabelCleared = true; return nil }); err != nil {
			return summarize(st), err
		}
	}
	st, err = f.update(ctx, func(s *FreezeState) error {
		s.Phase, s.Lifted = PhaseLifted, f.now()
		return nil
	})
	return summarize(st), err
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

func (f *Freeze) listOpen(ctx context.Context, page int) ([]*github.PullRequest, *github.Response, error) {
	return f.Client.PullRequests.List(ctx, f.Owner, f.Repo, &github.PullRequestListOptions{
		State: "open", Sort: "created", Direction: "asc",
		ListOptions: github.ListOptions{Page: page, PerPage: 100},
	})
}

// ensureLabel makes the label exist with description desc.
func (f *Freeze) ensureLabel(ctx context.Context, desc string) error {
	l, resp, err := f.Client.Issues.GetLabel(ctx, f.Owner, f.Repo, f.label())
	if err == nil {
		if l.GetDescription() == desc {
			return nil
		}
		return f.describeLabel(ctx, desc)
	}
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("looking up label %q: %w", f.label(), err)
	}
	_, resp, err = f.Client.Issues.CreateLabel(ctx, f.Owner, f.Repo, &github.Label{
		Name:        github.String(f.label()),
		Color:       github.String("d93f0b"),
		Description: github.String(desc),
	})
	if err != nil && resp != nil && resp.StatusCode == http.StatusUnprocessableEntity {
		// Created meanwhile by someone else.
		return f.describeLabel(ctx, desc)
	}
	if err != nil {
		return fmt.Errorf("creating label %q: %w", f.label(), err)
	}
	return nil
}

func (f *Freeze) describeLabel(ctx context.Context, desc string) error {
	_, _, err := f.Client.Issues.EditLabel(ctx, f.Owner, f.Repo, f.label(), &github.Label{Description: github.String(desc)})
	if err != nil {
		return fmt.Errorf("describing label %q: %w", f.label(), err)
	}
	return nil
}

// labelIssue adds the label in the body form GitHub's description defines,
// {"labels": [...]}: go-github's AddLabelsToIssue sends a bare array, which
// GitHub accepts today but its OpenAPI description does not allow.
func (f *Freeze) labelIssue(ctx context.Context, n int) error {
	u := fmt.Sprintf("repos/%s/%s/issues/%d/labels", f.Owner, f.Repo, n)
	req, err := f.Client.NewRequest(http.MethodPost, u, struct {
		Labels []string `json:"labels"`
	}{[]string{f.label()}})
	if err != nil {
		return err
	}
	if _, err := f.Client.Do(ctx, req, nil); err != nil {
		return fmt.Errorf("labelling #%d: %w", n, err)
	}
	return nil
}

func (f *Freeze) setStatus(ctx context.Context, n int, sha, state, desc string) error {
	target := f.TargetURL
	if target == "" {
		target = fmt.Sprintf("%s/%s/%s/pull/%d", f.webBase(), f.Owner, f.Repo, n)
	}
	if len(desc) > 140 { // GitHub's limit
		desc = desc[:140]
	}
	_, _, err := f.Client.Repositories.CreateStatus(ctx, f.Owner, f.Repo, sha, &github.RepoStatus{
		State:       github.String(state),
		Context:     github.String(f.context()),
		Description: github.String(desc),
		TargetURL:   github.String(target),
	})
	if err != nil {
		return fmt.Errorf("setting %s=%s on #%d (%s): %w", f.context(), state, n, short(sha), err)
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

// labelledByBot says whether the last "labeled" event of label on PR n was
// by a bot account (a login ending in [bot]: GITHUB_TOKEN's
// github-actions[bot], a GitHub App's <app>[bot]) rather than a person.
func (f *Freeze) labelledByBot(ctx context.Context, n int, label string) (bool, error) {
	var last string
	opt := &github.ListOptions{PerPage: 100}
	for {
		events, resp, err := f.Client.Issues.ListIssueEvents(ctx, f.Owner, f.Repo, n, opt)
		if err != nil {
			return false, fmt.Errorf("reading who labelled #%d: %w", n, err)
		}
		for _, e := range events {
			if e.GetEvent() == "labeled" && strings.EqualFold(e.GetLabel().GetName(), label) {
				last = e.GetActor().GetLogin()
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	return strings.HasSuffix(last, "[bot]"), nil
}
