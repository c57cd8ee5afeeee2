package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/canarybot/canarybot/rollout"
)

// Validate checks a configuration built in code (Parse already validates
// what it returns). It returns a *ValidationError with every problem, or nil.
func Validate(c Config) error {
	return newValidationError(check(c, nil, ""))
}

// checker collects validation problems, locating each in the file when the
// field (or, failing that, the nearest enclosing value) was written there.
type checker struct {
	file string
	pos  map[string]position
	errs []*FieldError
}

// add reports a problem with path. at, if given, names other fields whose
// position to use when path itself was not in the file (tick's default is
// wrong only because of a dwell the file set).
func (k *checker) add(path string, at []string, format string, args ...any) {
	fe := &FieldError{File: k.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	for _, p := range append([]string{path}, at...) {
		if pos, ok := k.locate(p); ok {
			fe.Line, fe.Column = pos.line, pos.col
			break
		}
	}
	k.errs = append(k.errs, fe)
}

func (k *checker) addf(path, format string, args ...any) { k.add(path, nil, format, args...) }

// locate finds where path, or the closest enclosing value, was written.
func (k *checker) locate(path string) (position, bool) {
	for path != "" {
		if pos, ok := k.pos[path]; ok {
			return pos, true
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return position{}, false
}

// check runs every rule over c. pos locates fields written in the file.
func check(c Config, pos map[string]position, file string) []*FieldError {
	k := &checker{file: file, pos: pos}
	p := c.Plan
	for _, f := range []struct{ path, value, what string }{
		{"service", p.Service, "the service being released, e.g. spark"},
		{"evidence_dir", c.EvidenceDir, "the directory evidence files go to, e.g. evidence"},
		{"state", c.StatePath, "the state database file, e.g. canarybot.db"},
	} {
		if strings.TrimSpace(f.value) == "" {
			k.addf(f.path, "must not be empty; it names %s", f.what)
		}
	}
	k.stages(p)
	if p.Hold <= 0 {
		k.addf("hold", "must be greater than 0, got %s: it is how long a Rising signal holds the stage", formatDuration(p.Hold))
	}
	window := k.window(p.Window)
	k.signals(p.Signals, window)
	k.triggers(p.Triggers)
	if p.Trend.MinPoints < 2 {
		k.addf("trend.min_points", "must be at least 2 (a trend line needs two readings), got %d", p.Trend.MinPoints)
	}
	if p.Trend.Horizon < 0 {
		k.addf("trend.horizon", "must not be negative, got %s: it is how far ahead the trend is projected", formatDuration(p.Trend.Horizon))
	}
	if p.Trend.Lookback <= 0 {
		k.addf("trend.lookback", "must be greater than 0, got %s: it is how many minutes of readings the trend is fitted to", formatDuration(p.Trend.Lookback))
	}
	if !oneOf(string(p.OnBreach), breachPolicies()) {
		k.addf("on_breach", "expected one of: %s, got %q", strings.Join(breachPolicies(), ", "), p.OnBreach)
	}
	if p.MaxQueryErrors < 1 {
		k.addf("max_query_errors", "must be at least 1, got %d: it is how many failed reads in a row are retried before the release holds", p.MaxQueryErrors)
	}
	k.timeline(p.Timeline)
	k.cadence(p.FirstNight.Cadence)
	k.gates(c)
	return k.errs
}

func (k *checker) stages(p rollout.Plan) {
	if len(p.Stages) == 0 {
		k.addf("stages", "at least one stage is needed, and the last must have weight 100")
	} else {
		prev := 0
		for i, s := range p.Stages {
			sp := fmt.Sprintf("stages[%d]", i)
			switch {
			case s.Weight < 1 || s.Weight > 100:
				k.addf(sp+".weight", "expected a percentage 1-100, got %d", s.Weight)
			case s.Weight <= prev:
				k.addf(sp+".weight", "weights must increase stage by stage: %d is not above the previous stage's %d", s.Weight, prev)
			case i == len(p.Stages)-1 && s.Weight != 100:
				k.addf(sp+".weight", "the last stage must have weight 100 (all traffic), got %d; add a stage {weight: 100, dwell: 30m}", s.Weight)
			}
			if s.Weight >= 1 && s.Weight <= 100 {
				prev = s.Weight
			}
			if s.Dwell <= 0 {
				k.addf(sp+".dwell", "must be greater than 0, got %s", formatDuration(s.Dwell))
			}
		}
	}
	if p.Tick <= 0 {
		k.addf("tick", "must be greater than 0, got %s: it is how often signals are read", formatDuration(p.Tick))
		return
	}
	// A stage's readings are taken every tick; a dwell shorter than a tick
	// would be judged on no reading at all. Dwells ≤ 0 are reported above.
	shortest := -1
	for i, s := range p.Stages {
		if s.Dwell > 0 && (shortest < 0 || s.Dwell < p.Stages[shortest].Dwell) {
			shortest = i
		}
	}
	if shortest >= 0 && p.Tick > p.Stages[shortest].Dwell {
		dp := fmt.Sprintf("stages[%d].dwell", shortest)
		k.add("tick", []string{dp}, "%s is longer than the shortest dwell (%s = %s); the tick must be at most that, so each stage gets a reading",
			formatDuration(p.Tick), dp, formatDuration(p.Stages[shortest].Dwell))
	}
}

// window checks the query window and returns the text to put into queries
// for checking them: the window when it is valid, else a stand-in, so that a
// bad window is reported once and not again in every query.
func (k *checker) window(w string) string {
	d, err := model.ParseDuration(w)
	switch {
	case err != nil && isDigits(w):
		k.addf("window", "expected a Prometheus duration like 2m or 1h30m, got %q: add a unit, e.g. %sm or %ss", w, w, w)
	case err != nil:
		k.addf("window", "expected a Prometheus duration like 2m or 1h30m, got %q: %v", w, err)
	case d <= 0:
		k.addf("window", "must be greater than 0, got %q", w)
	default:
		return w
	}
	return "1m"
}

func (k *checker) signals(signals []rollout.SignalSpec, window string) {
	if len(signals) == 0 {
		k.addf("signals", "no signals left; at least one is needed, or no stage could ever be judged")
		return
	}
	// One parser serves all queries; it is cheap and keeps no state between them.
	pql := parser.NewParser(parser.Options{})
	seen := map[string]int{}
	for i, s := range signals {
		sp := fmt.Sprintf("signals[%s]", s.Name)
		if s.Name == "" {
			sp = fmt.Sprintf("signals[%d]", i)
			k.addf(sp+".name", "must not be empty")
		} else if j, dup := seen[s.Name]; dup {
			k.addf(sp+".name", "listed twice (entries %d and %d); signal names must be unique", j, i)
		} else {
			seen[s.Name] = i
		}
		if strings.TrimSpace(s.Query) == "" {
			k.addf(sp+".query", "must not be empty; it is the PromQL that reads the canary track")
		} else {
			k.query(pql, sp+".query", s.Query, window)
		}
		if !oneOf(string(s.Op), ops()) {
			k.addf(sp+".op", "expected one of: %s, got %q", strings.Join(ops(), ", "), s.Op)
		}
		switch {
		case math.IsNaN(s.Threshold) || math.IsInf(s.Threshold, 0):
			k.addf(sp+".threshold", "must be a finite number, got %v", s.Threshold)
		case s.Threshold < 0:
			k.addf(sp+".threshold", "must not be negative, got %v", s.Threshold)
		}
		switch {
		case math.IsNaN(s.Floor) || math.IsInf(s.Floor, 0) || s.Floor < 0:
			k.addf(sp+".floor", "must be a finite number ≥ 0, got %v", s.Floor)
		case s.Floor != 0 && !s.Relative:
			k.addf(sp+".floor", "only a relative signal has a floor; set relative: true or remove floor")
		}
		if !oneOf(string(s.Unit), units()) {
			k.addf(sp+".unit", "expected one of: %s, got %q", strings.Join(units(), ", "), s.Unit)
		}
		switch {
		case strings.TrimSpace(s.BaselineQuery) != "":
			k.query(pql, sp+".baseline_query", s.BaselineQuery, window)
		case s.Relative:
			k.addf(sp+".baseline_query", "a relative threshold needs baseline_query: the same measure on the stable track")
		}
	}
}

// query checks that q parses as PromQL once the window is in, and that it
// can give one number: a range vector or a string cannot be judged.
func (k *checker) query(pql parser.Parser, path, q, window string) {
	resolved := strings.ReplaceAll(q, "{{window}}", window)
	expr, err := pql.ParseExpr(resolved)
	if err != nil {
		k.addf(path, "not valid PromQL (with {{window}} = %s): %v", window, err)
		return
	}
	switch t := expr.Type(); t {
	case parser.ValueTypeVector, parser.ValueTypeScalar:
	default:
		k.addf(path, "the query returns a %s; it must return one number (an instant vector or scalar), e.g. wrap a range in rate() or max_over_time()", t)
	}
}

func (k *checker) triggers(t rollout.Triggers) {
	if len(t.Labels) == 0 {
		k.addf("triggers.labels", `no labels given, so no alert could ever trigger an automatic rollback; the runbook's triggers carry {auto_rollback: "true"}`)
		return
	}
	for _, name := range sortedKeys(t.Labels) {
		lp := "triggers.labels." + name
		// Prometheus 3 and Alertmanager accept any UTF-8 label name.
		if !model.UTF8Validation.IsValidLabelName(name) {
			k.addf(lp, "%q is not a label name: it must be non-empty UTF-8 text", name)
		}
		if t.Labels[name] == "" {
			k.addf(lp, "an empty value never matches: Prometheus drops labels with empty values")
		}
	}
}

func (k *checker) timeline(steps []rollout.Step) {
	seen := map[rollout.StepName]int{}
	goNoGo := false
	var prev time.Duration
	havePrev := false
	for i, s := range steps {
		sp := fmt.Sprintf("timeline[%d]", i)
		switch j, dup := seen[s.Name]; {
		case !oneOf(string(s.Name), stepNames()):
			k.addf(sp+".name", "expected one of: %s, got %q", strings.Join(stepNames(), ", "), s.Name)
		case dup:
			k.addf(sp+".name", "%s is already timeline[%d]; each step runs at most once", s.Name, j)
		default:
			seen[s.Name] = i
		}
		switch {
		case s.Offset > 0:
			k.addf(sp+".offset", "must be 0 or negative (before T-0), got %s", formatDuration(s.Offset))
		case havePrev && s.Offset < prev:
			k.addf(sp+".offset", "%s is before the previous step's %s; list the steps in the order they happen", formatDuration(s.Offset), formatDuration(prev))
		default:
			prev, havePrev = s.Offset, true
		}
		if s.Name == rollout.StepGoNoGo {
			goNoGo = true
			if s.Offset != 0 {
				k.addf(sp+".offset", "go_nogo is the decision at T-0, so its offset must be 0, got %s", formatDuration(s.Offset))
			}
		}
	}
	if !goNoGo {
		k.addf("timeline", "go_nogo is missing; add {name: go_nogo, offset: 0s}: stage 1 starts at the go/no-go decision")
	}
}

func (k *checker) cadence(cs []rollout.Cadence) {
	var prev time.Duration
	for i, c := range cs {
		cp := fmt.Sprintf("first_night.cadence[%d]", i)
		if c.Until <= prev {
			k.addf(cp+".until", "must be greater than %s (the previous until, or the start of the first night), got %s", formatDuration(prev), formatDuration(c.Until))
		}
		switch {
		case c.Every <= 0:
			k.addf(cp+".every", "must be greater than 0, got %s", formatDuration(c.Every))
		case c.Until > prev && c.Every > c.Until-prev:
			k.addf(cp+".every", "%s is longer than the %s this entry covers (%s to %s); no snapshot would fall in it", formatDuration(c.Every), formatDuration(c.Until-prev), formatDuration(prev), formatDuration(c.Until))
		}
		if c.Until > prev {
			prev = c.Until
		}
	}
}

func oneOf(s string, allowed []string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}
