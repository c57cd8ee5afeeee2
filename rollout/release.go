package rollout

import "time"

// Phase is where a release is in its life.
type Phase string

const (
	PhaseFreeze      Phase = "freeze"
	PhaseWarRoom     Phase = "warroom"
	PhasePreflight   Phase = "preflight"
	PhaseBlast       Phase = "blast"
	PhaseRedTeam     Phase = "redteam"
	PhaseGreenButton Phase = "green_button"
	PhaseGoNoGo      Phase = "go_nogo"
	PhaseStage       Phase = "stage"
	PhaseFirstNight  Phase = "first_night"
	PhaseComplete    Phase = "complete"
	PhaseRolledBack  Phase = "rolled_back"
	PhaseAborted     Phase = "aborted"
)

// Terminal reports whether nothing more happens in this phase.
func (p Phase) Terminal() bool {
	return p == PhaseComplete || p == PhaseRolledBack || p == PhaseAborted
}

// Release is the persisted state of one release. Everything the engine needs
// to resume after a restart is here.
type Release struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Revision int64  `json:"revision"` // set by the Store

	Phase Phase `json:"phase"`
	// Stage is the 0-based index into Plan.Stages while in PhaseStage.
	Stage int `json:"stage"`
	// T0 is the scheduled start of stage 1; zero runs steps back to back.
	T0           time.Time `json:"t0,omitempty"`
	Created      time.Time `json:"created"`
	PhaseStarted time.Time `json:"phase_started"`
	LastTick     time.Time `json:"last_tick,omitempty"`
	// Weight is the canary weight the engine last set (or means to set).
	Weight int `json:"weight"`

	IC    string       `json:"ic"`
	Steps []StepRecord `json:"steps,omitempty"`
	// Due lists the people's steps already announced as due, so each is
	// announced once.
	Due  []StepName `json:"due,omitempty"`
	Rows []Row      `json:"rows,omitempty"`
	// HoldUntil is when the holds in force end: the later of the IC's hold
	// and the trend hold. HoldReason says why.
	HoldUntil  time.Time `json:"hold_until,omitempty"`
	HoldReason string    `json:"hold_reason,omitempty"`
	// ManualHoldUntil is the IC's hold; a trend hold never shortens it.
	ManualHoldUntil time.Time `json:"manual_hold_until,omitempty"`
	ManualReason    string    `json:"manual_reason,omitempty"`
	// TrendHoldUntil is the hold a Rising signal started.
	TrendHoldUntil time.Time `json:"trend_hold_until,omitempty"`
	TrendReason    string    `json:"trend_reason,omitempty"`
	// CleanSince is when the current run of all-Pass ticks began; the dwell
	// counts from it, so a stage never proceeds on a dwell with gaps.
	CleanSince time.Time `json:"clean_since,omitempty"`
	// PlanHash identifies the plan the release was started with; a process
	// with another plan refuses to resume it.
	PlanHash string `json:"plan_hash"`
	// Undelivered are notifications and evidence writes that kept failing;
	// they are retried at each step without blocking the release.
	Undelivered []Effect        `json:"undelivered,omitempty"`
	ErrorStreak map[string]int  `json:"error_streak,omitempty"`
	Holds       int             `json:"holds"`
	Paged       bool            `json:"paged,omitempty"`
	Last        Decision        `json:"last"`
	Rollback    *RollbackRecord `json:"rollback,omitempty"`
	AbortReason string          `json:"abort_reason,omitempty"`
	// StageStarts records when each stage began (index = stage), so reports
	// written later still know.
	StageStarts []time.Time `json:"stage_starts,omitempty"`
	Snapshots   int         `json:"snapshots"` // first-night snapshots taken
	// Seq numbers side effects; an effect's idempotency key is ID/Seq.
	Seq     int        `json:"seq"`
	Pending []Effect   `json:"pending,omitempty"`
	Log     []LogEntry `json:"log,omitempty"`
	// Commands are the IDs of applied commands, so a repeat is ignored.
	Commands []string  `json:"commands,omitempty"`
	Ended    time.Time `json:"ended,omitempty"`
}

// StepRecord is the outcome of a timeline step.
type StepRecord struct {
	Name   StepName   `json:"name"`
	Status GateStatus `json:"status"`
	Detail string     `json:"detail,omitempty"`
	By     string     `json:"by,omitempty"`
	At     time.Time  `json:"at"`
}

// RollbackRecord is why and when a release rolled back.
type RollbackRecord struct {
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"`
	Stage   int       `json:"stage"` // 1-based stage, 0 = before stage 1 or first night
	Phase   Phase     `json:"phase"` // the phase it rolled back from
	Weight  int       `json:"weight"`
	Signals []string  `json:"signals,omitempty"`
	By      string    `json:"by"`
}

// LogEntry is one line of the war-room minutes: who did what and when.
type LogEntry struct {
	At   time.Time `json:"at"`
	User string    `json:"user"`
	Kind LogKind   `json:"kind"`
	Text string    `json:"text"`
}

// LogKind classifies a war-room log line.
type LogKind string

const (
	LogCommand  LogKind = "command"  // a person's accepted command
	LogRefused  LogKind = "refused"  // a person's refused command, with why
	LogDecision LogKind = "decision" // the engine's decision or action
	LogSystem   LogKind = "system"   // a timeline step or anything else
)

// CurrentStage returns the plan's stage the release is in, 1-based, or 0.
func (r *Release) CurrentStage() int {
	if r.Phase == PhaseStage {
		return r.Stage + 1
	}
	return 0
}

// StepRecord returns the record of a timeline step, if it ran.
func (r *Release) StepRecord(name StepName) (StepRecord, bool) {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		if r.Steps[i].Name == name {
			return r.Steps[i], true
		}
	}
	return StepRecord{}, false
}
