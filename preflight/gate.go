package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/canarybot/canarybot/rollout"
)

// Gate is the preflight as the engine's pre-canary step: it runs the checks
// for the release's version, writes preflight.txt and the checks' evidence,
// and passes only when every check passed. A check that cannot run makes
// it fail: an unproven check is a NO-GO.
type Gate struct {
	// Checks to run; nil means DefaultChecks().
	Checks []Check
	// Options for the run; Version is taken from the release and Evidence
	// must be set.
	Options Options
}

var _ rollout.Gate = (*Gate)(nil)

func (g *Gate) checks() []Check {
	if g.Checks == nil {
		return DefaultChecks()
	}
	return g.Checks
}

// Produces lists the evidence files the gate writes for version.
func (g *Gate) Produces(version string) []string { return Produces(g.checks(), version) }

// Run runs the preflight for r. Running it again reruns the checks and
// rewrites their evidence, which is the same files under the same names.
// The error is for a gate that cannot run at all (invalid checks, no
// evidence store, preflight.txt not written); failed checks are a
// GateFailed result.
func (g *Gate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	if g.Options.Evidence == nil {
		return rollout.GateResult{}, errors.New("preflight: the gate has no evidence store to write preflight.txt to")
	}
	o := g.Options
	o.Version = r.Version
	rep, err := Run(ctx, g.checks(), o)
	if err != nil {
		return rollout.GateResult{}, fmt.Errorf("preflight: %w", err)
	}
	if err := o.Evidence.Write(ctx, SummaryFile, rep.Text()); err != nil {
		return rollout.GateResult{}, fmt.Errorf("preflight: writing %s: %w", SummaryFile, err)
	}
	if rep.Passed() {
		return rollout.GateResult{Status: rollout.GatePassed, Detail: rep.Summary()}, nil
	}
	return rollout.GateResult{
		Status: rollout.GateFailed,
		Detail: "NO-GO: preflight " + rep.Summary() + ": " + strings.Join(rep.Problems(), "; "),
	}, nil
}
