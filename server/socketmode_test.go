package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/canarybot/canarybot/bot"
)

// fakeSocketMode is Slack's end of Socket Mode on loopback: the Web API's
// apps.connections.open hands out the URL of a websocket on which the test
// plays Slack, sending envelopes and reading the acks.
type fakeSocketMode struct {
	*httptest.Server
	conns chan *websocket.Conn
}

func newFakeSocketMode(t *testing.T) *fakeSocketMode {
	f := &fakeSocketMode{conns: make(chan *websocket.Conn, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/apps.connections.open", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer xapp-test" {
			t.Errorf("apps.connections.open without the app token: %q", r.Header.Get("Authorization"))
		}
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(f.URL, "http") + "/link"})
	})
	mux.HandleFunc("GET /link", func(w http.ResponseWriter, r *http.Request) {
		// The client says it comes from api.slack.com, as it would to Slack.
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{"api.slack.com"}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		f.conns <- c
		// Hold the connection open until the test closes it.
		<-r.Context().Done()
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

type envelope struct {
	EnvelopeID string          `json:"envelope_id"`
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload"`
}

type ack struct {
	EnvelopeID string `json:"envelope_id"`
	Payload    *reply `json:"payload"`
}

// TestSocketMode runs a slash command and a button press through Socket
// Mode against a local websocket fake: the command's answer is the ack's
// payload, the button is acknowledged at once and answered on response_url.
func TestSocketMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fake := newFakeSocketMode(t)
	sk := newSink(t)
	// No signing secret: Socket Mode does not need one.
	s, calls := newTest(echo, sk.options, func(o *Options) { o.SlackSigningSecret = "" })
	api := slack.New("xoxb-test", slack.OptionAppLevelToken("xapp-test"), slack.OptionAPIURL(fake.URL+"/api/"))
	done := make(chan error, 1)
	go func() { done <- s.RunSocketMode(ctx, socketmode.New(api)) }()

	var conn *websocket.Conn
	select {
	case conn = <-fake.conns:
	case <-ctx.Done():
		t.Fatal("the client never dialled the websocket")
	}
	defer conn.CloseNow()
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "hello", "num_connections": 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("not ready over Socket Mode: %v", err)
	}

	cmd, _ := json.Marshal(slack.SlashCommand{Command: "/canary", Text: "hold 10m db", UserID: "UIC", ChannelID: "C1", ResponseURL: sk.URL})
	refused, _ := json.Marshal(slack.SlashCommand{Command: "/canary", Text: "promote", UserID: "UOTHER", ChannelID: "C1", ResponseURL: sk.URL})
	for _, tt := range []struct {
		id      string
		payload []byte
		want    string
	}{
		{"e1", cmd, "did hold 10m0s db for UIC"},
		{"e2", refused, "Sorry, only the Incident Commander (<@UIC>) can promote"},
	} {
		if err := wsjson.Write(ctx, conn, envelope{EnvelopeID: tt.id, Type: "slash_commands", Payload: tt.payload}); err != nil {
			t.Fatal(err)
		}
		var a ack
		if err := wsjson.Read(ctx, conn, &a); err != nil {
			t.Fatal(err)
		}
		if a.EnvelopeID != tt.id || a.Payload == nil || !strings.Contains(a.Payload.Text, tt.want) || a.Payload.ResponseType != "ephemeral" {
			t.Fatalf("ack %+v, want envelope %s with %q", a, tt.id, tt.want)
		}
	}

	btn := press("UIC", bot.ActionPromote, "v1.4.0#1", sk.URL).Get("payload")
	if err := wsjson.Write(ctx, conn, envelope{EnvelopeID: "e3", Type: "interactive", Payload: json.RawMessage(btn)}); err != nil {
		t.Fatal(err)
	}
	var a ack
	if err := wsjson.Read(ctx, conn, &a); err != nil {
		t.Fatal(err)
	}
	if a.EnvelopeID != "e3" || a.Payload != nil {
		t.Fatalf("button ack %+v, want an empty ack of e3", a)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunSocketMode: %v", err)
	}
	s.Wait()
	if rs := sk.replies(); len(rs) != 1 || rs[0].Text != "did promote for UIC" {
		t.Fatalf("response_url got %+v", rs)
	}
	if calls.Load() != 2 {
		t.Fatalf("handler called %d times, want 2 (the refused promote never)", calls.Load())
	}
}
