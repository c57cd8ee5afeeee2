package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/server"
)

// newServeCmd is `canarybot serve`: the Slack endpoint for /canary.
func newServeCmd(g *globals) *cobra.Command {
	var listen, managers string
	c := &cobra.Command{
		Use:   "serve [--listen 127.0.0.1:8080]",
		Short: "Serve Slack's /canary command, /healthz, /readyz and /metrics (needs SLACK_SIGNING_SECRET)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			secret := os.Getenv("SLACK_SIGNING_SECRET")
			if secret == "" {
				return badInput("SLACK_SIGNING_SECRET is not set: export it with your Slack app's Signing Secret (api.slack.com/apps → your app → Basic Information → App Credentials)")
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			token := os.Getenv("ALERTMANAGER_WEBHOOK_TOKEN")
			if token == "" && !loopback(listen) {
				return badInput("ALERTMANAGER_WEBHOOK_TOKEN is not set and --listen %s is reachable from other hosts: anyone could push a rollback; set the token (and the same one in Alertmanager's webhook config) or listen on 127.0.0.1", listen)
			}
			h := &slackHandler{g: g, managers: splitList(managers)}
			s := server.New(server.Options{
				Listen:             listen,
				SlackSigningSecret: secret,
				Logger:             g.logger(),
				Handler:            h.handle,
				Authority:          h.authority,
				OnTriggers:         h.triggers,
				Triggers:           cfg.Plan.Triggers,
				Service:            cfg.Plan.Service,
				AlertmanagerToken:  token,
			})
			fmt.Fprintf(g.out, "serving /slack/commands, /alertmanager/webhook, /healthz, /readyz, /metrics on http://%s\n", listen)
			err = s.Run(cmd.Context())
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	c.Flags().StringVar(&managers, "release-managers", os.Getenv("CANARYBOT_RELEASE_MANAGERS"), "comma-separated Slack user IDs of the release managers (default $CANARYBOT_RELEASE_MANAGERS)")
	return c
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

// slackHandler answers /canary from the state file and queues the commands
// that act for the engine, as the CLI's `send` does, without waiting.
type slackHandler struct {
	g        *globals
	managers []string
}

// triggers hands Alertmanager's firing triggers to the engine driving the
// current release. With no engine to apply it, the error makes the webhook
// answer 503 so that Alertmanager retries rather than the trigger being lost.
func (h *slackHandler) triggers(ctx context.Context, alerts []rollout.Alert) error {
	p, err := h.g.open()
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
	return err
}

func (h *slackHandler) authority(ctx context.Context) (string, []string, error) {
	p, err := h.g.open()
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
	return r.IC, h.managers, nil
}

// commandKinds are the verbs the engine applies from its inbox.
var commandKinds = map[bot.Verb]rollout.CommandKind{
	bot.VerbPromote:  rollout.CmdPromote,
	bot.VerbHold:     rollout.CmdHold,
	bot.VerbResume:   rollout.CmdResume,
	bot.VerbRollback: rollout.CmdRollback,
	bot.VerbIC:       rollout.CmdHandover,
}

func (h *slackHandler) handle(ctx context.Context, req server.SlashCommandRequest) server.SlackResponse {
	c := req.Command
	switch c.Verb {
	case bot.VerbHelp:
		return server.SlackResponse{Text: bot.Help()}
	case bot.VerbFreeze:
		return server.SlackResponse{Text: "The deploy freeze is not configured in this deployment, so `/canary " + c.String() + "` did nothing."}
	case bot.VerbStart:
		return server.SlackResponse{Text: fmt.Sprintf("Starting a release from Slack is not wired yet: start it with `canarybot run %s` where the engine runs.", c.Version)}
	case bot.VerbDrill:
		return server.SlackResponse{Text: "The drill from Slack is not wired yet: run `canarybot rollback --dry-run --reason drill` where the engine runs."}
	}
	p, err := h.g.open()
	if err != nil {
		return server.SlackResponse{Text: "Cannot open the state file: " + err.Error()}
	}
	r, err := p.store.Load(ctx, "")
	if errors.Is(err, rollout.ErrNotFound) {
		return server.SlackResponse{Text: "No release is running: a release manager can start one with `canarybot run <version>`."}
	}
	if err != nil {
		return server.SlackResponse{Text: "Cannot read the release: " + err.Error()}
	}
	switch c.Verb {
	case bot.VerbStatus, bot.VerbSignals:
		return server.SlackResponse{Text: statusText(p, r, c.Verb == bot.VerbSignals)}
	}
	kind, ok := commandKinds[c.Verb]
	if !ok {
		return server.SlackResponse{Text: fmt.Sprintf("`/canary %s` is not wired yet.", c.Verb)}
	}
	if c.Verb == bot.VerbIC && !strings.HasPrefix(c.Target, "U") && !strings.HasPrefix(c.Target, "W") {
		return server.SlackResponse{Text: fmt.Sprintf("Pick the new IC from Slack's @ list (so the command carries their user ID, not the name %q): `/canary ic @name`.", c.Target)}
	}
	manager := slices.Contains(h.managers, req.UserID)
	cmd, err := p.enqueue(ctx, r, rollout.Command{Kind: kind, User: req.UserID, Reason: c.Reason, Duration: c.Duration, Target: c.Target, Manager: manager})
	if err != nil {
		msg := err.Error()
		return server.SlackResponse{Text: strings.ToUpper(msg[:1]) + msg[1:]}
	}
	return server.SlackResponse{Text: fmt.Sprintf("Queued `%s` for %s as %s; the engine applies it at its next step.", cmd.String(), r.Version, bot.Mention(req.UserID))}
}

func statusText(p *parts, r *rollout.Release, signals bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s* phase %s", r.Version, r.Phase)
	if r.Phase == rollout.PhaseStage {
		fmt.Fprintf(&b, ", stage %d/%d", r.Stage+1, len(p.plan.Stages))
	}
	fmt.Fprintf(&b, ", weight %d%%, IC %s\n", r.Weight, bot.Mention(r.IC))
	if r.Last.Kind != "" {
		fmt.Fprintf(&b, "last decision: %s — %s\n", r.Last.Kind, r.Last.Reason)
	}
	if n := len(r.Rows); n > 0 {
		b.WriteString("```\n")
		if signals {
			b.WriteString(p.render.TableHeader(p.plan) + "\n")
		}
		b.WriteString(p.render.TableRow(p.plan, r.Rows[n-1]) + "\n```")
	} else if signals {
		b.WriteString("no signal readings yet")
	}
	return b.String()
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
