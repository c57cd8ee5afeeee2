package rollout

import (
	"fmt"
	"slices"
	"time"
)

// Apply carries out a person's command. A refused command changes nothing
// but the war-room log and returns a *RefusedError saying why; a command
// whose ID was already applied is ignored.
func (m *Machine) Apply(r *Release, c Command, now time.Time) error {
	if c.ID != "" && slices.Contains(r.Commands, c.ID) {
		return nil
	}
	if c.ID != "" {
		r.Commands = append(r.Commands, c.ID)
		if len(r.Commands) > maxRememberedCommands {
			r.Commands = r.Commands[len(r.Commands)-maxRememberedCommands:]
		}
	}
	if c.Kind == CmdNote {
		kind := LogCommand
		if c.Target == string(LogRefused) {
			kind = LogRefused
		}
		m.log(r, now, c.User, kind, c.Reason)
		return nil
	}
	if why := m.refusal(r, c, now); why != "" {
		m.log(r, now, c.User, LogRefused, c.String()+" — refused: "+why)
		m.notifyEvent(r, now, Event{Kind: EventCommand, Text: fmt.Sprintf("%s: `%s` refused: %s", c.User, c.String(), why), User: c.User, Detail: why, Command: c.Kind})
		return &RefusedError{Command: c, Why: why}
	}
	m.log(r, now, c.User, LogCommand, c.String())
	m.notifyEvent(r, now, Event{Kind: EventCommand, Text: fmt.Sprintf("%s: `%s`", c.User, c.String()), User: c.User, Command: c.Kind})
	switch c.Kind {
	case CmdPromote:
		m.promote(r, now, c.User)
	case CmdHold:
		d := c.Duration
		if d <= 0 {
			d = m.Plan.Hold
		}
		r.ManualHoldUntil = now.Add(d)
		r.ManualReason = fmt.Sprintf("held by %s until %s", c.User, r.ManualHoldUntil.UTC().Format("15:04"))
		if c.Reason != "" {
			r.ManualReason += ": " + c.Reason
		}
		r.setHold()
		r.Holds++
		r.Last = Decision{Kind: Hold, Reason: r.HoldReason}
		m.notify(r, now, EventHold, "HOLD: "+r.HoldReason, nil)
	case CmdResume:
		r.clearHolds()
		r.Last = Decision{}
	case CmdRollback:
		reason := c.Reason
		if reason == "" {
			reason = "manual"
		}
		m.rollback(r, now, c.User, reason, nil)
	case CmdAbort:
		reason := c.Reason
		if reason == "" {
			reason = "NO-GO"
		}
		m.abort(r, now, c.User, reason)
	case CmdReview, CmdGo:
		step := StepRedTeam
		if c.Kind == CmdGo {
			step = StepGoNoGo
		}
		detail := c.Reason
		if detail == "" && c.Kind == CmdGo {
			detail = "GO"
		}
		r.Steps = append(r.Steps, StepRecord{Name: step, Status: GatePassed, Detail: detail, By: c.User, At: now})
	case CmdTrigger:
		m.rollback(r, now, TriggerUser+" (webhook)", "trigger firing: "+c.Reason, nil)
	case CmdHandover:
		r.IC = c.Target
		m.notifyEvent(r, now, Event{Kind: EventCommand, Text: fmt.Sprintf("%s is now the Incident Commander", c.Target), User: c.User, Command: CmdHandover})
	}
	return nil
}

// CommandTTL is how long a queued command stays valid: a promote queued
// while no engine ran must not fire hours later.
const CommandTTL = 10 * time.Minute

// maxRememberedCommands bounds the command IDs kept for deduplication.
const maxRememberedCommands = 200

// refusal says why a command cannot be applied now, or "" if it can.
func (m *Machine) refusal(r *Release, c Command, now time.Time) string {
	if r.Phase.Terminal() {
		return fmt.Sprintf("the release is %s", r.Phase)
	}
	if !c.At.IsZero() && now.Sub(c.At) > CommandTTL {
		return fmt.Sprintf("it was queued at %s, more than %s ago, while no engine was applying commands; give it again if it still stands",
			c.At.UTC().Format(time.RFC3339), CommandTTL)
	}
	icOnly := func() string {
		if c.User != r.IC {
			return fmt.Sprintf("only the Incident Commander (%s) may %s", r.IC, c.Kind)
		}
		return ""
	}
	canary := r.Phase == PhaseStage || r.Phase == PhaseFirstNight
	switch c.Kind {
	case CmdPromote:
		if why := icOnly(); why != "" {
			return why
		}
		if r.Phase != PhaseStage {
			return fmt.Sprintf("nothing to promote in phase %s", r.Phase)
		}
		if r.Last.Kind != Proceed {
			last := string(r.Last.Kind)
			if last == "" {
				last = "not decided yet"
			}
			return fmt.Sprintf("the last decision is %s (%s); promote only on Proceed", last, r.Last.Reason)
		}
	case CmdHold, CmdResume:
		if why := icOnly(); why != "" {
			return why
		}
		if !canary {
			return fmt.Sprintf("no canary is running (phase %s)", r.Phase)
		}
		if c.Kind == CmdResume && !now.Before(r.HoldUntil) {
			return "the release is not holding"
		}
	case CmdRollback:
		if why := icOnly(); why != "" && !c.Manager {
			return why + " or a release manager"
		}
	case CmdAbort:
		if why := icOnly(); why != "" {
			return why
		}
		if canary {
			return "traffic has moved: use rollback"
		}
	case CmdGo:
		if why := icOnly(); why != "" {
			return why
		}
		if r.Phase != Phase(StepGoNoGo) {
			return fmt.Sprintf("the release is at %s, not at go/no-go", r.Phase)
		}
		if _, ok := r.StepRecord(StepGoNoGo); ok {
			return "GO is already recorded"
		}
	case CmdReview:
		if r.Phase != Phase(StepRedTeam) {
			return fmt.Sprintf("the release is at %s, not at the red-team review", r.Phase)
		}
		if _, ok := r.StepRecord(StepRedTeam); ok {
			return "the review is already recorded"
		}
	case CmdTrigger:
		if c.User != TriggerUser {
			return "triggers come only from Alertmanager's webhook"
		}
		if !canary {
			return fmt.Sprintf("no canary traffic to roll back (phase %s)", r.Phase)
		}
	case CmdHandover:
		if why := icOnly(); why != "" && !c.Manager {
			return why + " or a release manager"
		}
		if c.Target == "" {
			return "name the new IC"
		}
		if c.Target == r.IC {
			return c.Target + " is already the Incident Commander"
		}
	default:
		return fmt.Sprintf("unknown command %q", c.Kind)
	}
	return ""
}
