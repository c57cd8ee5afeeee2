package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/checks"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
	"github.com/canarybot/canarybot/greenbutton"
	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/sbom"
	"github.com/canarybot/canarybot/traffic"
)

// testGateEnv is an environment with a token for the fake's repository and
// no write pacing; vars add or replace variables ("" unsets one).
func testGateEnv(tb testing.TB, fake *forgetest.Fake, vars map[string]string) gateEnv {
	env := map[string]string{}
	if fake != nil {
		env = map[string]string{forge.EnvToken: "ghp_test", forge.EnvRepository: fake.Owner + "/" + fake.Repo, forge.EnvAPIURL: fake.URL}
	}
	maps.Copy(env, vars)
	t := forge.DefaultTransportOptions()
	t.WriteInterval = 0
	return gateEnv{
		lookup: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok && v != ""
		},
		transport: t,
		log:       slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// TestConfigDefaultsAreTheirPackages holds config's copies of other
// packages' defaults (config does not import them, so as not to link syft
// and go-github into everything that reads canary.yaml) to the originals.
func TestConfigDefaultsAreTheirPackages(t *testing.T) {
	got := batteryOptions(config.DefaultBattery(), func(k string) string { return "dsn-of-" + k })
	want := checks.BatteryOptions{
		DSN:           "dsn-of-DATABASE_URL",
		Outbox:        checks.OutboxOptions{Query: checks.DefaultOutboxQuery, MaxLag: checks.DefaultOutboxMaxLag, MaxSkew: checks.DefaultOutboxSkew, Timeout: checks.DefaultOutboxTimeout},
		TickVectors:   checks.DefaultTickVectors(),
		BurstRequests: checks.DefaultBurstRequests, FloodRequests: checks.DefaultFloodRequests,
		Parallel: checks.DefaultBatteryParallel, Timeout: checks.DefaultBatteryTimeout,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("battery defaults:\n got %+v\nwant %+v", got, want)
	}
	for _, c := range []struct{ config, pkg string }{
		{config.FreezeModeAuto, forge.ModeAuto},
		{config.FreezeModeRulesets, forge.ModeRulesets},
		{config.FreezeModeStatuses, forge.ModeStatuses},
		{config.DefaultFreezeLabel, forge.DefaultFreezeLabel},
		{config.DefaultSigningKeyEnv, provenance.KeyEnv},
		{config.DefaultLGPLPolicy, string(sbom.LGPLWarn)},
	} {
		if c.config != c.pkg {
			t.Errorf("config has %q where its package has %q", c.config, c.pkg)
		}
	}
	if cfg := config.DefaultConfig(); !reflect.DeepEqual(cfg.Preflight.Checks, preflight.DefaultChecks()) || cfg.Preflight.Budget != preflight.DefaultBudget {
		t.Error("the preflight section's defaults are not the runbook's 10 checks and 60 s")
	}
}

func TestNewFreezeOps(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 1)
	cfg := config.DefaultConfig()
	cfg.StatePath = filepath.Join(t.TempDir(), "state.db")
	tests := []struct {
		name       string
		repository string // canary.yaml's github.repository
		vars       map[string]string
		wantRepo   string // "" means not configured
		wantErr    string
	}{
		{name: "token and repository", wantRepo: "acme/exchange"},
		{name: "canary.yaml's repository wins over GITHUB_REPOSITORY", repository: "acme/other", wantRepo: "acme/other"},
		{name: "no credentials", vars: map[string]string{forge.EnvToken: ""}},
		{name: "credentials without a repository", vars: map[string]string{forge.EnvRepository: ""}},
		{name: "a partial GitHub App", vars: map[string]string{forge.EnvAppID: "12"}, wantErr: forge.EnvInstallationID + " is not set"},
		{name: "a bad API URL", vars: map[string]string{forge.EnvAPIURL: "ftp://x"}, wantErr: "is not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.GitHub.Repository = tt.repository
			ops, err := newFreezeOps(c, testGateEnv(t, fake, tt.vars))
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitBadInput {
					t.Fatalf("err = %v (exit %d), want bad input with %q", err, exitCode(err), tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tt.wantRepo == "" && ops != nil:
				t.Fatalf("configured %s/%s, want not configured", ops.freeze.Owner, ops.freeze.Repo)
			case tt.wantRepo != "":
				if ops == nil {
					t.Fatal("not configured")
				}
				if got := ops.freeze.Owner + "/" + ops.freeze.Repo; got != tt.wantRepo {
					t.Errorf("repository %s, want %s", got, tt.wantRepo)
				}
				if ops.freeze.Label != "hold-for-canary" || ops.freeze.Mode != "auto" {
					t.Errorf("label %q mode %q", ops.freeze.Label, ops.freeze.Mode)
				}
			}
		})
	}
}

// TestWiredGates: what canary.yaml and the environment configure is wired,
// and what they do not is left out, for the engine to record as skipped.
func TestWiredGates(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 1)
	dir := t.TempDir()
	cfg := config.DefaultConfig()
	cfg.StatePath = filepath.Join(dir, "state.db")
	ev, err := evidence.Open(filepath.Join(dir, "evidence"), "v1")
	if err != nil {
		t.Fatal(err)
	}
	steps := func(gates map[rollout.StepName]rollout.Gate) []string {
		var out []string
		for s := range gates {
			out = append(out, string(s))
		}
		slices.Sort(out)
		return out
	}

	// The runbook's preflight, and the go/no-go record of the IC's decision.
	w, err := newGateWiring(cfg, testGateEnv(t, nil, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	gates := w.gates(ev, "http://canary", nil, nil)
	if got := steps(gates); !reflect.DeepEqual(got, []string{"go_nogo", "preflight"}) {
		t.Errorf("without GitHub or artifacts: %v, want only go_nogo and preflight", got)
	}
	if pg := gates[rollout.StepPreflight].(*preflight.Gate); len(pg.Checks) != 10 || pg.Options.Budget != time.Minute {
		t.Errorf("preflight gate: %d checks, budget %s", len(pg.Checks), pg.Options.Budget)
	}
	// --preflight FILE replaces canary.yaml's checks; a nil wiring (as
	// before canary.yaml had the sections) wires only those.
	file := []preflight.Check{{Name: "tag", Kind: preflight.KindGit}}
	if pg := w.gates(ev, "", nil, file)[rollout.StepPreflight].(*preflight.Gate); !reflect.DeepEqual(pg.Checks, file) {
		t.Errorf("--preflight checks not used: %v", pg.Checks)
	}
	var none *gateWiring
	if got := steps(none.gates(ev, "", nil, nil)); len(got) != 0 {
		t.Errorf("nil wiring without --preflight: %v", got)
	}

	// GitHub and the green button configured.
	key := testKeyPEM(t)
	exc := filepath.Join(dir, "exceptions.yaml")
	if err := os.WriteFile(exc, []byte("- {package: pkg:golang/x, license: GPL-2.0-only, reason: reviewed}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.GreenButton = config.GreenButton{ExpectedArtifacts: []string{"app"}, ArtifactsDir: "dist", Exceptions: exc, LGPL: "fail", RequireKey: true, KeyEnv: "RELEASE_KEY"}
	env := testGateEnv(t, fake, map[string]string{"RELEASE_KEY": key})
	ops, err := newFreezeOps(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if w, err = newGateWiring(cfg, env, ops); err != nil {
		t.Fatal(err)
	}
	gates = w.gates(ev, "", nil, nil)
	if got := steps(gates); !reflect.DeepEqual(got, []string{"freeze", "go_nogo", "green_button", "lift_freeze", "preflight"}) {
		t.Errorf("with GitHub and artifacts: %v", got)
	}
	if seal := gates[rollout.StepGoNoGo].(*greenbutton.Seal); seal.Key != gates[rollout.StepGreenButton].(*greenbutton.GreenButton).Key {
		t.Errorf("the go/no-go seal does not sign with the green button's key")
	}
	gb := gates[rollout.StepGreenButton].(*greenbutton.GreenButton)
	if gb.Key == nil || gb.Key.Ephemeral() || !gb.RequireKey || gb.LGPL != sbom.LGPLFail || len(gb.Exceptions) != 1 ||
		!reflect.DeepEqual(gb.Expected, []string{"app"}) || gb.ArtifactsDir != "dist" || gb.Who != "" {
		t.Errorf("green button: %+v", gb)
	}

	// Bad green-button inputs are found when the wiring is built, not at T-2.
	for name, change := range map[string]func(c *config.Config){
		"missing exceptions file": func(c *config.Config) { c.GreenButton.Exceptions = filepath.Join(dir, "nope.yaml") },
		"key that is not PEM":     func(c *config.Config) { c.GreenButton.KeyEnv = forge.EnvToken },
	} {
		c := cfg
		change(&c)
		if _, err := newGateWiring(c, env, ops); exitCode(err) != exitBadInput {
			t.Errorf("%s: err = %v, want bad input", name, err)
		}
	}
}

func testKeyPEM(t *testing.T) string {
	t.Helper()
	_, _, keyPEM := edKey(t, t.TempDir(), "release")
	return keyPEM
}

// breachingMetrics reads every signal far over its bound.
type breachingMetrics struct{ steadyMetrics }

func (breachingMetrics) Query(ctx context.Context, q string, at time.Time) (rollout.Sample, error) {
	return rollout.Sample{Value: 1000}, nil
}

// TestEngineHostDrivesTheFreeze runs releases through the engine host with
// the gates production.engine assembles from canary.yaml and the
// environment, against the GitHub fake: the freeze step starts the freeze,
// a clean first night lifts it, and a rolled-back release keeps it.
func TestEngineHostDrivesTheFreeze(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     string
		metrics  rollout.Metrics
		end      rollout.Phase
		wantLift bool
	}{
		{"clean release lifts it", config.FreezeModeStatuses, steadyMetrics{}, rollout.PhaseComplete, true},
		{"rolled-back release keeps it", config.FreezeModeAuto, breachingMetrics{}, rollout.PhaseRolledBack, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3
			fake := forgetest.New(t, "acme", "exchange", n)
			dir := t.TempDir()
			state, evRoot := filepath.Join(dir, "state.db"), filepath.Join(dir, "evidence")
			cfg := config.DefaultConfig()
			cfg.StatePath, cfg.EvidenceDir = state, evRoot
			cfg.GitHub.Freeze.Mode = tc.mode
			env := testGateEnv(t, fake, nil)
			ops, err := newFreezeOps(cfg, env)
			if err != nil || ops == nil {
				t.Fatalf("freeze: %v, %v", ops, err)
			}
			w, err := newGateWiring(cfg, env, ops)
			if err != nil {
				t.Fatal(err)
			}
			plan := config.Default()
			plan.Timeline = []rollout.Step{{Name: rollout.StepFreeze, Offset: -30 * time.Minute}}
			plan.Stages = []rollout.Stage{{Weight: 5, Dwell: 100 * time.Millisecond}, {Weight: 100, Dwell: 100 * time.Millisecond}}
			plan.Tick, plan.AutoPromote = 20*time.Millisecond, true
			plan.FirstNight.Cadence = []rollout.Cadence{{Until: 100 * time.Millisecond, Every: 50 * time.Millisecond}}

			g := &globals{statePath: state, evidenceDir: evRoot, out: io.Discard, errOut: io.Discard}
			p, err := g.open()
			if err != nil {
				t.Fatal(err)
			}
			p.plan = &plan
			backend := httptest.NewServer(http.NotFoundHandler())
			t.Cleanup(backend.Close)
			u, _ := url.Parse(backend.URL)
			router := traffic.NewLocal(u, u)
			pp := &production{wiring: w}
			log := slog.New(slog.DiscardHandler)
			host := newEngineHost(p, func(ctx context.Context, id, version string) (*hostedEngine, error) {
				ev, err := evidence.Open(evRoot, id)
				if err != nil {
					return nil, err
				}
				e := pp.engine(p, &plan, ev, version, nil, log)
				// Signals and traffic from the test; the gates are production's.
				e.Runner.Metrics, e.Runner.Alerts, e.Runner.Traffic = tc.metrics, steadyMetrics{}, router
				e.Runner.Clock, e.Runner.InboxPoll = clock.Real{}, 20*time.Millisecond
				return e, nil
			}, log)
			host.recheck = 20 * time.Millisecond
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hostDone := make(chan error, 1)
			go func() { hostDone <- host.Run(ctx) }()
			var r *rollout.Release
			for deadline := time.Now().Add(10 * time.Second); ; {
				if r, err = host.Start(ctx, "v1.4.0", "alice"); !errors.Is(err, errNotHosting) || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			// The release has ended once the host lets go of it.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if _, busy := host.Active(); !busy {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the release did not end")
				}
			}
			cancel()
			<-hostDone
			if r, err = p.store.Load(context.Background(), r.ID); err != nil {
				t.Fatal(err)
			}
			if r.Phase != tc.end {
				t.Fatalf("release ended %s, want %s; log:\n%s", r.Phase, tc.end, releaseLog(r))
			}
			if rec, ok := r.StepRecord(rollout.StepFreeze); !ok || rec.Status != rollout.GatePassed {
				t.Fatalf("freeze step: %+v, %t", rec, ok)
			}
			labelled := 0
			for i := 1; i <= n; i++ {
				if slices.Contains(fake.PRLabels(i), "hold-for-canary") {
					labelled++
				}
			}
			evText, _ := os.ReadFile(filepath.Join(evRoot, r.ID, "freeze_v1.4.0.txt"))
			rec, lifted := r.StepRecord(rollout.StepLiftFreeze)
			if tc.wantLift {
				if !lifted || rec.Status != rollout.GatePassed {
					t.Errorf("lift_freeze step: %+v, %t", rec, lifted)
				}
				if labelled != 0 {
					t.Errorf("%d PRs still labelled after the lift", labelled)
				}
				for i := 1; i <= n; i++ {
					st := fake.Statuses(forgetest.SHA(i))
					if len(st) == 0 || st[len(st)-1].State != "success" {
						t.Errorf("PR #%d statuses %+v, want success last", i, st)
					}
				}
				if !bytes.Contains(evText, []byte("phase: lifted")) {
					t.Errorf("freeze evidence:\n%s", evText)
				}
				return
			}
			if lifted {
				t.Errorf("a rolled-back release lifted its freeze: %+v", rec)
			}
			if labelled != n {
				t.Errorf("%d of %d PRs labelled after the rollback, want all: the IC lifts the freeze", labelled, n)
			}
			if rs := fake.Rulesets(); len(rs) != 1 || rs[0].Enforcement != "active" {
				t.Errorf("rulesets after the rollback: %+v, want one active", rs)
			}
			if !bytes.Contains(evText, []byte("phase: frozen")) {
				t.Errorf("freeze evidence:\n%s", evText)
			}
		})
	}
}

func releaseLog(r *rollout.Release) string {
	var b strings.Builder
	for _, e := range r.Log {
		fmt.Fprintf(&b, "%s %s: %s\n", e.At.Format("15:04:05.000"), e.User, e.Text)
	}
	return b.String()
}

// TestSlackFreeze: `/canary freeze start|lift|status` from Slack runs the
// same freeze, through the server's signature check and authority matrix,
// answering on response_url when the work outlasts the ack.
func TestSlackFreeze(t *testing.T) {
	const n = 3
	fake := forgetest.New(t, "acme", "exchange", n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWarRoom(ctx, t, fastPlan(), "", time.Hour)
	cfg := config.DefaultConfig()
	cfg.StatePath, cfg.EvidenceDir = w.state, w.evDir
	cfg.GitHub.Freeze.Mode = config.FreezeModeStatuses
	ops, err := newFreezeOps(cfg, testGateEnv(t, fake, nil))
	if err != nil {
		t.Fatal(err)
	}
	w.h.freeze = ops.slackFreeze(w.h)
	hostCtx, stopHost := context.WithCancel(ctx)
	defer stopHost()
	go w.h.host.Run(hostCtx)

	must(t, w.command(userRita, "freeze start"), "there is no release to freeze for")
	must(t, w.command(userRita, "start v1.4.0"), "Release *v1.4.0* started")
	w.waitFor("the red-team review", func(r *rollout.Release) bool { return r.Phase == rollout.Phase(rollout.StepRedTeam) })

	must(t, w.command(userOther, "freeze start"), "or a release manager (<@U0RITA>) can `/canary freeze start`")
	if fake.TotalCalls() != 0 {
		t.Fatalf("a refused freeze called GitHub %d times", fake.TotalCalls())
	}
	// GitHub slow enough that the freeze outlasts Slack's 3 s: the ack
	// says so and the answer follows on response_url.
	fake.SetLatency(300 * time.Millisecond)
	before := len(w.sink.answers())
	ack := slashAck(t, w, userRita, "freeze start")
	must(t, ack, "Working on `/canary freeze start`")
	late := w.nextAnswer(before)
	must(t, late, "Change freeze of *v1.4.0* started by <@U0RITA>")
	fake.SetLatency(0)
	for i := 1; i <= n; i++ {
		if !slices.Contains(fake.PRLabels(i), "hold-for-canary") {
			t.Errorf("PR #%d not labelled", i)
		}
	}
	must(t, w.command(userOther, "freeze status"), "frozen")
	calls := fake.TotalCalls()
	must(t, w.command(userRita, "freeze start"), "started")
	if got := fake.TotalCalls() - calls; got != 0 {
		t.Errorf("a second start made %d GitHub calls, want none", got)
	}
	must(t, w.command(userOther, "freeze lift"), "or a release manager (<@U0RITA>) can `/canary freeze lift`")
	must(t, w.command(userRita, "freeze lift"), "lifted by <@U0RITA>")
	for i := 1; i <= n; i++ {
		if got := fake.PRLabels(i); len(got) != 0 {
			t.Errorf("PR #%d labels %v after the lift", i, got)
		}
	}
	must(t, w.command(userRita, "freeze lift"), "lifted")
	// The freeze's evidence went through the engine that owns the
	// release's evidence directory.
	text, err := os.ReadFile(filepath.Join(w.evDir, "v1.4.0", "freeze_v1.4.0.txt"))
	if err != nil || !bytes.Contains(text, []byte("phase: lifted")) {
		t.Errorf("freeze evidence: %v\n%s", err, text)
	}
	if rep, err := evidence.Verify(filepath.Join(w.evDir, "v1.4.0")); err != nil || !rep.OK {
		t.Errorf("evidence verify: %v\n%s", err, rep)
	}
}

// TestSlackFreezeCarriesOnInTheBackground: a freeze that outlasts the wait
// is answered with its progress and finishes after the answer.
func TestSlackFreezeCarriesOnInTheBackground(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 2)
	dir := t.TempDir()
	cfg := config.DefaultConfig()
	cfg.StatePath, cfg.EvidenceDir = filepath.Join(dir, "state.db"), filepath.Join(dir, "evidence")
	ops, err := newFreezeOps(cfg, testGateEnv(t, fake, nil))
	if err != nil {
		t.Fatal(err)
	}
	g := &globals{statePath: cfg.StatePath, evidenceDir: cfg.EvidenceDir, out: io.Discard, errOut: io.Discard}
	h := &slackHandler{g: g, log: slog.New(slog.DiscardHandler)}
	out, err := ops.slack(context.Background(), h, "start", "v2.0.0", "rita", 0)
	if err != nil || !strings.Contains(out, "carries on in the background") {
		t.Fatalf("answer %q, %v", out, err)
	}
	// The background run holds the freeze's turn until it is done: taking
	// the turn waits for it.
	ops.mu.Lock()
	//lint:ignore SA2001 the empty section is the wait for the background run's turn
	ops.mu.Unlock()
	sum, err := ops.freeze.Status(context.Background())
	if err != nil || sum.Phase != forge.PhaseFrozen || sum.LabelsAdded != 2 {
		t.Fatalf("after the background start: %+v, %v", sum, err)
	}
	if text, err := os.ReadFile(filepath.Join(cfg.EvidenceDir, "v2.0.0", "freeze_v2.0.0.txt")); err != nil || !bytes.Contains(text, []byte("phase: frozen")) {
		t.Errorf("freeze evidence: %v\n%s", err, text)
	}
}

func webhookSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestServeMountsGitHubWebhook runs `canarybot serve` with
// GITHUB_WEBHOOK_SECRET set: a signed pull_request event for a PR opened
// during the freeze blocks and labels it; a bad signature is 401 and
// changes nothing. Without the secret the route is not there.
func TestServeMountsGitHubWebhook(t *testing.T) {
	const secret = "webhook-secret"
	fake := forgetest.New(t, "acme", "exchange", 2)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "canary.yaml")
	if err := os.WriteFile(cfgFile, []byte("github: {freeze: {mode: statuses}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &globals{configPath: cfgFile, statePath: filepath.Join(dir, "state.db"), evidenceDir: filepath.Join(dir, "evidence"), out: io.Discard, errOut: io.Discard, logLevel: "error"}
	cfg, err := g.loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	// The release's freeze, started as the engine's T-30 step would.
	ops, err := newFreezeOps(cfg, testGateEnv(t, fake, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.freeze.Start(context.Background(), "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	pr := fake.OpenPR()
	payloadTemplate, err := os.ReadFile(filepath.Join("testdata", "github", "pull_request_opened.json"))
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(strings.NewReplacer(`"number": 7`, fmt.Sprintf(`"number": %d`, pr.Number), `"sha": "HEAD"`, fmt.Sprintf(`"sha": %q`, pr.SHA)).Replace(string(payloadTemplate)))

	t.Setenv("SLACK_SIGNING_SECRET", "slack-secret")
	t.Setenv(forge.EnvToken, "ghp_test")
	t.Setenv(forge.EnvRepository, "acme/exchange")
	t.Setenv(forge.EnvAPIURL, fake.URL)
	for _, k := range []string{forge.EnvAppID, forge.EnvAppKey, forge.EnvAppKeyFile, forge.EnvInstallationID, "SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"} {
		t.Setenv(k, "")
	}
	start := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serve(ctx, g, true, serveOptions{listen: addr}) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				return "http://" + addr
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve did not come up: %v", err)
			}
		}
	}
	post := func(t *testing.T, base, signature string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, base+"/github/webhook", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "pull_request")
		req.Header.Set("X-GitHub-Delivery", "d-1")
		req.Header.Set("X-Hub-Signature-256", signature)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	t.Run("without the secret", func(t *testing.T) {
		t.Setenv(forge.EnvWebhookSecret, "")
		base := start(t)
		if code, _ := post(t, base, webhookSignature(secret, payload)); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("POST /github/webhook without a secret configured: %d, want no such route", code)
		}
	})
	t.Run("with the secret", func(t *testing.T) {
		t.Setenv(forge.EnvWebhookSecret, secret)
		base := start(t)
		applied := fake.Applied()
		if code, _ := post(t, base, webhookSignature("wrong", payload)); code != http.StatusUnauthorized {
			t.Errorf("bad signature: %d, want 401", code)
		}
		if !maps.Equal(applied, fake.Applied()) {
			t.Error("a delivery with a bad signature changed GitHub")
		}
		code, body := post(t, base, webhookSignature(secret, payload))
		if code != http.StatusOK {
			t.Fatalf("signed delivery: %d %s", code, body)
		}
		if !slices.Contains(fake.PRLabels(pr.Number), "hold-for-canary") {
			t.Errorf("PR #%d opened during the freeze not labelled: %s", pr.Number, body)
		}
		st := fake.Statuses(pr.SHA)
		if len(st) == 0 || st[len(st)-1].State != "failure" {
			t.Errorf("PR #%d head statuses %+v, want a failing canary/freeze", pr.Number, st)
		}
		// The GitHub client's waits are on serve's /metrics.
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(metrics), `canarybot_github_waits_total{reason="secondary_rate_limit"}`) {
			t.Errorf("/metrics lacks the GitHub wait counters:\n%s", metrics)
		}
	})
}

// slashAck types `/canary text` as user and returns the acknowledgement
// itself, not the answer that may follow on response_url.
func slashAck(t *testing.T, w *warRoom, user, text string) string {
	t.Helper()
	resp, err := w.signedPost("/slack/commands", url.Values{"command": {"/canary"}, "user_id": {user}, "user_name": {user},
		"channel_id": {"C1"}, "team_id": {"T1"}, "text": {text}, "response_url": {w.sink.URL + "/commands"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a slackAnswer
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&a) != nil {
		t.Fatalf("/canary %s: HTTP %d", text, resp.StatusCode)
	}
	return a.Text
}

// TestCommandsReadGateSections: `config print` shows the sections, and
// `preflight` runs canary.yaml's checks and budget when no flag says
// otherwise.
func TestCommandsReadGateSections(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "canary.yaml")
	yaml := "preflight:\n  budget: 5s\n  checks:\n    - {name: always, kind: command, argv: [true], evidence: \"always_{version}.txt\"}\n" +
		"github: {repository: acme/exchange, freeze: {mode: statuses}}\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--config", cfgFile, "--evidence-dir", filepath.Join(dir, "evidence"), "--state", filepath.Join(dir, "state.db")}
	out, code := cli(t, append([]string{"config", "print"}, common...)...)
	if code != 0 {
		t.Fatalf("config print: exit %d\n%s", code, out)
	}
	for _, want := range []string{"preflight:\n  budget: 5s\n", "name: always", "battery:\n", "green_button:\n", "repository: acme/exchange", "mode: statuses"} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %q:\n%s", want, out)
		}
	}
	out, code = cli(t, append([]string{"preflight", "v1.4.0"}, common...)...)
	if code != 0 || !strings.Contains(out, "1/1 passed, 0 cannot run") {
		t.Fatalf("preflight from canary.yaml: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "evidence", "v1.4.0", "always_v1.4.0.txt")); err != nil {
		t.Errorf("the configured check's evidence: %v", err)
	}
	// A secret in canary.yaml stops every command before it runs.
	if err := os.WriteFile(cfgFile, []byte("github: {token: ghp_0123456789}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = cli(t, append([]string{"preflight", "v1.4.0"}, common...)...)
	if code != exitBadInput || !strings.Contains(out, "github.token") || strings.Contains(out, "ghp_0123456789") {
		t.Errorf("a token in canary.yaml: exit %d\n%s", code, out)
	}
}
