package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/ha"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/server"
)

// serveOptions are the flags of `canarybot serve`.
type serveOptions struct {
	listen      string
	managers    string
	slackAPIURL string
	// shutdown bounds how long serve waits, once asked to stop, for
	// answers still being worked on: a pod's grace period is 30 s.
	shutdown time.Duration
	// The production parts of the releases serve runs; without --ingress
	// or --stable and --canary it answers /canary and queues commands for
	// an engine run elsewhere (`canarybot run`), and /canary start says so.
	engine runOptions
}

// newServeCmd is `canarybot serve`: the Slack endpoint for /canary, and
// the engine of the releases started with `/canary start`.
func newServeCmd(g *globals) *cobra.Command {
	var o serveOptions
	c := &cobra.Command{
		Use:   "serve [--listen 127.0.0.1:8080] [--ingress NAME | --stable URL --canary URL] [--state-configmap NAME]",
		Short: "Serve Slack's /canary and the war-room buttons, run releases started from Slack; /healthz, /readyz, /metrics",
		Long: `serve is the Slack war-room's end of canarybot. It answers /canary and the war-room messages'
buttons over HTTP (POST /slack/commands and /slack/interactions, verified with
SLACK_SIGNING_SECRET) and, with SLACK_APP_TOKEN, over Socket Mode for workspaces that cannot reach
it. With PROMETHEUS_URL and a router — the canary Ingress (--ingress) or canarybot's own in front
of --stable and --canary — it also runs the releases started with /canary start (release managers
only; one at a time), posting the war-room table to the slack channel with SLACK_BOT_TOKEN; on
restart it resumes a release in progress.

With --state-configmap (the default in a cluster) the state lives in a ConfigMap every replica
shares, and the replicas elect a leader through the Lease --lease-name: only the leader runs
releases; the others answer status, queue commands for the leader, and take over when it goes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.engine.kube.resolve(cmd.Flags().Changed, inCluster(), g.statePath != "")
			return serve(cmd.Context(), g, cmd.Flags().Changed("listen"), o)
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.listen, "listen", config.DefaultSlackListen, "address to listen on (default: slack.listen in canary.yaml)")
	fl.StringVar(&o.managers, "release-managers", os.Getenv("CANARYBOT_RELEASE_MANAGERS"), "comma-separated Slack user IDs of release managers, added to slack.release_managers (default $CANARYBOT_RELEASE_MANAGERS)")
	fl.StringVar(&o.engine.stable, "stable", "", "stable backend URL: with --canary, serve runs the releases started from Slack")
	fl.StringVar(&o.engine.canary, "canary", "", "canary backend URL")
	fl.StringVar(&o.engine.prometheus, "prometheus", "", "Prometheus base URL (default $PROMETHEUS_URL)")
	fl.StringVar(&o.engine.listen, "router-listen", "127.0.0.1:8081", "address the weighted router listens on")
	fl.StringVar(&o.engine.preflight, "preflight", "", "checks file for the T-10 preflight step")
	fl.StringVar(&o.slackAPIURL, "slack-api-url", slack.APIURL, "Slack Web API base URL (a test double's, or an Enterprise Grid proxy)")
	fl.DurationVar(&o.shutdown, "shutdown-timeout", server.DefaultShutdownTimeout, "on SIGTERM, how long to wait for answers still being worked on (keep it under the pod's termination grace period)")
	o.engine.kube.addFlags(c)
	o.engine.kube.addServeFlags(c)
	return c
}

func serve(ctx context.Context, g *globals, listenSet bool, o serveOptions) error {
	secret, appToken, botToken := os.Getenv("SLACK_SIGNING_SECRET"), os.Getenv("SLACK_APP_TOKEN"), os.Getenv("SLACK_BOT_TOKEN")
	if secret == "" && appToken == "" {
		return badInput("SLACK_SIGNING_SECRET is not set: export it with your Slack app's Signing Secret (api.slack.com/apps → your app → Basic Information → App Credentials), or SLACK_APP_TOKEN for Socket Mode")
	}
	if appToken != "" && !strings.HasPrefix(appToken, "xapp-") {
		return badInput("SLACK_APP_TOKEN is not an app-level token (xapp-…): create one with the connections:write scope under Basic Information → App-Level Tokens")
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if !listenSet {
		o.listen = cfg.Slack.Listen
	}
	token := os.Getenv("ALERTMANAGER_WEBHOOK_TOKEN")
	if token == "" && !loopback(o.listen) {
		return badInput("ALERTMANAGER_WEBHOOK_TOKEN is not set and --listen %s is reachable from other hosts: anyone could push a rollback; set the token (and the same one in Alertmanager's webhook config) or listen on 127.0.0.1", o.listen)
	}
	users, err := bot.NewDirectory(cfg.Slack.Users)
	if err != nil {
		return badInput("slack.users: %v", err)
	}
	log := g.logger()
	var api *slack.Client
	if botToken != "" || appToken != "" {
		api = slack.New(botToken, slack.OptionAppLevelToken(appToken), slack.OptionAPIURL(o.slackAPIURL))
	}
	h := &slackHandler{g: g, managers: append(slices.Clone(cfg.Slack.ReleaseManagers), splitList(o.managers)...), users: users, log: log}
	// The change freeze of /canary freeze, POST /github/webhook and the
	// engine's freeze step: one, from canary.yaml's github section and the
	// environment (gates_wiring.go).
	genv := productionGateEnv(log)
	// Every wait on GitHub (rate limits, 5xx, timeouts, pacing) shows on
	// /metrics as well as in the log.
	ghMetrics := &forge.Metrics{}
	genv.transport.Metrics = ghMetrics
	h.collectors = append(h.collectors, ghMetrics)
	freeze, err := newFreezeOps(cfg, genv)
	if err != nil {
		return err
	}
	h.freeze = freeze.slackFreeze(h)
	if h.routes, err = githubWebhookRoutes(freeze, genv); err != nil {
		return err
	}
	kube := o.engine.kube
	hosting := o.engine.stable != "" || o.engine.canary != "" || kube.ingress != "" || kube.httpRoute != ""
	if kube.leaderElectSet && kube.leaderElect && !hosting {
		return badInput("--leader-elect elects the replica that runs releases, and this serve runs none: add --ingress or --httproute (or --stable and --canary)")
	}
	kc, err := connectKube(kube)
	if err != nil {
		return err
	}
	if err := shareFreezeProgress(ctx, freeze, kc, kube.stateConfigMap); err != nil {
		return err
	}
	if kube.stateConfigMap != "" && !hosting {
		// A front end only: every request reads the ConfigMap and queues
		// commands in it for the engine that drives the release.
		if h.p, err = g.openState(ctx, kc, kube.stateConfigMap, false); err != nil {
			return err
		}
		h.sharedInbox = true
	}
	if hosting {
		plan := cfg.Plan
		pp, err := openProduction(ctx, &plan, o.engine, kc, log)
		if err != nil {
			return err
		}
		defer pp.Close()
		if pp.wiring, err = newGateWiring(cfg, genv, freeze); err != nil {
			return err
		}
		p, err := g.openState(ctx, kc, kube.stateConfigMap, botToken != "")
		if err != nil {
			return err
		}
		var warroom rollout.Notifier
		if botToken != "" {
			n := slackWarRoom(api, cfg, &plan, p, log)
			n.Outbox.LookupUnknown = kube.leaderElect // a new leader finds what the old one posted
			if kube.leaderElect {
				// The queue is shared by the replicas: only the leader
				// delivers from it, or a follower would post too.
				h.leading = append(h.leading, n.Outbox.Run)
			} else {
				h.background = append(h.background, n.Outbox.Run)
			}
			warroom = n
		} else {
			log.Warn("SLACK_BOT_TOKEN is not set: the war-room table goes to this process's output, not to Slack")
			warroom = &bot.Terminal{W: g.out, Plan: &plan, Render: p.render}
		}
		h.p = p
		h.sharedInbox = kube.stateConfigMap != ""
		h.router = pp.where
		if pp.routerLn != nil {
			h.router = pp.routerLn.Addr().String()
		}
		h.host = newEngineHost(p, func(ctx context.Context, id, version string) (*hostedEngine, error) {
			ev, err := evidence.Open(cfg.EvidenceDir, id)
			if err != nil {
				return nil, err
			}
			return pp.engine(p, &plan, ev, version, warroom, log), nil
		}, log)
		if kube.leaderElect {
			if h.elector, err = newElector(kc, kube, log); err != nil {
				return err
			}
			// The Lease decides who drives the release: the new leader
			// resumes it at once rather than after the previous one's
			// heartbeat has aged.
			h.host.takeover = 0
		}
	}
	h.shutdown = o.shutdown
	return h.serve(ctx, o.listen, secret, token, cfg, api, appToken != "")
}

// serve runs the HTTP server, Socket Mode when asked, and the engine host
// until ctx ends.
func (h *slackHandler) serve(ctx context.Context, listen, secret, amToken string, cfg config.Config, api *slack.Client, socket bool) error {
	opt := server.Options{
		Listen:             listen,
		SlackSigningSecret: secret,
		Logger:             h.log,
		Handler:            h.handle,
		Authority:          h.authority,
		Users:              h.users,
		OnRefused:          h.refused,
		OnTriggers:         h.triggers,
		Triggers:           cfg.Plan.Triggers,
		Service:            cfg.Plan.Service,
		AlertmanagerToken:  amToken,
		ShutdownTimeout:    h.shutdown,
		Routes:             h.routes,
	}
	opt.Collectors = slices.Clone(h.collectors)
	if h.host != nil {
		opt.Collectors = append(opt.Collectors, h.host.metrics.collectors()...)
	}
	s := server.New(opt)
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return s.Run(gctx) })
	if socket {
		grp.Go(func() error { return s.RunSocketMode(gctx, socketmode.New(api)) })
	}
	switch {
	case h.host != nil && h.elector != nil:
		grp.Go(func() error { return h.elector.Run(gctx, h.lead) })
	case h.host != nil:
		grp.Go(func() error { return h.host.Run(gctx) })
	}
	for _, run := range h.background {
		grp.Go(func() error { return run(gctx) })
	}
	what := "/slack/commands, /slack/interactions, /alertmanager/webhook, /healthz, /readyz, /metrics"
	if socket {
		what += "; Slack Socket Mode"
	}
	if h.routes != nil {
		what += "; /github/webhook"
	}
	if h.host != nil {
		what += "; releases started with /canary start run here"
	}
	if h.elector != nil {
		what += " while this replica (" + h.elector.Identity() + ") leads"
	}
	fmt.Fprintf(h.g.out, "serving %s on http://%s\n", what, listen)
	err := grp.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// slackWarRoom is the notifier of the releases serve runs: the war-room
// channel's messages with their buttons, delivered by an outbox kept in
// the state file, so that a restart neither loses nor repeats a message.
// Its outbox's Run must run beside the engine.
func slackWarRoom(api bot.OutboxAPI, cfg config.Config, plan *rollout.Plan, p *parts, log *slog.Logger) *bot.SlackNotifier {
	n := bot.NewSlackNotifier(api, p.outbox, plan)
	n.Channel, n.Buttons, n.Logger = cfg.Slack.Channel, true, log
	n.Outbox.Logger = log
	for _, it := range cfg.Slack.Review {
		n.Review = append(n.Review, bot.ReviewItem{ID: it.ID, Text: it.Text, Guards: it.Guards})
	}
	return n
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// slackHandler answers /canary and the war-room buttons. Commands for the
// engine go through the state file's inbox, whether the engine runs in
// this process (host) or in a `canarybot run` elsewhere.
type slackHandler struct {
	g *globals
	// collectors are the adapters' metrics that /metrics shows beside the
	// server's and the engine's.
	collectors []prometheus.Collector
	// p, when set, is the state file every request uses: one store in the
	// process serialises its opens with a mutex rather than file locks.
	p        *parts
	managers []string // Slack user IDs
	users    bot.Directory
	log      *slog.Logger
	// host runs releases in this process; nil when serve was started
	// without production parts.
	host   *engineHost
	router string // the weighted router's address, for the drill
	// freeze, when set, carries out `/canary freeze start|lift|status`
	// (version is the current release's, "" without one).
	freeze func(ctx context.Context, action, version, user string) (string, error)
	// await bounds how long a command waits to hear the engine applied
	// it; the answer goes to response_url when that is past Slack's 3 s.
	await time.Duration
	// review is the red-team checklist the review button reports on.
	review []bot.ReviewItem
	// background run beside the server until it stops (the outbox).
	background []func(ctx context.Context) error
	// leading run on the leader only, while it leads (with leader election).
	leading []func(ctx context.Context) error
	// elector, when set, says whether this replica leads; only the leader
	// runs host.
	elector *ha.Elector
	// sharedInbox is set when the state (and so the command queue) is
	// shared by every replica: a follower then queues commands for the
	// leader instead of refusing them.
	sharedInbox bool
	shutdown    time.Duration
	// routes are mounted beside Slack's (POST /github/webhook).
	routes map[string]http.Handler
}

func (h *slackHandler) open() (*parts, error) {
	if h.p != nil {
		return h.p, nil
	}
	return h.g.open()
}

func (h *slackHandler) logger() *slog.Logger {
	if h.log != nil {
		return h.log
	}
	return slog.New(slog.DiscardHandler)
}

// triggers hands Alertmanager's firing triggers to the engine driving the
// current release. With no engine to apply it, the error makes the webhook
// answer 503 so that Alertmanager retries rather than the trigger being lost.
func (h *slackHandler) triggers(ctx context.Context, alerts []rollout.Alert) error {
	if why := h.notLeader(); why != "" && !h.sharedInbox {
		// 503: Alertmanager retries, and may reach the leader.
		return errors.New(why)
	}
	p, err := h.open()
	if err != nil {
		return err
	}
	r, err := p.load(ctx, "")
	if err != nil {
		return err
	}
	names := make([]string, len(alerts))
	for i, a := range alerts {
		names[i] = a.Name
	}
	_, err = p.enqueue(ctx, r, rollout.Command{Kind: rollout.CmdTrigger, User: rollout.TriggerUser, Reason: strings.Join(names, ", ")})
	h.wake()
	return err
}

func (h *slackHandler) wake() {
	if h.host != nil {
		h.host.Wake()
	}
}

func (h *slackHandler) authority(ctx context.Context) (string, []string, error) {
	p, err := h.open()
	if err != nil {
		return "", h.managers, err
	}
	r, err := p.store.Load(ctx, "")
	if errors.Is(err, rollout.ErrNotFound) {
		return "", h.managers, nil
	}
	if err != nil {
		return "", h.managers, err
	}
	if r.Phase.Terminal() {
		// Nobody commands an ended release; `/canary start` is for the
		// release managers either way.
		return "", h.managers, nil
	}
	return r.IC, h.managers, nil
}

// refused records a refusal in the war-room log of the release in progress.
// With no release in progress there is no log to write to; the process log
// has it.
func (h *slackHandler) refused(ctx context.Context, req server.SlashCommandRequest, why string) {
	p, err := h.open()
	if err != nil {
		h.logger().Warn("refusal not recorded in the war-room log", "user", req.User, "err", err)
		return
	}
	r, err := p.store.Load(ctx, "")
	if err != nil || r.Phase.Terminal() {
		return
	}
	source := "`/canary " + req.Command.String() + "`"
	if req.Button {
		source = req.Command.String() + " (button)"
	}
	text := fmt.Sprintf("%s refused in Slack: %s", source, why)
	if _, err := p.enqueue(ctx, r, rollout.Command{Kind: rollout.CmdNote, User: req.User, Target: string(rollout.LogRefused), Reason: text}); err != nil {
		h.logger().Warn("refusal not recorded in the war-room log", "user", req.User, "release", r.ID, "err", err)
		return
	}
	h.wake()
}

// commandKinds are the verbs the engine applies from its inbox.
var commandKinds = map[bot.Verb]rollout.CommandKind{
	bot.VerbPromote:  rollout.CmdPromote,
	bot.VerbHold:     rollout.CmdHold,
	bot.VerbResume:   rollout.CmdResume,
	bot.VerbRollback: rollout.CmdRollback,
	bot.VerbIC:       rollout.CmdHandover,
	bot.VerbGo:       rollout.CmdGo,
	bot.VerbNoGo:     rollout.CmdAbort,
	bot.VerbReview:   rollout.CmdReview,
}

func reply(format string, args ...any) server.SlackResponse {
	return server.SlackResponse{Text: fmt.Sprintf(format, args...)}
}

func (h *slackHandler) handle(ctx context.Context, req server.SlashCommandRequest) server.SlackResponse {
	if req.User == "" {
		req.User = h.users.Name(req.UserID)
	}
	c := req.Command
	switch c.Verb {
	case bot.VerbHelp:
		return server.SlackResponse{Text: bot.Help()}
	case bot.VerbStart:
		return h.start(ctx, req)
	}
	p, err := h.open()
	if err != nil {
		return reply("Cannot open the state file: %v", err)
	}
	r, err := p.store.Load(ctx, "")
	if errors.Is(err, rollout.ErrNotFound) {
		r, err = nil, nil
	}
	if err != nil {
		return reply("Cannot read the release: %v", err)
	}
	switch c.Verb {
	case bot.VerbFreeze:
		return h.freezeCmd(ctx, req, r)
	case bot.VerbDrill:
		return h.drill(ctx, p, r, req)
	case bot.VerbCheck:
		return reply("Red-team checklist (%s) %s. Press *Review done* when the review is complete.", c.Item, c.Reason)
	case bot.VerbReview:
		review := h.review
		if len(review) == 0 {
			review = bot.DefaultRedTeamReview()
		}
		c.Reason = bot.ReviewNote(review, splitList(c.Item))
	}
	if r == nil {
		return reply("No release is running: a release manager can start one with `/canary start <version>`.")
	}
	switch c.Verb {
	case bot.VerbStatus, bot.VerbSignals:
		return server.SlackResponse{Text: statusText(p, r, c.Verb == bot.VerbSignals, h.users)}
	}
	kind, ok := commandKinds[c.Verb]
	if !ok {
		return reply("`/canary %s` is not wired yet.", c.Verb)
	}
	if c.Verb == bot.VerbIC && strings.HasPrefix(c.Target, "@") {
		return reply("Pick the new IC from Slack's @ list (so the command carries their user ID, not the name %q): `/canary ic @name`.", c.Target)
	}
	if req.Button {
		if why := staleButton(r, c); why != "" {
			return reply("%s", why)
		}
	}
	if why := h.notLeader(); why != "" && !h.sharedInbox {
		return reply("%s", why)
	}
	manager := slices.ContainsFunc(h.managers, func(m string) bool { return m == req.UserID || h.users.Name(m) == req.User })
	cmd, err := p.enqueue(ctx, r, rollout.Command{Kind: kind, User: req.User, Reason: c.Reason, Duration: c.Duration, Target: c.Target, Manager: manager})
	if err != nil {
		msg := err.Error()
		return reply("%s", strings.ToUpper(msg[:1])+msg[1:])
	}
	h.wake()
	return h.outcome(ctx, p, r, cmd)
}

// staleButton refuses a press on a message that no longer stands for
// where the release is: a Promote on stage 1's message once stage 2 runs
// would otherwise promote stage 2.
func staleButton(r *rollout.Release, c bot.SlashCommand) string {
	if c.Release != "" && c.Release != r.ID {
		return fmt.Sprintf("That button belongs to release %s; the current release is %s. Nothing was done.", c.Release, r.ID)
	}
	if c.Stage > 0 && c.Verb != bot.VerbRollback && r.CurrentStage() != c.Stage {
		where := string(r.Phase)
		if r.Phase == rollout.PhaseStage {
			where = fmt.Sprintf("stage %d", r.CurrentStage())
		}
		return fmt.Sprintf("That button is on stage %d's message; %s is now at %s. Use the latest message. Nothing was done.", c.Stage, r.Version, where)
	}
	return ""
}

// outcome waits (briefly) for the engine to apply or refuse the command
// and says which.
func (h *slackHandler) outcome(ctx context.Context, p *parts, r *rollout.Release, cmd rollout.Command) server.SlackResponse {
	wait := h.await
	if wait <= 0 {
		wait = 30 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		got, err := p.store.Load(actx, r.ID)
		if err == nil && slices.Contains(got.Commands, cmd.ID) {
			for i := len(got.Log) - 1; i >= 0; i-- {
				e := got.Log[i]
				if e.User == cmd.User && strings.HasPrefix(e.Text, cmd.String()) && !e.At.Before(cmd.At.Add(-time.Hour)) {
					if e.Kind == rollout.LogRefused {
						return reply("Not done: %s", strings.TrimPrefix(e.Text, cmd.String()+" — refused: "))
					}
					return server.SlackResponse{InChannel: true, Text: fmt.Sprintf("%s: `%s` applied — %s is now %s", h.users.Mention(cmd.User), cmd.String(), got.Version, where(got))}
				}
			}
		}
		select {
		case <-actx.Done():
			return reply("Queued `%s` for %s as %s; the engine has not applied it yet and will at its next step.", cmd.String(), r.Version, h.users.Mention(cmd.User))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func where(r *rollout.Release) string {
	if r.Phase == rollout.PhaseStage {
		return fmt.Sprintf("at stage %d, weight %d%%", r.CurrentStage(), r.Weight)
	}
	return fmt.Sprintf("%s, weight %d%%", r.Phase, r.Weight)
}

// start begins a release in this process; the starter is its IC.
func (h *slackHandler) start(ctx context.Context, req server.SlashCommandRequest) server.SlackResponse {
	v := req.Command.Version
	if h.host == nil {
		return reply("This canarybot does not run releases: start serve with --stable, --canary and PROMETHEUS_URL to run them from Slack, or start %s with `canarybot run %s` where the engine runs.", v, v)
	}
	if why := h.notLeader(); why != "" {
		return reply("%s", why)
	}
	r, err := h.host.Start(ctx, v, req.User)
	switch {
	case errors.Is(err, errEngineBusy):
		why := fmt.Sprintf("Sorry, %s; one release at a time: it must complete, roll back or be aborted before %s starts.", strings.TrimPrefix(err.Error(), errEngineBusy.Error()+": "), v)
		if r != nil {
			why = fmt.Sprintf("Sorry, release %s is in progress (%s, IC %s); one release at a time: it must complete, roll back or be aborted before %s starts.", r.Version, where(r), h.users.Mention(r.IC), v)
		}
		h.refused(ctx, req, why)
		return reply("%s", why)
	case errors.Is(err, errNotHosting):
		return reply("Sorry, this canarybot is not running releases right now (starting up, or another replica leads); try again in a minute.")
	case err != nil:
		return reply("Could not start %s: %v", v, err)
	}
	return server.SlackResponse{InChannel: true, Text: fmt.Sprintf("Release *%s* started by %s, who is its Incident Commander. The war-room table follows in the channel; `/canary status` any time.", r.Version, h.users.Mention(req.User))}
}

// drill is the runbook's rollback dry run: it says each step a rollback
// would take, touches nothing, and writes rollback_dryrun.txt.
func (h *slackHandler) drill(ctx context.Context, p *parts, r *rollout.Release, req server.SlashCommandRequest) server.SlackResponse {
	version, stage, router := "drill", "unspecified", h.router
	if router == "" {
		router = "the configured router"
	}
	if r != nil {
		version = r.Version
		if r.Phase == rollout.PhaseStage {
			stage = fmt.Sprintf("%d%%", p.plan.Stages[r.Stage].Weight)
		}
	}
	text := drill(p.plan, version, stage, "drill from Slack by "+req.User, router, time.Now())
	// One evidence directory has one writer: the engine's, if it runs here.
	var ev *evidence.Dir
	switch {
	case r != nil && !r.Phase.Terminal():
		var ok bool
		if h.host != nil {
			ev, ok = h.host.Evidence(r.ID)
		}
		if !ok {
			if why := h.notLeader(); why != "" {
				return reply("%s", why)
			}
			return reply("The drill writes %s's evidence, which the engine driving it owns: run `canarybot rollback --dry-run --reason drill` where that engine runs.", r.Version)
		}
	default:
		cfg, err := h.g.loadConfig()
		if err != nil {
			return reply("Cannot read the configuration: %v", err)
		}
		if ev, err = evidence.Open(cfg.EvidenceDir, version); err != nil {
			return reply("Cannot open the evidence directory: %v", err)
		}
	}
	if err := ev.Write(ctx, "rollback_dryrun.txt", text); err != nil {
		return reply("The drill ran but rollback_dryrun.txt was not written: %v", err)
	}
	return server.SlackResponse{InChannel: true, Text: fmt.Sprintf("Rollback drill by %s (nothing was changed; written to rollback_dryrun.txt):\n```\n%s```", h.users.Mention(req.User), text)}
}

func (h *slackHandler) freezeCmd(ctx context.Context, req server.SlashCommandRequest, r *rollout.Release) server.SlackResponse {
	if h.freeze == nil {
		return reply("The change freeze is not configured in this deployment, so `/canary %s` did nothing; use `canarybot freeze %s` with GitHub credentials.", req.Command.String(), req.Command.FreezeAction)
	}
	version := ""
	if r != nil {
		version = r.Version
	}
	out, err := h.freeze(ctx, req.Command.FreezeAction, version, req.User)
	if err != nil {
		return reply("`/canary %s` failed: %v", req.Command.String(), err)
	}
	return server.SlackResponse{InChannel: req.Command.FreezeAction != bot.FreezeStatus, Text: out}
}

func statusText(p *parts, r *rollout.Release, signals bool, users bot.Directory) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s* phase %s", r.Version, r.Phase)
	if r.Phase == rollout.PhaseStage {
		fmt.Fprintf(&b, ", stage %d/%d", r.Stage+1, len(p.plan.Stages))
	}
	fmt.Fprintf(&b, ", weight %d%%, IC %s\n", r.Weight, users.Mention(r.IC))
	if r.Last.Kind != "" {
		fmt.Fprintf(&b, "last decision: %s — %s\n", r.Last.Kind, r.Last.Reason)
	}
	if !r.HoldUntil.IsZero() && time.Now().Before(r.HoldUntil) {
		fmt.Fprintf(&b, "holding until %s: %s\n", r.HoldUntil.UTC().Format("15:04:05Z"), r.HoldReason)
	}
	if !signals {
		if n := len(r.Rows); n > 0 {
			b.WriteString("```\n" + p.render.TableRow(p.plan, r.Rows[n-1]) + "\n```")
		}
		return b.String()
	}
	return b.String() + signalsText(p.plan, r)
}

// signalsText is `/canary signals`: each signal's latest reading against
// its bound, with its verdict.
func signalsText(plan *rollout.Plan, r *rollout.Release) string {
	if len(r.Rows) == 0 {
		return "no signal readings yet"
	}
	row := r.Rows[len(r.Rows)-1]
	var b strings.Builder
	fmt.Fprintf(&b, "readings at %s:\n```\n", row.At.UTC().Format("15:04:05Z"))
	for _, s := range plan.Signals {
		value, verdict := "—", "no reading"
		bound := string(s.Op) + " " + formatValue(s.Threshold, s.Unit)
		if s.Relative {
			bound = fmt.Sprintf("%s baseline + %g%%", s.Op, s.Threshold*100)
		}
		if m, ok := row.Reading(s.Name); ok {
			value, verdict = formatValue(m.Value, s.Unit), string(m.Verdict)
			if s.Relative {
				bound += " = " + formatValue(m.Bound, s.Unit)
			}
		}
		fmt.Fprintf(&b, "%-28s %12s  (%s)  %s\n", s.Title, value, bound, verdict)
	}
	b.WriteString("```")
	return b.String()
}

func formatValue(v float64, unit rollout.Unit) string {
	switch unit {
	case rollout.UnitSeconds:
		if v < 1 {
			return fmt.Sprintf("%.0fms", v*1000)
		}
		return fmt.Sprintf("%.1fs", v)
	case rollout.UnitSecondsCoarse:
		return fmt.Sprintf("%.0fs", v)
	case rollout.UnitRatio:
		return fmt.Sprintf("%.2f%%", v*100)
	case rollout.UnitPerMinute:
		return fmt.Sprintf("%.2f/min", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// loopback reports whether a listen address only accepts local connections.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
