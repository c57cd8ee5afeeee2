package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Reading is one raw read of a signal, before judgement.
type Reading struct {
	Signal   string
	Query    string
	At       time.Time
	Value    float64
	Err      error
	Warnings []string
	Raw      json.RawMessage
	// Baseline is the stable track's value for a relative signal.
	Baseline    float64
	BaselineErr error
}

// trendSignificance is the t-statistic the slope must reach before a trend
// counts. Without it, four noisy readings at the start of a stage project a
// steep line and hold a healthy canary; with it, only a climb that stands out
// of the noise does.
const trendSignificance = 3.0

// Judge gives a reading its verdict. history holds the signal's earlier
// measurements in this stage, oldest first; only those within the rule's
// lookback of the reading count towards the trend.
func Judge(spec SignalSpec, rule TrendRule, rd Reading, history []Measurement) Measurement {
	m := Measurement{
		Signal:   spec.Name,
		At:       rd.At,
		Query:    rd.Query,
		Value:    rd.Value,
		Bound:    spec.Threshold,
		Warnings: rd.Warnings,
		Raw:      rd.Raw,
	}
	if verdict, why, ok := unusable(rd.Err, rd.Value); !ok {
		// NaN and Inf cannot be persisted as JSON; the verdict says there is no value.
		m.Value, m.Verdict, m.Reason = 0, verdict, why
		return m
	}
	if spec.Relative {
		if verdict, why, ok := unusable(rd.BaselineErr, rd.Baseline); !ok {
			m.Verdict, m.Reason = verdict, "baseline: "+why
			return m
		}
		b := rd.Baseline
		m.Baseline = &b
		m.Bound = max(b*(1+spec.Threshold), spec.Floor)
	}
	if over(spec.Op, m.Value, m.Bound) {
		m.Verdict = Breach
		m.Reason = fmt.Sprintf("%s = %s, bound %s", spec.Name, spec.Format(m.Value), boundText(spec, m.Bound))
		return m
	}
	m.Verdict = Pass
	slope, projected, ok := trend(rule, m, history)
	if !ok {
		return m
	}
	m.Slope = slope * 60
	m.Projected = &projected
	if slope > 0 && over(spec.Op, projected, m.Bound) {
		m.Verdict = Rising
		m.Reason = fmt.Sprintf("%s = %s rising %s/min, projected %s in %s, bound %s",
			spec.Name, spec.Format(m.Value), spec.Format(slope*60), spec.Format(projected),
			rule.Horizon, boundText(spec, m.Bound))
	}
	return m
}

// unusable says whether a read cannot be judged, and why.
func unusable(err error, v float64) (Verdict, string, bool) {
	switch {
	case errors.Is(err, ErrNoValues):
		return NoData, "no series matched", false
	case err != nil:
		return Error, err.Error(), false
	case math.IsNaN(v):
		return NoData, "NaN (no traffic in the window?)", false
	case math.IsInf(v, 0):
		return NoData, "infinite (a ratio over zero requests?)", false
	}
	return "", "", true
}

func over(op Op, v, bound float64) bool {
	if op == OpLT {
		return v >= bound
	}
	return v > bound
}

func boundText(spec SignalSpec, bound float64) string {
	if spec.Relative {
		return spec.BoundText() + " = " + spec.Format(bound)
	}
	return spec.BoundText()
}

// trend fits a least-squares line through the signal's readings within the
// lookback (the current one included) and returns its slope per second and
// its value Horizon after the current reading. ok is false when there are
// too few readings or the slope does not stand out of the noise.
func trend(rule TrendRule, cur Measurement, history []Measurement) (slope, projected float64, ok bool) {
	if rule.MinPoints < 2 {
		return 0, 0, false
	}
	var xs, ys []float64
	for _, h := range history {
		if h.Verdict != Pass && h.Verdict != Rising {
			continue
		}
		if rule.Lookback > 0 && cur.At.Sub(h.At) > rule.Lookback {
			continue
		}
		xs = append(xs, h.At.Sub(cur.At).Seconds())
		ys = append(ys, h.Value)
	}
	xs = append(xs, 0)
	ys = append(ys, cur.Value)
	n := float64(len(xs))
	if len(xs) < rule.MinPoints {
		return 0, 0, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return 0, 0, false
	}
	slope = sxy / sxx
	intercept := my - slope*mx
	var sse float64
	for i := range xs {
		r := ys[i] - (intercept + slope*xs[i])
		sse += r * r
	}
	if len(xs) > 2 {
		se := math.Sqrt(sse / (n - 2) / sxx)
		if se > 0 && slope/se < trendSignificance {
			return slope, intercept + slope*rule.Horizon.Seconds(), false
		}
	}
	return slope, intercept + slope*rule.Horizon.Seconds(), true
}
