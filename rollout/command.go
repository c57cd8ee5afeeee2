package rollout

import (
	"fmt"
	"strings"
	"time"
)

// CommandKind names what a person asks of a release.
type CommandKind string

const (
	CmdPromote  CommandKind = "promote"  // next stage (IC, only on Proceed)
	CmdHold     CommandKind = "hold"     // hold for a duration (IC)
	CmdResume   CommandKind = "resume"   // end a hold (IC)
	CmdRollback CommandKind = "rollback" // weight to 0 now (IC)
	CmdGo       CommandKind = "go"       // the IC's recorded GO at go/no-go
	CmdAbort    CommandKind = "abort"    // NO-GO: stop before any traffic moves (IC)
	CmdReview   CommandKind = "review"   // the red-team review is done (anyone; recorded)
	CmdHandover CommandKind = "ic"       // hand command to Target (IC)
	// CmdTrigger is a firing auto-rollback alert pushed by Alertmanager's
	// webhook: it rolls back at once, like a trigger seen by polling.
	CmdTrigger CommandKind = "trigger"
	// CmdNote records in the war-room log what a front end decided by
	// itself (a refusal in Slack): Reason is the line, Target its LogKind
	// ("refused" or "command"). It changes nothing else.
	CmdNote CommandKind = "note"
)

// TriggerUser is the user a pushed trigger is recorded under.
const TriggerUser = "alertmanager"

// Command is a person's request. ID makes it idempotent: a command seen
// twice is applied once.
type Command struct {
	ID       string        `json:"id"`
	Kind     CommandKind   `json:"kind"`
	User     string        `json:"user"`
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	Target   string        `json:"target,omitempty"`
	At       time.Time     `json:"at"`
	// Manager is set by a front end that has verified the user is a
	// release manager, who may roll back and hand over command too.
	Manager bool `json:"manager,omitempty"`
}

func (c Command) String() string {
	var b strings.Builder
	b.WriteString(string(c.Kind))
	if c.Target != "" {
		b.WriteString(" " + c.Target)
	}
	if c.Duration > 0 {
		b.WriteString(" " + c.Duration.String())
	}
	if c.Reason != "" {
		fmt.Fprintf(&b, " %q", c.Reason)
	}
	return b.String()
}

// RefusedError says why a command was not applied. Nothing changed except
// the war-room log, which records the refusal.
type RefusedError struct {
	Command Command
	Why     string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s refused: %s", e.Command.Kind, e.Why)
}
