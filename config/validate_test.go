package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// want is one expected problem: the field, the line it is reported at (0:
// not from the file) and a fragment of the message.
type want struct {
	path string
	line int
	msg  string
}

// TestInvalidFiles parses each file in testdata/invalid and expects exactly
// the listed problems, so a missing message, a wrong line or a duplicate
// report of the same mistake all fail.
func TestInvalidFiles(t *testing.T) {
	tests := map[string][]want{
		"bad_duration.yaml": {{"stages[2].dwell", 5, `expected a duration like 15m, got "fifteen"`}},
		"bare_integer.yaml": {
			{"tick", 1, "got 30: add a unit, e.g. 30m or 30s"},
			{"hold", 2, `got "15": add a unit`},
			{"trend.horizon", 4, "use hours (24h)"},
			{"window", 5, "add a unit"},
		},
		"unknown_keys.yaml": {
			{"servce", 1, `unknown key "servce"; did you mean "service"?`},
			{"stage", 2, `did you mean "stages"?`},
			{"trend.minpoints", 5, `did you mean "min_points"?`},
			{"trend.bogus", 6, "expected one of: min_points, horizon, lookback"},
			{"signals[api_p95].treshold", 9, `did you mean "threshold"?`},
		},
		"stage_key.yaml": {
			{"stages[0].dwel", 2, `unknown key "dwel"; did you mean "dwell"?`},
			{"stages[0].dwell", 2, "missing; each entry needs weight and dwell"},
		},
		"weights.yaml": {
			{"stages[1].weight", 3, "weights must increase stage by stage: 5 is not above the previous stage's 5"},
			{"stages[2].weight", 4, "expected a percentage 1-100, got 150"},
			{"stages[3].weight", 5, "expected a percentage 1-100, got 0"},
			{"stages[3].dwell", 5, "must be greater than 0, got 0s"},
			{"stages[4].weight", 6, "the last stage must have weight 100"},
			{"stages[4].dwell", 6, "must be greater than 0, got -5m"},
		},
		"empty_stages.yaml": {{"stages", 1, "at least one stage is needed"}},
		"floor.yaml": {
			{"signals[csp_violations].floor", 3, "must be a finite number ≥ 0, got -0.1"},
			{"signals[api_p95].floor", 5, "only a relative signal has a floor"},
		},
		"tick.yaml": {
			{"tick", 1, "20m is longer than the shortest dwell (stages[0].dwell = 15m)"},
			{"hold", 2, "must be greater than 0"},
		},
		// tick is the default here; the line is the dwell that made it wrong.
		"tick_vs_dwell.yaml": {{"tick", 2, "30s is longer than the shortest dwell (stages[0].dwell = 10s)"}},
		"window.yaml":        {{"window", 1, `expected a Prometheus duration like 2m or 1h30m, got "2x"`}},
		"signals.yaml": {
			{"signals[api_p95].threshold", 3, "must not be negative, got -1"},
			{"signals[error_5xx].op", 5, `expected one of: <=, <, got "=<"; did you mean "<="?`},
			{"signals[ws_staleness].unit", 7, `expected one of: seconds, ratio, per_minute, seconds_coarse, count, got "second"; did you mean "seconds"?`},
			{"signals[risk_blocks].query", 9, "not valid PromQL (with {{window}} = 2m): 1:32: parse error: unclosed left parenthesis"},
			{"signals[eventloop_p95].query", 11, "the query returns a matrix"},
			{"signals[checkout_p99]", 12, "missing: op, threshold, unit"},
			{"signals[queue_depth].baseline_query", 14, "a relative threshold needs baseline_query"},
			{"signals[idempotency_conflicts].threshold", 21, "must be a finite number"},
		},
		"all_disabled.yaml": {{"signals", 2, "no signals left"}},
		"signal_names.yaml": {
			{"signals[api_p59].enabled", 2, `there is no default signal "api_p59" to disable; did you mean "api_p95"?`},
			{"signals[gc_pause_avg]", 6, "listed twice (first at line 4)"},
			{"signals[3].name", 8, "every signal entry needs a name"},
			{"signals[api_p59]", 9, "listed twice (first at line 2)"},
		},
		"new_signal_typo.yaml": {{"signals[api_p59]", 2, `missing: query, op, unit (or did you mean the default signal "api_p95"?)`}},
		"triggers.yaml":        {{"triggers.labels", 2, "no alert could ever trigger an automatic rollback"}},
		"trigger_value.yaml": {
			{"triggers.labels.auto_rollback", 3, "an empty value never matches"},
			{"triggers.labels.severity", 4, "expected a label value"},
		},
		"trend.yaml": {
			{"trend.min_points", 2, "must be at least 2"},
			{"trend.horizon", 3, "must not be negative, got -1m"},
			{"trend.lookback", 4, "must be greater than 0, got 0s"},
		},
		"policy.yaml": {
			{"on_breach", 1, `expected one of: rollback, ask, got "pause"`},
			{"max_query_errors", 2, "must be at least 1, got 0"},
			{"auto_promote", 3, `expected true or false, got "yes"`},
		},
		"timeline.yaml": {
			{"timeline", 2, "go_nogo is missing"},
			{"timeline[1].offset", 3, "must be 0 or negative (before T-0), got 5m"},
			{"timeline[2].name", 4, "freeze is already timeline[0]"},
			{"timeline[3].offset", 5, "-20m is before the previous step's -10m"},
			{"timeline[4].name", 6, `got "lunch"`},
		},
		"go_nogo_offset.yaml": {{"timeline[1].offset", 3, "its offset must be 0, got -1m"}},
		"cadence.yaml": {
			{"first_night.cadence[1].until", 4, "must be greater than 2h"},
			{"first_night.cadence[2].every", 5, "must be greater than 0, got 0s"},
			{"first_night.cadence[3].every", 6, "2h is longer than the 1h this entry covers (6h to 7h)"},
		},
		"syntax.yaml":    {{"", 2, "invalid YAML: did not find expected ',' or '}'"}},
		"two_docs.yaml":  {{"", 2, "a second YAML document"}},
		"merge_key.yaml": {{"trend", 2, "merge keys (<<) are not supported"}},
		"types.yaml": {
			{"stages", 1, "expected a list of stages like [{weight: 1, dwell: 15m}], got 5"},
			{"trend", 2, "expected a mapping like {min_points: 4, horizon: 15m, lookback: 15m}, got a list"},
			{"max_query_errors", 3, "expected a whole number like 3, got 2.5"},
			{"auto_promote", 4, `expected true or false, got "true"; remove the quotes`},
			{"signals[api_p95].threshold", 7, `expected a number like 0.25, got "fast"`},
			{"signals[1]", 8, `expected a signal like {name: api_p95, threshold: 0.25}, got "just a string"`},
			{"signals[error_5xx].threshold", 10, `got "0.02"; remove the quotes`},
			{"signals[error_5xx].op", 11, "a threshold is an upper bound"},
			{"triggers.labels", 13, "expected a mapping of alert labels"},
			{"timeline[0].offset", 15, "missing; each entry needs name and offset"},
		},
		"duplicate_key.yaml": {{"tick", 3, "given twice (first at line 1)"}},
		"empty_strings.yaml": {
			{"service", 1, "must not be empty"},
			{"evidence_dir", 2, "must not be empty"},
			{"state", 3, "must not be empty"},
		},
		"not_a_mapping.yaml": {{"", 1, `expected a mapping of settings like "service: spark", got a list`}},
	}

	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("%s has no expectations in TestInvalidFiles", f)
		}
	}
	for name, wants := range tests {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "invalid", name))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(data)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			checkProblems(t, err, wants)
		})
	}
}

// checkProblems asserts err lists exactly the wanted problems.
func checkProblems(t *testing.T, err error, wants []want) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err is %T, want *ValidationError: %v", err, err)
	}
	for _, w := range wants {
		found := false
		for _, fe := range ve.Errors {
			if fe.Path == w.path && fe.Line == w.line && strings.Contains(fe.Msg, w.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing problem %s (line %d): %q\ngot:\n%v", w.path, w.line, w.msg, err)
		}
	}
	if len(ve.Errors) != len(wants) {
		t.Errorf("got %d problems, want %d:\n%v", len(ve.Errors), len(wants), err)
	}
}

// TestValidate checks configs built in code: no lines, same rules.
func TestValidate(t *testing.T) {
	if err := Validate(DefaultConfig()); err != nil {
		t.Fatalf("the default config is invalid: %v", err)
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   []want
	}{
		{"no stages", func(c *Config) { c.Plan.Stages = nil }, []want{{"stages", 0, "at least one stage"}}},
		{"zero tick", func(c *Config) { c.Plan.Tick = 0 }, []want{{"tick", 0, "must be greater than 0"}}},
		{"tick longer than a dwell", func(c *Config) { c.Plan.Stages[3].Dwell = 10 * time.Second },
			[]want{{"tick", 0, "(stages[3].dwell = 10s)"}}},
		{"zero window", func(c *Config) { c.Plan.Window = "0s" }, []want{{"window", 0, "must be greater than 0"}}},
		{"empty window", func(c *Config) { c.Plan.Window = "" }, []want{{"window", 0, "expected a Prometheus duration"}}},
		{"no signals", func(c *Config) { c.Plan.Signals = nil }, []want{{"signals", 0, "no signals left"}}},
		{"duplicate signal", func(c *Config) { c.Plan.Signals[1].Name = "api_p95" },
			[]want{{"signals[api_p95].name", 0, "listed twice (entries 0 and 1)"}}},
		{"unnamed signal", func(c *Config) { c.Plan.Signals[2].Name = "" }, []want{{"signals[2].name", 0, "must not be empty"}}},
		{"empty query", func(c *Config) { c.Plan.Signals[0].Query = " " }, []want{{"signals[api_p95].query", 0, "must not be empty"}}},
		{"bad baseline query", func(c *Config) { c.Plan.Signals[5].BaselineQuery = "sum(" },
			[]want{{"signals[csp_violations].baseline_query", 0, "not valid PromQL"}}},
		{"string query", func(c *Config) { c.Plan.Signals[0].Query = `"fast"` },
			[]want{{"signals[api_p95].query", 0, "the query returns a string"}}},
		{"infinite threshold", func(c *Config) { c.Plan.Signals[0].Threshold = math.Inf(1) },
			[]want{{"signals[api_p95].threshold", 0, "must be a finite number"}}},
		{"bad op and unit", func(c *Config) { c.Plan.Signals[0].Op, c.Plan.Signals[0].Unit = ">", "ms" },
			[]want{{"signals[api_p95].op", 0, "expected one of: <=, <"}, {"signals[api_p95].unit", 0, "expected one of: seconds"}}},
		{"no trigger labels", func(c *Config) { c.Plan.Triggers.Labels = map[string]string{} },
			[]want{{"triggers.labels", 0, "no alert could ever trigger"}}},
		{"bad on_breach", func(c *Config) { c.Plan.OnBreach = "" }, []want{{"on_breach", 0, `got ""`}}},
		{"unknown step", func(c *Config) { c.Plan.Timeline[0].Name = "lunch" }, []want{{"timeline[0].name", 0, `got "lunch"`}}},
		{"no timeline", func(c *Config) { c.Plan.Timeline = nil }, []want{{"timeline", 0, "go_nogo is missing"}}},
		{"cadence from zero", func(c *Config) { c.Plan.FirstNight.Cadence[0].Until = 0 },
			[]want{{"first_night.cadence[0].until", 0, "must be greater than 0s"}}},
		{"empty paths", func(c *Config) { c.EvidenceDir, c.StatePath = "", "" },
			[]want{{"evidence_dir", 0, "must not be empty"}, {"state", 0, "must not be empty"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := Validate(c)
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			checkProblems(t, err, tt.want)
		})
	}
}

// TestWindowIsSubstituted checks that queries are parsed with the file's
// window in place of {{window}}, and that a bad window is reported once
// rather than again in every query.
func TestWindowIsSubstituted(t *testing.T) {
	c := DefaultConfig()
	c.Plan.Window = "5m"
	c.Plan.Signals = []rollout.SignalSpec{{
		Name: "sub", Query: "max_over_time(up[{{window}}:{{window}}])", Op: rollout.OpLE, Unit: rollout.UnitCount,
	}}
	if err := Validate(c); err != nil {
		t.Errorf("valid query with a subquery over the window: %v", err)
	}
	c = DefaultConfig()
	c.Plan.Window = "soon"
	checkProblems(t, Validate(c), []want{{"window", 0, `got "soon"`}})
}

func TestFieldErrorString(t *testing.T) {
	tests := []struct {
		err  FieldError
		want string
	}{
		{FieldError{Path: "stages[2].dwell", Line: 12, Column: 5, Msg: `expected a duration like 15m, got "fifteen"`},
			`canary.yaml:12:5: stages[2].dwell: expected a duration like 15m, got "fifteen"`},
		{FieldError{File: "deploy/canary.yaml", Path: "tick", Line: 3, Column: 7, Msg: "m"}, "deploy/canary.yaml:3:7: tick: m"},
		{FieldError{Path: "tick", Msg: "must be greater than 0"}, "tick: must be greater than 0"},
		{FieldError{Line: 4, Msg: "invalid YAML: x"}, "canary.yaml:4: invalid YAML: x"},
		{FieldError{Msg: "invalid YAML: x"}, "canary.yaml: invalid YAML: x"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestValidationErrorListsAll(t *testing.T) {
	_, err := Parse([]byte("tick: 0s\nhold: 0s\n"))
	want := "canary.yaml:1:7: tick: must be greater than 0, got 0s: it is how often signals are read\n" +
		"canary.yaml:2:7: hold: must be greater than 0, got 0s: it is how long a Rising signal holds the stage"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "tick" {
		t.Errorf("errors.As found %+v, want the tick FieldError", fe)
	}
}
