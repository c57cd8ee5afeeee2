package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canarybot/canarybot/bot"
)

const secret = "test-signing-secret"

var now = time.Unix(1_760_000_000, 0)

// slackRequest builds a slash command exactly as Slack sends it: a form
// body signed with the secret at the timestamp.
func slackRequest(t *testing.T, secret string, ts time.Time, form url.Values) *http.Request {
	t.Helper()
	body := form.Encode()
	r := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sts := strconv.FormatInt(ts.Unix(), 10)
	r.Header.Set(bot.HeaderTimestamp, sts)
	r.Header.Set(bot.HeaderSignature, bot.SignatureHeader(secret, sts, []byte(body)))
	return r
}

func form(user, text, responseURL string) url.Values {
	return url.Values{"command": {"/canary"}, "user_id": {user}, "user_name": {"n"}, "channel_id": {"C1"},
		"team_id": {"T1"}, "text": {text}, "response_url": {responseURL}}
}

type reply struct {
	Text         string `json:"text"`
	ResponseType string `json:"response_type"`
}

func decode(t *testing.T, body io.Reader) reply {
	t.Helper()
	var r reply
	if err := json.NewDecoder(body).Decode(&r); err != nil {
		t.Fatalf("decode reply: %v", err)
	}
	return r
}

func newTest(h func(context.Context, SlashCommandRequest) SlackResponse, mod ...func(*Options)) (*Server, *atomic.Int32) {
	calls := &atomic.Int32{}
	o := Options{SlackSigningSecret: secret, Clock: func() time.Time { return now },
		Authority: func(context.Context) (string, []string, error) { return "UIC", []string{"URM"}, nil }}
	if h != nil {
		o.Handler = func(ctx context.Context, r SlashCommandRequest) SlackResponse { calls.Add(1); return h(ctx, r) }
	}
	for _, m := range mod {
		m(&o)
	}
	return New(o), calls
}

func echo(_ context.Context, r SlashCommandRequest) SlackResponse {
	return SlackResponse{Text: "did " + r.Command.String() + " for " + r.UserID}
}

func TestSlashCommands(t *testing.T) {
	tests := []struct {
		name      string
		req       func(t *testing.T) *http.Request
		wantCode  int
		wantText  string
		wantCalls int32
	}{
		{"accepted", func(t *testing.T) *http.Request { return slackRequest(t, secret, now, form("UIC", "hold 15m db", "")) },
			200, "did hold 15m0s db for UIC", 1},
		{"anyone: status", func(t *testing.T) *http.Request { return slackRequest(t, secret, now, form("UX", "status", "")) },
			200, "did status for UX", 1},
		{"malformed", func(t *testing.T) *http.Request { return slackRequest(t, secret, now, form("UIC", "rollback", "")) },
			200, "`/canary rollback` needs a reason: `/canary rollback <reason>`", 0},
		{"unknown", func(t *testing.T) *http.Request { return slackRequest(t, secret, now, form("UIC", "yolo", "")) },
			200, "unknown command \"yolo\"", 0},
		{"refused", func(t *testing.T) *http.Request { return slackRequest(t, secret, now, form("UX", "promote", "")) },
			200, "Sorry, only the Incident Commander (<@UIC>) can promote", 0},
		{"unsigned", func(t *testing.T) *http.Request {
			r := slackRequest(t, secret, now, form("UIC", "promote", ""))
			r.Header.Del(bot.HeaderSignature)
			return r
		}, 401, "", 0},
		{"wrong secret", func(t *testing.T) *http.Request { return slackRequest(t, "other", now, form("UIC", "promote", "")) }, 401, "", 0},
		{"stale", func(t *testing.T) *http.Request {
			return slackRequest(t, secret, now.Add(-6*time.Minute), form("UIC", "promote", ""))
		}, 401, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, calls := newTest(echo)
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, tt.req(t))
			if w.Code != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", w.Code, tt.wantCode, w.Body)
			}
			if tt.wantText != "" {
				r := decode(t, w.Body)
				if !strings.Contains(r.Text, tt.wantText) || r.ResponseType != "ephemeral" {
					t.Fatalf("reply %+v, want ephemeral containing %q", r, tt.wantText)
				}
			}
			s.Wait()
			if got := calls.Load(); got != tt.wantCalls {
				t.Fatalf("handler called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestReplayedRequestRefused(t *testing.T) {
	s, calls := newTest(echo)
	first := slackRequest(t, secret, now, form("UIC", "promote", ""))
	again := first.Clone(context.Background())
	body := form("UIC", "promote", "").Encode()
	again.Body = io.NopCloser(strings.NewReader(body))
	for i, r := range []*http.Request{first, again} {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if want := []int{200, 401}[i]; w.Code != want {
			t.Fatalf("request %d: code %d, want %d", i, w.Code, want)
		}
	}
	s.Wait()
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times, want 1", calls.Load())
	}
}

func TestSlowHandlerAnswersViaResponseURL(t *testing.T) {
	got := make(chan reply, 1)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- decode(t, r.Body)
	}))
	defer sink.Close()
	release := make(chan struct{})
	slow := func(ctx context.Context, r SlashCommandRequest) SlackResponse {
		<-release
		return SlackResponse{Text: "status: stage 2, 5%"}
	}
	s, _ := newTest(slow, func(o *Options) {
		o.AckTimeout = 10 * time.Millisecond
		o.HTTPClient = sink.Client()
		o.AllowResponseURL = func(u string) bool { return strings.HasPrefix(u, sink.URL) }
	})
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, slackRequest(t, secret, now, form("UX", "status", sink.URL+"/commands/T1/1/x")))
	if r := decode(t, w.Body); w.Code != 200 || !strings.Contains(r.Text, "Working on `/canary status`") {
		t.Fatalf("ack %d %+v, want the working-on-it ack", w.Code, r)
	}
	close(release)
	select {
	case r := <-got:
		if r.Text != "status: stage 2, 5%" || r.ResponseType != "ephemeral" {
			t.Fatalf("response_url got %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late answer never reached response_url")
	}
	s.Wait()
}

func TestLateAnswerOnlyToSlack(t *testing.T) {
	if !slackResponseURL("https://hooks.slack.com/commands/T1/1/x") {
		t.Error("Slack's response_url refused")
	}
	for _, u := range []string{"http://hooks.slack.com/x", "https://evil.example/x", "https://hooks.slack.com.evil.example/x", "::"} {
		if slackResponseURL(u) {
			t.Errorf("%q allowed as a response_url", u)
		}
	}
}

func TestProbesAndMetrics(t *testing.T) {
	get := func(s *Server, path string) (int, string) {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code, w.Body.String()
	}
	s, _ := newTest(echo)
	if c, _ := get(s, "/healthz"); c != 200 {
		t.Errorf("/healthz %d", c)
	}
	if c, _ := get(s, "/readyz"); c != 200 {
		t.Errorf("/readyz with a handler %d", c)
	}
	noHandler, _ := newTest(nil)
	if c, b := get(noHandler, "/readyz"); c != 503 || !strings.Contains(b, "handler") {
		t.Errorf("/readyz without a handler %d %q", c, b)
	}
	noSecret, _ := newTest(echo, func(o *Options) { o.SlackSigningSecret = "" })
	if c, b := get(noSecret, "/readyz"); c != 503 || !strings.Contains(b, "SLACK_SIGNING_SECRET") {
		t.Errorf("/readyz without a secret %d %q", c, b)
	}
	for _, text := range []string{"status", "rollback"} {
		s.Handler().ServeHTTP(httptest.NewRecorder(), slackRequest(t, secret, now, form("UIC", text, "")))
	}
	unsigned := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader("text=status"))
	s.Handler().ServeHTTP(httptest.NewRecorder(), unsigned)
	s.Wait()
	c, b := get(s, "/metrics")
	if c != 200 {
		t.Fatalf("/metrics %d", c)
	}
	for _, want := range []string{
		`canarybot_slack_commands_total{outcome="ok",verb="status"} 1`,
		`canarybot_slack_commands_total{outcome="malformed",verb="unknown"} 1`,
		`canarybot_slack_commands_total{outcome="unverified",verb="unknown"} 1`,
		`canarybot_slack_ack_seconds_count 3`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(b, secret) {
		t.Error("/metrics shows the signing secret")
	}
}

func BenchmarkSignedSlashCommand(b *testing.B) {
	s := New(Options{SlackSigningSecret: secret, Handler: echo})
	body := form("UIC", "status", "").Encode()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A distinct body per request: the replay cache refuses repeats.
		if i%5000 == 4999 { // the replay cache holds 10000 live signatures
			s = New(Options{SlackSigningSecret: secret, Handler: echo})
		}
		bd := body + "&n=" + strconv.Itoa(i)
		r := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(bd))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		r.Header.Set(bot.HeaderTimestamp, ts)
		r.Header.Set(bot.HeaderSignature, bot.SignatureHeader(secret, ts, []byte(bd)))
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
