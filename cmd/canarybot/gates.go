package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// drill is the runbook's rollback dry run: it says each step a rollback
// would take, and touches nothing.
func drill(plan *rollout.Plan, version, stage, reason, router string, now time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "rollback drill (dry run) for %s of %s at %s\n", version, plan.Service, now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "reason: %s\nstage: %s\n\n", reason, stage)
	steps := []string{
		fmt.Sprintf("set the canary weight to 0 on %s (one change; read back to confirm)", router),
		"record the release as rolled back in the state store, before anything is announced",
		"write rollback_<timestamp>.txt with the stage, weight, reason and the last readings",
		"write the stage's rollout_stage_<weight>.txt and summary_stage_<weight>.txt",
		"announce the rollback in the war-room and page the IC",
		"write release_oneliner.txt and mini_rca_" + version + ".md",
		"keep the change freeze until the IC lifts it",
	}
	for i, s := range steps {
		fmt.Fprintf(&b, "[dry-run] step %d: would %s\n", i+1, s)
	}
	b.WriteString("\nnothing was changed: no traffic moved, no message posted, no state written.\n")
	return []byte(b.String())
}

// drillGate opens the demo's war-room (this terminal) and rehearses the
// rollback as a dry run, writing rollback_dryrun.txt.
type drillGate struct {
	evidence rollout.Evidence
	plan     *rollout.Plan
	router   string
	out      io.Writer
}

func (g *drillGate) Produces(version string) []string { return []string{"rollback_dryrun.txt"} }

func (g *drillGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	text := drill(g.plan, r.Version, "canary-25", "drill", g.router, r.PhaseStarted)
	if err := g.evidence.Write(ctx, "rollback_dryrun.txt", text); err != nil {
		return rollout.GateResult{}, err
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: "war-room open on this terminal; rollback drill rehearsed (rollback_dryrun.txt)"}, nil
}
