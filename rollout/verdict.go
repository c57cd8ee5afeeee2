package rollout

import (
	"encoding/json"
	"time"
)

// Verdict is what one reading of one signal says.
type Verdict string

const (
	Pass   Verdict = "Pass"   // within bound, trend flat or falling
	Rising Verdict = "Rising" // within bound, but the trend crosses it soon
	Breach Verdict = "Breach" // over the bound
	NoData Verdict = "NoData" // nothing to judge: no series, NaN, no traffic
	Error  Verdict = "Error"  // the query failed
)

// Measurement is one signal read once: the value and everything the verdict
// was based on, so that a decision can be explained later.
type Measurement struct {
	Signal   string    `json:"signal"`
	At       time.Time `json:"at"`
	Query    string    `json:"query"`
	Value    float64   `json:"value"`
	Baseline *float64  `json:"baseline,omitempty"`
	// BaselineRecorded is true when the live baseline had no data (the
	// stable track serves nothing at 100%) and the last one recorded in
	// this release was used instead.
	BaselineRecorded bool    `json:"baseline_recorded,omitempty"`
	Bound            float64 `json:"bound"`
	// Projected is the trend line's value Horizon after At, when a trend
	// could be fitted.
	Projected *float64 `json:"projected,omitempty"`
	Slope     float64  `json:"slope_per_min"`
	Verdict   Verdict  `json:"verdict"`
	Reason    string   `json:"reason,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	// Raw is the metrics source's answer to Query, as it came.
	Raw json.RawMessage `json:"raw,omitempty"`
}

// DecisionKind is what the engine decides at a tick.
type DecisionKind string

const (
	// Continue: nothing to decide yet (dwell not over, or a query error
	// being retried). Never a promotion.
	Continue DecisionKind = "Continue"
	Proceed  DecisionKind = "Proceed"
	Hold     DecisionKind = "Hold"
	Rollback DecisionKind = "Rollback"
)

// Decision is a tick's outcome with its reason.
type Decision struct {
	Kind   DecisionKind `json:"kind"`
	Reason string       `json:"reason,omitempty"`
	// Signals names the signals (or alerts) the decision rests on.
	Signals []string `json:"signals,omitempty"`
	// Auto is true when the engine acts without waiting for the IC.
	Auto bool `json:"auto,omitempty"`
}

// Row is one line of the war-room table: a tick's readings and decision.
type Row struct {
	At       time.Time     `json:"at"`
	Phase    Phase         `json:"phase"`
	Stage    int           `json:"stage"` // 1-based; 0 outside stages
	Weight   int           `json:"weight"`
	Readings []Measurement `json:"readings"`
	Alerts   []Alert       `json:"alerts,omitempty"`
	Decision Decision      `json:"decision"`
	// Traffic is the observed traffic split at the tick, when the runner
	// has a TrafficObserver; it never affects the decision.
	Traffic *TrafficObservation `json:"traffic,omitempty"`
}

// Reading returns the row's measurement of a signal.
func (r Row) Reading(signal string) (Measurement, bool) {
	for _, m := range r.Readings {
		if m.Signal == signal {
			return m, true
		}
	}
	return Measurement{}, false
}
