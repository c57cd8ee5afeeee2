package checks

import (
	"context"
	"fmt"
	"strings"

	"github.com/canarybot/canarybot/rollout"
)

// BlastGate is the timeline's blast-radius step (T-9): it probes the canary
// and writes micro_blast_<version>.log. A missed bound is a NO-GO.
type BlastGate struct {
	Options  BlastOptions
	Evidence rollout.Evidence
}

// Produces names the evidence file the step writes.
func (g *BlastGate) Produces(version string) []string {
	return []string{"micro_blast_" + version + ".log"}
}

// Run probes the canary. Probing twice after a restart is harmless: the
// probes only read.
func (g *BlastGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	res, err := Blast(ctx, g.Options)
	if err != nil {
		return rollout.GateResult{}, err
	}
	if err := g.Evidence.Write(ctx, "micro_blast_"+r.Version+".log", res.Log()); err != nil {
		return rollout.GateResult{}, err
	}
	if !res.Passed() {
		return rollout.GateResult{Status: rollout.GateFailed, Detail: strings.Join(res.Failures(), "; ")}, nil
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: fmt.Sprintf(
		"%d HTTP + %d WebSocket probes pass; p95 %s / %s", res.HTTP.Total, res.WS.Total, res.HTTP.P95, res.WS.P95)}, nil
}
