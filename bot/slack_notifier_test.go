package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
)

// slackCall is one request the fake Slack received.
type slackCall struct {
	Method    string // "chat.postMessage" or "chat.update"
	Channel   string
	TS        string // the edited message (chat.update)
	ThreadTS  string
	Broadcast bool
	Text      string
	Blocks    string // raw JSON
	Accepted  bool   // false when a fault answered instead of Slack
	Answered  string // the ts the fake Slack answered with
}

// fault answers a request in place of the fake Slack.
type fault func(w http.ResponseWriter, r *http.Request)

// slackRecorder records what the notifier sends and answers like Slack.
// Faults queued per method answer the next requests, in order.
type slackRecorder struct {
	mu     sync.Mutex
	calls  []slackCall
	faults map[string][]fault
	seq    int
}

func (rec *slackRecorder) fail(method string, f ...fault) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.faults[method] = append(rec.faults[method], f...)
}

func (rec *slackRecorder) handler(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		call := slackCall{
			Method: method, Channel: r.FormValue("channel"), TS: r.FormValue("ts"),
			ThreadTS: r.FormValue("thread_ts"), Broadcast: r.FormValue("reply_broadcast") == "true",
			Text: r.FormValue("text"), Blocks: r.FormValue("blocks"),
		}
		rec.mu.Lock()
		var f fault
		if q := rec.faults[method]; len(q) > 0 {
			f, rec.faults[method] = q[0], q[1:]
		}
		call.Accepted = f == nil
		rec.calls = append(rec.calls, call)
		ts := call.TS
		if method == "chat.postMessage" && f == nil {
			rec.seq++
			ts = fmt.Sprintf("1700000000.%06d", rec.seq)
		}
		if call.Accepted {
			rec.calls[len(rec.calls)-1].Answered = ts
		}
		rec.mu.Unlock()
		if f != nil {
			f(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C1", "ts": ts})
	}
}

func (rec *slackRecorder) accepted() []slackCall {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []slackCall
	for _, c := range rec.calls {
		if c.Accepted {
			out = append(out, c)
		}
	}
	return out
}

func (rec *slackRecorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.calls)
}

func rateLimited(retryAfter string) fault {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", retryAfter)
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"ok":false,"error":"ratelimited"}`))
	}
}

func serverError(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte("<html>oops</html>"))
}

func slackError(code string) fault {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"ok":false,"error":%q}`, code)
	}
}

// sleeps records the waits the notifier asks for without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type slackFixture struct {
	rec    *slackRecorder
	sleeps *sleeps
	store  *MemorySlackStore
	plan   *rollout.Plan
	api    *slack.Client
}

func newSlackFixture(t *testing.T) *slackFixture {
	t.Helper()
	rec := &slackRecorder{faults: map[string][]fault{}}
	// Handlers bound at construction take precedence over slacktest's own.
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", rec.handler("chat.postMessage"))
		c.Handle("/chat.update", rec.handler("chat.update"))
	})
	srv.Start()
	t.Cleanup(srv.Stop)
	plan := config.Default()
	return &slackFixture{
		rec: rec, sleeps: &sleeps{}, store: &MemorySlackStore{}, plan: &plan,
		api: slack.New("xoxb-test", slack.OptionAPIURL(srv.GetAPIURL())),
	}
}

func (f *slackFixture) notifier() *SlackNotifier {
	return &SlackNotifier{
		API: f.api, Store: f.store, Plan: f.plan, Render: report.Renderer{},
		Backoff: time.Second, Sleep: f.sleeps.sleep, Logger: slog.New(slog.DiscardHandler),
	}
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func stageEvent(stage, weight int) rollout.Event {
	return rollout.Event{Kind: rollout.EventStage, Version: "v1.4.0", At: t0, Phase: rollout.PhaseStage, Stage: stage, Weight: weight,
		Text: fmt.Sprintf("Stage %d/5: canary weight %d%% for 15m0s", stage, weight)}
}

func rowEvent(plan *rollout.Plan, stage, weight, minute int, d rollout.Decision) rollout.Event {
	at := t0.Add(time.Duration(minute) * time.Minute)
	row := rollout.Row{At: at, Phase: rollout.PhaseStage, Stage: stage, Weight: weight, Decision: d,
		Readings: []rollout.Measurement{{Signal: plan.Signals[0].Name, At: at, Value: float64(minute) / 1000, Verdict: rollout.Pass}}}
	return rollout.Event{Kind: rollout.EventRow, Version: "v1.4.0", At: at, Phase: rollout.PhaseStage, Stage: stage, Weight: weight,
		Text: report.Renderer{}.TableRow(plan, row), Row: &row}
}

func textEvent(kind rollout.EventKind, stage int, text string) rollout.Event {
	return rollout.Event{Kind: kind, Version: "v1.4.0", At: t0, Stage: stage, Text: text}
}

type keyedEvent struct {
	key string
	ev  rollout.Event
}

func notifyAll(t *testing.T, n *SlackNotifier, evs []keyedEvent) {
	t.Helper()
	for _, e := range evs {
		if err := n.Notify(context.Background(), e.key, e.ev); err != nil {
			t.Fatalf("Notify(%s, %s): %v", e.key, e.ev.Kind, err)
		}
	}
}

// blockTexts returns the text of every block of a message, in order.
func blockTexts(t *testing.T, raw string) []string {
	t.Helper()
	var blocks []struct {
		Text     *struct{ Text string }  `json:"text"`
		Elements []struct{ Text string } `json:"elements"`
	}
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		t.Fatalf("blocks are not JSON: %v\n%s", err, raw)
	}
	var out []string
	for _, b := range blocks {
		if b.Text != nil {
			out = append(out, b.Text.Text)
		}
		for _, e := range b.Elements {
			out = append(out, e.Text)
		}
	}
	return out
}

func TestSlackNotifierRelease(t *testing.T) {
	f := newSlackFixture(t)
	n := f.notifier()
	plan := f.plan
	hold := rollout.Decision{Kind: rollout.Hold, Reason: "p99 latency rising"}
	rows1 := []rollout.Event{
		rowEvent(plan, 1, 1, 1, rollout.Decision{Kind: rollout.Continue}),
		rowEvent(plan, 1, 1, 2, rollout.Decision{Kind: rollout.Continue}),
		rowEvent(plan, 1, 1, 3, hold),
	}
	rows2 := []rollout.Event{
		rowEvent(plan, 2, 5, 20, rollout.Decision{Kind: rollout.Continue}),
		rowEvent(plan, 2, 5, 21, rollout.Decision{Kind: rollout.Rollback, Auto: true, Reason: "5xx rate breached"}),
	}
	rollback := textEvent(rollout.EventRollback, 0, "ROLLBACK by canarybot (auto): 5xx rate breached. Canary weight → 0.")
	rollback.Phase = rollout.PhaseRolledBack
	events := []keyedEvent{
		{"rel-1/1", stageEvent(1, 1)},
		{"rel-1/2", rows1[0]},
		{"rel-1/3", rows1[1]},
		{"rel-1/4", rows1[2]},
		{"rel-1/5", textEvent(rollout.EventHold, 1, "HOLD: p99 latency rising")},
		{"rel-1/6", stageEvent(2, 5)},
		{"rel-1/7", rows2[0]},
		{"rel-1/8", rows2[1]},
		{"rel-1/9", rollback},
		{"rel-1/10", textEvent(rollout.EventDone, 0, "v1.4.0 rolled back at stage 2 (5%)")},
	}
	notifyAll(t, n, events)

	calls := f.rec.accepted()
	if len(calls) != f.rec.count() {
		t.Fatalf("faults answered %d calls; none were queued", f.rec.count()-len(calls))
	}
	var stagePosts []slackCall
	updates := map[string][]slackCall{}
	byText := map[string]slackCall{}
	for _, c := range calls {
		switch {
		case c.Method == "chat.update":
			updates[c.TS] = append(updates[c.TS], c)
		case c.ThreadTS == "":
			stagePosts = append(stagePosts, c)
		default:
			byText[c.Text] = c
		}
		if c.Channel == "" {
			t.Errorf("%s without a channel", c.Method)
		}
	}
	if len(stagePosts) != 2 {
		t.Fatalf("top-level posts = %d, want one per stage (2): %+v", len(stagePosts), stagePosts)
	}
	if stagePosts[0].Channel != DefaultWarRoomChannel {
		t.Errorf("stage posted to %q, want %q", stagePosts[0].Channel, DefaultWarRoomChannel)
	}
	ts1, ts2 := stagePosts[0].Answered, stagePosts[1].Answered
	for ts, want := range map[string][]rollout.Event{ts1: rows1, ts2: rows2} {
		ups := updates[ts]
		if len(ups) != len(want) {
			t.Fatalf("updates of %s = %d, want one per row (%d)", ts, len(ups), len(want))
		}
		for _, u := range ups {
			if u.Channel != "C1" {
				t.Errorf("update sent to channel %q, want the ID Slack answered (C1)", u.Channel)
			}
		}
		last := strings.Join(blockTexts(t, ups[len(ups)-1].Blocks), "\n")
		for _, r := range want {
			if !strings.Contains(last, escapeMrkdwn(r.Text)) {
				t.Errorf("last update of %s lacks row %q:\n%s", ts, r.Text, last)
			}
		}
		if !strings.Contains(last, escapeMrkdwn(report.Renderer{}.TableHeader(plan))) {
			t.Errorf("last update of %s lacks the table header:\n%s", ts, last)
		}
		if wantDecision := decisionLine(want[len(want)-1].Row.Decision); !strings.Contains(last, wantDecision) {
			t.Errorf("last update of %s lacks decision %q:\n%s", ts, wantDecision, last)
		}
	}
	head := blockTexts(t, stagePosts[1].Blocks)
	if len(head) == 0 || head[0] != "v1.4.0 · stage 2/5 · weight 5%" {
		t.Errorf("stage 2 header = %q", head)
	}

	threaded := []struct {
		prefix    string
		threadTS  string
		broadcast bool
	}{
		{":double_vertical_bar: HOLD: p99 latency rising", ts1, false},
		{":rotating_light: ROLLBACK by canarybot (auto)", ts2, true},
		{":checkered_flag: v1.4.0 rolled back", ts2, true},
	}
	if len(byText) != len(threaded) {
		t.Errorf("thread posts = %d, want %d: %v", len(byText), len(threaded), byText)
	}
	for _, want := range threaded {
		var got *slackCall
		for text, c := range byText {
			if strings.HasPrefix(text, want.prefix) {
				got = &c
			}
		}
		if got == nil {
			t.Errorf("no thread post starting %q", want.prefix)
			continue
		}
		if got.ThreadTS != want.threadTS || got.Broadcast != want.broadcast || got.Channel != "C1" {
			t.Errorf("%q: thread_ts %s broadcast %v channel %s, want %s %v C1", want.prefix, got.ThreadTS, got.Broadcast, got.Channel, want.threadTS, want.broadcast)
		}
	}

	// The same keys again, as after a restart before the engine saved.
	before := f.rec.count()
	notifyAll(t, f.notifier(), events)
	if got := f.rec.count(); got != before {
		t.Errorf("repeated keys sent %d more calls, want none", got-before)
	}

	// A restarted notifier keeps editing stage 2's message.
	notifyAll(t, f.notifier(), []keyedEvent{{"rel-1/11", rowEvent(plan, 2, 5, 22, rollout.Decision{Kind: rollout.Continue})}})
	calls = f.rec.accepted()
	if last := calls[len(calls)-1]; last.Method != "chat.update" || last.TS != ts2 {
		t.Errorf("row after restart: %s on %q, want chat.update on %s", last.Method, last.TS, ts2)
	}
}

func TestSlackNotifierRowBeforeItsStage(t *testing.T) {
	// The engine set the stage announcement aside while Slack was down and
	// delivers it after the first row.
	f := newSlackFixture(t)
	n := f.notifier()
	notifyAll(t, n, []keyedEvent{
		{"rel-1/2", rowEvent(f.plan, 1, 1, 1, rollout.Decision{Kind: rollout.Continue})},
		{"rel-1/1", stageEvent(1, 1)},
		{"rel-1/3", rowEvent(f.plan, 1, 1, 2, rollout.Decision{Kind: rollout.Continue})},
	})
	var posts, updates int
	for _, c := range f.rec.accepted() {
		if c.Method == "chat.postMessage" {
			posts++
		} else {
			updates++
		}
	}
	if posts != 1 || updates != 1 {
		t.Errorf("posts %d updates %d, want 1 post and 1 update", posts, updates)
	}
}

func TestSlackNotifierFailures(t *testing.T) {
	tests := []struct {
		name       string
		faults     []fault
		wantErr    bool
		wantErrAs  func(error) bool
		wantSleeps []time.Duration
		wantTries  int
	}{
		{name: "429 waited out", faults: []fault{rateLimited("1")}, wantSleeps: []time.Duration{time.Second}, wantTries: 2},
		{name: "500 retried", faults: []fault{serverError}, wantSleeps: []time.Duration{time.Second}, wantTries: 2},
		{name: "5xx backoff doubles", faults: []fault{serverError, serverError}, wantSleeps: []time.Duration{time.Second, 2 * time.Second}, wantTries: 3},
		{
			name: "500 after retries returned", faults: []fault{serverError, serverError, serverError}, wantErr: true,
			wantErrAs:  func(err error) bool { _, ok := errors.AsType[slack.StatusCodeError](err); return ok },
			wantSleeps: []time.Duration{time.Second, 2 * time.Second}, wantTries: 3,
		},
		{
			name: "long Retry-After returned", faults: []fault{rateLimited("120")}, wantErr: true,
			wantErrAs: func(err error) bool { _, ok := errors.AsType[*slack.RateLimitedError](err); return ok },
			wantTries: 1,
		},
		{
			name: "Slack refusal not retried", faults: []fault{slackError("channel_not_found")}, wantErr: true,
			wantErrAs: func(err error) bool { return strings.Contains(err.Error(), "channel_not_found") },
			wantTries: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSlackFixture(t)
			f.rec.fail("chat.postMessage", tt.faults...)
			n := f.notifier()
			err := n.Notify(context.Background(), "rel-1/1", stageEvent(1, 1))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !tt.wantErrAs(err) {
				t.Errorf("err = %v: not the kind expected", err)
			}
			if got := f.rec.count(); got != tt.wantTries {
				t.Errorf("requests = %d, want %d", got, tt.wantTries)
			}
			if got := f.sleeps.all(); fmt.Sprint(got) != fmt.Sprint(tt.wantSleeps) {
				t.Errorf("sleeps = %v, want %v", got, tt.wantSleeps)
			}
			accepted := len(f.rec.accepted())
			sent, _ := f.store.Sent(context.Background(), "rel-1/1")
			if tt.wantErr {
				if accepted != 0 || sent {
					t.Errorf("failed notify: %d accepted posts, key sent %v; want none", accepted, sent)
				}
				// The engine retries later; the message goes out then.
				if err := n.Notify(context.Background(), "rel-1/1", stageEvent(1, 1)); err != nil {
					t.Fatalf("retry after the fault: %v", err)
				}
				accepted = len(f.rec.accepted())
			}
			if accepted != 1 {
				t.Errorf("accepted posts = %d, want exactly 1", accepted)
			}
			// The row after a fault edits the one message Slack accepted.
			notifyAll(t, n, []keyedEvent{{"rel-1/2", rowEvent(f.plan, 1, 1, 1, rollout.Decision{Kind: rollout.Continue})}})
			calls := f.rec.accepted()
			if last := calls[len(calls)-1]; last.Method != "chat.update" || last.TS != "1700000000.000001" {
				t.Errorf("row: %s on %q, want chat.update on the accepted post", last.Method, last.TS)
			}
		})
	}
}

func TestSlackNotifierTimeoutRetried(t *testing.T) {
	f := newSlackFixture(t)
	f.rec.fail("chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
		// Answer only once the client has given up on the request.
		<-r.Context().Done()
		serverError(w, r)
	})
	n := f.notifier()
	n.CallTimeout = 20 * time.Millisecond
	if err := n.Notify(context.Background(), "rel-1/1", stageEvent(1, 1)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if got := f.sleeps.all(); len(got) != 1 {
		t.Errorf("sleeps = %v, want one backoff after the timeout", got)
	}
	if got := len(f.rec.accepted()); got != 1 {
		t.Errorf("accepted posts = %d, want 1", got)
	}
}

func TestSlackNotifierNoStore(t *testing.T) {
	n := &SlackNotifier{}
	if err := n.Notify(context.Background(), "rel-1/1", stageEvent(1, 1)); !errors.Is(err, ErrSlackStoreMissing) {
		t.Errorf("err = %v, want ErrSlackStoreMissing", err)
	}
}

func TestSlackNotifierTableFitsSection(t *testing.T) {
	plan := config.Default()
	n := &SlackNotifier{Plan: &plan, Render: report.Renderer{}}
	tests := []struct {
		name        string
		rows        int
		wantDropped bool
	}{
		{"no rows", 0, false},
		{"few rows", 3, false},
		{"a long hold", 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := StageMessage{}
			for i := range tt.rows {
				m.Rows = append(m.Rows, StageRow{Text: fmt.Sprintf("%03d %s", i, strings.Repeat("x", 60))})
			}
			got := n.table(m)
			if len(got) > maxSectionChars {
				t.Errorf("table is %d chars, Slack allows %d", len(got), maxSectionChars)
			}
			if !strings.HasPrefix(got, "```") || !strings.HasSuffix(got, "```") {
				t.Errorf("table is not one code block: %q", got)
			}
			if tt.rows > 0 && !strings.Contains(got, m.Rows[tt.rows-1].Text) {
				t.Errorf("table lacks the latest row")
			}
			if dropped := strings.Contains(got, "earlier rows"); dropped != tt.wantDropped {
				t.Errorf("dropped rows = %v, want %v", dropped, tt.wantDropped)
			}
		})
	}
}

func TestSlackNotifierButtons(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("buttons=", on), func(t *testing.T) {
			f := newSlackFixture(t)
			n := f.notifier()
			n.Buttons = on
			notifyAll(t, n, []keyedEvent{{"rel-1/1", stageEvent(2, 5)}})
			calls := f.rec.accepted()
			if len(calls) != 1 {
				t.Fatalf("calls = %d, want 1", len(calls))
			}
			var blocks []struct {
				Type     string `json:"type"`
				Elements []struct {
					ActionID string          `json:"action_id"`
					Value    string          `json:"value"`
					Confirm  json.RawMessage `json:"confirm"`
				} `json:"elements"`
			}
			if err := json.Unmarshal([]byte(calls[0].Blocks), &blocks); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, b := range blocks {
				if b.Type != "actions" {
					continue
				}
				for _, e := range b.Elements {
					ids = append(ids, e.ActionID)
					if e.Value != StageActionValue("rel-1", 2) {
						t.Errorf("%s value = %q, want %q", e.ActionID, e.Value, StageActionValue("rel-1", 2))
					}
					if len(e.Confirm) == 0 {
						t.Errorf("%s has no confirmation dialog", e.ActionID)
					}
				}
			}
			want := []string{}
			if on {
				want = []string{ActionPromote, ActionHold, ActionRollback}
			}
			if fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Errorf("buttons = %v, want %v", ids, want)
			}
		})
	}
}
