package main

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
)

// TestRunAgainstRealPrometheus drives `canarybot run` against a real
// Prometheus scraping the demo service, with the IC's GO and promote given
// from "another terminal" through the state file.
func TestRunAgainstRealPrometheus(t *testing.T) {
	stable, canary := demo.NewService(demo.TrackStable, 1), demo.NewService(demo.TrackCanary, 2)
	t.Cleanup(stable.Close)
	t.Cleanup(canary.Close)
	// Real time: one random risk block in the 10 s window would read as
	// 6/min, over the 0.5/min bound.
	canary.SetRiskBlockProbability(0)
	stableSrv, canarySrv := httptest.NewServer(stable), httptest.NewServer(canary)
	t.Cleanup(stableSrv.Close)
	t.Cleanup(canarySrv.Close)
	prom := testenv.Prometheus(t, testenv.PrometheusConfig{Targets: []testenv.ScrapeTarget{
		{Addr: stableSrv.URL, Labels: map[string]string{"track": "stable"}},
		{Addr: canarySrv.URL, Labels: map[string]string{"track": "canary"}},
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routerAddr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load := demo.NewLoad(demo.LoadConfig{Target: "http://" + routerAddr, RPS: 60, WSClients: 10, WSSession: 500 * time.Millisecond, OrderShare: 0.5})
	go load.Run(ctx)
	// The stable track needs traffic before the release for the CSP baseline.
	direct := demo.NewLoad(demo.LoadConfig{Target: stableSrv.URL, RPS: 20, WSClients: 2})
	go direct.Run(ctx)

	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	common := []string{"--config", "testdata/short.yaml", "--state", state, "--evidence-dir", dir, "--as", "alice"}
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		out, code := cli(t, append([]string{"run", "v9.9.9", "--prometheus", prom.URL, "--stable", stableSrv.URL,
			"--canary", canarySrv.URL, "--listen", routerAddr}, common...)...)
		done <- result{out, code}
	}()

	st, err := store.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func(r *rollout.Release) bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case res := <-done:
				t.Fatalf("run ended (exit %d) while waiting for %s:\n%s", res.code, what, tail(res.out, 30))
			default:
			}
			if r, err := st.Load(ctx, "v9.9.9"); err == nil && cond(r) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	waitFor("go/no-go", func(r *rollout.Release) bool { return r.Phase == rollout.Phase(rollout.StepGoNoGo) })
	if out, code := cli(t, append([]string{"promote"}, common...)...); code != exitBadInput || !strings.Contains(out, "nothing to promote") {
		t.Errorf("promote before GO: exit %d:\n%s", code, out)
	}
	if out, code := cli(t, append([]string{"go", "--as", "mallory"}, common[:len(common)-2]...)...); code != exitBadInput || !strings.Contains(out, "only the Incident Commander (alice)") {
		t.Errorf("GO by someone else: exit %d:\n%s", code, out)
	}
	if out, code := cli(t, append([]string{"go"}, common...)...); code != 0 {
		t.Fatalf("go: exit %d:\n%s", code, out)
	}
	waitFor("Proceed at stage 1", func(r *rollout.Release) bool {
		return r.Phase == rollout.PhaseStage && r.Stage == 0 && r.Last.Kind == rollout.Proceed
	})
	if out, code := cli(t, append([]string{"promote"}, common...)...); code != 0 {
		t.Fatalf("promote: exit %d:\n%s", code, out)
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("run did not finish")
	}
	if res.code != exitComplete {
		t.Fatalf("run exit %d, want 0:\n%s", res.code, tail(res.out, 40))
	}
	for _, want := range []string{"Stage 1/2: canary weight 50%", "alice: `promote`", "release v9.9.9: complete"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("run output lacks %q:\n%s", want, tail(res.out, 40))
		}
	}
	if out, code := cli(t, "evidence", "verify", filepath.Join(dir, "v9.9.9")); code != 0 {
		t.Errorf("evidence verify: exit %d:\n%s", code, out)
	}
}

func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no prometheus", []string{"run", "v1", "--stable", "http://a:1", "--canary", "http://b:2"}, "no Prometheus"},
		{"no stable", []string{"run", "v1", "--prometheus", "http://127.0.0.1:1"}, "--stable is required"},
		{"bad at", []string{"run", "v1", "--at", "ten", "--stable", "http://a:1", "--canary", "http://b:2"}, "--at \"ten\""},
		{"unknown flag", []string{"run", "v1", "--stabel", "x"}, "unknown flag"},
		{"unknown command", []string{"deploy"}, "unknown command"},
		{"bad config", []string{"config", "validate", "testdata/bad.yaml"}, "did you mean"},
		{"promote without a release", []string{"promote", "--state", filepath.Join(dir, "s.db")}, "no release"},
		{"rollback without reason", []string{"rollback"}, "--reason is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PROMETHEUS_URL", "")
			out, code := cli(t, append(tc.args, "--evidence-dir", dir)...)
			if code != exitBadInput || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, tc.want, out)
			}
		})
	}
}

func TestRollbackDrill(t *testing.T) {
	dir := t.TempDir()
	out, code := cli(t, "rollback", "--reason", "drill", "--stage", "canary-25", "--dry-run", "--evidence-dir", dir, "--state", filepath.Join(dir, "s.db"))
	if code != 0 {
		t.Fatalf("drill exit %d:\n%s", code, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "drill", "rollback_dryrun.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[dry-run] step 1: would set the canary weight to 0", "reason: drill", "stage: canary-25", "nothing was changed"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("rollback_dryrun.txt lacks %q:\n%s", want, data)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "s.db")); err == nil {
		if p, err := store.Open(filepath.Join(dir, "s.db")); err == nil {
			if _, err := p.Load(context.Background(), ""); err == nil {
				t.Error("the drill created a release")
			}
		}
	}
}

func TestParseAt(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "", want: time.Time{}},
		{in: "10:00", want: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)},
		{in: "08:30", wantErr: "has passed today"},
		{in: "2026-11-28T10:00:00Z", want: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)},
		{in: "2026-11-26T10:00:00Z", wantErr: "has passed"},
		{in: "tomorrow", wantErr: "want HH:MM"},
	}
	for _, tc := range tests {
		got, err := parseAt(tc.in, now)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseAt(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseAt(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestCommandWithoutEngine: with no engine driving the release, a command
// is not queued (it would fire whenever an engine next starts) and the CLI
// says how to resume.
func TestCommandWithoutEngine(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "s.db")
	st, err := store.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Save(ctx, &rollout.Release{ID: "v2.0.0", Version: "v2.0.0", IC: "alice", Phase: rollout.PhaseStage, Weight: 5}); err != nil {
		t.Fatal(err)
	}
	out, code := cli(t, "rollback", "--reason", "pager", "--state", state, "--as", "alice")
	if code != exitFailure || !strings.Contains(out, "no engine is driving v2.0.0") || !strings.Contains(out, "canarybot run v2.0.0") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if queued, _ := st.Take(ctx, "v2.0.0"); len(queued) != 0 {
		t.Fatalf("the command was queued anyway: %v", queued)
	}
}
