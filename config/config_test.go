package config

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

func TestEmptyFileIsDefault(t *testing.T) {
	for _, in := range []string{
		"",
		"\n\n",
		"# nothing set yet\n",
		"~\n",
		"---\n",
		"--- # a document marker and nothing else\n...\n",
		"{}\n",
		"signals: []\n", // merges nothing over the defaults
		"service:\ntick:\n",
	} {
		t.Run(strings.TrimSpace(in), func(t *testing.T) {
			got, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
				t.Errorf("Parse(%q) = %+v, want the default %+v", in, got, want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Run("no path is the default", func(t *testing.T) {
		got, err := Load("")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, DefaultConfig()) {
			t.Errorf("Load(\"\") = %+v, want the default", got)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load("testdata/no-such-file.yaml")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
		if errors.Is(err, ErrInvalid) {
			t.Errorf("an unreadable file is not an invalid one: %v", err)
		}
	})
	t.Run("messages name the file", func(t *testing.T) {
		const path = "testdata/invalid/bad_duration.yaml"
		_, err := Load(path)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		if !strings.HasPrefix(err.Error(), path+":5:12: stages[2].dwell: ") {
			t.Errorf("err = %q, want it to start with %q", err, path+":5:12: stages[2].dwell: ")
		}
	})
	t.Run("a team's file", func(t *testing.T) {
		got, err := Load("testdata/valid/overrides.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if got.Plan.Service != "checkout" || got.EvidenceDir != "out/evidence" || got.StatePath != "/var/lib/canarybot/state.db" {
			t.Errorf("service, evidence_dir, state = %q, %q, %q", got.Plan.Service, got.EvidenceDir, got.StatePath)
		}
		if len(got.Plan.Signals) != 8 { // 8 defaults - gc_pause_avg + checkout_p99
			t.Errorf("got %d signals, want 8", len(got.Plan.Signals))
		}
	})
}

// TestParseOverrides checks each kind of field: the file's value replaces the
// default and nothing else changes.
func TestParseOverrides(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(c *Config)
	}{
		{"service", "service: ledger", func(c *Config) { c.Plan.Service = "ledger" }},
		{"numeric service name stays text", "service: 1234", func(c *Config) { c.Plan.Service = "1234" }},
		{"evidence_dir", "evidence_dir: /srv/evidence", func(c *Config) { c.EvidenceDir = "/srv/evidence" }},
		{"state", "state: /var/lib/canarybot.db", func(c *Config) { c.StatePath = "/var/lib/canarybot.db" }},
		{"tick", "tick: 10s", func(c *Config) { c.Plan.Tick = 10 * time.Second }},
		{"hold", "hold: 1h30m", func(c *Config) { c.Plan.Hold = 90 * time.Minute }},
		{"fractional duration", "hold: 1.5h", func(c *Config) { c.Plan.Hold = 90 * time.Minute }},
		{"sub-second duration", "tick: 500ms", func(c *Config) { c.Plan.Tick = 500 * time.Millisecond }},
		{"window", "window: 5m", func(c *Config) { c.Plan.Window = "5m" }},
		{"window in Prometheus days", "window: 1d\nstages: [{weight: 100, dwell: 30m}]", func(c *Config) {
			c.Plan.Window = "1d"
			c.Plan.Stages = []rollout.Stage{{Weight: 100, Dwell: 30 * time.Minute}}
		}},
		{"auto_promote", "auto_promote: true", func(c *Config) { c.Plan.AutoPromote = true }},
		{"on_breach", "on_breach: ask", func(c *Config) { c.Plan.OnBreach = rollout.BreachAsk }},
		{"max_query_errors", "max_query_errors: 10", func(c *Config) { c.Plan.MaxQueryErrors = 10 }},
		{"stages replace the list", "stages:\n  - {weight: 10, dwell: 5m}\n  - weight: 100\n    dwell: 1h\n", func(c *Config) {
			c.Plan.Stages = []rollout.Stage{{Weight: 10, Dwell: 5 * time.Minute}, {Weight: 100, Dwell: time.Hour}}
		}},
		{"triggers replace the labels", "triggers:\n  labels: {severity: page, team: payments}", func(c *Config) {
			c.Plan.Triggers.Labels = map[string]string{"severity": "page", "team": "payments"}
		}},
		{"an unquoted true label value is the text true", "triggers: {labels: {auto_rollback: true}}", func(c *Config) {}},
		{"trend overrides only the fields given", "trend: {min_points: 6}", func(c *Config) { c.Plan.Trend.MinPoints = 6 }},
		{"trend horizon 0 needs no unit", "trend: {horizon: 0}", func(c *Config) { c.Plan.Trend.Horizon = 0 }},
		{"timeline replaces the list", "timeline:\n  - {name: freeze, offset: -1h}\n  - {name: go_nogo, offset: 0s}\n", func(c *Config) {
			c.Plan.Timeline = []rollout.Step{{Name: rollout.StepFreeze, Offset: -time.Hour}, {Name: rollout.StepGoNoGo}}
		}},
		{"first night cadence replaces the list", "first_night: {cadence: [{until: 3h, every: 1h}]}", func(c *Config) {
			c.Plan.FirstNight.Cadence = []rollout.Cadence{{Until: 3 * time.Hour, Every: time.Hour}}
		}},
		{"empty cadence is no first night", "first_night: {cadence: []}", func(c *Config) { c.Plan.FirstNight.Cadence = nil }},
		{"an empty value keeps the default", "hold:\ntrend: {lookback: ~}", func(c *Config) {}},
		{"anchors and aliases", "hold: &d 10m\ntrend: {horizon: *d, lookback: *d}", func(c *Config) {
			c.Plan.Hold = 10 * time.Minute
			c.Plan.Trend.Horizon = 10 * time.Minute
			c.Plan.Trend.Lookback = 10 * time.Minute
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := DefaultConfig()
			tt.want(&want)
			got, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.yaml, got, want)
			}
		})
	}
}

func TestParseSignals(t *testing.T) {
	defaults := DefaultSignals()
	byName := func(name string) rollout.SignalSpec {
		for _, s := range defaults {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no default signal %q", name)
		return rollout.SignalSpec{}
	}
	without := func(names ...string) []rollout.SignalSpec {
		var out []rollout.SignalSpec
		for _, s := range defaults {
			keep := true
			for _, n := range names {
				keep = keep && s.Name != n
			}
			if keep {
				out = append(out, s)
			}
		}
		return out
	}
	replace := func(s rollout.SignalSpec) []rollout.SignalSpec {
		out := append([]rollout.SignalSpec(nil), defaults...)
		for i := range out {
			if out[i].Name == s.Name {
				out[i] = s
			}
		}
		return out
	}
	p95 := byName("api_p95")
	p95.Threshold = 0.25
	p95Query := byName("api_p95")
	p95Query.Query = `histogram_quantile(0.95, sum by (le) (rate(http_server_duration_seconds_bucket{track="canary"}[{{window}}])))`
	p95Query.Op = rollout.OpLT
	csp := byName("csp_violations")
	csp.Relative, csp.BaselineQuery, csp.Threshold = false, "", 0.001
	checkout := rollout.SignalSpec{
		Name: "checkout_p99", Column: "checkout_p99", Title: "checkout_p99",
		Query: `histogram_quantile(0.99, sum by (le) (rate(checkout_duration_seconds_bucket[{{window}}])))`,
		Op:    rollout.OpLE, Threshold: 1.5, Unit: rollout.UnitSeconds,
	}
	queue := rollout.SignalSpec{
		Name: "queue_depth", Column: "queue", Title: "Queue depth",
		Query: `max(queue_depth{track="canary"})`, BaselineQuery: `max(queue_depth{track="stable"})`,
		Op: rollout.OpLE, Threshold: 0.5, Relative: true, Unit: rollout.UnitCount,
	}

	tests := []struct {
		name string
		yaml string
		want []rollout.SignalSpec
	}{
		{"override one field", "signals: [{name: api_p95, threshold: 0.25}]", replace(p95)},
		{"override query and op", "signals:\n  - name: api_p95\n    op: <\n    query: '" + p95Query.Query + "'\n", replace(p95Query)},
		{"enabled true changes nothing", "signals: [{name: api_p95, enabled: true}]", defaults},
		{"turn a relative bound absolute", "signals: [{name: csp_violations, relative: false, baseline_query: '', threshold: 0.001}]", replace(csp)},
		{"disable", "signals: [{name: gc_pause_avg, enabled: false}, {name: api_p95, enabled: false}]", without("gc_pause_avg", "api_p95")},
		{"add, with column and title from the name", "signals:\n  - name: checkout_p99\n    query: '" + checkout.Query + "'\n    op: <=\n    threshold: 1.5\n    unit: seconds\n",
			append(append([]rollout.SignalSpec(nil), defaults...), checkout)},
		{"add relative, after the defaults in file order", "signals:\n" +
			"  - name: queue_depth\n    column: queue\n    title: Queue depth\n    query: 'max(queue_depth{track=\"canary\"})'\n" +
			"    baseline_query: 'max(queue_depth{track=\"stable\"})'\n    op: <=\n    threshold: 0.5\n    relative: true\n    unit: count\n" +
			"  - name: checkout_p99\n    query: '" + checkout.Query + "'\n    op: <=\n    threshold: 1.5\n    unit: seconds\n" +
			"  - {name: api_p95, threshold: 0.25}\n",
			append(replace(p95), queue, checkout)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got.Plan.Signals, tt.want) {
				t.Errorf("signals\n got %+v\nwant %+v", got.Plan.Signals, tt.want)
			}
			rest, want := got, DefaultConfig()
			rest.Plan.Signals, want.Plan.Signals = nil, nil
			if !reflect.DeepEqual(rest, want) {
				t.Errorf("fields other than signals changed: %+v", rest)
			}
		})
	}
}

// TestParseDoesNotShareDefaults guards against a merge writing into the
// defaults' slices: a second Parse must not see the first one's changes.
func TestParseDoesNotShareDefaults(t *testing.T) {
	if _, err := Parse([]byte("signals: [{name: api_p95, threshold: 0.9}]\ntriggers: {labels: {a: b}}")); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, DefaultConfig()) {
		t.Errorf("defaults changed by an earlier Parse: %+v", got)
	}
}

func TestFloor(t *testing.T) {
	c, err := Load("testdata/valid/floor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Plan.Signals {
		if s.Name == "csp_violations" && s.Floor != 0.0005 {
			t.Fatalf("csp_violations floor %v, want 0.0005", s.Floor)
		}
	}
}
