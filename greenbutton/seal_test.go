package greenbutton

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/rollout"
)

// TestSeal: the IC's decision is added to the go/no-go record and the
// record is signed again; a repeat replaces the decision, never appends a
// second one; without a green-button record the seal says nothing was
// checked, and an ephemeral key says UNATTESTED and leaves its public half.
func TestSeal(t *testing.T) {
	at := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	goRelease := &rollout.Release{Version: "v1.4.0", IC: "alice", Phase: rollout.Phase(rollout.StepGoNoGo),
		Steps: []rollout.StepRecord{{Name: rollout.StepGoNoGo, Status: rollout.GatePassed, Detail: "GO", By: "alice", At: at}}}
	noGo := &rollout.Release{Version: "v1.4.0", IC: "alice", Phase: rollout.PhaseAborted, AbortReason: "NO-GO: preflight failed: db unreachable", Ended: at,
		Log: []rollout.LogEntry{{At: at, User: "bob", Kind: rollout.LogDecision, Text: "ABORTED: NO-GO: preflight failed: db unreachable"}}}
	tests := []struct {
		name      string
		rel       *rollout.Release
		prior     string // the green button's record; "" for none
		realKey   bool
		wantLines []string
	}{
		{"GO added to the green button's record", goRelease, "go/no-go record for v1.4.0\ndecision: GO (5/5 gates passed)\n", true,
			[]string{"decision: GO (5/5 gates passed)", "--- the IC's decision ---", "decision: GO\n", "by:       alice", "at:       2026-03-04T10:00:00Z"}},
		{"NO-GO without a green button, ephemeral key", noGo, "", false,
			[]string{"green button: not run (not configured here)", "decision: NO-GO: NO-GO: preflight failed: db unreachable", "by:       bob", "UNATTESTED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := evidence.Open(t.TempDir(), "v1.4.0")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			name := provenance.RecordName("v1.4.0")
			if tt.prior != "" {
				if err := ev.Write(ctx, name, []byte(tt.prior)); err != nil {
					t.Fatal(err)
				}
			}
			s := &Seal{Evidence: ev, Read: func(_ context.Context, _ *rollout.Release, n string) ([]byte, error) {
				return os.ReadFile(filepath.Join(ev.Path(), n))
			}}
			var pub []byte
			if tt.realKey {
				s.Key, pub = signingKey(t)
			}
			for range 2 {
				res, err := s.Run(ctx, tt.rel)
				if err != nil || res.Status != rollout.GatePassed {
					t.Fatalf("Run: %+v, %v", res, err)
				}
			}
			record := read(t, ev.Path(), name)
			if !tt.realKey {
				pub = read(t, ev.Path(), sealKeyName("v1.4.0"))
			}
			if _, err := provenance.VerifyRecord(ctx, read(t, ev.Path(), provenance.RecordSignatureName("v1.4.0")), pub, record); err != nil {
				t.Fatalf("sealed record does not verify: %v", err)
			}
			text := string(record)
			for _, want := range tt.wantLines {
				if !strings.Contains(text, want) {
					t.Errorf("record lacks %q:\n%s", want, text)
				}
			}
			if n := strings.Count(text, icSection); n != 1 {
				t.Errorf("record has %d IC sections after two runs, want 1:\n%s", n, text)
			}
			if rep, err := evidence.Verify(ev.Path()); err != nil || len(rep.Problems) > 0 {
				t.Errorf("evidence does not verify: %v %+v", err, rep.Problems)
			}
		})
	}
}

// TestSealNeedsDecision: before the GO there is nothing to record.
func TestSealNeedsDecision(t *testing.T) {
	ev, err := evidence.Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Seal{Evidence: ev, Read: func(context.Context, *rollout.Release, string) ([]byte, error) { return nil, os.ErrNotExist }}
	res, err := s.Run(context.Background(), &rollout.Release{Version: "v1.4.0", Phase: rollout.Phase(rollout.StepGoNoGo)})
	if err != nil || res.Status != rollout.GateFailed {
		t.Fatalf("seal before any decision: %+v, %v; want failed", res, err)
	}
}
