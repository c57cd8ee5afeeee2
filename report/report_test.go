package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./report/ -update` to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (if the change is intended, run `go test ./report/ -update`)\n--- got:\n%s\n--- want:\n%s", name, path, got, want)
	}
}

func table(rd report.Renderer, p *rollout.Plan, rows []rollout.Row) string {
	lines := []string{rd.TableHeader(p)}
	for _, row := range rows {
		lines = append(lines, rd.TableRow(p, row))
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestGolden renders every file of the fixture releases.
func TestGolden(t *testing.T) {
	p := testPlan()
	rd := report.Renderer{}
	ex, rb, alert := exampleRelease(p), rolledBackRelease(p), alertRollbackRelease(p)
	night := nightRowsOf(ex)
	ongoing := exampleRelease(p)
	ongoing.Phase, ongoing.PhaseStarted = rollout.PhaseFirstNight, at(11, 30)
	ongoing.Rows = ongoing.Rows[:6]

	cases := []struct {
		name string
		got  []byte
	}{
		{"table_runbook", []byte(table(rd, p, ex.Rows))},
		{"table_rolled_back", []byte(table(rd, p, rb.Rows))},
		{"table_degraded", []byte(table(rd, p, []rollout.Row{degradedRow(p)}))},
		{"stage_report_example_100", rd.StageReport(p, ex, 4)},
		{"stage_summary_example_1", rd.StageSummary(p, ex, 0)},
		{"stage_report_rolled_back_25", rd.StageReport(p, rb, 2)},
		{"stage_summary_rolled_back_25", rd.StageSummary(p, rb, 2)},
		{"rollback_breach", rd.RollbackReport(p, rb)},
		{"rollback_alert", rd.RollbackReport(p, alert)},
		{"rollback_first_night", rd.RollbackReport(p, nightRollbackRelease(p))},
		{"rca_first_night_rollback", rd.RCA(p, nightRollbackRelease(p))},
		{"baseline_example", rd.Baseline(p, ex)},
		{"night_snapshot_1", rd.NightSnapshot(p, ongoing, night[0])},
		{"night_snapshot_2", rd.NightSnapshot(p, ex, night[1])},
		{"rca_example", rd.RCA(p, ex)},
		{"rca_rolled_back", rd.RCA(p, rb)},
		{"warroom_log_example", rd.WarRoomLog(ex)},
		{"oneliner_example", []byte(rd.OneLiner(p, ex) + "\n")},
		{"oneliner_rolled_back", []byte(rd.OneLiner(p, rb) + "\n")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { golden(t, c.name, c.got) })
	}
}

func nightRowsOf(r *rollout.Release) []rollout.Row {
	var out []rollout.Row
	for _, row := range r.Rows {
		if row.Phase == rollout.PhaseFirstNight {
			out = append(out, row)
		}
	}
	return out
}

// TestRunbookTable checks the runbook's example renders with every value in
// its column, the rows aligned under the header, and the last stage Complete.
func TestRunbookTable(t *testing.T) {
	p := testPlan()
	rd := report.Renderer{}
	header := rd.TableHeader(p)
	wantHeader := []string{"HH:MM", "Stage", "p95", "5xx", "ws_stale", "idemp%", "csp", "eloop", "gc", "risk", "decision"}
	if got := cells(header); !slices.Equal(got, wantHeader) {
		t.Fatalf("header columns = %q, want %q", got, wantHeader)
	}
	want := [][]string{
		{"10:00", "1 (1%)", "142ms", "0.2%", "8s", "0.1%", "+3%", "12ms", "8ms", "0.10/m", "IC: Proceed ✅"},
		{"10:15", "2 (5%)", "145ms", "0.3%", "9s", "0.2%", "+4%", "15ms", "10ms", "0.10/m", "IC: Proceed ✅"},
		{"10:30", "3 (25%)", "148ms", "0.3%", "11s", "0.2%", "+5%", "18ms", "12ms", "0.10/m", "IC: Proceed ✅"},
		{"10:45", "4 (50%)", "152ms", "0.4%", "12s", "0.3%", "+6%", "20ms", "14ms", "0.10/m", "IC: Proceed ✅"},
		{"11:00", "5 (100%)", "156ms", "0.4%", "13s", "0.3%", "+7%", "22ms", "16ms", "0.10/m", "IC: Complete ✅"},
	}
	rows := exampleRelease(p).Rows[:5]
	for i, row := range rows {
		line := rd.TableRow(p, row)
		if got := cells(line); !slices.Equal(got, want[i]) {
			t.Errorf("row %d = %q, want cells %q", i, line, want[i])
		}
		if got, want := bars(line), bars(header); !slices.Equal(got, want) {
			t.Errorf("row %d separators at %v, header's at %v:\n%s\n%s", i, got, want, header, line)
		}
	}
}

// cells splits a table line on its separators.
func cells(line string) []string {
	parts := strings.Split(line, "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// bars are the display columns (runes) of a line's separators.
func bars(line string) []int {
	var out []int
	for i, r := range []rune(line) {
		if r == '|' {
			out = append(out, i)
		}
	}
	return out
}

func TestTableRowVerdicts(t *testing.T) {
	p := testPlan()
	rd := report.Renderer{}
	got := cells(rd.TableRow(p, degradedRow(p)))
	want := []string{"10:20", "2 (5%)", "145ms", "n/a?", "err!", "0.2%", "+4%", "41ms↑", "31ms✗", "n/a", "ROLLBACK ⛔ (gc_pause_avg breach)"}
	if !slices.Equal(got, want) {
		t.Errorf("degraded row cells = %q, want %q", got, want)
	}
}

func TestDecisionCell(t *testing.T) {
	p := testPlan()
	rd := report.Renderer{}
	base := func(stage int, d rollout.Decision) rollout.Row {
		return mkRow(p, at(10, 0), stage, runbookValues()[0], d)
	}
	rising := base(3, rollout.Decision{Kind: rollout.Hold, Signals: []string{"api_p95"}, Reason: "trend: …"})
	setReading(&rising, rollout.Measurement{Signal: "api_p95", Value: 0.18, Verdict: rollout.Rising})
	noData := base(3, rollout.Decision{Kind: rollout.Hold, Signals: []string{"error_5xx", "ws_staleness"}, Reason: "no data: …"})
	setReading(&noData, rollout.Measurement{Signal: "error_5xx", Verdict: rollout.NoData})
	setReading(&noData, rollout.Measurement{Signal: "ws_staleness", Verdict: rollout.NoData})
	alert := base(2, rollout.Decision{Kind: rollout.Rollback, Auto: true, Signals: []string{"PGBouncerSaturated"}})
	alert.Alerts = []rollout.Alert{{Name: "PGBouncerSaturated"}}
	ask := base(2, rollout.Decision{Kind: rollout.Rollback, Signals: []string{"api_p95"}})
	setReading(&ask, rollout.Measurement{Signal: "api_p95", Value: 0.3, Verdict: rollout.Breach})

	cases := []struct {
		name string
		row  rollout.Row
		want string
	}{
		{"continue", base(1, rollout.Decision{Kind: rollout.Continue, Reason: "all signals pass"}), "watching"},
		{"proceed", base(4, rollout.Decision{Kind: rollout.Proceed}), "IC: Proceed ✅"},
		{"auto proceed", base(4, rollout.Decision{Kind: rollout.Proceed, Auto: true}), "auto: Proceed ✅"},
		{"last stage", base(5, rollout.Decision{Kind: rollout.Proceed}), "IC: Complete ✅"},
		{"rising hold", rising, "Hold ⏸ (api_p95 rising)"},
		{"no data hold", noData, "Hold ⏸ (error_5xx no data, ws_staleness no data)"},
		{"manual hold", base(2, rollout.Decision{Kind: rollout.Hold, Reason: "held by alice until 10:30: db migration"}), "Hold ⏸ (held by alice until 10:30: db migration)"},
		{"trigger", alert, "ROLLBACK ⛔ (alert PGBouncerSaturated)"},
		{"ask", ask, "ROLLBACK ⛔ (api_p95 breach) — IC to decide"},
		{"undecided", base(1, rollout.Decision{}), "-"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := cells(rd.TableRow(p, c.row))
			if last := got[len(got)-1]; last != c.want {
				t.Errorf("decision cell = %q, want %q", last, c.want)
			}
		})
	}
}

func TestOneLiner(t *testing.T) {
	p := testPlan()
	aborted := &rollout.Release{Version: "v1.4.0", Phase: rollout.PhaseAborted, Steps: []rollout.StepRecord{
		{Name: rollout.StepPreflight, Status: rollout.GateFailed, Detail: "pgbouncer pools saturated", At: at(9, 50)},
	}}
	manual := rolledBackRelease(p)
	manual.Rollback = &rollout.RollbackRecord{At: at(10, 41), Reason: "customer reports", Stage: 3, Weight: 25, By: "alice"}
	manual.Rows = manual.Rows[:5]
	running := exampleRelease(p)
	running.Phase, running.Stage, running.Rows = rollout.PhaseStage, 2, running.Rows[:3]

	cases := []struct {
		name string
		r    *rollout.Release
		want string
	}{
		{"runbook example", exampleRelease(p),
			"v1.4.0 canary: 1%→100% all stages 8/8 signals pass; rollback=0; p95=~149ms, 5xx=0.3%, ws_stale_p95=11s, risk_block=0.1/min, idemp_conflict=0.2%, csp_viol=baseline+5%; event-loop p95=17ms, GC avg=12ms."},
		{"rolled back", rolledBackRelease(p),
			"v1.4.0 canary: rolled back at stage 3 (25%) after 12m: api_p95 breach (312ms > 200ms); rollback=1, holds=1; p95=~186ms, 5xx=0.3%, ws_stale_p95=10s, risk_block=0.1/min, idemp_conflict=0.2%, csp_viol=baseline+5%; event-loop p95=16ms, GC avg=11ms."},
		{"alert", alertRollbackRelease(p),
			"v1.4.1 canary: rolled back at stage 2 (5%) after 5m: alert EventLoopBackpressure firing; rollback=1; p95=~144ms, 5xx=0.2%, ws_stale_p95=8s, risk_block=0.1/min, idemp_conflict=0.1%, csp_viol=baseline+4%; event-loop p95=14ms, GC avg=9ms."},
		{"manual rollback", manual,
			"v1.4.0 canary: rolled back at stage 3 (25%) after 11m: customer reports (by alice); rollback=1, holds=1; p95=~161ms, 5xx=0.3%, ws_stale_p95=10s, risk_block=0.1/min, idemp_conflict=0.2%, csp_viol=baseline+4%; event-loop p95=16ms, GC avg=11ms."},
		{"missing signal", noRiskRelease(p),
			"v1.4.0 canary: 1%→100% all stages 6/8 signals pass; rollback=0; p95=~147ms, 5xx=0.3%, ws_stale_p95=11s, risk_block=n/a, idemp_conflict=0.2%, csp_viol=baseline+5%; event-loop p95=17ms, GC avg=12ms."},
		{"first-night rollback", nightRollbackRelease(p),
			"v1.4.0 canary: rolled back during the first night (100%) after 3h: alert PGBouncerSaturated firing; rollback=1; p95=~149ms, 5xx=0.3%, ws_stale_p95=11s, risk_block=0.1/min, idemp_conflict=0.2%, csp_viol=baseline+5%; event-loop p95=17ms, GC avg=12ms."},
		{"aborted", aborted,
			"v1.4.0 canary: aborted before stage 1: preflight failed (pgbouncer pools saturated); rollback=0; p95=n/a, 5xx=n/a, ws_stale_p95=n/a, risk_block=n/a, idemp_conflict=n/a, csp_viol=n/a; event-loop p95=n/a, GC avg=n/a."},
		{"in progress", running,
			"v1.4.0 canary: 1%→25% so far, stage 3 of 5 in progress; rollback=0; p95=~145ms, 5xx=0.3%, ws_stale_p95=9s, risk_block=0.1/min, idemp_conflict=0.2%, csp_viol=baseline+4%; event-loop p95=15ms, GC avg=10ms."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := (report.Renderer{}).OneLiner(p, c.r); got != c.want {
				t.Errorf("one-liner\n got: %s\nwant: %s", got, c.want)
			}
		})
	}
}

// TestMissingSignal: a signal the rows never read shows n/a everywhere, never
// a made-up 0.
func TestMissingSignal(t *testing.T) {
	p := testPlan()
	rd := report.Renderer{}
	r := noRiskRelease(p)
	if got := cells(rd.TableRow(p, r.Rows[0])); got[9] != "n/a" {
		t.Errorf("risk cell = %q, want n/a", got[9])
	}
	if got := cells(rd.TableRow(p, r.Rows[4])); got[2] != "n/a?" {
		t.Errorf("NoData p95 cell = %q, want n/a?", got[2])
	}
	summary := string(rd.StageSummary(p, r, 0))
	if !regexp.MustCompile(`(?m)^risk_blocks +< 0\.50/m +n/a +n/a +n/a +0 +1 `).MatchString(summary) {
		t.Errorf("summary does not show risk_blocks as n/a with 0 valid and 1 missing:\n%s", summary)
	}
	for _, s := range []string{rd.OneLiner(p, r), string(rd.RCA(p, r))} {
		if strings.Contains(s, "risk_block=0") {
			t.Errorf("a missing signal shows as 0:\n%s", s)
		}
	}
	prom := string(rd.Baseline(p, r))
	if strings.Contains(prom, `signal="risk_blocks"`) || strings.Contains(prom, `signal="api_p95"`) {
		t.Errorf("baseline has samples for signals without a usable reading:\n%s", prom)
	}
}

func TestBaselineParses(t *testing.T) {
	p := testPlan()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(report.Renderer{}.Baseline(p, exampleRelease(p))))
	if err != nil {
		t.Fatalf("baseline is not Prometheus text: %v", err)
	}
	fam, ok := fams["canary_signal"]
	if !ok {
		t.Fatalf("no canary_signal family in %v", fams)
	}
	if fam.GetHelp() == "" {
		t.Error("canary_signal has no HELP")
	}
	want := map[string]float64{
		"api_p95": 0.156, "error_5xx": 0.004, "ws_staleness": 13, "risk_blocks": 0.1,
		"idempotency_conflicts": 0.003, "csp_violations": cspBaseline * 1.07, "eventloop_p95": 0.022, "gc_pause_avg": 0.016,
	}
	got := map[string]float64{}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["stage"] != "100" {
			t.Errorf("sample %v: stage label %q, want 100", labels, labels["stage"])
		}
		got[labels["signal"]] = m.GetGauge().GetValue()
	}
	if len(got) != len(want) {
		t.Errorf("got %d signals %v, want %d", len(got), got, len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g < v-1e-12 || g > v+1e-12 {
			t.Errorf("canary_signal{signal=%q} = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if b, ok := fams["canary_signal_baseline"]; !ok || len(b.GetMetric()) != 1 || b.GetMetric()[0].GetGauge().GetValue() != cspBaseline {
		t.Errorf("canary_signal_baseline = %v, want one sample %v for csp_violations", b, cspBaseline)
	}
}

func TestNightSnapshotDiff(t *testing.T) {
	p := testPlan()
	ex := exampleRelease(p)
	night := nightRowsOf(ex)
	out := string(report.Renderer{}.NightSnapshot(p, ex, night[1]))
	for _, want := range []string{
		"snapshot: 2 of 34\n",
		"  api_p95: 156ms → 161ms (+3.2%)\n",
		"  csp_violations: baseline+7% → baseline+7% (+0 pts)\n",
		// 22ms → 40ms with a 50ms bound: 18 of the 28ms of headroom.
		"  eventloop_p95: 22ms → 40ms (+81.8%) ⚠ moved 64% of the way to its bound ≤ 50ms\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("snapshot lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "⚠"); n != 2 { // the legend and eventloop_p95
		t.Errorf("%d ⚠ in the snapshot, want the legend and one flag:\n%s", n, out)
	}
}

func TestNightFlagThreshold(t *testing.T) {
	p := testPlan()
	cases := []struct {
		name  string
		p95   float64 // ms, baseline 156ms, bound 200ms: 20% of the headroom is 164.8ms
		flags bool
	}{
		{"within", 164, false},
		{"just over", 165, true},
		{"better", 120, false},
		{"over the bound", 250, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := exampleRelease(p)
			row := mkRow(p, at(12, 0), 0, vals{c.p95, 0.4, 13, 0.1, 0.3, 7, 22, 16}, rollout.Decision{Kind: rollout.Continue})
			out := string(report.Renderer{}.NightSnapshot(p, r, row))
			line := lineWith(out, "  api_p95:")
			if got := strings.Contains(line, "⚠"); got != c.flags {
				t.Errorf("flagged = %v, want %v: %q", got, c.flags, line)
			}
		})
	}
}

func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

var (
	placeholder = regexp.MustCompile(`^- \[ \] (\d\. )?\[[^\]]+\]$`)
	sectionRE   = regexp.MustCompile(`(?m)^## `)
)

// TestRCAFactsOnly: the RCA states the facts, and its judgement sections hold
// nothing but the runbook's placeholders and facts copied from the Facts
// section.
func TestRCAFactsOnly(t *testing.T) {
	p := testPlan()
	cases := []struct {
		name  string
		r     *rollout.Release
		facts []string // lines the Facts section must have
		// lines each judgement section must list under its facts
		wentWell, improve, risks []string
	}{
		{
			name: "example", r: exampleRelease(p),
			facts: []string{
				"- One-liner: v1.4.0 canary: 1%→100% all stages 8/8 signals pass; rollback=0;",
				"- 2026-11-27 09:51 UTC step blast: skipped (by canarybot) — no blast-radius target configured",
				"- 2026-11-27 10:15 UTC alice: promote",
				"- 2026-11-27 11:00 UTC stage 5 (100%): Proceed — dwell 30m0s over, 8/8 signals pass",
				"- 2026-11-27 12:00 UTC ended: complete",
				"- stage 3 (25%): 2026-11-27 10:30 UTC to 2026-11-27 10:30 UTC, 1 row, 0 holds; promoted to stage 4 (50%)",
				"- blast: skipped at 2026-11-27 09:51 UTC by canarybot — no blast-radius target configured",
				"- 2026-11-27 10:14 UTC carol: promote — refused: only the Incident Commander (alice) may promote",
			},
			wentWell: []string{"- stage 1 (1%): "},
			improve:  []string{"- blast: skipped", "- 2026-11-27 10:14 UTC carol: promote — refused"},
			risks:    []string{"- blast: skipped", "eventloop_p95: 22ms → 40ms (+81.8%) ⚠"},
		},
		{
			name: "rolled back", r: rolledBackRelease(p),
			facts: []string{
				"- Outcome: rolled back at stage 3 (25%) on 2026-11-27 10:42 UTC",
				"- 2026-11-27 10:35 UTC stage 3 (25%): Hold — trend: api_p95 = 185ms rising",
				"- 2026-11-27 10:42 UTC ROLLBACK at stage 3 (25%) by canarybot (auto): breach: api_p95 = 312ms, bound ≤ 200ms",
				"- 2026-11-27 10:35:00 UTC stage 3 (25%): hold — api_p95 rising: trend:",
				"- 2026-11-27 10:42 UTC rolled back at stage 3 (25%), weight 25%, by canarybot (auto), automatic: breach: api_p95 = 312ms, bound ≤ 200ms",
				"- caused by api_p95: 312ms > 200ms (Breach) — api_p95 = 312ms, bound ≤ 200ms",
				"- stage 3 (25%): 2026-11-27 10:30 UTC to 2026-11-27 10:42 UTC, 4 rows, 1 hold; rolled back at",
				"- api_p95 (≤ 200ms): 6 usable readings, min 142ms, mean 186ms, max 312ms; Pass 3, Rising 2, Breach 1",
			},
			wentWell: []string{"- stage 1 (1%): ", "- stage 2 (5%): "},
			improve:  []string{"- 2026-11-27 10:35:00 UTC stage 3 (25%): hold", "- caused by api_p95"},
			risks:    []string{"- api_p95 (≤ 200ms):"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := string(report.Renderer{}.RCA(p, c.r))
			secs := sections(out)
			facts, ok := secs["Facts"]
			if !ok {
				t.Fatalf("no Facts section:\n%s", out)
			}
			if !strings.HasPrefix(out, "# Mini RCA - v1.4.0\n\n## Facts\n") {
				t.Errorf("RCA does not start with its title and the Facts section:\n%s", out)
			}
			for _, want := range c.facts {
				if !hasLinePrefix(facts, want) {
					t.Errorf("Facts lacks a line starting %q:\n%s", want, facts)
				}
			}
			factLines := map[string]bool{}
			for _, l := range strings.Split(facts, "\n") {
				factLines[l] = true
			}
			for name, wantFacts := range map[string][]string{
				"What Went Well": c.wentWell, "What Could Be Improved": c.improve, "Remaining Risks (3)": c.risks,
			} {
				body, ok := secs[name]
				if !ok {
					t.Errorf("no %q section", name)
					continue
				}
				n := 0
				for _, l := range strings.Split(body, "\n") {
					switch {
					case l == "", l == "Facts that may belong here:":
					case placeholder.MatchString(l):
						n++
					case !factLines[l]:
						t.Errorf("%s has a line that is neither a placeholder nor a fact from the Facts section: %q", name, l)
					}
				}
				if n != 3 {
					t.Errorf("%s has %d placeholders, want 3", name, n)
				}
				for _, want := range wantFacts {
					if !hasLinePrefix(body, want) && !strings.Contains(body, want) {
						t.Errorf("%s does not list the fact %q:\n%s", name, want, body)
					}
				}
			}
		})
	}
}

// sections splits markdown at "## " headings.
func sections(md string) map[string]string {
	out := map[string]string{}
	idx := sectionRE.FindAllStringIndex(md, -1)
	for i, loc := range idx {
		end := len(md)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		block := md[loc[1]:end]
		title, body, _ := strings.Cut(block, "\n")
		out[title] = body
	}
	return out
}

func hasLinePrefix(s, prefix string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestWarRoomLog(t *testing.T) {
	r := &rollout.Release{Log: []rollout.LogEntry{
		{At: at(10, 0), User: "alice", Kind: rollout.LogCommand, Text: "promote"},
		{At: at(10, 0).Add(30 * time.Second), User: "canarybot", Kind: rollout.LogDecision, Text: "Stage 2/5: canary weight 5%\nfor 15m"},
		{At: at(10, 1), Kind: rollout.LogRefused, Text: "hold — refused"},
	}}
	// The zone must not leak into the log: it stays UTC.
	got := string(report.Renderer{Location: time.FixedZone("TRT", 3*3600)}.WarRoomLog(r))
	want := "" +
		"2026-11-27T10:00:00Z  alice      command   promote\n" +
		"2026-11-27T10:00:30Z  canarybot  decision  Stage 2/5: canary weight 5% for 15m\n" +
		"2026-11-27T10:01:00Z  -          refused   hold — refused\n"
	if got != want {
		t.Errorf("war-room log\n got:\n%s\nwant:\n%s", got, want)
	}
	if got := (report.Renderer{}).WarRoomLog(&rollout.Release{}); len(got) != 0 {
		t.Errorf("empty log renders %q, want nothing", got)
	}
}

func TestLocation(t *testing.T) {
	p := testPlan()
	row := exampleRelease(p).Rows[0]
	rd := report.Renderer{Location: time.FixedZone("TRT", 3*3600)}
	if got := cells(rd.TableRow(p, row))[0]; got != "13:00" {
		t.Errorf("10:00Z in UTC+3 = %q, want 13:00", got)
	}
	if out := string(rd.StageReport(p, exampleRelease(p), 0)); !strings.Contains(out, "2026-11-27 13:00:00 TRT") {
		t.Errorf("stage report not in the renderer's zone:\n%s", out)
	}
}

// TestNoPanics: a renderer runs inside evidence writing, so odd input must
// render as "nothing known", not crash the engine.
func TestNoPanics(t *testing.T) {
	p := testPlan()
	rd := report.Renderer{}
	empty := &rollout.Release{}
	for name, f := range map[string]func(){
		"nil plan header":        func() { rd.TableHeader(nil) },
		"nil plan row":           func() { rd.TableRow(nil, degradedRow(p)) },
		"stage out of range":     func() { rd.StageReport(p, exampleRelease(p), 9) },
		"negative stage":         func() { rd.StageSummary(p, exampleRelease(p), -1) },
		"nil release":            func() { rd.RCA(p, nil) },
		"rollback without one":   func() { rd.RollbackReport(p, empty) },
		"baseline without rows":  func() { rd.Baseline(p, empty) },
		"snapshot without rows":  func() { rd.NightSnapshot(p, empty, rollout.Row{}) },
		"one-liner empty plan":   func() { rd.OneLiner(&rollout.Plan{}, empty) },
		"one-liner nil release":  func() { rd.OneLiner(nil, nil) },
		"warroom log nil":        func() { rd.WarRoomLog(nil) },
		"rca nil plan, rollback": func() { rd.RCA(nil, rolledBackRelease(p)) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if v := recover(); v != nil {
					t.Errorf("panicked: %v", v)
				}
			}()
			f()
		})
	}
	if out := string(rd.RollbackReport(p, empty)); !strings.Contains(out, "rollback: none recorded") {
		t.Errorf("rollback report without a rollback = %q", out)
	}
	if out := string(rd.StageReport(p, exampleRelease(p), 9)); !strings.Contains(out, "stage:    10 is not in the plan (5 stages)") {
		t.Errorf("out-of-range stage report = %q", out)
	}
}

// TestDeterministic renders releases with labelled alerts many times; map
// order must not show.
func TestDeterministic(t *testing.T) {
	p := testPlan()
	rd := report.Renderer{}
	r := alertRollbackRelease(p)
	first := string(rd.RollbackReport(p, r)) + string(rd.RCA(p, r))
	for range 20 {
		if again := string(rd.RollbackReport(p, r)) + string(rd.RCA(p, r)); again != first {
			t.Fatalf("rendering changed between runs:\n%s\n---\n%s", first, again)
		}
	}
	if !strings.Contains(first, `EventLoopBackpressure{alertname="EventLoopBackpressure", auto_rollback="true", severity="critical"}`) {
		t.Errorf("alert labels not sorted:\n%s", first)
	}
}

// TestDefaultPlanHeader renders the shipped default plan's header: the
// runbook's columns with risk added, in the runbook's order.
func TestDefaultPlanHeader(t *testing.T) {
	p := config.Default()
	got := cells(report.Renderer{}.TableHeader(&p))
	want := []string{"HH:MM", "Stage", "p95", "5xx", "ws_stale", "idemp%", "csp", "eloop", "gc", "risk", "decision"}
	if !slices.Equal(got, want) {
		t.Errorf("default plan header = %q, want %q", got, want)
	}
}

// TestExtraSignal: a signal the runbook does not know goes after risk; a
// runbook column whose signal the plan lacks is left out.
func TestExtraSignal(t *testing.T) {
	p := testPlan()
	p.Signals = append(p.Signals[:1:1], rollout.SignalSpec{Name: "queue_depth", Column: "queue", Unit: rollout.UnitCount, Threshold: 100, Op: rollout.OpLE})
	got := cells(report.Renderer{}.TableHeader(p))
	want := []string{"HH:MM", "Stage", "p95", "queue", "decision"}
	if !slices.Equal(got, want) {
		t.Errorf("header = %q, want %q", got, want)
	}
}

func BenchmarkTableRow(b *testing.B) {
	p := testPlan()
	rd := report.Renderer{}
	row := degradedRow(p)
	for b.Loop() {
		rd.TableRow(p, row)
	}
}

// BenchmarkRCA renders the RCA of a release with a full day of rows: five
// stages at one row per 30 s tick and the first night's snapshots.
func BenchmarkRCA(b *testing.B) {
	p := testPlan()
	r := exampleRelease(p)
	var rows []rollout.Row
	for i, st := range p.Stages {
		for t := time.Duration(0); t < st.Dwell; t += p.Tick {
			rows = append(rows, mkRow(p, at(10, 0).Add(time.Duration(i)*15*time.Minute+t), i+1, runbookValues()[i], rollout.Decision{Kind: rollout.Continue}))
		}
	}
	r.Rows = append(rows, r.Rows[5:]...)
	rd := report.Renderer{}
	for b.Loop() {
		rd.RCA(p, r)
	}
}

// TestStageReportKeepsRawResult: the stage evidence shows the metrics
// source's own answer beside the value it was read as.
func TestStageReportKeepsRawResult(t *testing.T) {
	p := testPlan()
	rel := exampleRelease(p)
	var last *rollout.Row
	for i := range rel.Rows {
		if rel.Rows[i].Stage == 1 {
			last = &rel.Rows[i]
		}
	}
	if last == nil {
		t.Fatal("the example release has no stage-1 row")
	}
	raw := `{"resultType":"vector","result":[{"metric":{},"value":[1795000000,"0.149"]}]}`
	last.Readings[0].Raw = []byte(raw)
	out := string(report.Renderer{}.StageReport(p, rel, 0))
	if !strings.Contains(out, "result:   "+raw) {
		t.Errorf("stage report lacks the raw result %s:\n%s", raw, out)
	}
}
