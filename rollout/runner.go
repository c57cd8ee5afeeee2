package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrPlanChanged is returned when a release would resume under another plan
// than the one it started with.
var ErrPlanChanged = errors.New("the plan changed")

// Inbox hands the runner the commands people queued for a release from
// another process (the CLI). In-process callers use Runner.Wake instead of
// polling.
type Inbox interface {
	Take(ctx context.Context, id string) ([]Command, error)
}

// Heartbeater is implemented by stores that record that an engine is alive,
// so that a command line in another process can tell whether anyone will
// apply its command.
type Heartbeater interface {
	Heartbeat(ctx context.Context, id string, at time.Time) error
}

// BatchMetrics is implemented by Metrics adapters that can answer a tick's
// queries together more cheaply than one by one.
type BatchMetrics interface {
	QueryAll(ctx context.Context, queries []string, at time.Time) ([]Sample, []error)
}

// Runner drives a release through its plan with the ports it is given. It
// persists the release before every side effect and carries the effects out
// in order, so that a process stopped at any point resumes where it was.
type Runner struct {
	Machine  *Machine
	Metrics  Metrics
	Alerts   Alerts
	Traffic  Traffic
	Notifier Notifier
	Evidence Evidence
	Store    Store
	Clock    Clock
	// Gates run the timeline's steps; a step without a gate is recorded as
	// skipped, never as passed.
	Gates map[StepName]Gate
	Inbox Inbox
	// Wake, when it fires, makes the runner look at its inbox at once.
	Wake <-chan struct{}
	// InboxPoll, when set, is how often the runner looks at its inbox while
	// it waits, so a command from another process acts within it.
	InboxPoll time.Duration
	// Observer, when set, compares the observed traffic split with the
	// weight at each tick, for the table only (see TrafficObserver).
	Observer TrafficObserver
	// QueryTimeout bounds each signal query; zero means half a tick.
	QueryTimeout time.Duration
	Log          *slog.Logger
}

func (rn *Runner) logger() *slog.Logger {
	if rn.Log != nil {
		return rn.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Start creates and persists a release, and carries out its first effects.
func (rn *Runner) Start(ctx context.Context, id, version, ic string, t0 time.Time) (*Release, error) {
	if _, err := rn.Store.Load(ctx, id); err == nil {
		return nil, fmt.Errorf("release %s already exists in this state file: run the same command again to resume it, or choose another --state", id)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	r := rn.Machine.New(id, version, ic, t0, rn.Clock.Now())
	if err := rn.flush(ctx, r); err != nil {
		return r, err
	}
	// A command sent right after the start must find the engine alive.
	rn.heartbeat(ctx, r)
	return r, nil
}

func (rn *Runner) heartbeat(ctx context.Context, r *Release) {
	if hb, ok := rn.Store.(Heartbeater); ok {
		if err := hb.Heartbeat(ctx, r.ID, rn.Clock.Now()); err != nil {
			rn.logger().Warn("heartbeat not recorded", "err", err)
		}
	}
}

// Run drives the release until it is complete, rolled back or aborted, or
// ctx ends. It first finishes any side effects a previous process left
// pending and reconciles the traffic weight with the recorded one.
func (rn *Runner) Run(ctx context.Context, id string) (*Release, error) {
	r, err := rn.Store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if h := rn.Machine.Plan.Hash(); r.PlanHash != "" && r.PlanHash != h {
		return r, fmt.Errorf("%w: release %s was started with plan %s, this process has plan %s; resume it with the canary.yaml it started with",
			ErrPlanChanged, id, r.PlanHash, h)
	}
	if err := rn.flush(ctx, r); err != nil {
		return r, err
	}
	if err := rn.reconcile(ctx, r); err != nil {
		return r, err
	}
	for !r.Phase.Terminal() {
		if err := rn.step(ctx, r); err != nil {
			return r, err
		}
	}
	if err := rn.recordNoGo(ctx, r); err != nil {
		return r, err
	}
	return r, rn.liftFreeze(ctx, r)
}

// recordNoGo runs the StepGoNoGo gate once for a release aborted before its
// GO, so that a NO-GO — the IC's or a failed step's — is recorded (and
// signed) like a GO. It is then recorded as the go/no-go step, failed.
func (rn *Runner) recordNoGo(ctx context.Context, r *Release) error {
	g := rn.Gates[StepGoNoGo]
	if r.Phase != PhaseAborted || g == nil {
		return nil
	}
	if _, done := r.StepRecord(StepGoNoGo); done {
		return nil
	}
	res, err := g.Run(ctx, r)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	detail := "NO-GO recorded: " + r.AbortReason
	if err != nil {
		detail = fmt.Sprintf("NO-GO (%s) could not be recorded: %v", r.AbortReason, err)
	} else if res.Status != GatePassed {
		detail = fmt.Sprintf("NO-GO (%s) could not be recorded: %s", r.AbortReason, res.Detail)
	}
	now := rn.Clock.Now()
	r.Steps = append(r.Steps, StepRecord{Name: StepGoNoGo, Status: GateFailed, Detail: detail, By: "canarybot", At: now})
	rn.Machine.log(r, now, "canarybot", LogSystem, detail)
	return rn.flush(ctx, r)
}

// liftFreeze runs the StepLiftFreeze gate once a release is complete. It is
// recorded like a timeline step, so a process that stops after completing
// but before lifting lifts on resume, and one that lifted does not again.
func (rn *Runner) liftFreeze(ctx context.Context, r *Release) error {
	g := rn.Gates[StepLiftFreeze]
	if r.Phase != PhaseComplete || g == nil {
		return nil
	}
	if _, done := r.StepRecord(StepLiftFreeze); done {
		return nil
	}
	res, err := g.Run(ctx, r)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		res = GateResult{Status: GateFailed, Detail: err.Error()}
	}
	now := rn.Clock.Now()
	r.Steps = append(r.Steps, StepRecord{Name: StepLiftFreeze, Status: res.Status, Detail: res.Detail, By: "canarybot", At: now})
	text := "change freeze lifted"
	if res.Status != GatePassed {
		// The release is done either way; a freeze that could not be lifted
		// is the IC's to lift by hand, and the log says so.
		text = fmt.Sprintf("change freeze NOT lifted (%s: %s): lift it by hand", res.Status, res.Detail)
	}
	rn.Machine.log(r, now, "canarybot", LogSystem, text)
	return rn.flush(ctx, r)
}

// reconcile makes the router's weight the one the release recorded: after a
// crash between persisting a stage and moving traffic, or after someone
// changed the weight by hand.
func (rn *Runner) reconcile(ctx context.Context, r *Release) error {
	if r.Phase != PhaseStage && r.Phase != PhaseFirstNight && !r.Phase.Terminal() {
		return nil
	}
	if r.Phase == PhaseComplete || r.Phase == PhaseAborted {
		return nil
	}
	got, err := rn.Traffic.Weight(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: read canary weight: %w", err)
	}
	if got == r.Weight {
		return nil
	}
	rn.logger().Warn("canary weight differs from the recorded one; restoring it", "observed", got, "recorded", r.Weight)
	rn.Machine.log(r, rn.Clock.Now(), "canarybot", LogSystem,
		fmt.Sprintf("reconcile: router weight was %d%%, release records %d%%; set back to %d%%", got, r.Weight, r.Weight))
	rn.Machine.emit(r, Effect{Kind: EffectWeight, Weight: r.Weight})
	return rn.flush(ctx, r)
}

// step waits for what the release waits for, then does it.
func (rn *Runner) step(ctx context.Context, r *Release) error {
	rn.heartbeat(ctx, r)
	if err := rn.takeCommands(ctx, r); err != nil {
		return err
	}
	if r.Phase.Terminal() {
		return nil
	}
	rn.retryUndelivered(ctx, r)
	w := rn.Machine.Next(r)
	if w.Kind == WaitStep && w.Step == "" {
		return fmt.Errorf("release %s is in phase %s, which the plan's timeline does not have", r.ID, r.Phase)
	}
	now := rn.Clock.Now()
	if w.Kind == WaitCommand && !now.Before(w.At) && rn.Machine.Due(r, w.Step, w.Why, now) {
		if err := rn.flush(ctx, r); err != nil {
			return err
		}
	}
	if w.Kind == WaitCommand || now.Before(w.At) {
		wait := rn.Machine.Plan.Tick
		if w.Kind != WaitCommand && w.At.Sub(now) < wait {
			wait = w.At.Sub(now)
		}
		if rn.InboxPoll > 0 && rn.InboxPoll < wait {
			wait = rn.InboxPoll
		}
		return rn.sleep(ctx, wait)
	}
	switch w.Kind {
	case WaitStep:
		res := rn.runGate(ctx, r, w.Step)
		if ctx.Err() != nil {
			// Stopped in the middle of the step (a restart, a reschedule):
			// the step runs again on resume; it is not a NO-GO.
			return ctx.Err()
		}
		rn.Machine.StepDone(r, w.Step, res, rn.Clock.Now())
	case WaitTick:
		observed := rn.observeTraffic(ctx, now)
		readings := rn.read(ctx, r, now)
		var firing []Alert
		var alertsErr error
		if rn.Alerts != nil {
			// Bounded like the queries: a hanging Prometheus must not
			// stretch a tick to the adapter's own timeout.
			actx, cancel := context.WithTimeout(ctx, rn.queryTimeout())
			firing, alertsErr = rn.Alerts.Firing(actx, now)
			cancel()
		}
		before := len(r.Rows)
		rn.Machine.Tick(r, readings, firing, alertsErr, now)
		rn.attachTraffic(r, before, observed())
	}
	return rn.flush(ctx, r)
}

func (rn *Runner) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-rn.Clock.After(d):
	case <-rn.Wake:
	}
	return nil
}

func (rn *Runner) takeCommands(ctx context.Context, r *Release) error {
	if rn.Inbox == nil {
		return nil
	}
	cmds, err := rn.Inbox.Take(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("read queued commands: %w", err)
	}
	for _, c := range cmds {
		if err := rn.Machine.Apply(r, c, rn.Clock.Now()); err != nil {
			rn.logger().Info("command refused", "user", c.User, "command", c.String(), "why", err)
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	return rn.flush(ctx, r)
}

func (rn *Runner) runGate(ctx context.Context, r *Release, name StepName) GateResult {
	if name == StepRedTeam {
		return GateResult{Status: GatePassed}
	}
	g := rn.Gates[name]
	if name == StepGoNoGo && g == nil {
		// The IC's GO is the step; a gate, when configured, only records it.
		return GateResult{Status: GatePassed}
	}
	if g == nil {
		return GateResult{Status: GateSkipped, Detail: "not configured"}
	}
	res, err := g.Run(ctx, r)
	if err != nil {
		return GateResult{Status: GateFailed, Detail: err.Error()}
	}
	return res
}

// read queries every signal (and each relative signal's baseline) at once.
func (rn *Runner) read(ctx context.Context, r *Release, at time.Time) []Reading {
	p := rn.Machine.Plan
	qctx, cancel := context.WithTimeout(ctx, rn.queryTimeout())
	defer cancel()
	var queries []string
	for _, s := range p.Signals {
		queries = append(queries, p.ResolveQuery(s.Query))
		if s.Relative {
			queries = append(queries, p.ResolveQuery(s.BaselineQuery))
		}
	}
	samples, errs := rn.queryAll(qctx, queries, at)
	out := make([]Reading, 0, len(p.Signals))
	i := 0
	for _, s := range p.Signals {
		rd := Reading{Signal: s.Name, Query: queries[i], At: at, Value: samples[i].Value, Err: errs[i], Warnings: samples[i].Warnings, Raw: samples[i].Raw}
		i++
		if s.Relative {
			rd.Baseline, rd.BaselineErr = samples[i].Value, errs[i]
			i++
		}
		out = append(out, rd)
	}
	return out
}

func (rn *Runner) queryTimeout() time.Duration {
	if rn.QueryTimeout > 0 {
		return rn.QueryTimeout
	}
	return rn.Machine.Plan.Tick / 2
}

func (rn *Runner) queryAll(ctx context.Context, queries []string, at time.Time) ([]Sample, []error) {
	if b, ok := rn.Metrics.(BatchMetrics); ok {
		return b.QueryAll(ctx, queries, at)
	}
	samples := make([]Sample, len(queries))
	errs := make([]error, len(queries))
	var wg sync.WaitGroup
	for i, q := range queries {
		wg.Go(func() {
			samples[i], errs[i] = rn.Metrics.Query(ctx, q, at)
		})
	}
	wg.Wait()
	return samples, errs
}

// flush persists the release with its pending effects, then carries them
// out one by one, persisting after each. A traffic change is retried until
// it succeeds: a rollback is never given up. A message or evidence write
// that keeps failing is set aside in Undelivered, so that it cannot hold up
// the release, and retried at every step.
func (rn *Runner) flush(ctx context.Context, r *Release) error {
	if err := rn.save(ctx, r); err != nil {
		return err
	}
	backoff, attempts := time.Second, 0
	for len(r.Pending) > 0 {
		e := r.Pending[0]
		err := rn.execute(ctx, e)
		if err != nil {
			attempts++
			if e.Kind != EffectWeight && attempts >= effectAttempts {
				rn.logger().Error("side effect keeps failing; set aside to retry later", "key", e.Key, "kind", e.Kind, "file", e.File, "err", err)
				r.Undelivered = append(r.Undelivered, e)
			} else {
				rn.logger().Error("side effect failed; retrying", "key", e.Key, "kind", e.Kind, "err", err, "retry_in", backoff)
				if err := rn.sleep(ctx, backoff); err != nil {
					return err
				}
				backoff = min(backoff*2, time.Minute)
				continue
			}
		}
		backoff, attempts = time.Second, 0
		r.Pending = r.Pending[1:]
		if err := rn.save(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// effectAttempts is how often a message or evidence write is tried before
// it is set aside.
const effectAttempts = 3

// retryUndelivered tries each set-aside effect once more.
func (rn *Runner) retryUndelivered(ctx context.Context, r *Release) {
	if len(r.Undelivered) == 0 {
		return
	}
	var left []Effect
	for _, e := range r.Undelivered {
		if err := rn.execute(ctx, e); err != nil {
			left = append(left, e)
		}
	}
	if len(left) != len(r.Undelivered) {
		r.Undelivered = left
		if err := rn.save(ctx, r); err != nil {
			rn.logger().Error("persist release", "err", err)
		}
	}
}

// save persists the release, retrying a store that is briefly unavailable
// (locked by a CLI command, a slow disk). If it stays unavailable while a
// move of traffic back to stable is pending, that move is made anyway before
// giving up: a rollback that cannot be recorded is still a rollback.
func (rn *Runner) save(ctx context.Context, r *Release) error {
	backoff := 500 * time.Millisecond
	var err error
	for range saveAttempts {
		if err = rn.Store.Save(ctx, r); err == nil || errors.Is(err, ErrConflict) {
			break
		}
		rn.logger().Error("persist release failed; retrying", "err", err, "retry_in", backoff)
		if serr := rn.sleep(ctx, backoff); serr != nil {
			break
		}
		backoff *= 2
	}
	if err == nil {
		return nil
	}
	for _, e := range r.Pending {
		if e.Kind == EffectWeight && e.Weight == 0 {
			if werr := rn.execute(ctx, e); werr != nil {
				rn.logger().Error("emergency rollback without persisted state failed", "err", werr)
			}
		}
	}
	return fmt.Errorf("persist release %s: %w", r.ID, err)
}

// saveAttempts bounds how often save tries before it gives up (about 15 s).
const saveAttempts = 5

func (rn *Runner) execute(ctx context.Context, e Effect) error {
	switch e.Kind {
	case EffectWeight:
		cur, err := rn.Traffic.Weight(ctx)
		if err != nil {
			if e.Weight != 0 {
				return fmt.Errorf("read canary weight: %w", err)
			}
			// A rollback does not wait for a reading of the weight it
			// replaces: a router that cannot say its share (a route
			// edited by hand mid-incident) is exactly when it must go.
			rn.logger().Warn("canary weight unreadable before the rollback; setting 0 anyway", "err", err)
			cur = -1
		}
		if cur != e.Weight {
			if err := rn.Traffic.SetWeight(ctx, e.Weight); err != nil {
				return fmt.Errorf("set canary weight %d%%: %w", e.Weight, err)
			}
		}
		got, err := rn.Traffic.Weight(ctx)
		if err != nil {
			return fmt.Errorf("read back canary weight: %w", err)
		}
		if got != e.Weight {
			return fmt.Errorf("canary weight reads %d%% after setting %d%%", got, e.Weight)
		}
		return nil
	case EffectNotify:
		if rn.Notifier == nil {
			return nil
		}
		return rn.Notifier.Notify(ctx, e.Key, *e.Event)
	case EffectEvidence:
		if rn.Evidence == nil {
			return nil
		}
		return rn.Evidence.Write(ctx, e.File, e.Data)
	}
	return fmt.Errorf("unknown effect kind %q", e.Kind)
}
