package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/rollout"
)

// cli runs canarybot with args and returns its output and exit code.
func cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return out.String() + errOut.String(), exitCode(err)
}

// TestDemoClean plays a whole release at 300× and checks that it completes
// and leaves a complete, verifiable evidence directory.
func TestDemoClean(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	out, code := cli(t, "demo", "--speed", "300", "--evidence-dir", dir, "--state", state)
	if code != exitComplete {
		t.Fatalf("demo exit %d, want 0:\n%s", code, tail(out, 40))
	}
	for _, want := range []string{"Stage 5/5: canary weight 100%", "IC: Proceed ✅", "release v1.4.0: complete", "v1.4.0 canary: 1%→100%"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	ev := filepath.Join(dir, "v1.4.0")
	if out, code := cli(t, "evidence", "verify", ev); code != 0 {
		t.Errorf("evidence verify exit %d:\n%s", code, out)
	}
	out, code = cli(t, "evidence", "check", ev)
	if code != 0 || !strings.Contains(out, "evidence files present") {
		t.Errorf("evidence check exit %d:\n%s", code, out)
	}
	for _, f := range []string{"preflight.txt", "rollout_stage_1.txt", "rollout_stage_100.txt", "summary_stage_50.txt",
		"warroom_log.txt", "release_oneliner.txt", "mini_rca_v1.4.0.md", "rollback_dryrun.txt", "baseline_v1.4.0.prom", "micro_blast_v1.4.0.log"} {
		if _, err := os.Stat(filepath.Join(ev, f)); err != nil {
			t.Errorf("evidence %s: %v", f, err)
		}
	}
	// The state file answers status after the run.
	out, code = cli(t, "status", "--state", state)
	if code != 0 || !strings.Contains(out, "phase complete") {
		t.Errorf("status exit %d:\n%s", code, out)
	}
	// Tampering is caught by the same command.
	if err := os.WriteFile(filepath.Join(ev, "preflight.txt"), []byte("all good, trust me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := cli(t, "evidence", "verify", ev); code == 0 || !strings.Contains(out, "preflight.txt") {
		t.Errorf("verify of an edited file: exit %d:\n%s", code, out)
	}
}

// TestDemoFaults degrades the canary during stage 3: the engine rolls back
// by itself, says which signal or alert, leaves weight 0 and exits 3.
func TestDemoFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault demo.Fault
		why   string
	}{
		{demo.FaultLatency, "api_p95"},
		{demo.FaultTrigger, "OutboxLagCritical"},
	}
	for _, tc := range tests {
		t.Run(string(tc.fault), func(t *testing.T) {
			dir := t.TempDir()
			var out bytes.Buffer
			g := &globals{out: &out, errOut: &out, logLevel: "error"}
			res, err := runDemo(context.Background(), g, demoOptions{
				version: "v1.4.0", speed: 300, fault: tc.fault, faultStage: 3, faultAfter: 5 * time.Minute,
				rps: 200, wsClients: 100, evidence: dir,
			})
			if code := exitCode(err); code != exitRolledBack {
				t.Fatalf("exit %d (%v), want 3:\n%s", code, err, tail(out.String(), 30))
			}
			r := res.release
			if r.Phase != rollout.PhaseRolledBack || r.Rollback == nil {
				t.Fatalf("phase %s, want rolled back", r.Phase)
			}
			if !strings.Contains(r.Rollback.Reason, tc.why) {
				t.Errorf("rollback reason %q does not name %s", r.Rollback.Reason, tc.why)
			}
			// Before the fault's stage it would be a false alarm. After it
			// is allowed: the scaled clock runs on wall time, so on a
			// starved machine (-race, two busy cores) the stage's last
			// virtual minutes can pass before the engine reads the breach,
			// and the IC promotes first.
			if r.Rollback.Stage < 3 {
				t.Errorf("rolled back at stage %d, before the fault's stage 3", r.Rollback.Stage)
			}
			if res.faultAt.IsZero() || res.zeroAt.IsZero() {
				t.Errorf("fault planted at %v, weight 0 at %v: want both, the rollback after the fault", res.faultAt, res.zeroAt)
			}
			if res.finalWeight != 0 {
				t.Errorf("router weight %d after rollback, want 0", res.finalWeight)
			}
			files, _ := filepath.Glob(filepath.Join(res.evidenceDir, "rollback_*.txt"))
			var found bool
			for _, f := range files {
				if !strings.HasSuffix(f, "rollback_dryrun.txt") {
					found = true
				}
			}
			if !found {
				t.Errorf("no rollback_<timestamp>.txt in %v", files)
			}
			if !res.verifyReport.OK || len(res.completeness.Missing) > 0 {
				t.Errorf("evidence after rollback: %s / %s", res.verifyReport, res.completeness)
			}
		})
	}
}

// TestDemoFlagValidation checks that each knob that would hang the demo,
// drop its fault or reach outside the evidence root is refused with exit 2
// and a message saying what is allowed, before anything starts.
func TestDemoFlagValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no HTTP load", []string{"--rps", "0"}, "--rps must be between 1 and 100000 requests per second, got 0"},
		{"negative HTTP load", []string{"--rps", "-5"}, "--rps must be between 1 and 100000"},
		{"too much HTTP load", []string{"--rps", "100001"}, "--rps must be between 1 and 100000"},
		{"no WebSocket clients", []string{"--ws-clients", "0"}, "--ws-clients must be at least 1, got 0"},
		{"speed below 1", []string{"--speed", "0.5"}, "--speed must be a number of at least 1"},
		{"speed not a number", []string{"--speed", "NaN"}, "--speed must be a number of at least 1"},
		{"unknown fault", []string{"--fault", "slow"}, "--fault: unknown fault"},
		{"fault stage past the plan", []string{"--fault", "latency", "--fault-stage", "9"}, "--fault-stage must be between 1 and 5 (the plan's stages), got 9"},
		{"fault stage 0", []string{"--fault", "errors", "--fault-stage", "0"}, "--fault-stage must be between 1 and 5"},
		{"fault stage of a short plan", []string{"--config", "testdata/short.yaml", "--fault", "trigger", "--fault-stage", "3"}, "--fault-stage must be between 1 and 2"},
		{"fault at the stage's start", []string{"--fault", "latency", "--fault-after", "0s"}, "--fault-after must be more than 0 and less than stage 3's dwell of 15m0s, got 0s"},
		{"fault at the stage's end", []string{"--fault", "latency", "--fault-after", "15m"}, "less than stage 3's dwell of 15m0s, got 15m0s"},
		{"fault after a longer stage", []string{"--fault", "latency", "--fault-stage", "5", "--fault-after", "45m"}, "less than stage 5's dwell of 30m0s"},
		{"fault placed without a fault", []string{"--fault-stage", "2"}, "add --fault latency, errors or trigger"},
		{"version with a path", []string{"--version", "../v1.4.0"}, `--version "../v1.4.0": use a release tag such as v1.4.0`},
		{"hidden version", []string{"--version", ".."}, `--version "..": use a release tag`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"demo", "--evidence-dir", dir, "--speed", "300"}, tt.args...)
			out, code := cli(t, args...)
			if code != exitBadInput {
				t.Fatalf("demo %s: exit %d, want 2:\n%s", strings.Join(tt.args, " "), code, tail(out, 20))
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("demo %s: output lacks %q:\n%s", strings.Join(tt.args, " "), tt.want, tail(out, 20))
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("demo %s wrote %d entries to the evidence root before refusing", strings.Join(tt.args, " "), len(entries))
			}
		})
	}
}

// TestValidateDemoAccepts checks the edges of what the flags allow, so the
// checks above do not refuse more than they should.
func TestValidateDemoAccepts(t *testing.T) {
	plan := config.Default()
	ok := demoOptions{version: "v1.4.0", speed: 1, fault: demo.FaultNone, faultStage: 3, faultAfter: 5 * time.Minute, rps: 1, wsClients: 1}
	tests := []struct {
		name string
		edit func(*demoOptions)
	}{
		{"smallest load and speed", func(*demoOptions) {}},
		{"largest load", func(o *demoOptions) { o.rps = demo.MaxRPS }},
		{"fault in the first stage", func(o *demoOptions) { o.fault, o.faultStage, o.faultAfter = demo.FaultLatency, 1, time.Nanosecond }},
		{"fault just before the last stage ends", func(o *demoOptions) {
			o.fault, o.faultStage, o.faultAfter = demo.FaultTrigger, len(plan.Stages), plan.Stages[len(plan.Stages)-1].Dwell-time.Second
		}},
		{"fault flags unused without a fault", func(o *demoOptions) { o.faultStage, o.faultAfter = 99, -time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			if err := validateDemo(o, plan); err != nil {
				t.Errorf("validateDemo(%+v) = %v, want nil", o, err)
			}
		})
	}
}

// TestDemoRefusesToReplaceEvidence checks that the demo never deletes an
// existing <root>/<version> outside its default root unless told to.
func TestDemoRefusesToReplaceEvidence(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	manifest := filepath.Join(root, "v1.4.0", "manifest.json")
	if err := os.MkdirAll(filepath.Dir(manifest), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, []byte(`{"version":"v1.4.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := cli(t, "demo", "--evidence-dir", root, "--speed", "300")
	if code != exitBadInput {
		t.Fatalf("demo over existing evidence: exit %d, want 2:\n%s", code, tail(out, 20))
	}
	for _, want := range []string{filepath.Join(root, "v1.4.0") + " already exists", "--evidence-dir", "--replace"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(manifest); err != nil || string(b) != `{"version":"v1.4.0"}` {
		t.Errorf("existing manifest after the refusal: %q, %v; want it untouched", b, err)
	}
}

// TestPrepareDemoEvidence covers when the demo clears <root>/<version>.
// Not parallel: one case changes the working directory to stand in the
// demo's default root.
func TestPrepareDemoEvidence(t *testing.T) {
	tests := []struct {
		name     string
		root     string // "" means the default, relative to the test's working directory
		contents bool   // <root>/<version> exists with a file in it; false: it exists empty
		missing  bool   // <root>/<version> does not exist
		replace  bool
		wantCode int  // exit code of the error; 0 for none
		wantGone bool // the file was deleted
	}{
		{name: "nothing there", root: "other", missing: true},
		{name: "empty directory is kept", root: "other"},
		{name: "other root with evidence", root: "other", contents: true, wantCode: exitBadInput},
		{name: "other root with evidence and --replace", root: "other", contents: true, replace: true, wantGone: true},
		{name: "default root", contents: true, wantGone: true},
		{name: "default root spelled ./", root: "./" + defaultDemoEvidence, contents: true, wantGone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			root := tt.root
			if root == "" {
				root = defaultDemoEvidence
			}
			dir := filepath.Join(root, "v1.4.0")
			file := filepath.Join(dir, "manifest.json")
			if !tt.missing {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tt.contents {
				if err := os.WriteFile(file, []byte("{}"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			err := prepareDemoEvidence(&out, root, "v1.4.0", tt.replace)
			if code := exitCode(err); code != tt.wantCode {
				t.Fatalf("prepareDemoEvidence: %v (exit %d), want exit %d", err, code, tt.wantCode)
			}
			_, statErr := os.Stat(file)
			if gone := errors.Is(statErr, fs.ErrNotExist); tt.contents && gone != tt.wantGone {
				t.Errorf("evidence deleted = %v, want %v", gone, tt.wantGone)
			}
			if !tt.missing && !tt.wantGone {
				if _, err := os.Stat(dir); err != nil {
					t.Errorf("%s after prepareDemoEvidence: %v, want it kept", dir, err)
				}
			}
			if said := strings.Contains(out.String(), "replacing"); said != tt.wantGone {
				t.Errorf("said %q, want a replacing notice: %v", out.String(), tt.wantGone)
			}
		})
	}
}

// TestDemoDeadline stops a demo whose deadline is far shorter than its
// release: it must end with errDemoDeadline, saying where it was, instead
// of the release's own outcome.
func TestDemoDeadline(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	g := &globals{out: &out, errOut: &out, logLevel: "error"}
	res, err := runDemo(context.Background(), g, demoOptions{
		version: "v1.4.0", speed: 300, fault: demo.FaultNone, rps: 50, wsClients: 5,
		evidence: t.TempDir(), deadline: 2 * time.Second,
	})
	if !errors.Is(err, errDemoDeadline) {
		t.Fatalf("runDemo = %v, want errDemoDeadline:\n%s", err, tail(out.String(), 20))
	}
	if res != nil {
		t.Errorf("runDemo returned a result %+v with the deadline error", res)
	}
	if code := exitCode(err); code != exitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"did not finish", "at 300x", "it was in phase "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestDemoDeadlineFromPlan(t *testing.T) {
	// The default plan: 90 min of stages, a 24 min night once compressed,
	// the same again as slack, and two 15 min holds per stage: 378 min.
	plan := demoPlan(config.Default(), 60)
	tests := []struct {
		speed float64
		want  time.Duration
	}{
		{60, 378*time.Minute/60 + time.Minute},
		{300, 378*time.Minute/300 + time.Minute},
		{1, 378*time.Minute + time.Minute},
	}
	for _, tt := range tests {
		if got := demoDeadline(plan, tt.speed); got != tt.want {
			t.Errorf("demoDeadline(default plan, %g) = %s, want %s", tt.speed, got, tt.want)
		}
	}
}

// TestRunBackground checks that a background part that fails, or ends
// while the demo runs, stops the run with its reason, and that one ended
// by the demo itself does not.
func TestRunBackground(t *testing.T) {
	boom := errors.New("disk full")
	tests := []struct {
		name    string
		run     func(context.Context) error
		wantErr error  // the cause the run is stopped with; nil: not stopped
		want    string // in the cause's message
	}{
		{"fails", func(context.Context) error { return boom }, boom, "the part failed: disk full"},
		{"ends early", func(context.Context) error { return nil }, errDemoStopped, "the part ended before the release did"},
		{"ends with the demo", func(ctx context.Context) error { <-ctx.Done(); return nil }, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, stop := context.WithCancelCause(context.Background())
			defer stop(nil)
			var wg sync.WaitGroup
			runBackground(ctx, &wg, stop, "the part", tt.run)
			if tt.wantErr != nil {
				<-ctx.Done()
			} else {
				stop(nil)
			}
			wg.Wait()
			cause := context.Cause(ctx)
			if tt.wantErr == nil {
				if errors.Is(cause, errDemoStopped) {
					t.Fatalf("stopped with %v, want the demo's own cancel", cause)
				}
				return
			}
			if !errors.Is(cause, errDemoStopped) || !errors.Is(cause, tt.wantErr) || !strings.Contains(cause.Error(), tt.want) {
				t.Errorf("cause %v, want errDemoStopped wrapping %v and saying %q", cause, tt.wantErr, tt.want)
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
