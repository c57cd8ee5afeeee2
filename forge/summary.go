package forge

import (
	"fmt"
	"strings"
	"time"
)

// Summary counts what a freeze has done, from its recorded state.
type Summary struct {
	Version, Owner, Repo, Label, Mode string
	// ModeReason says why the mode is in force.
	ModeReason      string
	Phase           FreezePhase
	Started, Lifted time.Time
	// RulesetID is the blocking ruleset in ModeRulesets; RulesetOn says it
	// blocks now.
	RulesetID int64
	RulesetOn bool
	// Listed is false while open PRs are still being listed.
	Listed bool
	// PRs is the PRs the freeze knows of.
	PRs int
	// LabelsAdded by the freeze; AlreadyLabelled by a person before it.
	LabelsAdded, AlreadyLabelled int
	// StatusesSet is the PRs given a failing status (ModeStatuses).
	StatusesSet     int
	LabelsRemoved   int
	StatusesCleared int
	// ViaWebhook is the PRs the freeze learnt of from a webhook while frozen.
	ViaWebhook int

	prs []PRState
}

func summarize(st FreezeState) Summary {
	s := Summary{
		Version: st.Version, Owner: st.Owner, Repo: st.Repo, Label: st.Label, Mode: st.Mode, ModeReason: st.ModeReason,
		Phase: st.Phase, Started: st.Started, Lifted: st.Lifted, Listed: st.Listed,
		RulesetID: st.RulesetID, RulesetOn: st.RulesetOn && !st.RulesetOff,
		PRs: len(st.PRs), prs: append([]PRState(nil), st.PRs...),
	}
	for _, p := range st.PRs {
		if p.LabelAdded {
			s.LabelsAdded++
		}
		if p.HadLabel {
			s.AlreadyLabelled++
		}
		if p.FailedSHA != "" {
			s.StatusesSet++
		}
		if p.LabelRemoved {
			s.LabelsRemoved++
		}
		if p.ClearedSHA != "" {
			s.StatusesCleared++
		}
		if p.Via == "webhook" || p.Via == "sync" {
			s.ViaWebhook++
		}
	}
	return s
}

// Blocked is the number of PRs whose merge the freeze blocks now, as far as
// it knows: all of them while its ruleset is on.
func (s Summary) Blocked() int {
	switch {
	case s.Phase == PhaseLifted || s.Phase == PhaseNone:
		return 0
	case s.Mode == ModeRulesets && s.RulesetOn:
		return s.PRs
	}
	n := 0
	for _, p := range s.prs {
		if p.FailedSHA != "" && p.FailedSHA == p.HeadSHA && p.ClearedSHA != p.HeadSHA {
			n++
		}
	}
	return n
}

// ToLabel is the PRs the freeze still has to label.
func (s Summary) ToLabel() int {
	n := 0
	for _, p := range s.prs {
		if !p.HadLabel && !p.LabelAdded {
			n++
		}
	}
	return n
}

func (s Summary) modeText() string {
	switch s.Mode {
	case ModeRulesets:
		state := "on"
		if !s.RulesetOn {
			state = "off"
		}
		return fmt.Sprintf("rulesets (ruleset %d, %s, requires %s on the default branch)", s.RulesetID, state, DefaultStatusContext)
	case ModeStatuses:
		return fmt.Sprintf("statuses (a failing status on each PR's head; branch protection must require it — %s)", s.ModeReason)
	}
	return "not decided yet"
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
	line := fmt.Sprintf("freeze %s on %s/%s: %s, mode %s; %d open PRs%s: labelling %d/%d done (%d labelled by the freeze, %d already labelled), %d failing statuses set, %d blocked",
		s.Version, s.Owner, s.Repo, s.Phase, s.modeText(), s.PRs, listing,
		s.PRs-s.ToLabel(), s.PRs, s.LabelsAdded, s.AlreadyLabelled, s.StatusesSet, s.Blocked())
	if s.ViaWebhook > 0 {
		line += fmt.Sprintf(", %d PRs joined through the webhook", s.ViaWebhook)
	}
	if s.Phase == PhaseLifting || s.Phase == PhaseLifted {
		line += fmt.Sprintf("; lift: %d labels removed, %d kept (a person's), %d statuses set to success", s.LabelsRemoved, s.AlreadyLabelled, s.StatusesCleared)
	}
	return line
}

// Text is the evidence file freeze_<version>.txt: the counts, then one line
// per PR.
func (s Summary) Text() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "canarybot merge freeze\nversion: %s\nrepository: %s/%s\nlabel: %s\nmode: %s\nphase: %s\n",
		s.Version, s.Owner, s.Repo, s.Label, s.modeText(), s.Phase)
	if s.ModeReason != "" {
		fmt.Fprintf(&b, "mode chosen because: %s\n", s.ModeReason)
	}
	if !s.Started.IsZero() {
		fmt.Fprintf(&b, "started: %s\n", s.Started.Format(time.RFC3339))
	}
	if !s.Lifted.IsZero() {
		fmt.Fprintf(&b, "lifted: %s\n", s.Lifted.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "open PRs: %d (all listed: %t)\nlabels added: %d\nalready labelled by a person: %d\nstatuses set to failure: %d\njoined through the webhook: %d\nlabels removed at lift: %d\nstatuses set to success at lift: %d\n\n",
		s.PRs, s.Listed, s.LabelsAdded, s.AlreadyLabelled, s.StatusesSet, s.ViaWebhook, s.LabelsRemoved, s.StatusesCleared)
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
		status := "no status"
		switch {
		case p.ClearedSHA != "":
			status = "status success on " + short(p.ClearedSHA)
		case p.FailedSHA != "":
			status = "status failure on " + short(p.FailedSHA)
		}
		via := ""
		if p.Via != "" && p.Via != "start" {
			via = " (via " + p.Via + ")"
		}
		fmt.Fprintf(&b, "#%d %s%s: %s; %s\n", p.Number, short(p.HeadSHA), via, label, status)
	}
	return []byte(b.String())
}
