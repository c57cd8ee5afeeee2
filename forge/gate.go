package forge

import (
	"context"
	"errors"
	"fmt"

	"github.com/canarybot/canarybot/rollout"
)

// FreezeGate is the engine's freeze step (the runbook's T-30): it starts
// the freeze for the release's version. Run is idempotent — after a crash
// the engine runs the step again, and Start resumes or, once done, calls
// nothing.
type FreezeGate struct {
	Freeze *Freeze
	// Evidence receives freeze_<version>.txt after the start and the lift.
	Evidence rollout.Evidence
}

// Produces names the gate's evidence file.
func (g *FreezeGate) Produces(version string) []string {
	return []string{"freeze_" + version + ".txt"}
}

// Run implements rollout.Gate. A freeze that cannot be started (GitHub
// down past the Transport's retries, another release's freeze in force) is
// an error: the engine records the step failed, a NO-GO before traffic
// moves, since merges would not be blocked.
func (g *FreezeGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	sum, err := g.Freeze.Start(ctx, r.Version)
	if werr := g.write(ctx, r.Version, sum); werr != nil {
		err = errors.Join(err, werr)
	}
	if err != nil {
		return rollout.GateResult{}, fmt.Errorf("freeze: %w", err)
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: sum.Line()}, nil
}

// LiftAfterFirstNight lifts the freeze of r's version once r is complete
// (its first night closed clean). After a rollback, an abort, or while the
// release is still running, it leaves the freeze in force — the IC lifts
// it — and reports lifted false. It is idempotent: a lift already done
// calls nothing.
func (g *FreezeGate) LiftAfterFirstNight(ctx context.Context, r *rollout.Release) (lifted bool, err error) {
	if r.Phase != rollout.PhaseComplete {
		return false, nil
	}
	st, err := g.Freeze.Status(ctx)
	if err != nil {
		return false, err
	}
	if st.Version != r.Version || st.Phase == PhaseNone {
		// Not this release's freeze (none, or a later one): not ours to lift.
		return false, nil
	}
	sum, err := g.Freeze.Lift(ctx)
	if werr := g.write(ctx, r.Version, sum); werr != nil {
		err = errors.Join(err, werr)
	}
	if err != nil {
		return false, fmt.Errorf("lifting the freeze of %s after the first night: %w", r.Version, err)
	}
	return true, nil
}

func (g *FreezeGate) write(ctx context.Context, version string, sum Summary) error {
	if g.Evidence == nil || sum.Version != version {
		return nil
	}
	return g.Evidence.Write(ctx, "freeze_"+version+".txt", sum.Text())
}
