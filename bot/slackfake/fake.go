// Package slackfake is a fake Slack Web API for tests, built on slack-go's
// slacktest server. slacktest answers chat.postMessage but does not record
// it and has no chat.update, conversations.history or conversations.replies;
// this package registers its own handlers for those (slacktest lets custom
// handlers win over its defaults), keeps the channel's messages as Slack
// would show them, records every call, and injects faults: rate limits,
// 5xx, Slack errors, and "accepted, then the answer was lost" — the case an
// outbox must not turn into a duplicate.
package slackfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// The fake workspace's war-room channel.
const (
	ChannelID   = "C0WARROOM"
	ChannelName = "spark-warroom"
)

// Call is one request the fake received.
type Call struct {
	Method    string
	Channel   string
	TS        string // chat.update: the edited message; conversations.replies: the thread
	ThreadTS  string
	Broadcast bool
	Text      string
	Blocks    string // raw JSON
	Metadata  string // raw JSON
	// IncludeAllMetadata is the conversations.* flag without which Slack
	// leaves metadata out.
	IncludeAllMetadata bool
	// Fault is the fault that answered, "" when Slack did.
	Fault string
	// Answered is the ts of the posted or edited message, when there is one.
	Answered string
}

// Message is a message as the channel shows it now.
type Message struct {
	TS        string
	Channel   string
	ThreadTS  string
	Broadcast bool
	Text      string
	Blocks    string
	Metadata  string
	// Edits counts the chat.update calls that changed it.
	Edits int
}

// Fault answers a request instead of, or after, the fake Slack.
type Fault struct {
	Name string
	// Status, when set, is the HTTP status answered (with RetryAfter as
	// Retry-After on a 429).
	Status     int
	RetryAfter string
	// SlackError answers {"ok":false,"error":SlackError}.
	SlackError string
	// Accept carries the request out before the fault answers: Slack
	// posted, the client never heard.
	Accept bool
	// Drop closes the connection without an answer.
	Drop bool
	// Hang answers nothing until the client gives up (its timeout).
	Hang bool
}

// RateLimited is Slack's 429 with Retry-After in seconds.
func RateLimited(retryAfter string) Fault {
	return Fault{Name: "429 Retry-After " + retryAfter, Status: http.StatusTooManyRequests, RetryAfter: retryAfter}
}

// ServerError is a 500 for a request Slack did not carry out.
func ServerError() Fault { return Fault{Name: "500", Status: http.StatusInternalServerError} }

// AcceptedThen500 posts, then answers 500: the client cannot know.
func AcceptedThen500() Fault {
	return Fault{Name: "accepted, then 500", Status: http.StatusInternalServerError, Accept: true}
}

// AcceptedThenDropped posts, then drops the connection.
func AcceptedThenDropped() Fault {
	return Fault{Name: "accepted, then dropped", Accept: true, Drop: true}
}

// AcceptedThenTimeout posts, then answers nothing until the client's
// timeout.
func AcceptedThenTimeout() Fault {
	return Fault{Name: "accepted, then timeout", Accept: true, Hang: true}
}

// SlackError is Slack's refusal with an error code.
func SlackError(code string) Fault { return Fault{Name: "error " + code, SlackError: code} }

// Server is the fake Slack.
type Server struct {
	srv *slacktest.Server

	mu       sync.Mutex
	calls    []Call
	faults   map[string][]Fault
	messages []*Message // in posting order
	seq      int
}

// New starts a fake Slack on loopback, stopped when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{faults: map[string][]Fault{}}
	s.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", s.handle("chat.postMessage", s.postMessage))
		c.Handle("/chat.update", s.handle("chat.update", s.update))
		c.Handle("/conversations.history", s.handle("conversations.history", s.history))
		c.Handle("/conversations.replies", s.handle("conversations.replies", s.replies))
		c.Handle("/conversations.list", s.handle("conversations.list", s.list))
	})
	s.srv.Start()
	t.Cleanup(s.srv.Stop)
	return s
}

// APIURL is the base URL to give slack.OptionAPIURL.
func (s *Server) APIURL() string { return s.srv.GetAPIURL() }

// Client returns a slack-go client of the fake.
func (s *Server) Client() *slack.Client {
	return slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
}

// Fail queues faults that answer the method's next requests, in order.
func (s *Server) Fail(method string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], faults...)
}

// Calls returns every request so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallsTo returns the requests of one method.
func (s *Server) CallsTo(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Messages returns the messages in the channel, top level and in threads,
// in posting order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = *m
	}
	return out
}

type handlerFunc func(r *http.Request, call *Call) (map[string]any, string)

func (s *Server) handle(method string, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		call := Call{
			Method: method, Channel: r.FormValue("channel"), TS: r.FormValue("ts"),
			ThreadTS: r.FormValue("thread_ts"), Broadcast: r.FormValue("reply_broadcast") == "true",
			Text: r.FormValue("text"), Blocks: r.FormValue("blocks"), Metadata: r.FormValue("metadata"),
			IncludeAllMetadata: r.FormValue("include_all_metadata") == "1",
		}
		s.mu.Lock()
		var f *Fault
		if q := s.faults[method]; len(q) > 0 {
			f, s.faults[method] = &q[0], q[1:]
			call.Fault = f.Name
		}
		var body map[string]any
		errCode := ""
		if f == nil || f.Accept {
			body, errCode = h(r, &call)
		}
		s.calls = append(s.calls, call)
		s.mu.Unlock()
		switch {
		case f != nil && f.Hang:
			<-r.Context().Done()
		case f != nil && f.Drop:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
		case f != nil && f.Status != 0:
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			w.WriteHeader(f.Status)
			_, _ = w.Write([]byte("<html>fault</html>"))
		case f != nil && f.SlackError != "":
			writeJSON(w, map[string]any{"ok": false, "error": f.SlackError})
		case errCode != "":
			writeJSON(w, map[string]any{"ok": false, "error": errCode})
		default:
			body["ok"] = true
			writeJSON(w, body)
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func channelID(ch string) (string, bool) {
	switch ch {
	case ChannelID, ChannelName, "#" + ChannelName:
		return ChannelID, true
	}
	return "", false
}

// postMessage, update, ... run with s.mu held.
func (s *Server) postMessage(_ *http.Request, call *Call) (map[string]any, string) {
	id, ok := channelID(call.Channel)
	if !ok {
		return nil, "channel_not_found"
	}
	if call.ThreadTS != "" && s.find(call.ThreadTS) == nil {
		return nil, "thread_not_found"
	}
	s.seq++
	ts := fmt.Sprintf("1700000000.%06d", s.seq)
	s.messages = append(s.messages, &Message{
		TS: ts, Channel: id, ThreadTS: call.ThreadTS, Broadcast: call.Broadcast,
		Text: call.Text, Blocks: call.Blocks, Metadata: call.Metadata,
	})
	call.Answered = ts
	return map[string]any{"channel": id, "ts": ts}, ""
}

func (s *Server) update(_ *http.Request, call *Call) (map[string]any, string) {
	if call.Channel != ChannelID {
		return nil, "channel_not_found" // chat.update takes only an ID
	}
	m := s.find(call.TS)
	if m == nil {
		return nil, "message_not_found"
	}
	m.Text, m.Blocks = call.Text, call.Blocks
	m.Edits++
	call.Answered = m.TS
	return map[string]any{"channel": ChannelID, "ts": m.TS, "text": call.Text}, ""
}

func (s *Server) find(ts string) *Message {
	for _, m := range s.messages {
		if m.TS == ts {
			return m
		}
	}
	return nil
}

func (s *Server) history(r *http.Request, call *Call) (map[string]any, string) {
	if call.Channel != ChannelID {
		return nil, "channel_not_found"
	}
	var shown []*Message
	for i := len(s.messages) - 1; i >= 0; i-- { // newest first, as Slack
		if m := s.messages[i]; m.ThreadTS == "" || m.Broadcast {
			shown = append(shown, m)
		}
	}
	return page(r, shown, call.IncludeAllMetadata)
}

func (s *Server) replies(r *http.Request, call *Call) (map[string]any, string) {
	if call.Channel != ChannelID {
		return nil, "channel_not_found"
	}
	parent := s.find(call.TS)
	if parent == nil {
		return nil, "thread_not_found"
	}
	shown := []*Message{parent}
	for _, m := range s.messages {
		if m.ThreadTS == call.TS {
			shown = append(shown, m)
		}
	}
	return page(r, shown, call.IncludeAllMetadata)
}

// page answers a conversations.* read, with Slack's cursor paging.
func page(r *http.Request, shown []*Message, withMetadata bool) (map[string]any, string) {
	start, _ := strconv.Atoi(r.FormValue("cursor"))
	limit, _ := strconv.Atoi(r.FormValue("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	end := min(start+limit, len(shown))
	start = min(start, end)
	var msgs []map[string]any
	for _, m := range shown[start:end] {
		msg := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
		if m.ThreadTS != "" {
			msg["thread_ts"] = m.ThreadTS
		}
		if withMetadata && m.Metadata != "" {
			msg["metadata"] = json.RawMessage(m.Metadata)
		}
		msgs = append(msgs, msg)
	}
	next := ""
	if end < len(shown) {
		next = strconv.Itoa(end)
	}
	return map[string]any{"messages": msgs, "has_more": next != "", "response_metadata": map[string]any{"next_cursor": next}}, ""
}

func (s *Server) list(*http.Request, *Call) (map[string]any, string) {
	return map[string]any{
		"channels":          []map[string]any{{"id": "C0GENERAL", "name": "general"}, {"id": ChannelID, "name": ChannelName}},
		"response_metadata": map[string]any{"next_cursor": ""},
	}, ""
}
