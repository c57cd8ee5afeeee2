package forge

import (
	"fmt"
	"strings"
	"time"
)

// Summary counts what a freeze has done, from its recorded state.
type Summary struct {
	Version, Owner, Repo, Label, Mode string
	Phase                             FreezePhase
	Started, Lifted                   time.Time
	// Listed is false while open PRs are still being listed.
	Listed bool
	// PRs is the open PRs the freeze knows of.
	PRs int
	// LabelsAdded by the freeze; AlreadyLabelled by a person before it.
	LabelsAdded, AlreadyLabelled int
	StatusesSet                  int
	LabelsRemoved                int
	StatusesCleared              int

	prs []PRState
}

func summarize(st FreezeState) Summary {
	s := Summary{
		Version: st.Version, Owner: st.Owner, Repo: st.Repo, Label: st.Label, Mode: st.Mode,
		Phase: st.Phase, Started: st.Started, Lifted: st.Lifted, Listed: st.Listed,
		PRs: len(st.PRs), prs: append([]PRState(nil), st.PRs...),
	}
	for _, p := range st.PRs {
		if p.LabelAdded {
			s.LabelsAdded++
		}
		if p.HadLabel {
			s.AlreadyLabelled++
		}
		if p.StatusSet {
			s.StatusesSet++
		}
		if p.LabelRemoved {
			s.LabelsRemoved++
		}
		if p.StatusCleared {
			s.StatusesCleared++
		}
	}
	return s
}

// Blocked is the number of PRs whose merge the freeze blocks now.
func (s Summary) Blocked() int {
	if s.Phase == PhaseLifted {
		return 0
	}
	return s.StatusesSet - s.StatusesCleared
}

// Line is the one-line account for a terminal or chat.
func (s Summary) Line() string {
	if s.Phase == PhaseNone {
		return "no freeze recorded"
	}
	listing := ""
	if !s.Listed {
		listing = " (still listing PRs)"
	}
	line := fmt.Sprintf("freeze %s on %s/%s: %s, mode %s; %d open PRs%s: %d labelled by the freeze, %d already labelled, %d failing statuses set",
		s.Version, s.Owner, s.Repo, s.Phase, s.Mode, s.PRs, listing, s.LabelsAdded, s.AlreadyLabelled, s.StatusesSet)
	if s.Phase == PhaseLifting || s.Phase == PhaseLifted {
		line += fmt.Sprintf("; lift: %d labels removed, %d kept (a person's), %d statuses set to success", s.LabelsRemoved, s.AlreadyLabelled, s.StatusesCleared)
	}
	return line
}

// Text is the evidence file freeze_<version>.txt: the counts, then one line
// per PR.
func (s Summary) Text() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "canarybot merge freeze\nversion: %s\nrepository: %s/%s\nlabel: %s\nmode: %s (a failing commit status on each PR's head; branch protection must require it)\nphase: %s\n",
		s.Version, s.Owner, s.Repo, s.Label, s.Mode, s.Phase)
	if !s.Started.IsZero() {
		fmt.Fprintf(&b, "started: %s\n", s.Started.Format(time.RFC3339))
	}
	if !s.Lifted.IsZero() {
		fmt.Fprintf(&b, "lifted: %s\n", s.Lifted.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "open PRs: %d (all listed: %t)\nlabels added: %d\nalready labelled by a person: %d\nstatuses set to failure: %d\nlabels removed at lift: %d\nstatuses set to success at lift: %d\n\n",
		s.PRs, s.Listed, s.LabelsAdded, s.AlreadyLabelled, s.StatusesSet, s.LabelsRemoved, s.StatusesCleared)
	for _, p := range s.prs {
		label := "not yet labelled"
		switch {
		case p.HadLabel:
			label = "label was already there (kept at lift)"
		case p.LabelRemoved:
			label = "label added, removed at lift"
		case p.LabelAdded:
			label = "label added"
		}
		status := "no status yet"
		switch {
		case p.StatusCleared:
			status = "status success"
		case p.StatusSet:
			status = "status failure"
		}
		fmt.Fprintf(&b, "#%d %s: %s; %s\n", p.Number, short(p.HeadSHA), label, status)
	}
	return []byte(b.String())
}
