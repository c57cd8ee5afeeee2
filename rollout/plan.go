package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Plan is everything a release follows: stages, signals, triggers, timeline.
// The zero value is not useful; config.Default() builds the runbook's plan.
type Plan struct {
	Service     string        `yaml:"service" json:"service"`
	Stages      []Stage       `yaml:"stages" json:"stages"`
	Tick        time.Duration `yaml:"tick" json:"tick"`
	Hold        time.Duration `yaml:"hold" json:"hold"`
	Window      string        `yaml:"window" json:"window"`
	Signals     []SignalSpec  `yaml:"signals" json:"signals"`
	Triggers    Triggers      `yaml:"triggers" json:"triggers"`
	Trend       TrendRule     `yaml:"trend" json:"trend"`
	OnBreach    BreachPolicy  `yaml:"on_breach" json:"on_breach"`
	AutoPromote bool          `yaml:"auto_promote" json:"auto_promote"`
	// MaxQueryErrors is how many failed reads of a signal in a row are
	// retried before the release holds and pages the IC.
	MaxQueryErrors int        `yaml:"max_query_errors" json:"max_query_errors"`
	Timeline       []Step     `yaml:"timeline" json:"timeline"`
	FirstNight     FirstNight `yaml:"first_night" json:"first_night"`
}

// Stage is one step of traffic.
type Stage struct {
	Weight int           `yaml:"weight" json:"weight"`
	Dwell  time.Duration `yaml:"dwell" json:"dwell"`
}

// Op compares a reading with its bound.
type Op string

const (
	OpLE Op = "<=" // value must be at most the bound
	OpLT Op = "<"  // value must be below the bound
)

// Unit says how a signal's value is shown; values are kept in base units
// (seconds, ratios, events per minute).
type Unit string

const (
	UnitSeconds       Unit = "seconds"        // shown in ms
	UnitRatio         Unit = "ratio"          // shown in %
	UnitPerMinute     Unit = "per_minute"     // shown as n/min
	UnitSecondsCoarse Unit = "seconds_coarse" // shown in s
	UnitCount         Unit = "count"
)

// SignalSpec is one golden signal.
type SignalSpec struct {
	Name   string `yaml:"name" json:"name"`
	Column string `yaml:"column" json:"column"`
	Title  string `yaml:"title" json:"title"`
	// Query reads the canary track. {{window}} is replaced by Plan.Window.
	Query string `yaml:"query" json:"query"`
	// BaselineQuery reads the stable track for a relative threshold.
	BaselineQuery string  `yaml:"baseline_query,omitempty" json:"baseline_query,omitempty"`
	Op            Op      `yaml:"op" json:"op"`
	Threshold     float64 `yaml:"threshold" json:"threshold"`
	// Relative makes the bound baseline*(1+Threshold) (for "≤ baseline+10%").
	Relative bool `yaml:"relative,omitempty" json:"relative,omitempty"`
	// Floor is the least bound of a relative signal: with a stable track at
	// zero, baseline+10% is zero and one canary event would roll back.
	Floor float64 `yaml:"floor,omitempty" json:"floor,omitempty"`
	Unit  Unit    `yaml:"unit" json:"unit"`
}

// Triggers selects the firing alerts that roll back at once.
type Triggers struct {
	Labels map[string]string `yaml:"labels" json:"labels"`
}

// Matches reports whether an alert carries every selector label.
func (t Triggers) Matches(a Alert) bool {
	if len(t.Labels) == 0 {
		return false
	}
	for k, v := range t.Labels {
		if a.Labels[k] != v {
			return false
		}
	}
	return true
}

// TrendRule defines "Rising". A signal is Rising when the least-squares line
// through the stage's readings of the last Lookback, evaluated Horizon after
// the latest reading, crosses the bound. It needs MinPoints readings.
type TrendRule struct {
	MinPoints int           `yaml:"min_points" json:"min_points"`
	Horizon   time.Duration `yaml:"horizon" json:"horizon"`
	Lookback  time.Duration `yaml:"lookback" json:"lookback"`
}

// BreachPolicy says what a breach does.
type BreachPolicy string

const (
	BreachRollback BreachPolicy = "rollback" // roll back automatically
	BreachAsk      BreachPolicy = "ask"      // hold and ask the IC
)

// StepName names a step of the T-minus timeline.
type StepName string

const (
	StepFreeze      StepName = "freeze"
	StepWarRoom     StepName = "warroom"
	StepPreflight   StepName = "preflight"
	StepBlast       StepName = "blast"
	StepRedTeam     StepName = "redteam"
	StepGreenButton StepName = "green_button"
	StepGoNoGo      StepName = "go_nogo"
	// StepLiftFreeze is not on the timeline: its gate runs once, after the
	// first night ends cleanly (the runbook lifts the freeze at T+24h). A
	// rollback keeps the freeze until the IC lifts it by hand.
	StepLiftFreeze StepName = "lift_freeze"
)

// Step is a timeline step at an offset from T-0 (negative: before).
type Step struct {
	Name   StepName      `yaml:"name" json:"name"`
	Offset time.Duration `yaml:"offset" json:"offset"`
}

// FirstNight is the watch after stage 100%: snapshots at a cadence that
// slows down as the night goes on.
type FirstNight struct {
	Cadence []Cadence `yaml:"cadence" json:"cadence"`
}

// Cadence takes a snapshot every Every until Until after first night began.
type Cadence struct {
	Until time.Duration `yaml:"until" json:"until"`
	Every time.Duration `yaml:"every" json:"every"`
}

// Duration is how long the first night lasts.
func (f FirstNight) Duration() time.Duration {
	if len(f.Cadence) == 0 {
		return 0
	}
	return f.Cadence[len(f.Cadence)-1].Until
}

// Snapshots returns the offsets from the start of first night at which a
// snapshot is due, ending with the last one at Duration().
func (f FirstNight) Snapshots() []time.Duration {
	var out []time.Duration
	var t time.Duration
	for _, c := range f.Cadence {
		if c.Every <= 0 {
			continue
		}
		for t+c.Every <= c.Until {
			t += c.Every
			out = append(out, t)
		}
	}
	return out
}

// Hash identifies the plan's content, so that a release is never resumed
// under another plan than the one it was started with.
func (p *Plan) Hash() string {
	data, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("plan cannot be encoded: %v", err)) // only plain values: cannot happen
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// ResolveQuery fills the plan's template variables into a query.
func (p *Plan) ResolveQuery(q string) string {
	w := p.Window
	if w == "" {
		w = "2m"
	}
	return strings.ReplaceAll(q, "{{window}}", w)
}

// StepAt returns the timeline offset of a step and whether the plan has it.
func (p *Plan) StepAt(name StepName) (time.Duration, bool) {
	for _, s := range p.Timeline {
		if s.Name == name {
			return s.Offset, true
		}
	}
	return 0, false
}

// Format shows a value in the signal's unit, as the war-room table does.
func (s SignalSpec) Format(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	switch s.Unit {
	case UnitSeconds:
		return fmt.Sprintf("%.0fms", v*1000)
	case UnitRatio:
		return fmt.Sprintf("%.1f%%", v*100)
	case UnitPerMinute:
		return fmt.Sprintf("%.2f/m", v)
	case UnitSecondsCoarse:
		return fmt.Sprintf("%.0fs", v)
	default:
		return trimFloat(v)
	}
}

// BoundText shows the threshold as people read it ("≤ 200ms", "≤ baseline+10%").
func (s SignalSpec) BoundText() string {
	op := "≤"
	if s.Op == OpLT {
		op = "<"
	}
	if s.Relative {
		return fmt.Sprintf("%s baseline+%.0f%%", op, s.Threshold*100)
	}
	return op + " " + s.Format(s.Threshold)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" || s == "-" {
		return "0"
	}
	return s
}
