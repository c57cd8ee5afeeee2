package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// drill is the runbook's rollback dry run: it says each step a rollback
// would take, and touches nothing.
func drill(plan *rollout.Plan, version, stage, reason, router string, now time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "rollback drill (dry run) for %s of %s at %s\n", version, plan.Service, now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "reason: %s\nstage: %s\n\n", reason, stage)
	steps := []string{
		fmt.Sprintf("set the canary weight to 0 on %s (one change; read back to confirm)", router),
		"record the release as rolled back in the state store, before anything is announced",
		"write rollback_<timestamp>.txt with the stage, weight, reason and the last readings",
		"write the stage's rollout_stage_<weight>.txt and summary_stage_<weight>.txt",
		"announce the rollback in the war-room and page the IC",
		"write release_oneliner.txt and mini_rca_" + version + ".md",
		"keep the change freeze until the IC lifts it",
	}
	for i, s := range steps {
		fmt.Fprintf(&b, "[dry-run] step %d: would %s\n", i+1, s)
	}
	b.WriteString("\nnothing was changed: no traffic moved, no message posted, no state written.\n")
	return []byte(b.String())
}

// drillGate opens the demo's war-room (this terminal) and rehearses the
// rollback as a dry run, writing rollback_dryrun.txt.
type drillGate struct {
	evidence rollout.Evidence
	plan     *rollout.Plan
	router   string
	out      io.Writer
}

func (g *drillGate) Produces(version string) []string { return []string{"rollback_dryrun.txt"} }

func (g *drillGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	text := drill(g.plan, r.Version, "canary-25", "drill", g.router, r.PhaseStarted)
	if err := g.evidence.Write(ctx, "rollback_dryrun.txt", text); err != nil {
		return rollout.GateResult{}, err
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: "war-room open on this terminal; rollback drill rehearsed (rollback_dryrun.txt)"}, nil
}

// demoPreflight is the demo's short preflight: both instances and the router
// answer, the canary sends its CSP header, the metrics store scrapes both
// tracks, and no trigger fires. Issue-7's configurable preflight replaces it
// outside the demo.
type demoPreflight struct {
	evidence rollout.Evidence
	metrics  interface {
		rollout.Metrics
		rollout.Alerts
	}
	stable, canary, router *url.URL
	clock                  rollout.Clock
	budget                 time.Duration
}

func (p *demoPreflight) Produces(version string) []string {
	return []string{"preflight.txt", "csp_headers_" + version + ".txt"}
}

type checkResult struct {
	name   string
	ok     bool
	took   time.Duration
	detail string
}

func (p *demoPreflight) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	ctx, cancel := context.WithTimeout(ctx, p.budget)
	defer cancel()
	var csp string
	checks := []struct {
		name string
		run  func(ctx context.Context) (string, error)
	}{
		{"stable healthz", func(ctx context.Context) (string, error) {
			_, err := get(ctx, p.stable.String()+"/healthz")
			return "200", err
		}},
		{"canary healthz", func(ctx context.Context) (string, error) {
			_, err := get(ctx, p.canary.String()+"/healthz")
			return "200", err
		}},
		{"router healthz", func(ctx context.Context) (string, error) {
			_, err := get(ctx, p.router.String()+"/healthz")
			return "200", err
		}},
		{"canary CSP header", func(ctx context.Context) (string, error) {
			h, err := get(ctx, p.canary.String()+"/api/quote?symbol=BTCUSDT")
			if err != nil {
				return "", err
			}
			csp = h.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src") {
				return "", fmt.Errorf("Content-Security-Policy header missing or without default-src: %q", csp)
			}
			return "present, with default-src", nil
		}},
		{"scrape targets up", func(ctx context.Context) (string, error) {
			for _, track := range []string{"stable", "canary"} {
				if err := p.waitUp(ctx, track); err != nil {
					return "", err
				}
			}
			return "stable and canary scraped", nil
		}},
		{"no trigger firing", func(ctx context.Context) (string, error) {
			alerts, err := p.metrics.Firing(ctx, p.clock.Now())
			if err != nil {
				return "", err
			}
			if len(alerts) > 0 {
				return "", fmt.Errorf("%d alerts firing, first %s", len(alerts), alerts[0].Name)
			}
			return "0 of 20 rules firing", nil
		}},
	}
	results := make([]checkResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			start := time.Now()
			detail, err := c.run(ctx)
			results[i] = checkResult{name: c.name, ok: err == nil, took: time.Since(start), detail: detail}
			if err != nil {
				results[i].detail = err.Error()
			}
		})
	}
	wg.Wait()
	var b strings.Builder
	fmt.Fprintf(&b, "preflight %s at %s (demo: %d checks)\n", r.Version, p.clock.Now().UTC().Format(time.RFC3339), len(checks))
	failed := 0
	for _, c := range results {
		status := "PASS"
		if !c.ok {
			status, failed = "FAIL", failed+1
		}
		fmt.Fprintf(&b, "%-20s %s %6dms  %s\n", c.name, status, c.took.Milliseconds(), c.detail)
	}
	if err := p.evidence.Write(ctx, "preflight.txt", []byte(b.String())); err != nil {
		return rollout.GateResult{}, err
	}
	if csp != "" {
		if err := p.evidence.Write(ctx, "csp_headers_"+r.Version+".txt", []byte("Content-Security-Policy: "+csp+"\n")); err != nil {
			return rollout.GateResult{}, err
		}
	}
	if failed > 0 {
		return rollout.GateResult{Status: rollout.GateFailed, Detail: fmt.Sprintf("%d of %d checks failed (preflight.txt)", failed, len(checks))}, nil
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: fmt.Sprintf("%d/%d checks pass (preflight.txt)", len(checks), len(checks))}, nil
}

// waitUp waits until the store has scraped the track successfully.
func (p *demoPreflight) waitUp(ctx context.Context, track string) error {
	q := fmt.Sprintf(`min(up{track=%q})`, track)
	for {
		s, err := p.metrics.Query(ctx, q, p.clock.Now())
		if err == nil && s.Value == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not scraped within the preflight budget: %v", track, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, u string) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return resp.Header, nil
}
