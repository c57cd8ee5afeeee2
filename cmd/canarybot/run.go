package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
)

type runOptions struct {
	at         string
	preflight  string
	prometheus string
	stable     string
	canary     string
	listen     string
	kube       kubeOptions
}

func newRunCmd(g *globals) *cobra.Command {
	var o runOptions
	c := &cobra.Command{
		Use:   "run <version>",
		Short: "Drive a release against production parts, printing the war-room table live",
		Long: `run drives one release through the plan: the T-minus steps, the stages, the first night.
Signals and triggers come from Prometheus (--prometheus or PROMETHEUS_URL; every query is dry-run
at start, so a typo fails before anything moves). Traffic moves on the canary Ingress named by
--ingress (ingress-nginx canary annotations, through --kubeconfig, $KUBECONFIG or the pod's service
account), else on canarybot's weighted router (--stable and --canary backends, served on --listen).
The state is kept in the --state file, or in the ConfigMap named by --state-configmap (the
default in a cluster: ` + defaultStateConfigMap + `).

Run it again with the same state after a crash: it resumes the release where it was and
reconciles the router's weight. From another terminal, promote/hold/resume/rollback/go/review
queue commands for it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.kube.resolve(cmd.Flags().Changed, inCluster(), g.statePath != "")
			return runRelease(cmd.Context(), g, args[0], o)
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.at, "at", "", "T-0, the start of stage 1: HH:MM today (local time) or RFC 3339; without it the steps run back to back")
	fl.StringVar(&o.prometheus, "prometheus", "", "Prometheus base URL (default $PROMETHEUS_URL)")
	fl.StringVar(&o.stable, "stable", "", "stable backend URL for the weighted router")
	fl.StringVar(&o.canary, "canary", "", "canary backend URL for the weighted router, and the blast-radius step's target (optional with --ingress)")
	fl.StringVar(&o.listen, "listen", "127.0.0.1:8081", "address the weighted router listens on")
	fl.StringVar(&o.preflight, "preflight", "", "checks file for the T-10 preflight step (as for `canarybot preflight --checks`); without it the step is recorded as skipped")
	o.kube.addFlags(c)
	return c
}

// parseAt reads --at: "10:00" is today in local time and must not have
// passed; anything else must be RFC 3339.
func parseAt(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation("15:04", s, now.Location()); err == nil {
		at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, now.Location())
		if at.Before(now) {
			return time.Time{}, fmt.Errorf("--at %s has passed today; give a date, e.g. --at %s", s, at.AddDate(0, 0, 1).Format(time.RFC3339))
		}
		return at, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--at %q: want HH:MM (today) or RFC 3339 like 2026-11-28T10:00:00+01:00", s)
	}
	if t.Before(now) {
		return time.Time{}, fmt.Errorf("--at %s has passed; a T-0 in the past would run the whole timeline at once", s)
	}
	return t, nil
}

func backendURL(flag, v string) (*url.URL, error) {
	if v == "" {
		return nil, fmt.Errorf("--%s is required: the %s backend's URL, e.g. http://10.0.0.5:4001", flag, flag)
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("--%s %q is not an absolute URL like http://host:port", flag, v)
	}
	return u, nil
}

func runRelease(ctx context.Context, g *globals, version string, o runOptions) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	plan := cfg.Plan
	log := g.logger()
	t0, err := parseAt(o.at, time.Now())
	if err != nil {
		return &exitError{code: exitBadInput, err: err}
	}
	kc, err := connectKube(o.kube)
	if err != nil {
		return err
	}
	pp, err := openProduction(ctx, &plan, o, kc, log)
	if err != nil {
		return err
	}
	defer pp.Close()
	// The freeze, preflight, green-button and go/no-go gates that canary.yaml
	// and the environment configure, as serve wires them.
	freeze, err := newFreezeOps(cfg, productionGateEnv(log))
	if err != nil {
		return err
	}
	if err := shareFreezeProgress(ctx, freeze, kc, o.kube.stateConfigMap); err != nil {
		return err
	}
	if pp.wiring, err = newGateWiring(cfg, productionGateEnv(log), freeze); err != nil {
		return err
	}
	p, err := g.openState(ctx, kc, o.kube.stateConfigMap, false)
	if err != nil {
		return err
	}
	where := cfg.StatePath
	if o.kube.stateConfigMap != "" {
		where = "ConfigMap " + kc.namespace + "/" + o.kube.stateConfigMap
	}
	ev, err := evidence.Open(cfg.EvidenceDir, version)
	if err != nil {
		return err
	}
	e := pp.engine(p, &plan, ev, version, &bot.Terminal{W: g.out, Plan: &plan, Render: p.render}, log)
	rn := e.Runner
	fmt.Fprintf(g.out, "canarybot run %s: traffic on %s; signals from %s; state %s; evidence %s\n",
		version, pp.where, pp.promURL, where, ev.Path())
	r, err := p.store.Load(ctx, version)
	switch {
	case errors.Is(err, rollout.ErrNotFound):
		if r, err = rn.Start(ctx, version, version, g.who(), t0); err != nil {
			return err
		}
	case errors.Is(err, store.ErrPruned):
		return badInput("%v; use another version, or another --state-configmap", err)
	case err != nil:
		return err
	case r.Phase.Terminal():
		return badInput("release %s is already %s in %s; use another --state or --state-configmap for a new release", version, r.Phase, where)
	default:
		if o.at != "" {
			fmt.Fprintf(g.out, "note: --at is ignored when resuming; %s keeps the T-0 it was started with\n", version)
		}
		fmt.Fprintf(g.out, "resuming %s in phase %s (stage %d, weight %d%%)\n", version, r.Phase, r.CurrentStage(), r.Weight)
	}
	if err := e.Expect(r); err != nil {
		return err
	}
	r, err = rn.Run(ctx, version)
	if err != nil {
		return err
	}
	if err := e.Expect(r); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "\nrelease %s: %s\n%s\n", r.Version, r.Phase, strings.TrimSpace(p.render.OneLiner(&plan, r)))
	return releaseExit(r)
}
