package forge_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
	"github.com/canarybot/canarybot/rollout"
)

type memEvidence struct {
	mu    sync.Mutex
	files map[string]string
}

func (m *memEvidence) Write(ctx context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string]string{}
	}
	m.files[name] = string(data)
	return nil
}

func (m *memEvidence) get(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files[name]
}

// TestFreezeGate: the T-30 step starts the freeze once (a rerun after a
// crash calls nothing), the end of a clean first night lifts it, and a
// rolled-back release keeps it.
func TestFreezeGate(t *testing.T) {
	var _ rollout.Gate = (*forge.FreezeGate)(nil)
	for _, tc := range []struct {
		end       rollout.Phase
		wantLift  bool
		wantLabel int // labels left on the PRs
	}{
		{rollout.PhaseComplete, true, 0},
		{rollout.PhaseRolledBack, false, 3},
		{rollout.PhaseFirstNight, false, 3},
	} {
		t.Run(string(tc.end), func(t *testing.T) {
			fake := forgetest.New(t, "acme", "exchange", 3)
			var s sleeps
			ev := &memEvidence{}
			g := &forge.FreezeGate{Freeze: newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json")), Evidence: ev}
			r := &rollout.Release{ID: "r1", Version: "v1.4.0", Phase: rollout.PhaseFreeze}
			ctx := context.Background()
			res, err := g.Run(ctx, r)
			if err != nil || res.Status != rollout.GatePassed || !strings.Contains(res.Detail, "3 open PRs") {
				t.Fatalf("run: %+v, %v", res, err)
			}
			calls := fake.TotalCalls()
			if _, err := g.Run(ctx, r); err != nil || fake.TotalCalls() != calls {
				t.Errorf("rerun after a restart: %v, %d calls", err, fake.TotalCalls()-calls)
			}
			if !strings.Contains(ev.get("freeze_v1.4.0.txt"), "phase: frozen") {
				t.Errorf("evidence:\n%s", ev.get("freeze_v1.4.0.txt"))
			}
			r.Phase = tc.end
			lifted, err := g.LiftAfterFirstNight(ctx, r)
			if err != nil || lifted != tc.wantLift {
				t.Fatalf("lift after %s: %t, %v", tc.end, lifted, err)
			}
			left := 0
			for i := 1; i <= 3; i++ {
				left += len(fake.PRLabels(i))
			}
			if left != tc.wantLabel {
				t.Errorf("%d labels left, want %d", left, tc.wantLabel)
			}
			if tc.wantLift && !strings.Contains(ev.get("freeze_v1.4.0.txt"), "phase: lifted") {
				t.Errorf("evidence after the lift:\n%s", ev.get("freeze_v1.4.0.txt"))
			}
		})
	}

	// Another release's freeze in force: the step fails (a NO-GO).
	fake := forgetest.New(t, "acme", "exchange", 1)
	var s sleeps
	path := filepath.Join(t.TempDir(), "f.json")
	f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), path)
	if _, err := f.Start(context.Background(), "v1.3.9"); err != nil {
		t.Fatal(err)
	}
	g := &forge.FreezeGate{Freeze: f}
	if _, err := g.Run(context.Background(), &rollout.Release{Version: "v1.4.0"}); err == nil {
		t.Error("the gate passed while v1.3.9's freeze is in force")
	}
}
