package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/bot/slackfake"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/server"
	"github.com/canarybot/canarybot/traffic"
)

const warRoomSecret = "war-room-signing-secret"

// The war-room's people: a release manager (rita), the engineer she hands
// command to (bob, also known to the CLI), and a bystander.
const (
	userRita  = "U0RITA"
	userBob   = "U0BOB"
	userOther = "U0OTHER"
)

// fastPlan is the runbook's plan in milliseconds: the red-team review and
// GO before two short stages, no first night.
func fastPlan() rollout.Plan {
	plan := config.Default()
	plan.Timeline = []rollout.Step{{Name: rollout.StepWarRoom, Offset: -20 * time.Minute},
		{Name: rollout.StepRedTeam, Offset: -5 * time.Minute}, {Name: rollout.StepGoNoGo}}
	// The last stage is long enough for a press on stage 1's message to
	// find the release still at stage 2.
	plan.Stages = []rollout.Stage{{Weight: 5, Dwell: 150 * time.Millisecond}, {Weight: 100, Dwell: time.Second}}
	plan.Tick = 30 * time.Millisecond
	plan.FirstNight.Cadence = nil
	return plan
}

// warRoom is `canarybot serve` with a hosted engine, on loopback, against a
// fake Slack: the engine's signals are steady, its traffic moves on a real
// weighted router, and every answer Slack would receive on response_url
// lands in a sink.
type warRoom struct {
	tb       testing.TB
	plan     rollout.Plan
	state    string
	evDir    string
	slack    *slackfake.Server
	router   *traffic.Local
	h        *slackHandler
	srv      *server.Server
	http     *httptest.Server
	sink     *responseSink
	notifier *bot.SlackNotifier
	ts       int64 // the last signature timestamp, so no two requests collide
	tsMu     sync.Mutex
}

type responseSink struct {
	*httptest.Server
	mu  sync.Mutex
	got []slackAnswer
}

type slackAnswer struct {
	Text         string `json:"text"`
	ResponseType string `json:"response_type"`
}

func (s *responseSink) answers() []slackAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]slackAnswer(nil), s.got...)
}

// newWarRoom starts the war-room on state (a new file when ""). takeover is
// how long the host waits for a silent engine before resuming its release.
func newWarRoom(ctx context.Context, tb testing.TB, plan rollout.Plan, state string, takeover time.Duration) *warRoom {
	tb.Helper()
	dir := tb.TempDir()
	if state == "" {
		state = filepath.Join(dir, "state.db")
	}
	w := &warRoom{tb: tb, plan: plan, state: state, evDir: filepath.Join(filepath.Dir(state), "evidence"), slack: slackfake.New(tb)}
	backend := httptest.NewServer(http.NotFoundHandler())
	tb.Cleanup(backend.Close)
	u, _ := url.Parse(backend.URL)
	w.router = traffic.NewLocal(u, u)
	w.sink = &responseSink{}
	w.sink.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var a slackAnswer
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			tb.Errorf("response_url: %v", err)
		}
		w.sink.mu.Lock()
		w.sink.got = append(w.sink.got, a)
		w.sink.mu.Unlock()
	}))
	tb.Cleanup(w.sink.Close)

	g := &globals{statePath: state, evidenceDir: w.evDir, out: io.Discard, errOut: io.Discard}
	p, err := g.open()
	if err != nil {
		tb.Fatal(err)
	}
	p.plan = &w.plan
	cfg := config.DefaultConfig()
	cfg.Slack.Channel = slackfake.ChannelID
	log := slog.New(slog.DiscardHandler)
	notifier := slackWarRoom(w.slack.Client(), cfg, &w.plan, p, log)
	notifier.Outbox.Backoff = time.Millisecond
	w.notifier = notifier
	users, err := bot.NewDirectory(map[string]string{userRita: "rita", userBob: "bob"})
	if err != nil {
		tb.Fatal(err)
	}
	w.h = &slackHandler{g: g, p: p, managers: []string{userRita}, users: users, log: log, await: 10 * time.Second}
	w.h.host = newEngineHost(p, func(ctx context.Context, id, version string) (*hostedEngine, error) {
		ev, err := evidence.Open(w.evDir, id)
		if err != nil {
			return nil, err
		}
		rn := &rollout.Runner{
			Machine: &rollout.Machine{Plan: &w.plan, Render: p.render},
			Metrics: steadyMetrics{}, Alerts: steadyMetrics{}, Traffic: w.router, Notifier: notifier,
			Evidence: ev, Store: p.store, Inbox: p.store, InboxPoll: 20 * time.Millisecond, Clock: clock.Real{}, Log: log,
		}
		return &hostedEngine{Runner: rn, Evidence: ev, Expect: func(r *rollout.Release) error { return expectEvidence(ev, &w.plan, r, nil) }}, nil
	}, log)
	w.h.host.takeover, w.h.host.recheck = takeover, 20*time.Millisecond
	w.srv = server.New(server.Options{
		SlackSigningSecret: warRoomSecret, Logger: log, Handler: w.h.handle, Authority: w.h.authority,
		Users: users, OnRefused: w.h.refused, HTTPClient: w.sink.Client(),
		AllowResponseURL: func(u string) bool { return strings.HasPrefix(u, w.sink.URL) },
		Collectors:       w.h.host.metrics.collectors(),
	})
	w.http = httptest.NewServer(w.srv.Handler())
	tb.Cleanup(w.http.Close)
	go notifier.Outbox.Run(ctx)
	return w
}

// signedPost sends form to path signed as Slack signs, at a timestamp no
// other request of this war-room used (the replay cache refuses repeats
// of a signature; bodies here may repeat).
func (w *warRoom) signedPost(path string, form url.Values) (*http.Response, error) {
	w.tsMu.Lock()
	w.ts = max(w.ts+1, time.Now().Unix()-60)
	ts := strconv.FormatInt(w.ts, 10)
	w.tsMu.Unlock()
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, w.http.URL+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(bot.HeaderTimestamp, ts)
	req.Header.Set(bot.HeaderSignature, bot.SignatureHeader(warRoomSecret, ts, []byte(body)))
	return w.http.Client().Do(req)
}

// command types `/canary text` as user and returns the answer Slack shows
// (the ack's, or the late one posted to response_url).
func (w *warRoom) command(user, text string) string {
	w.tb.Helper()
	before := len(w.sink.answers())
	resp, err := w.signedPost("/slack/commands", url.Values{"command": {"/canary"}, "user_id": {user}, "user_name": {user},
		"channel_id": {slackfake.ChannelID}, "team_id": {"T1"}, "text": {text}, "response_url": {w.sink.URL + "/commands"}})
	if err != nil {
		w.tb.Fatal(err)
	}
	defer resp.Body.Close()
	var a slackAnswer
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&a) != nil {
		w.tb.Fatalf("/canary %s: HTTP %d", text, resp.StatusCode)
	}
	if strings.HasPrefix(a.Text, "Working on") {
		return w.nextAnswer(before)
	}
	return a.Text
}

// pressButton presses a button as user; state is the message's checkbox
// state Slack sends along (may be nil). The answer comes on response_url.
func (w *warRoom) pressButton(user, actionID, value string, state map[string]any) string {
	w.tb.Helper()
	before := len(w.sink.answers())
	p := map[string]any{
		"type": "block_actions", "user": map[string]string{"id": user, "name": user},
		"channel": map[string]string{"id": slackfake.ChannelID}, "team": map[string]string{"id": "T1"},
		"response_url": w.sink.URL + "/actions",
		"actions":      []map[string]string{{"action_id": actionID, "block_id": "b", "type": "button", "value": value}},
	}
	if state != nil {
		p["state"] = map[string]any{"values": state}
	}
	data, _ := json.Marshal(p)
	resp, err := w.signedPost("/slack/interactions", url.Values{"payload": {string(data)}})
	if err != nil {
		w.tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		w.tb.Fatalf("button %s: HTTP %d", actionID, resp.StatusCode)
	}
	return w.nextAnswer(before)
}

func (w *warRoom) nextAnswer(before int) string {
	w.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if as := w.sink.answers(); len(as) > before {
			return as[before].Text
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.tb.Fatal("no answer on response_url")
	return ""
}

// waitFor polls the state file until cond holds for the current release.
func (w *warRoom) waitFor(what string, cond func(r *rollout.Release) bool) *rollout.Release {
	w.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := w.h.p.store.Load(context.Background(), ""); err == nil && cond(r) {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	r, _ := w.h.p.store.Load(context.Background(), "")
	w.tb.Fatalf("timed out waiting for %s; release: %+v", what, r)
	return nil
}

func must(tb testing.TB, got, want string) {
	tb.Helper()
	if !strings.Contains(got, want) {
		tb.Fatalf("answer %q, want it to contain %q", got, want)
	}
}

// TestSlackWarRoomRelease drives a whole release from `/canary start` to
// the one-liner through slash commands and button presses, with refusals on
// the way and Slack answering 429 and 500 in the middle; then checks the
// war-room log has every accepted command and every refusal, and that
// Slack got every message exactly once.
func TestSlackWarRoomRelease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := newWarRoom(ctx, t, fastPlan(), "", 0)
	hostDone := make(chan error, 1)
	go func() { hostDone <- w.h.host.Run(ctx) }()

	must(t, w.command(userOther, "start v1.4.0"), "Sorry, only a release manager (<@U0RITA>)")
	must(t, w.command(userRita, "start v1.4.0"), "Release *v1.4.0* started by <@U0RITA>, who is its Incident Commander")
	w.waitFor("the red-team review", func(r *rollout.Release) bool { return r.Phase == rollout.PhaseRedTeam })
	must(t, w.command(userRita, "start v1.5.0"), "Sorry, release v1.4.0 is in progress")
	must(t, w.command(userOther, "promote"), "Sorry, only the Incident Commander (<@U0RITA>) can promote")
	must(t, w.command(userOther, "status"), "*v1.4.0* phase redteam")

	ticked := map[string]any{}
	for i, group := range [][]string{{"RT01", "RT02", "RT03", "RT04", "RT05", "RT06", "RT07", "RT08", "RT09", "RT10"}, {"RT11", "RT12", "RT13", "RT14", "RT15"}} {
		var opts []map[string]string
		for _, id := range group {
			opts = append(opts, map[string]string{"value": id})
		}
		ticked[bot.ReviewBlockID(i)] = map[string]any{bot.ActionReviewItems: map[string]any{"type": "checkboxes", "selected_options": opts}}
	}
	must(t, w.pressButton(userOther, bot.ActionReviewItems, "", nil), "Red-team checklist")
	must(t, w.pressButton(userOther, bot.ActionReviewDone, bot.StageActionValue("v1.4.0", 0), ticked), "`review \"15/15 review items ticked\"` applied")
	w.waitFor("go/no-go", func(r *rollout.Release) bool { return r.Phase == rollout.PhaseGoNoGo })
	must(t, w.pressButton(userOther, bot.ActionGo, bot.StageActionValue("v1.4.0", 0), nil), "Sorry, only the Incident Commander (<@U0RITA>) can give the GO")
	must(t, w.pressButton(userRita, bot.ActionGo, bot.StageActionValue("v1.4.0", 0), nil), "`go` applied")

	w.waitFor("stage 1", func(r *rollout.Release) bool { return r.CurrentStage() == 1 })
	must(t, w.command(userRita, "ic <@U0BOB|bob>"), "`ic bob` applied")
	must(t, w.command(userRita, "hold 10m"), "Sorry, only the Incident Commander (<@U0BOB>) can hold")
	must(t, w.command(userBob, "hold 10m waiting for pgbouncer"), "`hold 10m0s \"waiting for pgbouncer\"` applied")
	must(t, w.command(userBob, "signals"), "API P95                               1ms  (<= 200ms)  Pass")
	// Slack rate-limits and fails in the middle of the release.
	w.slack.Fail("chat.update", slackfake.RateLimited("0"), slackfake.ServerError())
	w.slack.Fail("chat.postMessage", slackfake.ServerError(), slackfake.AcceptedThen500(), slackfake.RateLimited("0"))
	must(t, w.command(userBob, "resume"), "`resume` applied")
	w.waitFor("Proceed at stage 1", func(r *rollout.Release) bool { return r.CurrentStage() == 1 && r.Last.Kind == rollout.Proceed })
	must(t, w.pressButton(userRita, bot.ActionPromote, bot.StageActionValue("v1.4.0", 1), nil), "Sorry, only the Incident Commander (<@U0BOB>) can promote")
	must(t, w.pressButton(userBob, bot.ActionPromote, bot.StageActionValue("v1.4.0", 1), nil), "`promote` applied — v1.4.0 is now at stage 2")
	must(t, w.pressButton(userBob, bot.ActionPromote, bot.StageActionValue("v1.4.0", 1), nil), "That button is on stage 1's message")
	r := w.waitFor("the end", func(r *rollout.Release) bool { return r.Phase.Terminal() })
	if r.Phase != rollout.PhaseComplete || r.IC != "bob" {
		t.Fatalf("release ended %s with IC %s", r.Phase, r.IC)
	}
	if wgt, _ := w.router.Weight(ctx); wgt != 100 {
		t.Fatalf("router at %d%% after the release, want 100", wgt)
	}
	// The state records the end before the engine announces it: wait for
	// the engine to finish, then for the outbox to deliver.
	for _, busy := w.h.host.Active(); busy; _, busy = w.h.host.Active() {
		time.Sleep(5 * time.Millisecond)
	}
	if err := w.notifier.Outbox.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	// The war-room log has every accepted command and every refusal, with
	// who and when.
	logText, err := os.ReadFile(filepath.Join(w.evDir, "v1.4.0", "warroom_log.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"rita  system    release v1.4.0 started by rita (IC)",
		`review "15/15 review items ticked"`,
		"rita  command   go",
		"rita  command   ic bob",
		`bob   command   hold 10m0s "waiting for pgbouncer"`,
		"bob   command   resume",
		"bob   command   promote",
		// Refused in Slack, before the engine: recorded through the inbox.
		"U0OTHER  refused",
		"`/canary promote` refused in Slack: Sorry, only the Incident Commander (<@U0RITA>) can promote",
		"`/canary start v1.5.0` refused in Slack: Sorry, release v1.4.0 is in progress",
		"go (button) refused in Slack: Sorry, only the Incident Commander (<@U0RITA>) can give the GO",
		"rita  refused",
		"promote (button) refused in Slack: Sorry, only the Incident Commander (<@U0BOB>) can promote",
		"hold 10m0s` refused in Slack",
	} {
		if !strings.Contains(strings.Join(strings.Fields(string(logText)), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("warroom_log.txt lacks %q:\n%s", want, logText)
		}
	}
	// Only the release's own refusals: the first, before any release, has
	// no war-room log to go to.
	if strings.Contains(string(logText), "start v1.4.0` refused") {
		t.Errorf("a refusal from before the release is in its log:\n%s", logText)
	}

	// Slack: the faults happened, and every message is there exactly once.
	faults := 0
	for _, c := range w.slack.Calls() {
		if c.Fault != "" {
			faults++
		}
	}
	if faults != 5 {
		t.Errorf("%d faults answered, want the 5 injected", faults)
	}
	refs := map[string]int{}
	oneLiner := strings.TrimSpace(w.h.p.render.OneLiner(&w.plan, r))
	lines := 0
	for _, m := range w.slack.Messages() {
		var md struct {
			Payload map[string]any `json:"event_payload"`
		}
		if err := json.Unmarshal([]byte(m.Metadata), &md); err != nil || md.Payload["ref"] == nil {
			t.Errorf("message %s carries no outbox ref: %q", m.TS, m.Metadata)
			continue
		}
		refs[md.Payload["ref"].(string)]++
		if strings.Contains(m.Text, oneLiner) {
			lines++
		}
	}
	for ref, n := range refs {
		if n != 1 {
			t.Errorf("message %s posted %d times", ref, n)
		}
	}
	if lines != 1 {
		t.Errorf("the one-liner %q is in %d messages, want 1", oneLiner, lines)
	}
	pending, _ := w.h.p.outbox.Pending(ctx)
	dead, _ := w.h.p.outbox.Dead(ctx)
	if len(pending) != 0 || len(dead) != 0 {
		t.Errorf("outbox not empty: %d pending, %d dead", len(pending), len(dead))
	}
	if rep, err := evidence.Verify(filepath.Join(w.evDir, "v1.4.0")); err != nil || !rep.OK {
		t.Errorf("evidence does not verify: %v %v", rep, err)
	}

	resp, err := http.Get(w.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`canarybot_slack_interactions_total{action="canary_go",outcome="ok"} 1`,
		`canarybot_slack_interactions_total{action="canary_go",outcome="refused"} 1`,
		`canarybot_slack_commands_total{outcome="refused",verb="start"} 1`,
		`canarybot_canary_weight_percent 100`,
		`canarybot_rollbacks_total 0`,
		`canarybot_decisions_total{decision="Proceed"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cancel()
	if err := <-hostDone; err != nil {
		t.Fatal(err)
	}
	w.srv.Wait()
}
