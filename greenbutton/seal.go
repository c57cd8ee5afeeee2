package greenbutton

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/rollout"
)

// Seal is the engine's go/no-go gate: it adds the IC's decision — GO with
// who and when, or the NO-GO that aborted the release — to the go/no-go
// record the green button wrote, and signs the record again. Without a
// green-button record it writes one that says no gate was checked, so a
// decision is never unrecorded.
type Seal struct {
	// Key signs the record; use the green button's key. Nil signs with an
	// ephemeral key whose public half is written beside the record, and the
	// record says UNATTESTED.
	Key *provenance.Key
	// Evidence receives the record and its signature; required.
	Evidence rollout.Evidence
	// Read returns a file of the release's evidence, an error matching
	// fs.ErrNotExist when there is none; required.
	Read func(ctx context.Context, r *rollout.Release, name string) ([]byte, error)
}

var _ rollout.Gate = (*Seal)(nil)

// icSection marks where the IC's decision starts, so a repeat after a
// restart replaces it instead of appending a second one.
const icSection = "\n--- the IC's decision ---\n"

// Run records r's go/no-go decision. It is idempotent: the decision
// section is rewritten, not appended again.
func (s *Seal) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	if s.Evidence == nil || s.Read == nil {
		return rollout.GateResult{}, fmt.Errorf("%w: the go/no-go seal needs the release's evidence", ErrNoEvidence)
	}
	decision, by, at, ok := icDecision(r)
	if !ok {
		return rollout.GateResult{Status: rollout.GateFailed, Detail: "no GO or NO-GO to record yet"}, nil
	}
	name := provenance.RecordName(r.Version)
	prior, err := s.Read(ctx, r, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		prior = []byte(fmt.Sprintf("go/no-go record for %s\ngreen button: not run (not configured here): no gate was checked\n", r.Version))
	case err != nil:
		return rollout.GateResult{}, fmt.Errorf("reading %s: %w", name, err)
	}
	if i := strings.Index(string(prior), icSection); i >= 0 {
		prior = prior[:i]
	}
	key := s.Key
	if key == nil {
		if key, err = provenance.GenerateEphemeral(); err != nil {
			return rollout.GateResult{}, err
		}
	}
	var b strings.Builder
	b.Write(prior)
	b.WriteString(icSection)
	fmt.Fprintf(&b, "decision: %s\n", decision)
	fmt.Fprintf(&b, "by:       %s\n", by)
	fmt.Fprintf(&b, "at:       %s\n", at.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "IC:       %s\n", r.IC)
	b.WriteString("steps:\n")
	for _, st := range r.Steps {
		fmt.Fprintf(&b, "  %-13s %-7s by %s at %s  %s\n", st.Name, st.Status, st.By, st.At.UTC().Format(time.RFC3339), oneLine(st.Detail))
	}
	if key.Ephemeral() {
		fmt.Fprintf(&b, "sealed with: %s — UNATTESTED: ephemeral; public key in %s\n", key, sealKeyName(r.Version))
		pub, err := key.PublicPEM()
		if err != nil {
			return rollout.GateResult{}, err
		}
		if err := s.Evidence.Write(ctx, sealKeyName(r.Version), pub); err != nil {
			return rollout.GateResult{}, err
		}
	} else {
		fmt.Fprintf(&b, "sealed with: %s\n", key)
	}
	record := []byte(b.String())
	sig, err := provenance.SignRecord(ctx, record, key)
	if err != nil {
		return rollout.GateResult{}, err
	}
	if err := s.Evidence.Write(ctx, name, record); err != nil {
		return rollout.GateResult{}, err
	}
	if err := s.Evidence.Write(ctx, provenance.RecordSignatureName(r.Version), sig); err != nil {
		return rollout.GateResult{}, err
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: fmt.Sprintf("%s by %s recorded and signed in %s", decision, by, name)}, nil
}

// sealKeyName holds the public half of an ephemeral sealing key. It is
// apart from the provenance's: a restart between the green button and the
// GO would otherwise replace the key the provenance verifies with.
func sealKeyName(version string) string { return provenance.RecordName(version) + ".pub.pem" }

// icDecision reads the decision from the release: the IC's recorded GO, or
// the NO-GO that aborted it (by whoever the war-room log says aborted it).
func icDecision(r *rollout.Release) (decision, by string, at time.Time, ok bool) {
	if r.Phase == rollout.PhaseAborted {
		by = "canarybot"
		for i := len(r.Log) - 1; i >= 0; i-- {
			if strings.HasPrefix(r.Log[i].Text, "ABORTED: ") {
				by = r.Log[i].User
				break
			}
		}
		return "NO-GO: " + r.AbortReason, by, r.Ended, true
	}
	rec, found := r.StepRecord(rollout.StepGoNoGo)
	if !found || rec.Status != rollout.GatePassed {
		return "", "", time.Time{}, false
	}
	decision = "GO"
	if rec.Detail != "" && rec.Detail != "GO" {
		decision += " (" + rec.Detail + ")"
	}
	return decision, rec.By, rec.At, true
}
