// Package server is canarybot's HTTP server for Slack: slash commands and
// button presses verified, parsed and authorised before a handler sees them
// (over HTTP or Socket Mode), health and readiness probes, and Prometheus
// metrics.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/slack-go/slack"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/rollout"
)

// Defaults for Options.
const (
	// DefaultAckTimeout leaves room under Slack's 3 s for the network.
	DefaultAckTimeout = 2 * time.Second
	// DefaultWorkTimeout bounds a handler that missed the ack; Slack's
	// response_url stays valid for 30 minutes.
	DefaultWorkTimeout = 5 * time.Minute
	// DefaultShutdownTimeout is how long Serve waits, once its context
	// ends, for requests and late answers to finish: within a pod's
	// termination grace period (30 s by default), so that the process
	// logs what it drops rather than being killed mid-answer.
	DefaultShutdownTimeout = 20 * time.Second
	maxBody                = 64 << 10
)

// SlashCommandRequest is a verified, parsed and authorised /canary command,
// typed or given by pressing a button in a war-room message.
type SlashCommandRequest struct {
	Command bot.SlashCommand
	Text    string // as typed; for a button, the command it stands for
	UserID  string // Slack user ID
	// User is who the engine knows the person as: their CLI name from
	// Options.Users, else UserID. An `ic` target is mapped the same way.
	User        string
	UserName    string
	ChannelID   string
	TeamID      string
	ResponseURL string
	// Button is set when the request came from a button press.
	Button bool
}

// SlackResponse is the handler's answer. Ephemeral answers are seen only by
// the person who typed the command.
type SlackResponse struct {
	Text      string
	InChannel bool
}

// Options configure New.
type Options struct {
	Listen             string
	SlackSigningSecret string
	Clock              func() time.Time
	Logger             *slog.Logger
	Handler            func(ctx context.Context, req SlashCommandRequest) SlackResponse
	// Authority returns the current release's IC and the release managers
	// for bot.Authorize. Nil, or an error, allows only what anyone may do.
	// The IC is a name as Users maps it; release managers are Slack IDs.
	Authority func(ctx context.Context) (ic string, releaseManagers []string, err error)
	// Users maps Slack user IDs to the names the engine and the CLI use.
	Users bot.Directory
	// OnRefused records a refused command or button press (the war-room
	// log); it runs after the answer, never delaying it.
	OnRefused func(ctx context.Context, req SlashCommandRequest, why string)
	// AckTimeout is how long a handler may take before the request is
	// acknowledged with "working on it" and the answer goes to response_url.
	AckTimeout  time.Duration
	WorkTimeout time.Duration
	// ShutdownTimeout bounds how long Serve waits at shutdown for answers
	// still being worked on; what is left is dropped and logged.
	ShutdownTimeout time.Duration
	// HTTPClient posts to response_url (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// AllowResponseURL says where late answers may be posted; default: https
	// on hooks.slack.com only, so a request can never make the bot post elsewhere.
	AllowResponseURL func(u string) bool
	// OnTriggers receives the firing auto-rollback alerts that Alertmanager
	// pushes to POST /alertmanager/webhook; nil leaves the route refusing
	// with 503. An error makes the answer 503, so Alertmanager retries.
	OnTriggers func(ctx context.Context, alerts []rollout.Alert) error
	// Triggers and Service select the alerts that concern this release:
	// every trigger label, and the service label when Service is set.
	Triggers rollout.Triggers
	Service  string
	// AlertmanagerToken, when set, is the bearer token the webhook requires.
	AlertmanagerToken string
	// Routes mounts further endpoints (pattern as for http.ServeMux, e.g.
	// "POST /github/webhook") that adapters in other packages serve.
	Routes map[string]http.Handler
	// Collectors are registered beside the server's own metrics, so that one
	// /metrics shows the engine's and the adapters' figures too.
	Collectors []prometheus.Collector
}

// Server serves the Slack endpoints.
type Server struct {
	opt      Options
	verifier *bot.Verifier
	log      *slog.Logger
	mux      *http.ServeMux
	reg      *prometheus.Registry
	commands *prometheus.CounterVec
	ack      prometheus.Histogram
	triggers *prometheus.CounterVec
	actions  *prometheus.CounterVec
	late     lateWork
	// work ends when the shutdown timeout has passed: the handlers still
	// running are told to stop.
	work     context.Context
	dropWork context.CancelFunc
	// socket is set while Socket Mode runs: commands arrive without a
	// signing secret then.
	socket atomic.Bool
}

// New returns a server. An empty signing secret is allowed so that probes
// work, but then every Slack request is refused: check Ready.
func New(opt Options) *Server {
	if opt.Clock == nil {
		opt.Clock = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.AckTimeout <= 0 {
		opt.AckTimeout = DefaultAckTimeout
	}
	if opt.WorkTimeout <= 0 {
		opt.WorkTimeout = DefaultWorkTimeout
	}
	if opt.ShutdownTimeout <= 0 {
		opt.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opt.AllowResponseURL == nil {
		opt.AllowResponseURL = slackResponseURL
	}
	s := &Server{opt: opt, log: opt.Logger, mux: http.NewServeMux(), reg: prometheus.NewRegistry()}
	s.work, s.dropWork = context.WithCancel(context.Background())
	s.verifier, _ = bot.NewVerifier(opt.SlackSigningSecret, opt.Clock)
	s.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canarybot_slack_commands_total",
		Help: "Slash commands by verb and outcome (ok, deferred, refused, malformed, unverified, error).",
	}, []string{"verb", "outcome"})
	s.ack = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "canarybot_slack_ack_seconds",
		Help:    "Time from receiving a slash command or a button press to acknowledging it (Slack allows 3 s).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 2.5, 3, 5},
	})
	s.triggers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canarybot_alertmanager_webhooks_total",
		Help: "Alertmanager webhook calls by outcome (rollback, ignored, bad_request, unauthorized, unavailable).",
	}, []string{"outcome"})
	s.actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canarybot_slack_interactions_total",
		Help: "Button presses by action and outcome (ok, refused, malformed, unverified, ignored, error).",
	}, []string{"action", "outcome"})
	s.reg.MustRegister(s.commands, s.ack, s.triggers, s.actions)
	s.reg.MustRegister(opt.Collectors...)
	for pattern, h := range opt.Routes {
		s.mux.Handle(pattern, h)
	}
	s.mux.HandleFunc("POST /slack/commands", s.slashCommand)
	s.mux.HandleFunc("POST /slack/interactions", s.interaction)
	s.mux.HandleFunc("POST /alertmanager/webhook", s.alertmanager)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return s
}

func slackResponseURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Scheme == "https" && p.Host == "hooks.slack.com"
}

// Handler is the server's routes.
func (s *Server) Handler() http.Handler { return s.mux }

// Ready reports whether Slack commands can be served, and if not why.
func (s *Server) Ready() error {
	switch {
	case s.verifier == nil && !s.socket.Load():
		return errors.New("no Slack signing secret: set SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)")
	case s.opt.Handler == nil:
		return errors.New("no command handler")
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.Ready(); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

// Run listens on Options.Listen until ctx ends, then shuts down and waits
// (at most Options.ShutdownTimeout) for late answers still being posted.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opt.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opt.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opt.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if !s.late.waitUntil(sctx) {
		n, named := s.late.pending()
		s.log.Warn("shutdown: answers still being worked on are dropped; the people who asked get no answer and may ask again",
			"dropped", n, "what", named, "waited", s.opt.ShutdownTimeout)
		s.dropWork()
	}
	return err
}

// Wait blocks until every late answer has been posted (or given up on).
func (s *Server) Wait() { s.late.Wait() }

// lateWork counts the work still going on after a request was answered:
// late answers, button presses, refusals being recorded. It names what it
// can, so that a shutdown that cannot wait says what it dropped.
type lateWork struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	n     int
	seq   uint64
	named map[uint64]string
}

func (l *lateWork) Add(n int) {
	l.mu.Lock()
	l.n += n
	l.mu.Unlock()
	l.wg.Add(n)
}

func (l *lateWork) Done() {
	l.mu.Lock()
	l.n--
	l.mu.Unlock()
	l.wg.Done()
}

func (l *lateWork) Wait() { l.wg.Wait() }

// start is Add(1) for work with a name; call the func it returns when done.
func (l *lateWork) start(what string) func() {
	l.mu.Lock()
	l.seq++
	id := l.seq
	if l.named == nil {
		l.named = map[uint64]string{}
	}
	l.named[id] = what
	l.n++
	l.mu.Unlock()
	l.wg.Add(1)
	return func() {
		l.mu.Lock()
		delete(l.named, id)
		l.n--
		l.mu.Unlock()
		l.wg.Done()
	}
}

// pending is how much work is still going on, and the names of that which
// has one, in the order it started.
func (l *lateWork) pending() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]uint64, 0, len(l.named))
	for id := range l.named {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = l.named[id]
	}
	return l.n, names
}

// waitUntil waits for all the work until ctx ends, and reports whether it
// all finished.
func (l *lateWork) waitUntil(ctx context.Context) bool {
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) slashCommand(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.ack.Observe(time.Since(start).Seconds()) }()
	body, ok := s.verified(w, r, func() { s.commands.WithLabelValues("unknown", "unverified").Inc() })
	if !ok {
		return
	}
	// SlashCommandParse reads the form from the body we have already read
	// and verified, so what it parses is exactly what was signed.
	r.Body = io.NopCloser(bytes.NewReader(body))
	sc, err := slack.SlashCommandParse(r)
	if err != nil {
		s.commands.WithLabelValues("unknown", "malformed").Inc()
		http.Error(w, "bad form body", http.StatusBadRequest)
		return
	}
	writeResponse(w, s.command(r.Context(), sc))
}

// verified reads the body and checks Slack's signature and the replay
// cache; on failure it has answered and counted (with refuse) already.
func (s *Server) verified(w http.ResponseWriter, r *http.Request, refuse func()) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		refuse()
		http.Error(w, "request body unreadable or over 64 KiB", http.StatusBadRequest)
		return nil, false
	}
	if s.verifier == nil {
		refuse()
		http.Error(w, "not configured: no Slack signing secret", http.StatusServiceUnavailable)
		return nil, false
	}
	if err := s.verifier.Verify(r.Header, body); err != nil {
		refuse()
		s.log.Warn("Slack request refused", "path", r.URL.Path, "err", err, "remote", r.RemoteAddr)
		if errors.Is(err, bot.ErrReplayCacheFull) {
			http.Error(w, "busy, retry", http.StatusServiceUnavailable)
			return nil, false
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

// command runs a verified slash command, from the HTTP endpoint or Socket
// Mode: parse, authorise, and hand it to the handler. It returns what to
// acknowledge with, within AckTimeout whatever the handler is doing; a
// handler that takes longer answers through response_url.
func (s *Server) command(ctx context.Context, sc slack.SlashCommand) SlackResponse {
	verb, outcome := "unknown", "error"
	defer func() { s.commands.WithLabelValues(verb, outcome).Inc() }()
	cmd, err := bot.ParseCommand(sc.Text)
	if err != nil {
		outcome = "malformed"
		s.log.Info("malformed slash command", "user", sc.UserID, "text", sc.Text, "err", err)
		return SlackResponse{Text: strings.TrimPrefix(err.Error(), bot.ErrMalformed.Error()+": ")}
	}
	verb = string(cmd.Verb)
	if s.opt.Handler == nil {
		return SlackResponse{Text: "canarybot is starting up and cannot take commands yet; try again in a minute."}
	}
	req := SlashCommandRequest{Command: cmd, Text: sc.Text, UserID: sc.UserID, UserName: sc.UserName,
		ChannelID: sc.ChannelID, TeamID: sc.TeamID, ResponseURL: sc.ResponseURL}
	if why, ok := s.authorize(ctx, &req); !ok {
		outcome = "refused"
		return SlackResponse{Text: why}
	}
	// The handler runs detached from the request so that it may finish
	// after the ack and post its answer to response_url.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.WorkTimeout)
	stopOnDrop := context.AfterFunc(s.work, cancel)
	done := make(chan SlackResponse, 1)
	finished := s.late.start(fmt.Sprintf("/canary %s by %s", cmd.String(), sc.UserID))
	go func() {
		defer finished()
		defer stopOnDrop()
		defer cancel()
		done <- s.opt.Handler(hctx, req)
	}()
	timer := time.NewTimer(s.opt.AckTimeout)
	defer timer.Stop()
	select {
	case resp := <-done:
		outcome = "ok"
		s.log.Info("slash command", "user", sc.UserID, "verb", verb)
		return resp
	case <-timer.C:
	}
	outcome = "deferred"
	posted := s.late.start(fmt.Sprintf("the late answer to /canary %s by %s", cmd.String(), sc.UserID))
	go func() {
		defer posted()
		resp := <-done
		s.log.Info("slash command answered late", "user", sc.UserID, "verb", verb, "answer", resp.Text)
		if err := s.postLate(sc.ResponseURL, resp); err != nil {
			s.log.Error("posting the late answer to response_url failed", "user", sc.UserID, "verb", verb, "err", err)
		}
	}()
	return SlackResponse{Text: fmt.Sprintf("Working on `/canary %s`… the answer will follow here.", cmd.String())}
}

// authorize maps the Slack user (and an `ic` target) to the names the
// engine knows, applies the authority matrix, and records a refusal.
func (s *Server) authorize(ctx context.Context, req *SlashCommandRequest) (why string, ok bool) {
	req.User = s.opt.Users.Name(req.UserID)
	if req.Command.Verb == bot.VerbIC && !strings.HasPrefix(req.Command.Target, "@") {
		req.Command.Target = s.opt.Users.Name(req.Command.Target)
	}
	var ic string
	var rms []string
	if s.opt.Authority != nil {
		// The lookup reads the state file, which another process may hold:
		// bound it so the ack still comes within Slack's 3 s.
		actx, cancel := context.WithTimeout(ctx, s.opt.AckTimeout/2)
		var err error
		if ic, rms, err = s.opt.Authority(actx); err != nil {
			// Without the IC only open commands and the release managers'
			// (rollback, ic, start) remain possible.
			s.log.Warn("authority lookup failed; IC-only commands refused", "err", err)
			ic = ""
		}
		cancel()
	}
	ok, why = s.opt.Users.Authorize(req.Command.AuthVerb(), req.User, ic, rms)
	if ok {
		return "", true
	}
	s.log.Info("refused", "user", req.UserID, "as", req.User, "verb", req.Command.AuthVerb(), "why", why)
	if s.opt.OnRefused != nil {
		// Recorded after the answer, so that a slow state file never delays it.
		r := *req
		recorded := s.late.start(fmt.Sprintf("recording the refusal of %s by %s", req.Command.String(), req.UserID))
		go func() {
			defer recorded()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.WorkTimeout)
			defer cancel()
			defer context.AfterFunc(s.work, cancel)()
			s.opt.OnRefused(rctx, r, why)
		}()
	}
	return why, false
}

func (s *Server) postLate(responseURL string, resp SlackResponse) error {
	if !s.opt.AllowResponseURL(responseURL) {
		return fmt.Errorf("response_url %q is not a Slack hooks URL", responseURL)
	}
	ctx, cancel := context.WithTimeout(s.work, 30*time.Second)
	defer cancel()
	return slack.PostWebhookCustomHTTPContext(ctx, responseURL, s.opt.HTTPClient, message(resp))
}

func message(resp SlackResponse) *slack.WebhookMessage {
	m := &slack.WebhookMessage{Text: resp.Text, ResponseType: slack.ResponseTypeEphemeral}
	if resp.InChannel {
		m.ResponseType = slack.ResponseTypeInChannel
	}
	return m
}

func writeResponse(w http.ResponseWriter, resp SlackResponse) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(message(resp))
}
