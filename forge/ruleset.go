package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-github/v60/github"
)

// The freeze's modes.
const (
	// ModeAuto tries ModeRulesets and falls back to ModeStatuses when the
	// token may not administer the repository.
	ModeAuto = "auto"
	// ModeRulesets blocks merges with one repository ruleset on the
	// default branch that requires the freeze's status check: one call
	// blocks every PR, and the lift's one call unblocks them.
	ModeRulesets = "rulesets"
	// DefaultRulesetName names the ruleset; the freeze finds it again by
	// this name, so a second release reuses it.
	DefaultRulesetName = "canarybot merge freeze"
)

// ErrNoAdmin means GitHub refused the ruleset calls (403 or 404): the token
// may not administer the repository, or the plan has no rulesets.
var ErrNoAdmin = errors.New("the token may not administer the repository's rulesets")

// repositoryAdminRole is the actor_id of the built-in admin repository
// role in bypass_actors.
const repositoryAdminRole = 5

func (f *Freeze) rulesetName() string {
	if f.RulesetName == "" {
		return DefaultRulesetName
	}
	return f.RulesetName
}

// desiredRuleset requires the freeze's check on the default branch. Admins
// may bypass it, as they may bypass branch protection by default: a hotfix
// during a release is a deliberate act, not a blocked one.
func (f *Freeze) desiredRuleset(enforcement string) *github.Ruleset {
	return &github.Ruleset{
		Name:        f.rulesetName(),
		Target:      github.String("branch"),
		Enforcement: enforcement,
		BypassActors: []*github.BypassActor{{
			ActorID: github.Int64(repositoryAdminRole), ActorType: github.String("RepositoryRole"), BypassMode: github.String("always"),
		}},
		Conditions: &github.RulesetConditions{RefName: &github.RulesetRefConditionParameters{
			Include: []string{"~DEFAULT_BRANCH"}, Exclude: []string{},
		}},
		Rules: []*github.RepositoryRule{github.NewRequiredStatusChecksRule(&github.RequiredStatusChecksRuleParameters{
			RequiredStatusChecks: []github.RuleRequiredStatusChecks{{Context: f.context()}},
		})},
	}
}

func denied(resp *github.Response) bool {
	return resp != nil && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound)
}

// findRuleset returns the ID of the freeze's ruleset, or 0.
func (f *Freeze) findRuleset(ctx context.Context) (int64, error) {
	all, resp, err := f.Client.Repositories.GetAllRulesets(ctx, f.Owner, f.Repo, false)
	if err != nil {
		if denied(resp) {
			return 0, fmt.Errorf("%w: listing rulesets: %w", ErrNoAdmin, err)
		}
		return 0, fmt.Errorf("listing rulesets: %w", err)
	}
	for _, rs := range all {
		if rs.Name == f.rulesetName() && rs.GetSourceType() != "Organization" {
			return rs.GetID(), nil
		}
	}
	return 0, nil
}

// enableRuleset creates the ruleset, or turns the existing one on (and
// back into the shape the freeze needs, should someone have edited it).
// A create is not retried by the Transport after a timeout (it is not
// idempotent); a second Start finds the ruleset by name instead of
// creating a duplicate.
func (f *Freeze) enableRuleset(ctx context.Context, known int64) (int64, error) {
	id := known
	if id == 0 {
		var err error
		if id, err = f.findRuleset(ctx); err != nil {
			return 0, err
		}
	}
	if id == 0 {
		rs, resp, err := f.Client.Repositories.CreateRuleset(ctx, f.Owner, f.Repo, f.desiredRuleset("active"))
		switch {
		case err == nil:
			return rs.GetID(), nil
		case denied(resp):
			return 0, fmt.Errorf("%w: creating ruleset %q: %w", ErrNoAdmin, f.rulesetName(), err)
		case resp != nil && resp.StatusCode == http.StatusUnprocessableEntity:
			// Created meanwhile (another run, or a create whose answer was
			// lost): turn that one on.
			if id, ferr := f.findRuleset(ctx); ferr == nil && id != 0 {
				return f.enableRuleset(ctx, id)
			}
		}
		return 0, fmt.Errorf("creating ruleset %q: %w", f.rulesetName(), err)
	}
	_, resp, err := f.Client.Repositories.UpdateRuleset(ctx, f.Owner, f.Repo, id, f.desiredRuleset("active"))
	switch {
	case err == nil:
		return id, nil
	case resp != nil && resp.StatusCode == http.StatusNotFound && known != 0:
		// Deleted since it was recorded: find or create it again.
		return f.enableRuleset(ctx, 0)
	case denied(resp):
		return 0, fmt.Errorf("%w: enabling ruleset %d: %w", ErrNoAdmin, id, err)
	}
	return 0, fmt.Errorf("enabling ruleset %d: %w", id, err)
}

func (f *Freeze) disableRuleset(ctx context.Context, id int64) error {
	_, resp, err := f.Client.Repositories.UpdateRuleset(ctx, f.Owner, f.Repo, id, f.desiredRuleset("disabled"))
	if err != nil && resp != nil && resp.StatusCode == http.StatusNotFound {
		// Someone deleted it: nothing blocks any more, which is the goal.
		return nil
	}
	if err != nil {
		return fmt.Errorf("disabling ruleset %d (merges stay blocked until it is; run lift again, or disable it in the repository's settings): %w", id, err)
	}
	return nil
}
