package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/bot"
)

// sink stands in for Slack's response_url: it records what is posted.
type sink struct {
	*httptest.Server
	mu  sync.Mutex
	got []reply
}

func newSink(t *testing.T) *sink {
	s := &sink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rp reply
		if err := json.NewDecoder(r.Body).Decode(&rp); err != nil {
			t.Errorf("response_url got a body that is not a message: %v", err)
		}
		s.mu.Lock()
		s.got = append(s.got, rp)
		s.mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) replies() []reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]reply(nil), s.got...)
}

func (s *sink) options(o *Options) {
	o.HTTPClient = s.Client()
	o.AllowResponseURL = func(u string) bool { return strings.HasPrefix(u, s.URL) }
}

// press is a block_actions payload as Slack posts it for one button.
func press(user, actionID, value, responseURL string) url.Values {
	p := map[string]any{
		"type": "block_actions", "user": map[string]string{"id": user, "name": "n"},
		"channel": map[string]string{"id": "C1"}, "team": map[string]string{"id": "T1"},
		"response_url": responseURL,
		"actions":      []map[string]string{{"action_id": actionID, "block_id": "b1", "type": "button", "value": value}},
	}
	data, _ := json.Marshal(p)
	return url.Values{"payload": {string(data)}}
}

func signed(t *testing.T, path string, ts time.Time, form url.Values) *http.Request {
	t.Helper()
	r := slackRequest(t, secret, ts, form)
	r.URL.Path = path
	return r
}

// TestAuthorityMatrix runs every command and every button through the
// endpoints as the IC, a release manager and anyone else: what the matrix
// allows reaches the handler, the rest gets a polite refusal that is also
// recorded, and the handler never sees it.
func TestAuthorityMatrix(t *testing.T) {
	const ic, rm, other = "UIC", "URM", "UOTHER"
	stage := bot.StageActionValue("v1.4.0", 2)
	type input struct {
		name   string
		text   string // a slash command, or
		action string // a button's action ID
	}
	tests := []struct {
		in      input
		allowed string // i = IC, r = release manager, o = anyone else
	}{
		{input{name: "start", text: "start v1.4.0"}, "r"},
		{input{name: "promote", text: "promote"}, "i"},
		{input{name: "hold", text: "hold 10m slow db"}, "i"},
		{input{name: "resume", text: "resume"}, "i"},
		{input{name: "rollback", text: "rollback p95"}, "ir"},
		{input{name: "drill", text: "drill"}, "iro"},
		{input{name: "status", text: "status"}, "iro"},
		{input{name: "signals", text: "signals"}, "iro"},
		{input{name: "help", text: "help"}, "iro"},
		{input{name: "ic", text: "ic <@UNEW|new>"}, "r"},
		{input{name: "freeze start", text: "freeze start"}, "ir"},
		{input{name: "freeze lift", text: "freeze lift"}, "ir"},
		{input{name: "freeze status", text: "freeze status"}, "iro"},
		{input{name: "Promote button", action: bot.ActionPromote}, "i"},
		{input{name: "Hold button", action: bot.ActionHold}, "i"},
		{input{name: "Rollback button", action: bot.ActionRollback}, "ir"},
		{input{name: "GO button", action: bot.ActionGo}, "i"},
		{input{name: "NO-GO button", action: bot.ActionNoGo}, "i"},
		{input{name: "review done button", action: bot.ActionReviewDone}, "iro"},
	}
	who := map[byte]string{'i': ic, 'r': rm, 'o': other}
	for _, tt := range tests {
		for _, k := range []byte("iro") {
			user := who[k]
			want := strings.IndexByte(tt.allowed, k) >= 0
			t.Run(tt.in.name+"/"+user, func(t *testing.T) {
				sk := newSink(t)
				var mu sync.Mutex
				var refused []string
				s, calls := newTest(echo, sk.options, func(o *Options) {
					o.OnRefused = func(ctx context.Context, req SlashCommandRequest, why string) {
						mu.Lock()
						refused = append(refused, req.User+": "+why)
						mu.Unlock()
					}
				})
				w := httptest.NewRecorder()
				var answer string
				if tt.in.text != "" {
					s.Handler().ServeHTTP(w, slackRequest(t, secret, now, form(user, tt.in.text, sk.URL)))
					if w.Code != 200 {
						t.Fatalf("code %d", w.Code)
					}
					answer = decode(t, w.Body).Text
					s.Wait()
				} else {
					s.Handler().ServeHTTP(w, signed(t, "/slack/interactions", now, press(user, tt.in.action, stage, sk.URL)))
					if w.Code != 200 || w.Body.Len() != 0 {
						t.Fatalf("ack %d %q, want an empty 200", w.Code, w.Body)
					}
					s.Wait()
					rs := sk.replies()
					if len(rs) != 1 || rs[0].ResponseType != "ephemeral" {
						t.Fatalf("response_url got %+v, want one ephemeral answer", rs)
					}
					answer = rs[0].Text
				}
				if got := calls.Load() == 1; got != want {
					t.Fatalf("handler called: %v, want %v (answer %q)", got, want, answer)
				}
				mu.Lock()
				defer mu.Unlock()
				if want {
					if !strings.HasPrefix(answer, "did ") || len(refused) != 0 {
						t.Fatalf("answer %q, refusals %v", answer, refused)
					}
					return
				}
				if !strings.HasPrefix(answer, "Sorry") {
					t.Fatalf("refusal is not polite: %q", answer)
				}
				if len(refused) != 1 || refused[0] != user+": "+answer {
					t.Fatalf("refusals recorded %v, want the one answered", refused)
				}
			})
		}
	}
}

func TestButtonCommands(t *testing.T) {
	sk := newSink(t)
	got := make(chan SlashCommandRequest, 10)
	s, _ := newTest(func(_ context.Context, r SlashCommandRequest) SlackResponse {
		got <- r
		return SlackResponse{Text: "ok"}
	}, sk.options)
	tests := []struct {
		action, value string
		want          bot.SlashCommand
	}{
		{bot.ActionPromote, "v1.4.0#2", bot.SlashCommand{Verb: bot.VerbPromote, Release: "v1.4.0", Stage: 2}},
		{bot.ActionHold, "v1.4.0#3", bot.SlashCommand{Verb: bot.VerbHold, Reason: "Hold button", Release: "v1.4.0", Stage: 3}},
		{bot.ActionRollback, "v1.4.0-2#4", bot.SlashCommand{Verb: bot.VerbRollback, Reason: "Rollback button on stage 4", Release: "v1.4.0-2", Stage: 4}},
		{bot.ActionGo, "v1.4.0#0", bot.SlashCommand{Verb: bot.VerbGo, Release: "v1.4.0"}},
		{bot.ActionNoGo, "v1.4.0#0", bot.SlashCommand{Verb: bot.VerbNoGo, Reason: "NO-GO button", Release: "v1.4.0"}},
	}
	for i, tt := range tests {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, signed(t, "/slack/interactions", now.Add(time.Duration(i)*time.Second), press("UIC", tt.action, tt.value, sk.URL)))
		if w.Code != 200 {
			t.Fatalf("%s: %d", tt.action, w.Code)
		}
		select {
		case r := <-got:
			if r.Command != tt.want || !r.Button || r.UserID != "UIC" || r.User != "UIC" {
				t.Errorf("%s → %+v, want %+v", tt.action, r, tt.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never reached the handler", tt.action)
		}
	}
	s.Wait()
}

func TestReviewChecklistPress(t *testing.T) {
	payload := `{"type":"block_actions","user":{"id":"UREV"},"response_url":"RU",
	 "actions":[{"action_id":"` + bot.ActionReviewDone + `","block_id":"canary_review_actions","type":"button","value":"v1.4.0#0"}],
	 "state":{"values":{
	   "canary_review_1":{"` + bot.ActionReviewItems + `":{"type":"checkboxes","selected_options":[{"value":"idempotency"}]}},
	   "canary_review_0":{"` + bot.ActionReviewItems + `":{"type":"checkboxes","selected_options":[{"value":"csp"}]}},
	   "canary_review_2":{"` + bot.ActionReviewItems + `":{"type":"checkboxes","selected_options":[]}}}}}`
	cb, err := parseInteraction([]byte(url.Values{"payload": {payload}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := buttonCommand(cb, cb.ActionCallback.BlockActions[0])
	if !ok || c.Verb != bot.VerbReview || c.Item != "csp,idempotency" {
		t.Fatalf("review done → %+v", c)
	}
	tick := `{"type":"block_actions","user":{"id":"UREV"},"actions":[{"action_id":"` + bot.ActionReviewItems +
		`","block_id":"review_item_1","type":"checkboxes","selected_options":[{"value":"csp"}]}]}`
	cb, err = parseInteraction([]byte(url.Values{"payload": {tick}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := buttonCommand(cb, cb.ActionCallback.BlockActions[0]); c.Verb != bot.VerbCheck || c.Item != "review_item_1" || c.Reason != "ticked: csp" {
		t.Fatalf("tick → %+v", c)
	}
}

func TestInteractionsRefuseWhatSlackDidNotSign(t *testing.T) {
	sk := newSink(t)
	s, calls := newTest(echo, sk.options)
	body := press("UIC", bot.ActionPromote, "v1.4.0#1", sk.URL)
	tests := []struct {
		name string
		req  func() *http.Request
		code int
	}{
		{"unsigned", func() *http.Request {
			r := signed(t, "/slack/interactions", now, body)
			r.Header.Del(bot.HeaderSignature)
			return r
		}, 401},
		{"stale", func() *http.Request { return signed(t, "/slack/interactions", now.Add(-10*time.Minute), body) }, 401},
		{"wrong secret", func() *http.Request {
			r := slackRequest(t, "not-the-secret", now, body)
			r.URL.Path = "/slack/interactions"
			return r
		}, 401},
		{"signed, no payload", func() *http.Request { return signed(t, "/slack/interactions", now, url.Values{"x": {"1"}}) }, 400},
		{"signed, bad JSON", func() *http.Request {
			return signed(t, "/slack/interactions", now, url.Values{"payload": {"{"}})
		}, 400},
		{"replayed", func() *http.Request {
			first := signed(t, "/slack/interactions", now.Add(time.Second), body)
			s.Handler().ServeHTTP(httptest.NewRecorder(), first)
			return signed(t, "/slack/interactions", now.Add(time.Second), body)
		}, 401},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, tt.req())
		if w.Code != tt.code {
			t.Errorf("%s: %d, want %d", tt.name, w.Code, tt.code)
		}
	}
	s.Wait()
	// Only the first of the replayed pair got through.
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times, want 1", calls.Load())
	}
}

// TestSlackDocumentedExample sends Slack's own signing example to the
// commands endpoint at its 2018 timestamp, on an injected clock: it is
// accepted, and a second later than the window it is not.
func TestSlackDocumentedExample(t *testing.T) {
	const (
		exSecret = "8f742231b10e8888abcd99yyyzzz85a5"
		exTS     = "1531420618"
		exBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
		exSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	)
	ts, _ := strconv.ParseInt(exTS, 10, 64)
	for _, tt := range []struct {
		clock time.Duration
		code  int
	}{{0, 200}, {5*time.Minute + time.Second, 401}} {
		s := New(Options{SlackSigningSecret: exSecret, Clock: func() time.Time { return time.Unix(ts, 0).Add(tt.clock) }, Handler: echo})
		r := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(exBody))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set(bot.HeaderTimestamp, exTS)
		r.Header.Set(bot.HeaderSignature, exSig)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != tt.code {
			t.Fatalf("clock +%s: %d, want %d", tt.clock, w.Code, tt.code)
		}
		// Empty text is help, which anyone may ask for.
		if tt.code == 200 {
			if got := decode(t, w.Body).Text; got != "did help for U2CERLKJA" {
				t.Fatalf("answer %q", got)
			}
		}
		s.Wait()
	}
}

func TestUsersAreMapped(t *testing.T) {
	users, err := bot.NewDirectory(map[string]string{"UIC": "alice", "UNEW": "bob"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan SlashCommandRequest, 1)
	s, _ := newTest(func(_ context.Context, r SlashCommandRequest) SlackResponse {
		got <- r
		return SlackResponse{Text: "ok"}
	}, func(o *Options) {
		o.Users = users
		// The release's IC is a CLI name; the release manager a Slack ID.
		o.Authority = func(context.Context) (string, []string, error) { return "alice", []string{"URM"}, nil }
	})
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, slackRequest(t, secret, now, form("UIC", "promote", "")))
	if r := <-got; r.User != "alice" || r.UserID != "UIC" {
		t.Fatalf("promote by %q (%s), want alice", r.User, r.UserID)
	}
	s.Handler().ServeHTTP(httptest.NewRecorder(), slackRequest(t, secret, now.Add(time.Second), form("URM", "ic <@UNEW|bob>", "")))
	if r := <-got; r.Command.Target != "bob" {
		t.Fatalf("ic target %q, want bob", r.Command.Target)
	}
	w = httptest.NewRecorder()
	s.Handler().ServeHTTP(w, slackRequest(t, secret, now.Add(2*time.Second), form("UNEW", "promote", "")))
	if a := decode(t, w.Body).Text; !strings.Contains(a, "only the Incident Commander (<@UIC>)") {
		t.Fatalf("refusal %q does not mention the IC by their Slack ID", a)
	}
	s.Wait()
}
