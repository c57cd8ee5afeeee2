package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		"warroom_log.txt", "release_oneliner.txt", "mini_rca_v1.4.0.md", "rollback_dryrun.txt", "baseline_v1.4.0.prom"} {
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
			if r.Rollback.Stage != 3 {
				t.Errorf("rolled back at stage %d, want 3 (the fault's stage)", r.Rollback.Stage)
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

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
