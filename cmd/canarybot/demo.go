package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/checks"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/deploy"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/signals"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// defaultDemoEvidence is the evidence root the demo writes to unless
// --evidence-dir says otherwise. It is the only root whose previous demo
// evidence the demo replaces without --replace.
const defaultDemoEvidence = "demo-evidence"

// Why a demo run stopped before its release ended.
var (
	// errDemoDeadline: the run exceeded its wall-clock limit.
	errDemoDeadline = errors.New("the demo did not finish in time")
	// errDemoStopped: a background part (metrics store, load generator)
	// failed, so the release could no longer be measured.
	errDemoStopped = errors.New("the demo stopped")
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
	// replace lets the demo delete <evidence>/<version> outside its
	// default root.
	replace bool
	// deadline is the run's wall-clock limit; zero derives it from the
	// plan (see demoDeadline).
	deadline time.Duration
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
latency (p95 breach), errors (5xx breach) or trigger (an auto_rollback alert rule fires).

Evidence goes to ./` + defaultDemoEvidence + `/<version>/, replacing the previous demo's. With --evidence-dir
the demo refuses to overwrite an existing <dir>/<version>/ unless --replace is given, so that it never
deletes a real release's evidence. The run stops with an error if it has not ended by a wall-clock limit
derived from the plan and --speed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := demo.ParseFault(fault)
			if err != nil {
				return badInput("--fault: %v", err)
			}
			o.fault = f
			fl := cmd.Flags()
			if f == demo.FaultNone && (fl.Changed("fault-stage") || fl.Changed("fault-after")) {
				return badInput("--fault-stage and --fault-after place a fault: add --fault latency, errors or trigger")
			}
			o.evidence, o.state = g.evidenceDir, g.statePath
			if o.evidence == "" {
				o.evidence = defaultDemoEvidence
			}
			_, err = runDemo(cmd.Context(), g, o)
			return err
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.version, "version", "v1.4.0", "version the demo releases")
	fl.Float64Var(&o.speed, "speed", 60, "virtual seconds per wall second (60: the 90-minute canary in 1.5 minutes)")
	fl.StringVar(&fault, "fault", "none", "degrade the canary: none, latency, errors or trigger")
	fl.IntVar(&o.faultStage, "fault-stage", 3, "stage during which the fault starts, 1 to the plan's number of stages (5 by default)")
	fl.DurationVar(&o.faultAfter, "fault-after", 5*time.Minute, "virtual time into the stage at which the fault starts; more than 0 and less than the stage's dwell")
	fl.IntVar(&o.rps, "rps", 200, fmt.Sprintf("load: HTTP requests per second through the router, 1 to %d", demo.MaxRPS))
	fl.IntVar(&o.wsClients, "ws-clients", 100, "load: WebSocket clients through the router, at least 1")
	fl.BoolVar(&o.replace, "replace", false, "delete an existing <evidence-dir>/<version>/ and write the demo's evidence there (only needed outside ./"+defaultDemoEvidence+")")
	c.AddCommand(newDemoServeCmd(g))
	return c
}

// validateDemo checks the options against the plan before anything starts.
// Every knob that would leave the release without traffic, or the fault
// nowhere, is refused here: the run would otherwise hold until its
// deadline, or end clean when a rollback was asked for.
func validateDemo(o demoOptions, plan rollout.Plan) error {
	if !(o.speed >= 1) || math.IsInf(o.speed, 0) {
		return badInput("--speed must be a number of at least 1 (virtual seconds per wall second), got %g", o.speed)
	}
	if o.version == "" || o.version != filepath.Base(o.version) || strings.HasPrefix(o.version, ".") || strings.ContainsAny(o.version, `/\`) {
		// The version names a directory under the evidence root that the
		// demo may delete: it must not reach outside it.
		return badInput("--version %q: use a release tag such as v1.4.0 (a plain directory name, no path)", o.version)
	}
	if o.rps < 1 || o.rps > demo.MaxRPS {
		return badInput("--rps must be between 1 and %d requests per second, got %d: without HTTP traffic the canary's signals read no data and the release holds", demo.MaxRPS, o.rps)
	}
	if o.wsClients < 1 {
		return badInput("--ws-clients must be at least 1, got %d: without WebSocket clients the staleness signal reads no data and the release holds", o.wsClients)
	}
	if o.fault == demo.FaultNone {
		return nil
	}
	n := len(plan.Stages)
	if o.faultStage < 1 || o.faultStage > n {
		return badInput("--fault-stage must be between 1 and %d (the plan's stages), got %d", n, o.faultStage)
	}
	if dwell := plan.Stages[o.faultStage-1].Dwell; o.faultAfter <= 0 || o.faultAfter >= dwell {
		return badInput("--fault-after must be more than 0 and less than stage %d's dwell of %s, got %s", o.faultStage, dwell, o.faultAfter)
	}
	return nil
}

// prepareDemoEvidence makes <root>/<version> free for the demo. It deletes
// an earlier run's directory only under the demo's own default root, or
// when replace is set: any other root may hold a real release's evidence.
// An empty directory is left as it is, since there is nothing to lose.
func prepareDemoEvidence(out io.Writer, root, version string, replace bool) error {
	dir := filepath.Join(root, version)
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("demo evidence %s: %w", dir, err)
	case len(entries) == 0:
		return nil
	case !replace && filepath.Clean(root) != defaultDemoEvidence:
		return badInput("%s already exists and may hold a real release's evidence; the demo replaces evidence only under ./%s: "+
			"pass another --evidence-dir (a new directory), or --replace to delete %s and write the demo's there", dir, defaultDemoEvidence, dir)
	}
	fmt.Fprintf(out, "replacing the previous demo's evidence in %s\n", dir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("demo evidence: %w", err)
	}
	return nil
}

// demoDeadline is the wall time a demo of plan may take before it is
// stopped: the virtual length of the stages and the first night, the same
// again plus two holds per stage as slack for holds and slow readings,
// scaled by the speed, plus a minute for starting up and writing evidence.
func demoDeadline(plan rollout.Plan, speed float64) time.Duration {
	var virtual time.Duration
	for _, s := range plan.Stages {
		virtual += s.Dwell
	}
	virtual += plan.FirstNight.Duration()
	slack := virtual + time.Duration(len(plan.Stages))*2*max(plan.Hold, plan.Tick)
	return time.Duration(float64(virtual+slack)/speed) + time.Minute
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

// lockedWriter serialises writes to w with the writers sharing mu: the
// engine, the fault goroutine and the logger all print while the release
// runs.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runBackground runs a part of the demo that must last as long as the
// demo does. If it fails, or returns before ctx ends, it stops the whole
// run with errDemoStopped: a release measured without scrapes or without
// load would only hold until the deadline.
func runBackground(ctx context.Context, wg *sync.WaitGroup, stop context.CancelCauseFunc, name string, run func(context.Context) error) {
	wg.Go(func() {
		err := run(ctx)
		switch {
		case err != nil:
			stop(fmt.Errorf("%w: %s failed: %w", errDemoStopped, name, err))
		case ctx.Err() == nil:
			stop(fmt.Errorf("%w: %s ended before the release did", errDemoStopped, name))
		}
	})
}

// demoWhere says where a release was from its last notification.
func demoWhere(e *rollout.Event, stages int) string {
	if e == nil {
		return "phase starting (no notification yet)"
	}
	s := fmt.Sprintf("phase %s", e.Phase)
	if e.Stage > 0 {
		s += fmt.Sprintf(", stage %d/%d at %d%%", e.Stage, stages, e.Weight)
	}
	return s + fmt.Sprintf(", last notification %q at %s", firstLine(e.Text), fmtTime(e.At))
}

func runDemo(ctx context.Context, g *globals, o demoOptions) (*demoResult, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	if err := validateDemo(o, cfg.Plan); err != nil {
		return nil, err
	}
	plan := demoPlan(cfg.Plan, o.speed)
	// One lock for both streams: they may be the same writer.
	var outMu sync.Mutex
	gl := *g
	gl.out, gl.errOut = lockedWriter{&outMu, g.out}, lockedWriter{&outMu, g.errOut}
	log := gl.logger()
	out := gl.out

	if err := prepareDemoEvidence(out, o.evidence, o.version, o.replace); err != nil {
		return nil, err
	}

	limit := o.deadline
	if limit <= 0 {
		limit = demoDeadline(plan, o.speed)
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	ctx, cancelDeadline := context.WithTimeoutCause(ctx, limit, errDemoDeadline)
	defer cancelDeadline()
	began := time.Now()

	// lastEvent is the last notification, for saying where a stopped run
	// was; armed makes the fault start once even if a stage's
	// notification is repeated.
	var (
		resMu     sync.Mutex
		lastEvent *rollout.Event
		armed     bool
	)
	// stopped turns an early end of the run into the reason for it: the
	// deadline or a failed background part. Anything else (the caller's
	// ctx ending, a release error) is returned as err.
	stopped := func(err error) error {
		cause := context.Cause(ctx)
		switch {
		case errors.Is(cause, errDemoStopped):
			return cause
		case errors.Is(cause, errDemoDeadline):
			resMu.Lock()
			where := demoWhere(lastEvent, len(plan.Stages))
			resMu.Unlock()
			return fmt.Errorf("%w: stopped after %s of wall time, the limit for this plan at %gx (its stages and first night, slack for holds, and a minute); "+
				"it was in %s; a release that holds says why above, and a lower --speed gives a busy machine more time",
				errDemoDeadline, time.Since(began).Round(time.Second), o.speed, where)
		}
		return err
	}

	clk := clock.NewScaled(time.Now().UTC().Truncate(time.Second), o.speed)
	stack, err := newDemoStack(&plan, clk, log, o.rps, o.wsClients)
	if err != nil {
		return nil, err
	}
	canary, router, metrics, load := stack.canary, stack.router, stack.metrics, stack.load
	stableURL, canaryURL, routerURL := stack.stableURL, stack.canaryURL, stack.routerURL
	// stopBackground ends the metrics store, the load and a pending fault,
	// and waits for them: after it, nothing writes to res.
	var bg sync.WaitGroup
	stopBackground := func() {
		stop(nil)
		bg.Wait()
	}
	defer func() {
		stopBackground()
		stack.close()
	}()
	runBackground(ctx, &bg, stop, "the metrics store", metrics.Run)
	runBackground(ctx, &bg, stop, "the load generator", load.Run)

	ev, err := evidence.Open(o.evidence, o.version)
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
	render := report.Renderer{}
	term := &bot.Terminal{W: out, Plan: &plan, Render: render}
	notifier := notifierFunc(func(nctx context.Context, key string, e rollout.Event) error {
		resMu.Lock()
		lastEvent = &e
		arm := !armed && e.Kind == rollout.EventStage && e.Stage == o.faultStage && o.fault != demo.FaultNone
		armed = armed || arm
		resMu.Unlock()
		if arm {
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
		return term.Notify(nctx, key, e)
	})
	watched := &watchedTraffic{Traffic: router, onZero: func() {
		resMu.Lock()
		defer resMu.Unlock()
		if res.zeroAt.IsZero() && !res.faultAt.IsZero() {
			res.zeroAt, res.zeroWall = clk.Now(), time.Now()
		}
	}}
	gates := map[rollout.StepName]rollout.Gate{
		rollout.StepWarRoom: &drillGate{evidence: ev, plan: &plan, router: "the demo router at " + routerURL.Host, out: out},
		rollout.StepPreflight: &preflight.Gate{Checks: demoChecks(stableURL, canaryURL, routerURL), Options: preflight.Options{
			Canary: canaryURL.String(), Prometheus: metrics, Evidence: ev, Budget: time.Minute}},
		rollout.StepBlast: &checks.BlastGate{Options: checks.BlastOptions{URL: canaryURL.String(), N: checks.DefaultBlastN}, Evidence: ev},
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
	if err := waitScraped(ctx, metrics); err != nil {
		return nil, err
	}
	r, err := rn.Start(ctx, o.version, o.version, "demo-ic", time.Time{})
	if err := stopped(err); err != nil {
		return nil, err
	}
	if err := stopped(expectEvidence(ev, &plan, r, gates)); err != nil {
		return nil, err
	}
	r, err = rn.Run(ctx, o.version)
	// A run cut short can still end in a terminal phase (a gate that
	// failed because ctx ended aborts the release), so the reason is
	// checked before the outcome.
	if err := stopped(err); err != nil {
		return nil, err
	}
	if err := expectEvidence(ev, &plan, r, gates); err != nil {
		return nil, err
	}
	res.release = r
	res.finalWeight, _ = router.Weight(ctx)
	stopBackground()
	// A part that failed while the release ended still failed; a deadline
	// that passed just after it ended does not count.
	if cause := context.Cause(ctx); errors.Is(cause, errDemoStopped) {
		return nil, cause
	}
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

// demoChecks is the demo's short preflight, run by the same preflight code
// as production: the three services answer, the canary sends its CSP
// header, both tracks are scraped, and no trigger fires.
func demoChecks(stable, canary, router *url.URL) []preflight.Check {
	one, zero := 1.0, 0.0
	return []preflight.Check{
		{Name: "stable_health", Kind: preflight.KindHTTP, URL: stable.String() + "/healthz"},
		{Name: "canary_health", Kind: preflight.KindHTTP, URL: canary.String() + "/healthz"},
		{Name: "router_health", Kind: preflight.KindHTTP, URL: router.String() + "/healthz"},
		{Name: "csp_headers", Kind: preflight.KindHTTP, URL: canary.String() + "/healthz",
			Headers:  map[string][]string{"Content-Security-Policy": {"default-src"}},
			Evidence: "csp_headers_" + preflight.VersionPlaceholder + ".txt"},
		{Name: "scrape_targets_up", Kind: preflight.KindPromQL, Query: preflight.QueryTargetsUp, Op: preflight.OpGE, Value: &one},
		{Name: "no_auto_rollback_alert", Kind: preflight.KindPromQL, Query: preflight.QueryAutoRollbackFiring, Op: preflight.OpEQ, Value: &zero},
	}
}

// waitScraped waits until the metrics store has scraped both tracks, so the
// release starts on data rather than on an empty store.
func waitScraped(ctx context.Context, m rollout.Metrics) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := m.Query(ctx, `count(up{job="spark"} == 1)`, time.Time{})
		if err == nil && s.Value == 2 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: the metrics store has not scraped both instances within 30s (last: %v, %v)", s.Value, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// demoStack is the demo's stand-in for production: a stable and a canary
// instance of the demo service, the weighted router in front of them, the
// embedded metrics store scraping both, and the load generator aimed at the
// router, all on loopback. Nothing runs in the background yet: the caller
// runs metrics.Run and load.Run for as long as it needs them.
type demoStack struct {
	stable, canary                  *demo.Service
	stableURL, canaryURL, routerURL *url.URL
	router                          *traffic.Local
	metrics                         *signals.Embedded
	load                            *demo.Load
	servers                         []*http.Server
}

// newDemoStack starts the services and the router, and makes the metrics
// store (scraping every 15 s of clk's time) and the load.
func newDemoStack(plan *rollout.Plan, clk *clock.Scaled, log *slog.Logger, rps, wsClients int) (s *demoStack, err error) {
	s = &demoStack{stable: demo.NewService(demo.TrackStable, 1), canary: demo.NewService(demo.TrackCanary, 2)}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	serve := func(h http.Handler) (*url.URL, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		s.servers = append(s.servers, srv)
		go srv.Serve(ln)
		return &url.URL{Scheme: "http", Host: ln.Addr().String()}, nil
	}
	if s.stableURL, err = serve(s.stable); err != nil {
		return nil, err
	}
	if s.canaryURL, err = serve(s.canary); err != nil {
		return nil, err
	}
	s.router = traffic.NewLocal(s.stableURL, s.canaryURL)
	if s.routerURL, err = serve(s.router); err != nil {
		return nil, err
	}
	target := func(u *url.URL, track string) signals.Target {
		return signals.Target{URL: u.String() + "/metrics", Labels: map[string]string{
			"track": track, "service": plan.Service, "job": plan.Service, "instance": u.Host}}
	}
	s.metrics, err = signals.NewEmbedded(signals.EmbeddedOptions{
		Clock:       clk,
		ScrapeEvery: max(50*time.Millisecond, clk.Real(15*time.Second)),
		Targets:     []signals.Target{target(s.stableURL, demo.TrackStable), target(s.canaryURL, demo.TrackCanary)},
		Rules:       deploy.CanaryRules(),
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	s.load = demo.NewLoad(demo.LoadConfig{Target: s.routerURL.String(), RPS: rps, WSClients: wsClients, WSSession: 500 * time.Millisecond, OrderShare: 0.5})
	return s, nil
}

// close stops the servers, the metrics store and the services; the
// background runs must have ended.
func (s *demoStack) close() {
	for _, srv := range s.servers {
		srv.Close()
	}
	if s.metrics != nil {
		s.metrics.Close()
	}
	s.canary.Close()
	s.stable.Close()
}
