package rollout

import "time"

// EventKind says what an Event announces.
type EventKind string

const (
	EventPhase    EventKind = "phase"    // a timeline step or phase began or ended
	EventStage    EventKind = "stage"    // a canary stage began
	EventRow      EventKind = "row"      // a tick's table row
	EventHold     EventKind = "hold"     // the release is holding
	EventRollback EventKind = "rollback" // the release rolled back
	EventPage     EventKind = "page"     // the IC must act
	EventCommand  EventKind = "command"  // a person's command, accepted or refused
	EventSnapshot EventKind = "snapshot" // a first-night snapshot
	EventDone     EventKind = "done"     // the release ended; Text is the one-liner
	EventDue      EventKind = "due"      // a person's step (Step) is due: the review at T-5, the GO at T-0
)

// Event is what a Notifier announces.
type Event struct {
	Kind EventKind `json:"kind"`
	// Release is the release's ID (one version may be released twice).
	Release string    `json:"release"`
	Version string    `json:"version"`
	At      time.Time `json:"at"`
	Phase   Phase     `json:"phase"`
	Stage   int       `json:"stage,omitempty"`
	Weight  int       `json:"weight"`
	Text    string    `json:"text"`
	Row     *Row      `json:"row,omitempty"`
	// IC is the Incident Commander when the event happened.
	IC string `json:"ic,omitempty"`
	// Step, Status and Detail say which timeline step a phase or due event
	// is about and how it ended, so a notifier need not parse Text.
	Step   StepName   `json:"step,omitempty"`
	Status GateStatus `json:"status,omitempty"`
	Detail string     `json:"detail,omitempty"`
	// User is who gave the command of an EventCommand (or recorded the step
	// of an EventPhase); Detail then holds why it was refused, if it was.
	User string `json:"user,omitempty"`
	// Command is the kind of the command an EventCommand is about.
	Command CommandKind `json:"command,omitempty"`
}

// EffectKind names a side effect.
type EffectKind string

const (
	EffectWeight   EffectKind = "weight"
	EffectNotify   EffectKind = "notify"
	EffectEvidence EffectKind = "evidence"
)

// Effect is a side effect the engine decided on. It is persisted with the
// release before it is carried out, and carried out again after a restart if
// it was not marked done; Key lets the adapter recognise a repeat.
type Effect struct {
	Key    string     `json:"key"`
	Kind   EffectKind `json:"kind"`
	Weight int        `json:"weight,omitempty"`
	Event  *Event     `json:"event,omitempty"`
	File   string     `json:"file,omitempty"`
	Data   []byte     `json:"data,omitempty"`
}
