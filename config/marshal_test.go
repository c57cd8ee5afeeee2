package config

import (
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleIsDefault(t *testing.T) {
	got, err := Load(filepath.Join("..", "canary.example.yaml"))
	if err != nil {
		t.Fatalf("canary.example.yaml: %v", err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("canary.example.yaml differs from DefaultConfig():\n got %+v\nwant %+v", got, want)
	}
}

// roundTrip marshals c and parses it back, failing unless it is unchanged.
func roundTrip(t *testing.T, c Config) []byte {
	t.Helper()
	out, err := Marshal(c)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(c)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v\nyaml:\n%s", back, c, out)
	}
	return out
}

func TestMarshalRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, c)
		})
	}

	t.Run("awkward values", func(t *testing.T) {
		c := DefaultConfig()
		c.Plan.Service = "true"
		c.EvidenceDir = "- evidence: #1"
		c.StatePath = " state\nwith a newline\n"
		// A literal block would start a line with a tab, which YAML forbids.
		c.Plan.Signals[5].Title = "\tCSP\nper request"
		c.Plan.Window = "1h30m"
		c.Plan.Tick = 1500 * time.Millisecond
		c.Plan.Hold = time.Hour + time.Nanosecond
		c.Plan.Trend.Horizon = 0
		c.Plan.Signals[0].Threshold = 5e-324
		c.Plan.Signals[1].Threshold = math.MaxFloat64
		c.Plan.Signals[2].Threshold = 0.1 + 0.2
		c.Plan.Signals[3].Title = `'quoted' "both" {x}`
		c.Plan.Signals[4].Column = "null"
		c.Plan.Triggers.Labels = map[string]string{"auto_rollback": "true", "<<": "0x10", "severity": "~"}
		c.Plan.FirstNight.Cadence = nil
		roundTrip(t, c)
	})

	t.Run("disabled default and a cleared baseline", func(t *testing.T) {
		c, err := Parse([]byte("signals:\n  - {name: gc_pause_avg, enabled: false}\n  - {name: csp_violations, relative: false, baseline_query: ''}\n"))
		if err != nil {
			t.Fatal(err)
		}
		out := string(roundTrip(t, c))
		for _, s := range []string{"{name: gc_pause_avg, enabled: false}", `baseline_query: ""`, "relative: false"} {
			if !strings.Contains(out, s) {
				t.Errorf("Marshal output lacks %q:\n%s", s, out)
			}
		}
	})
}

func TestMarshalWritesDurationsAsWritten(t *testing.T) {
	out, err := Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"tick: 30s\n", "hold: 15m\n", "{weight: 100, dwell: 30m}", "{name: freeze, offset: -30m}", "{until: 24h, every: 1h}"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("Marshal output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(string(out), "m0s") || strings.Contains(string(out), "h0m") {
		t.Errorf("Marshal wrote Go-style durations like 15m0s:\n%s", out)
	}
}

func TestMarshalRejectsInvalidUTF8(t *testing.T) {
	c := DefaultConfig()
	c.Plan.Service = "spark\xff"
	if _, err := Marshal(c); err == nil || !strings.Contains(err.Error(), "service") {
		t.Errorf("Marshal err = %v, want one naming service", err)
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{15 * time.Minute, "15m"},
		{90 * time.Minute, "1h30m"},
		{24 * time.Hour, "24h"},
		{-30 * time.Minute, "-30m"},
		{1500 * time.Millisecond, "1s500ms"},
		{time.Hour + time.Nanosecond, "1h1ns"},
		{time.Microsecond, "1us"},
		{math.MaxInt64, "2562047h47m16s854ms775us807ns"},
		{math.MinInt64, "-2562047h47m16s854ms775us808ns"},
	}
	for _, tt := range tests {
		got := formatDuration(tt.d)
		if got != tt.want {
			t.Errorf("formatDuration(%d) = %q, want %q", tt.d, got, tt.want)
		}
		back, err := time.ParseDuration(got)
		if err != nil || back != tt.d {
			t.Errorf("time.ParseDuration(%q) = %v, %v; want %d", got, back, err, tt.d)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"service", "state", "stages", "signals", "evidence_dir", "min_points", "dwell"}
	tests := []struct{ in, want string }{
		{"dwel", "dwell"},
		{"stage", "stages"},
		{"sate", "state"},
		{"evidenceDir", "evidence_dir"},
		{"MIN-POINTS", "min_points"},
		{"signal", "signals"},
		{"bogus", ""},
		{"", ""},
		{strings.Repeat("s", 1000), ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, keys); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
