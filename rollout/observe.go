package rollout

import (
	"context"
	"math"
	"strings"
	"time"
)

// TrafficObserver reports how requests really split between stable and
// canary, as opposed to the weight the router was told: ingress-nginx's
// request counts against the canary-weight annotation, for instance. It is
// optional and only informs the war-room table: the engine never decides
// anything on it, because a share counted over a window lags every weight
// change and is noisy at low traffic.
type TrafficObserver interface {
	Observe(ctx context.Context, at time.Time) (TrafficObservation, error)
}

// The statuses of a TrafficObservation the table knows. An observer may
// report others; they are shown as the observer's text.
const (
	TrafficMatch    = "match"    // the share is as close to the weight as chance allows
	TrafficMismatch = "mismatch" // the controller does not route what the router was told
	TrafficNoData   = "no_data"  // nothing was counted in the window
	TrafficSettling = "settling" // the weight changed too recently to compare
	TrafficError    = "error"    // the observation failed; Text says why
)

// TrafficObservation is one comparison of the observed canary share with
// the weight.
type TrafficObservation struct {
	// Weight is the weight the router carried when observed, in percent.
	Weight int `json:"weight"`
	// Observed is the canary's share of the counted requests, in percent;
	// meaningful only when Status is match, mismatch or settling.
	Observed float64 `json:"observed"`
	Status   string  `json:"status"`
	// Text is the observation in words, for the table.
	Text string `json:"text,omitempty"`
}

// observeTraffic starts an observation beside the tick's signal queries
// and returns a function that waits for it; nil when the runner has no
// observer. An error becomes an observation with status TrafficError: it is
// shown, never fatal.
func (rn *Runner) observeTraffic(ctx context.Context, at time.Time) func() *TrafficObservation {
	if rn.Observer == nil {
		return func() *TrafficObservation { return nil }
	}
	timeout := rn.queryTimeout()
	done := make(chan TrafficObservation, 1)
	go func() {
		octx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		o, err := rn.Observer.Observe(octx, at)
		if err != nil {
			o = TrafficObservation{Status: TrafficError, Text: oneLine(err.Error())}
		}
		done <- o.finite()
	}()
	return func() *TrafficObservation {
		o := <-done
		return &o
	}
}

// finite keeps NaN and ±Inf out of the observation: the release is stored
// as JSON, which has no such numbers.
func (o TrafficObservation) finite() TrafficObservation {
	if math.IsNaN(o.Observed) || math.IsInf(o.Observed, 0) {
		o.Observed = 0
		if o.Status == TrafficMatch || o.Status == TrafficMismatch {
			o.Status = TrafficNoData
		}
	}
	return o
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// attachTraffic gives the rows a tick added (from index before on) the
// traffic observation. Machine.Tick judges the signals alone and queues
// each row's announcement with the row as it stood, so the announcement
// still pending is given the observation too and its table line is
// rendered again.
func (rn *Runner) attachTraffic(r *Release, before int, o *TrafficObservation) {
	if o == nil || len(r.Rows) <= before {
		return
	}
	added := r.Rows[before:]
	for i := range added {
		t := *o
		added[i].Traffic = &t
	}
	for _, e := range r.Pending {
		ev := e.Event
		if e.Kind != EffectNotify || ev == nil || ev.Row == nil || ev.Row.Traffic != nil {
			continue
		}
		if ev.Kind != EventRow && ev.Kind != EventSnapshot {
			continue
		}
		for _, row := range added {
			if row.At.Equal(ev.Row.At) {
				t := *o
				ev.Row.Traffic = &t
				ev.Text = rn.Machine.Render.TableRow(rn.Machine.Plan, *ev.Row)
				break
			}
		}
	}
}
