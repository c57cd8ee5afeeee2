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
	Mode    string      `json:"mode"`
	Phase   FreezePhase `json:"phase"`
	Started time.Time   `json:"started"`
	Lifted  time.Time   `json:"lifted,omitzero"`

	LabelReady bool `json:"label_ready"`
	// NextPage is the next page of open PRs to list; 0 once all are listed.
	NextPage int       `json:"next_page"`
	Listed   bool      `json:"listed"`
	PRs      []PRState `json:"prs"`
}

// PRState is one pull request's part in the freeze.
type PRState struct {
	Number  int    `json:"number"`
	HeadSHA string `json:"head_sha"`
	// HadLabel: a person had labelled it before the freeze; lift leaves it.
	HadLabel      bool `json:"had_label,omitempty"`
	LabelAdded    bool `json:"label_added,omitempty"`
	StatusSet     bool `json:"status_set,omitempty"`
	LabelRemoved  bool `json:"label_removed,omitempty"`
	StatusCleared bool `json:"status_cleared,omitempty"`
}

// Progress keeps a FreezeState durably. Load of a never-saved state returns
// the zero FreezeState and no error.
type Progress interface {
	Load(ctx context.Context) (FreezeState, error)
	Save(ctx context.Context, s FreezeState) error
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

// Save implements Progress.
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
