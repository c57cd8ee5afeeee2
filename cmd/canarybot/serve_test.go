package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/server"
	"github.com/canarybot/canarybot/store"
)

func TestServeNeedsSigningSecret(t *testing.T) {
	t.Setenv("SLACK_SIGNING_SECRET", "")
	out, code := cli(t, "serve", "--listen", "127.0.0.1:0")
	if code != exitBadInput || !strings.Contains(out, "SLACK_SIGNING_SECRET is not set") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestSlackHandler(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "s.db")
	st, err := store.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, &rollout.Release{ID: "v2.0.0", Version: "v2.0.0", IC: "UIC", Phase: rollout.PhaseStage, Weight: 5,
		Last: rollout.Decision{Kind: rollout.Proceed, Reason: "all signals pass"}}); err != nil {
		t.Fatal(err)
	}
	h := &slackHandler{g: &globals{statePath: state, out: &bytes.Buffer{}, errOut: &bytes.Buffer{}}, managers: []string{"URM"}, await: 50 * time.Millisecond}
	ic, rms, err := h.authority(ctx)
	if err != nil || ic != "UIC" || len(rms) != 1 {
		t.Fatalf("authority = %q %v %v", ic, rms, err)
	}
	ask := func(text string) string {
		c, err := bot.ParseCommand(text)
		if err != nil {
			t.Fatal(err)
		}
		return h.handle(ctx, server.SlashCommandRequest{Command: c, UserID: "UIC"}).Text
	}
	tests := []struct{ text, want string }{
		{"status", "*v2.0.0* phase stage, stage 1/"},
		{"status", "IC <@UIC>"},
		{"status", "last decision: Proceed — all signals pass"},
		{"signals", "no signal readings yet"},
		{"help", "/canary rollback <reason>"},
		{"freeze start", "not configured"},
		{"start v3", "does not run releases: start serve with --stable, --canary"},
		{"drill", "run `canarybot rollback --dry-run --reason drill` where that engine runs"},
		{"promote", "No engine is driving v2.0.0"},
	}
	for _, tt := range tests {
		if got := ask(tt.text); !strings.Contains(got, tt.want) {
			t.Errorf("/canary %s = %q, want it to contain %q", tt.text, got, tt.want)
		}
	}
	if q, _ := st.Take(ctx, "v2.0.0"); len(q) != 0 {
		t.Fatalf("queued without an engine: %v", q)
	}
	if err := st.Heartbeat(ctx, "v2.0.0", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := ask("hold 10m db slow"); !strings.Contains(got, "Queued `hold 10m0s \"db slow\"` for v2.0.0 as <@UIC>; the engine has not applied it yet") {
		t.Fatalf("hold = %q", got)
	}
	q, err := st.Take(ctx, "v2.0.0")
	if err != nil || len(q) != 1 {
		t.Fatalf("queued = %v, %v", q, err)
	}
	if c := q[0]; c.Kind != rollout.CmdHold || c.Duration != 10*time.Minute || c.Reason != "db slow" || c.User != "UIC" || c.ID == "" {
		t.Fatalf("queued %+v", c)
	}
}

func TestServeRefusesOpenWebhookWithoutToken(t *testing.T) {
	t.Setenv("SLACK_SIGNING_SECRET", "s3cret")
	t.Setenv("ALERTMANAGER_WEBHOOK_TOKEN", "")
	out, code := cli(t, "serve", "--listen", "0.0.0.0:0", "--state", filepath.Join(t.TempDir(), "s.db"))
	if code != exitBadInput || !strings.Contains(out, "ALERTMANAGER_WEBHOOK_TOKEN is not set") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, ":8080": false, "0.0.0.0:8080": false, "10.0.0.5:80": false, "nonsense": false} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestEngineHostResumesAfterRestart stops serve's engine host in the middle
// of a stage and starts another on the same state file: it leaves the
// release alone while its last engine may still be alive, then resumes it,
// refuses a second start, and applies commands.
func TestEngineHostResumesAfterRestart(t *testing.T) {
	plan := fastPlan()
	plan.Timeline = nil
	plan.Stages = []rollout.Stage{{Weight: 5, Dwell: time.Hour}, {Weight: 100, Dwell: time.Hour}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	first, stop := context.WithCancel(ctx)
	w1 := newWarRoom(first, t, plan, "", 0)
	done := make(chan error, 1)
	go func() { done <- w1.h.host.Run(first) }()
	must(t, w1.command(userRita, "start v1.4.0"), "Release *v1.4.0* started")
	w1.waitFor("stage 1 ticks", func(r *rollout.Release) bool { return r.CurrentStage() == 1 && len(r.Rows) > 0 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, busy := w1.h.host.Active(); busy {
		t.Fatal("the stopped host still drives the release")
	}

	// A host that may not take over yet leaves the release alone.
	wait := newWarRoom(ctx, t, plan, w1.state, time.Hour)
	wait.h.host.hosting = ctx
	if err := wait.h.host.resume(ctx); err != nil {
		t.Fatal(err)
	}
	if _, busy := wait.h.host.Active(); busy {
		t.Fatal("resumed a release whose engine was heard from a moment ago")
	}
	wait.h.host.hosting = nil

	w2 := newWarRoom(ctx, t, plan, w1.state, 0)
	go func() { done <- w2.h.host.Run(ctx) }()
	for id, _ := w2.h.host.Active(); id != "v1.4.0"; id, _ = w2.h.host.Active() {
		if ctx.Err() != nil {
			t.Fatal("the release was not resumed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	must(t, w2.command(userRita, "start v1.5.0"), "Sorry, release v1.4.0 is in progress (at stage 1, weight 5%, IC <@U0RITA>)")
	must(t, w2.command(userRita, "rollback the drill went wrong"), "`rollback \"the drill went wrong\"` applied — v1.4.0 is now rolled_back, weight 0%")
	if wgt, _ := w2.router.Weight(ctx); wgt != 0 {
		t.Fatalf("router at %d%% after the rollback", wgt)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
