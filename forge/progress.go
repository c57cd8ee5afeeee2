package forge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FreezeState is what a freeze has done so far, saved after every call that
// changed something on GitHub so that an interrupted freeze resumes without
// repeating one.
type FreezeState struct {
	Version string      `json:"version"`
	Owner   string      `json:"owner"`
	Repo    string      `json:"repo"`
	Label   string      `json:"label"`
	Mode    string      `json:"mode"` // ModeRulesets or ModeStatuses; "" until decided
	Phase   FreezePhase `json:"phase"`
	Started time.Time   `json:"started"`
	Lifted  time.Time   `json:"lifted,omitzero"`
	// ModeReason says why the mode was chosen (e.g. the 403 that ruled
	// rulesets out).
	ModeReason string `json:"mode_reason,omitempty"`

	// RulesetID is the repository ruleset that blocks merges in
	// ModeRulesets; RulesetOn is set once it is active, RulesetOff once
	// the lift disabled it.
	RulesetID  int64 `json:"ruleset_id,omitempty"`
	RulesetOn  bool  `json:"ruleset_on,omitempty"`
	RulesetOff bool  `json:"ruleset_off,omitempty"`

	// LabelReady: the label exists and its description says a freeze is in
	// force (see Beacon). LabelCleared: the lift said it no longer is.
	LabelReady   bool `json:"label_ready"`
	LabelCleared bool `json:"label_cleared,omitempty"`
	// NextPage is the next page of open PRs to list; 0 once all are listed.
	NextPage int  `json:"next_page"`
	Listed   bool `json:"listed"`
	// LiftNextPage and LiftListed are the same for the lift's listing of
	// the PRs open then.
	LiftNextPage int       `json:"lift_next_page,omitempty"`
	LiftListed   bool      `json:"lift_listed,omitempty"`
	PRs          []PRState `json:"prs"`
}

// PRState is one pull request's part in the freeze.
type PRState struct {
	Number int `json:"number"`
	// HeadSHA is the PR's head as last seen (listed, or from a webhook).
	HeadSHA string `json:"head_sha"`
	// Via is how the freeze learnt of it: "start", "webhook", "sync" or
	// "lift" (opened during the freeze and not seen until the lift).
	Via string `json:"via,omitempty"`
	// HadLabel: a person had labelled it before the freeze; lift leaves it.
	HadLabel   bool `json:"had_label,omitempty"`
	LabelAdded bool `json:"label_added,omitempty"`
	// OriginChecked: lift read the label's history of a PR it had not seen
	// (see Freeze.labelledByBot).
	OriginChecked bool `json:"origin_checked,omitempty"`
	LabelRemoved  bool `json:"label_removed,omitempty"`
	// FailedSHA is the head that carries the freeze's failing status
	// (ModeStatuses); ClearedSHA the head the lift set to success.
	FailedSHA  string `json:"failed_sha,omitempty"`
	ClearedSHA string `json:"cleared_sha,omitempty"`
	// OpenAtLift: listed as open by the lift (only those get a success
	// status; a closed PR needs none).
	OpenAtLift bool `json:"open_at_lift,omitempty"`
}

func (s *FreezeState) pr(n int) *PRState {
	for i := range s.PRs {
		if s.PRs[i].Number == n {
			return &s.PRs[i]
		}
	}
	return nil
}

// Progress keeps a FreezeState durably. Load of a never-saved state returns
// the zero FreezeState and no error. Update applies fn to the saved state
// and saves the result, excluding other Updates meanwhile (a webhook and a
// running `freeze start` share one state); fn's error cancels the save.
type Progress interface {
	Load(ctx context.Context) (FreezeState, error)
	Update(ctx context.Context, fn func(*FreezeState) error) (FreezeState, error)
}

// FileProgress is a Progress in one JSON file, replaced atomically on each
// save so that a crash leaves the old or the new state, never half of one.
type FileProgress struct {
	Path string
}

// Load implements Progress.
func (p FileProgress) Load(ctx context.Context) (FreezeState, error) {
	var s FreezeState
	data, err := os.ReadFile(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("freeze progress: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("freeze progress %s is damaged (%w); move it away only if no freeze is in force, since it records which labels the freeze added", p.Path, err)
	}
	return s, nil
}

// Update implements Progress. The lock is an flock on Path+".lock", so it
// holds between processes (`canarybot serve` and a CLI) as well as within
// one.
func (p FileProgress) Update(ctx context.Context, fn func(*FreezeState) error) (FreezeState, error) {
	if err := os.MkdirAll(filepath.Dir(p.Path), 0o755); err != nil {
		return FreezeState{}, fmt.Errorf("freeze progress: %w", err)
	}
	unlock, err := lockFile(ctx, p.Path+".lock")
	if err != nil {
		return FreezeState{}, fmt.Errorf("freeze progress: locking %s: %w", p.Path, err)
	}
	defer unlock()
	s, err := p.Load(ctx)
	if err != nil {
		return s, err
	}
	if err := fn(&s); err != nil {
		return s, err
	}
	return s, p.Save(ctx, s)
}

// Save writes s, replacing what was there. Freeze uses Update.
func (p FileProgress) Save(ctx context.Context, s FreezeState) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("freeze progress: %w", err)
	}
	dir := filepath.Dir(p.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("freeze progress: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p.Path)+".*")
	if err != nil {
		return fmt.Errorf("freeze progress: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(append(data, '\n'))
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, p.Path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("freeze progress %s: %w", p.Path, werr)
	}
	return nil
}
