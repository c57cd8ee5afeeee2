package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/deploy"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/signals"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// demoOptions are the demo's knobs.
type demoOptions struct {
	version    string
	speed      float64
	fault      demo.Fault
	faultStage int
	faultAfter time.Duration
	rps        int
	wsClients  int
	evidence   string
	state      string
}

func newDemoCmd(g *globals) *cobra.Command {
	var o demoOptions
	var fault string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Play a whole canary release on this machine: two app versions, a router, load, a metrics store, the engine",
		Long: `demo starts, in one process and on loopback only, a stable and a canary instance of a small
demo service, a weighted router with ingress-nginx canary-weight semantics, a load generator, and an
embedded Prometheus TSDB that scrapes both instances and evaluates the runbook's 20 alert rules. The
engine then runs the runbook's release against them in virtual time (--speed times faster): preflight,
stages 1→100 %, a first night compressed 60×, evidence, one-liner and mini RCA.

--fault degrades the canary during a stage (--fault-stage) and the engine rolls back on its own:
latency (p95 breach), errors (5xx breach) or trigger (an auto_rollback alert rule fires).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := demo.ParseFault(fault)
			if err != nil {
				return badInput("--fault: %v", err)
			}
			o.fault = f
			if o.speed < 1 {
				return badInput("--speed must be at least 1 (virtual seconds per wall second), got %g", o.speed)
			}
			o.evidence, o.state = g.evidenceDir, g.statePath
			if o.evidence == "" {
				o.evidence = "demo-evidence"
			}
			_, err = runDemo(cmd.Context(), g, o)
			return err
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.version, "version", "v1.4.0", "version the demo releases")
	fl.Float64Var(&o.speed, "speed", 60, "virtual seconds per wall second (60: the 90-minute canary in 1.5 minutes)")
	fl.StringVar(&fault, "fault", "none", "degrade the canary: none, latency, errors or trigger")
	fl.IntVar(&o.faultStage, "fault-stage", 3, "stage (1-5) during which the fault starts")
	fl.DurationVar(&o.faultAfter, "fault-after", 5*time.Minute, "virtual time into the stage at which the fault starts")
	fl.IntVar(&o.rps, "rps", 200, "load: HTTP requests per second through the router")
	fl.IntVar(&o.wsClients, "ws-clients", 100, "load: WebSocket clients through the router")
	return c
}

// demoPlan is the configured plan adapted to the demo's virtual time: the
// first night is compressed 60× more (24 h → 24 min), and the query window
// stretches with the speed so that every window still spans ~4 wall seconds
// of traffic: at 1% the canary sees few requests, and a window with none of
// them is NoData, which holds the release.
func demoPlan(p rollout.Plan, speed float64) rollout.Plan {
	var night []rollout.Cadence
	for _, c := range p.FirstNight.Cadence {
		night = append(night, rollout.Cadence{Until: c.Until / 60, Every: c.Every / 60})
	}
	p.FirstNight.Cadence = night
	window := 2 * time.Minute
	if w := time.Duration(speed * float64(4*time.Second)); w > window {
		window = w.Round(time.Minute)
	}
	p.Window = fmt.Sprintf("%dm", int(window.Minutes()))
	p.Trend.Lookback = max(p.Trend.Lookback, window)
	return p
}

// demoResult is what a demo run observed, for the summary and the tests.
type demoResult struct {
	release      *rollout.Release
	evidenceDir  string
	finalWeight  int
	faultAt      time.Time // virtual
	zeroAt       time.Time // virtual
	faultWall    time.Time
	zeroWall     time.Time
	verifyReport evidence.Report
	completeness evidence.Completeness
}

func runDemo(ctx context.Context, g *globals, o demoOptions) (*demoResult, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	plan := demoPlan(cfg.Plan, o.speed)
	log := g.logger()
	out := g.out
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	clk := clock.NewScaled(time.Now().UTC().Truncate(time.Second), o.speed)
	stable, canary := demo.NewService(demo.TrackStable, 1), demo.NewService(demo.TrackCanary, 2)
	defer stable.Close()
	defer canary.Close()
	var servers []*http.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	serve := func(h http.Handler) (*url.URL, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, s)
		go s.Serve(ln)
		return &url.URL{Scheme: "http", Host: ln.Addr().String()}, nil
	}
	stableURL, err := serve(stable)
	if err != nil {
		return nil, err
	}
	canaryURL, err := serve(canary)
	if err != nil {
		return nil, err
	}
	router := traffic.NewLocal(stableURL, canaryURL)
	routerURL, err := serve(router)
	if err != nil {
		return nil, err
	}

	target := func(u *url.URL, track string) signals.Target {
		return signals.Target{URL: u.String() + "/metrics", Labels: map[string]string{
			"track": track, "service": plan.Service, "job": plan.Service, "instance": u.Host}}
	}
	metrics, err := signals.NewEmbedded(signals.EmbeddedOptions{
		Clock:       clk,
		ScrapeEvery: max(50*time.Millisecond, clk.Real(15*time.Second)),
		Targets:     []signals.Target{target(stableURL, demo.TrackStable), target(canaryURL, demo.TrackCanary)},
		Rules:       deploy.CanaryRules(),
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	var bg sync.WaitGroup
	defer func() {
		cancel()
		bg.Wait()
		metrics.Close()
	}()
	bg.Go(func() { metrics.Run(ctx) })
	load := demo.NewLoad(demo.LoadConfig{Target: routerURL.String(), RPS: o.rps, WSClients: o.wsClients, WSSession: 500 * time.Millisecond, OrderShare: 0.5})
	bg.Go(func() { load.Run(ctx) })

	root := o.evidence
	evPath := filepath.Join(root, o.version)
	if _, err := os.Stat(filepath.Join(evPath, evidence.ManifestName)); err == nil {
		fmt.Fprintf(out, "replacing the previous demo's evidence in %s\n", evPath)
		if err := os.RemoveAll(evPath); err != nil {
			return nil, err
		}
	}
	ev, err := evidence.Open(root, o.version)
	if err != nil {
		return nil, err
	}
	statePath := o.state
	if statePath == "" {
		tmp, err := os.MkdirTemp("", "canarybot-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		statePath = filepath.Join(tmp, "state.db")
	}
	st, err := store.Open(statePath)
	if err != nil {
		return nil, err
	}

	res := &demoResult{evidenceDir: ev.Path()}
	var resMu sync.Mutex
	render := report.Renderer{}
	term := &bot.Terminal{W: out, Plan: &plan, Render: render}
	notifier := notifierFunc(func(ctx context.Context, key string, e rollout.Event) error {
		if e.Kind == rollout.EventStage && e.Stage == o.faultStage && o.fault != demo.FaultNone {
			after := clk.After(o.faultAfter)
			bg.Go(func() {
				select {
				case <-ctx.Done():
				case <-after:
					resMu.Lock()
					res.faultAt, res.faultWall = clk.Now(), time.Now()
					resMu.Unlock()
					canary.SetFault(o.fault)
					fmt.Fprintf(out, "%s » demo: canary degraded (--fault %s)\n", fmtTime(clk.Now()), o.fault)
				}
			})
		}
		return term.Notify(ctx, key, e)
	})
	watched := &watchedTraffic{Traffic: router, onZero: func() {
		resMu.Lock()
		defer resMu.Unlock()
		if res.zeroAt.IsZero() && !res.faultAt.IsZero() {
			res.zeroAt, res.zeroWall = clk.Now(), time.Now()
		}
	}}
	gates := map[rollout.StepName]rollout.Gate{
		rollout.StepWarRoom:   &drillGate{evidence: ev, plan: &plan, router: "the demo router at " + routerURL.Host, out: out},
		rollout.StepPreflight: &demoPreflight{evidence: ev, metrics: metrics, stable: stableURL, canary: canaryURL, router: routerURL, clock: clk, budget: time.Minute},
	}
	rn := &rollout.Runner{
		Machine:  &rollout.Machine{Plan: &plan, Render: render},
		Metrics:  metrics,
		Alerts:   metrics,
		Traffic:  watched,
		Notifier: notifier,
		Evidence: ev,
		Store:    st,
		Clock:    clk,
		Gates:    gates,
		Inbox:    demoIC{store: st, user: "demo-ic"},
		Log:      log,
	}
	fmt.Fprintf(out, "canarybot demo: %s at %gx speed; stable %s, canary %s, router %s; load %d rps + %d WebSocket clients\n",
		o.version, o.speed, stableURL.Host, canaryURL.Host, routerURL.Host, o.rps, o.wsClients)
	r, err := rn.Start(ctx, o.version, o.version, "demo-ic", time.Time{})
	if err != nil {
		return nil, err
	}
	if err := expectEvidence(ev, &plan, r, gates); err != nil {
		return nil, err
	}
	r, err = rn.Run(ctx, o.version)
	if err != nil {
		return nil, err
	}
	if err := expectEvidence(ev, &plan, r, gates); err != nil {
		return nil, err
	}
	res.release = r
	res.finalWeight, _ = router.Weight(ctx)
	if res.verifyReport, err = evidence.Verify(ev.Path()); err != nil {
		return res, err
	}
	if res.completeness, err = evidence.Check(ev.Path()); err != nil {
		return res, err
	}
	printDemoSummary(out, res, clk)
	return res, releaseExit(r)
}

func printDemoSummary(out io.Writer, res *demoResult, clk *clock.Scaled) {
	r := res.release
	fmt.Fprintln(out)
	fmt.Fprintf(out, "release %s: %s; router weight now %d%%\n", r.Version, r.Phase, res.finalWeight)
	if !res.faultAt.IsZero() && !res.zeroAt.IsZero() {
		fmt.Fprintf(out, "canary degraded at %s, weight 0 at %s: %s virtual (%s wall at %gx); the runbook allows 5m\n",
			fmtTime(res.faultAt), fmtTime(res.zeroAt), res.zeroAt.Sub(res.faultAt).Round(time.Second),
			res.zeroWall.Sub(res.faultWall).Round(time.Millisecond), clk.Speed())
	}
	c := res.completeness
	fmt.Fprintf(out, "evidence: %s\n  verify: %s\n  check:  %d/%d expected files present, %d missing; %d runbook files waived (their step is not configured here; see `canarybot evidence check %s`)\n",
		res.evidenceDir, firstLine(res.verifyReport.String()), c.Present, c.Expected, len(c.Missing), len(c.Waived), res.evidenceDir)
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

// notifierFunc adapts a function to rollout.Notifier.
type notifierFunc func(ctx context.Context, key string, e rollout.Event) error

func (f notifierFunc) Notify(ctx context.Context, key string, e rollout.Event) error {
	return f(ctx, key, e)
}

// watchedTraffic calls onZero when the weight is set to 0.
type watchedTraffic struct {
	rollout.Traffic
	onZero func()
}

func (w *watchedTraffic) SetWeight(ctx context.Context, weight int) error {
	err := w.Traffic.SetWeight(ctx, weight)
	if err == nil && weight == 0 {
		w.onZero()
	}
	return err
}

// demoIC plays the Incident Commander in the demo: it records the red-team
// review and the GO, and promotes whenever the engine says Proceed. Its
// command IDs derive from the release's state, so each is applied once.
type demoIC struct {
	store rollout.Store
	user  string
}

func (ic demoIC) Take(ctx context.Context, id string) ([]rollout.Command, error) {
	r, err := ic.store.Load(ctx, id)
	if err != nil {
		if errors.Is(err, rollout.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	cmd := func(k rollout.CommandKind, reason string) []rollout.Command {
		return []rollout.Command{{ID: fmt.Sprintf("demo-%s-%s-%d", k, r.Phase, r.Stage), Kind: k, User: ic.user, Reason: reason}}
	}
	switch {
	case r.Phase == rollout.Phase(rollout.StepRedTeam):
		if _, ok := r.StepRecord(rollout.StepRedTeam); !ok {
			return cmd(rollout.CmdReview, "demo: red-team checklist read"), nil
		}
	case r.Phase == rollout.Phase(rollout.StepGoNoGo):
		if _, ok := r.StepRecord(rollout.StepGoNoGo); !ok {
			return cmd(rollout.CmdGo, "GO"), nil
		}
	case r.Phase == rollout.PhaseStage && r.Last.Kind == rollout.Proceed:
		return cmd(rollout.CmdPromote, ""), nil
	}
	return nil, nil
}
