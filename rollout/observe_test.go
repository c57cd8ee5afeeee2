package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/rollout"
)

// trafficRenderer shows a row's traffic observation, so that a test can
// see whether the announced line was rendered with it.
type trafficRenderer struct{ textRenderer }

func (r trafficRenderer) TableRow(p *rollout.Plan, row rollout.Row) string {
	s := r.textRenderer.TableRow(p, row)
	if row.Traffic != nil {
		s += " traffic=" + row.Traffic.Status
	}
	return s
}

// cyclingObserver answers in turn: a mismatch, an error, and a share that
// is NaN (nothing counted).
type cyclingObserver struct {
	w     *world
	mu    sync.Mutex
	calls int
}

func (o *cyclingObserver) Observe(ctx context.Context, at time.Time) (rollout.TrafficObservation, error) {
	o.mu.Lock()
	o.calls++
	n := o.calls
	o.mu.Unlock()
	w, _ := o.w.Weight(ctx)
	switch n % 3 {
	case 1:
		return rollout.TrafficObservation{Weight: w, Observed: float64(w) + 10, Status: rollout.TrafficMismatch, Text: "observed more"}, nil
	case 2:
		return rollout.TrafficObservation{}, errors.New("share query failed:\n  connection refused")
	}
	return rollout.TrafficObservation{Weight: w, Observed: math.NaN(), Status: rollout.TrafficMatch}, nil
}

type decisionTrace []string

func traceOf(r *rollout.Release) decisionTrace {
	var out decisionTrace
	for _, row := range r.Rows {
		out = append(out, fmt.Sprintf("%s %s/%d w=%d %s", row.At.Format("15:04:05"), row.Phase, row.Stage, row.Weight, row.Decision.Kind))
	}
	return out
}

func runWith(t *testing.T, observer func(w *world) rollout.TrafficObserver) (*rollout.Release, *world) {
	t.Helper()
	plan := shortPlan()
	st, w := newMemStore(), newWorld()
	rn := newRunner(plan, st, w, clock.NewFake(t0), healthy(plan), scriptedIC{store: st, user: "alice"})
	rn.Machine.Render = trafficRenderer{}
	if observer != nil {
		rn.Observer = observer(w)
	}
	ctx := context.Background()
	if _, err := rn.Start(ctx, "rel", "v1.4.0", "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	r, err := rn.Run(ctx, "rel")
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// TestTrafficObservationOnlyAnnotates: an observer's mismatches, errors and
// NaN shares end up on every row and its announcement, and the release
// takes exactly the decisions it takes without an observer.
func TestTrafficObservationOnlyAnnotates(t *testing.T) {
	plain, _ := runWith(t, nil)
	observed, w := runWith(t, func(w *world) rollout.TrafficObserver { return &cyclingObserver{w: w} })
	if observed.Phase != rollout.PhaseComplete {
		t.Fatalf("phase %s with an observer, want complete", observed.Phase)
	}
	if a, b := strings.Join(traceOf(plain), "\n"), strings.Join(traceOf(observed), "\n"); a != b {
		t.Fatalf("the observer changed the decisions:\nwithout:\n%s\nwith:\n%s", a, b)
	}
	for _, row := range plain.Rows {
		if row.Traffic != nil {
			t.Fatalf("row at %s has a traffic observation without an observer", row.At)
		}
	}
	statuses := map[string]int{}
	for _, row := range observed.Rows {
		if row.Traffic == nil {
			t.Fatalf("row at %s has no traffic observation", row.At)
		}
		o := row.Traffic
		statuses[o.Status]++
		if math.IsNaN(o.Observed) || math.IsInf(o.Observed, 0) {
			t.Errorf("row at %s stores observed %v", row.At, o.Observed)
		}
		if o.Status == rollout.TrafficError && o.Text != "share query failed: connection refused" {
			t.Errorf("error observation text %q, want the error on one line", o.Text)
		}
	}
	for _, s := range []string{rollout.TrafficMismatch, rollout.TrafficError, rollout.TrafficNoData} {
		if statuses[s] == 0 {
			t.Errorf("no row with traffic status %s; got %v", s, statuses)
		}
	}
	if statuses[rollout.TrafficMatch] != 0 {
		t.Errorf("%d rows say match for a NaN share", statuses[rollout.TrafficMatch])
	}

	var rows int
	for _, ev := range w.sent {
		if ev.Kind != rollout.EventRow && ev.Kind != rollout.EventSnapshot {
			continue
		}
		rows++
		if ev.Row == nil || ev.Row.Traffic == nil {
			t.Fatalf("%s announced without its traffic observation: %q", ev.Kind, ev.Text)
		}
		if want := " traffic=" + ev.Row.Traffic.Status; !strings.HasSuffix(ev.Text, want) {
			t.Errorf("announced line %q was not rendered with its observation (%s)", ev.Text, want)
		}
	}
	if rows != len(observed.Rows) {
		t.Errorf("%d rows announced, the release has %d", rows, len(observed.Rows))
	}
}
