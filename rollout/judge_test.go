package rollout_test

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/rollout"
)

func spec(name string) rollout.SignalSpec {
	for _, s := range config.DefaultSignals() {
		if s.Name == name {
			return s
		}
	}
	panic("no signal " + name)
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// series builds a stage's history of one signal: values at 30 s apart,
// ending one tick before the reading judged.
func series(signal string, values ...float64) []rollout.Measurement {
	out := make([]rollout.Measurement, len(values))
	for i, v := range values {
		out[i] = rollout.Measurement{Signal: signal, At: t0.Add(time.Duration(i) * 30 * time.Second), Value: v, Verdict: rollout.Pass}
	}
	return out
}

// ramp returns n values from a to b, evenly spaced.
func ramp(a, b float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = a + (b-a)*float64(i)/float64(n-1)
	}
	return out
}

func TestJudge(t *testing.T) {
	rule := config.Default().Trend
	climb := ramp(0.120, 0.185, 29) // 120 → 190 ms over a 15-minute stage
	at := func(hist []rollout.Measurement) time.Time {
		if len(hist) == 0 {
			return t0
		}
		return hist[len(hist)-1].At.Add(30 * time.Second)
	}
	tests := []struct {
		name    string
		signal  string
		value   float64
		err     error
		base    float64
		baseErr error
		hist    []rollout.Measurement
		floor   float64
		want    rollout.Verdict
	}{
		{name: "runbook p95 142ms flat", signal: "api_p95", value: 0.142, hist: series("api_p95", 0.141, 0.143, 0.142, 0.142, 0.141), want: rollout.Pass},
		{name: "p95 climbing 120→190ms within the stage", signal: "api_p95", value: 0.190, hist: series("api_p95", climb...), want: rollout.Rising},
		{name: "p95 at the bound", signal: "api_p95", value: 0.200, want: rollout.Pass},
		{name: "p95 over the bound", signal: "api_p95", value: 0.201, want: rollout.Breach},
		{name: "5xx 0.2%", signal: "error_5xx", value: 0.002, want: rollout.Pass},
		{name: "5xx 1.5%", signal: "error_5xx", value: 0.015, want: rollout.Breach},
		{name: "risk blocks below 0.5/min", signal: "risk_blocks", value: 0.49, want: rollout.Pass},
		{name: "risk blocks at 0.5/min breach (strict <)", signal: "risk_blocks", value: 0.5, want: rollout.Breach},
		{name: "NaN is no data", signal: "api_p95", value: math.NaN(), want: rollout.NoData},
		{name: "+Inf is no data", signal: "error_5xx", value: math.Inf(1), want: rollout.NoData},
		{name: "empty result is no data", signal: "api_p95", err: fmt.Errorf("q: %w", rollout.ErrNoValues), want: rollout.NoData},
		{name: "failed query is an error", signal: "api_p95", err: errors.New("connection refused"), want: rollout.Error},
		{name: "CSP at baseline+9%", signal: "csp_violations", value: 0.0218, base: 0.02, want: rollout.Pass},
		{name: "CSP at baseline+11%", signal: "csp_violations", value: 0.0222, base: 0.02, want: rollout.Breach},
		{name: "CSP against a zero baseline: one violation breaches", signal: "csp_violations", value: 0.0001, base: 0, want: rollout.Breach},
		{name: "CSP against a zero baseline under the floor", signal: "csp_violations", value: 0.0001, base: 0, floor: 0.0005, want: rollout.Pass},
		{name: "CSP over the floor", signal: "csp_violations", value: 0.0006, base: 0, floor: 0.0005, want: rollout.Breach},
		{name: "CSP baseline missing", signal: "csp_violations", value: 0.02, baseErr: rollout.ErrNoValues, want: rollout.NoData},
		{name: "CSP baseline NaN", signal: "csp_violations", value: 0.02, base: math.NaN(), want: rollout.NoData},
		{name: "falling trend passes", signal: "api_p95", value: 0.120, hist: series("api_p95", ramp(0.190, 0.122, 20)...), want: rollout.Pass},
		{name: "too few points for a trend", signal: "api_p95", value: 0.190, hist: series("api_p95", 0.120, 0.150), want: rollout.Pass},
		{name: "noisy flat readings are not a trend", signal: "api_p95", value: 0.150, hist: series("api_p95", 0.140, 0.160, 0.138, 0.158, 0.142), want: rollout.Pass},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rd := rollout.Reading{Signal: tc.signal, At: at(tc.hist), Value: tc.value, Err: tc.err, Baseline: tc.base, BaselineErr: tc.baseErr}
			sp := spec(tc.signal)
			sp.Floor = tc.floor
			m := rollout.Judge(sp, rule, rd, tc.hist)
			if m.Verdict != tc.want {
				t.Fatalf("verdict %s, want %s (reason %q)", m.Verdict, tc.want, m.Reason)
			}
			if tc.want != rollout.Pass && m.Reason == "" {
				t.Errorf("a %s verdict must say why", m.Verdict)
			}
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				t.Errorf("measurement value %v cannot be persisted", m.Value)
			}
		})
	}
}

func TestTrendRuleDocumentedExample(t *testing.T) {
	// README: 120→190 ms over a 15-minute stage rises ~4.6 ms/min; the line
	// projected 15 minutes ahead reaches ~255 ms, over the 200 ms bound.
	hist := series("api_p95", ramp(0.120, 0.188, 29)...)
	rd := rollout.Reading{Signal: "api_p95", At: hist[len(hist)-1].At.Add(30 * time.Second), Value: 0.190}
	m := rollout.Judge(spec("api_p95"), config.Default().Trend, rd, hist)
	if m.Projected == nil {
		t.Fatal("no projection recorded")
	}
	if *m.Projected < 0.240 || *m.Projected > 0.270 {
		t.Errorf("projected %.3f s, want about 0.255", *m.Projected)
	}
	if m.Slope < 0.004 || m.Slope > 0.0055 {
		t.Errorf("slope %.4f s/min, want about 0.0047", m.Slope)
	}
}
