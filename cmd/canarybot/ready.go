package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/checks"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/signals"
)

// runbookReadyBudget is the runbook's 90 seconds for the whole block.
const runbookReadyBudget = 90 * time.Second

// Names of the readiness steps, in the runbook's order.
const (
	stepSeal        = "version seal"
	stepPreflight   = "preflight"
	stepBlast       = "blast radius"
	stepArtifacts   = "artifact completeness"
	stepGreenButton = "green button"
)

// Outcomes of a readiness step. Skipped is only for a step this deployment
// does not have (the green button); it is printed, never counted as passed.
const (
	readyPassed  = "passed"
	readyFailed  = "FAILED"
	readySkipped = "skipped"
)

// readyOptions are the readiness check's knobs.
type readyOptions struct {
	version string
	// checks for the preflight; nil means the runbook's 10.
	checks     []preflight.Check
	canary     string
	prometheus rollout.Metrics
	repo       string
	budget     time.Duration
	blast      checks.BlastOptions
	// greenButton builds the green-button step on the release's evidence;
	// nil means this deployment has none, and the step is reported as
	// skipped.
	greenButton func(ev rollout.Evidence) rollout.Gate
	getenv      func(string) string
}

// readyStep is one step's outcome.
type readyStep struct {
	name, status, detail string
	took                 time.Duration
	// problems are the lines under a failed step (the preflight's failed
	// checks).
	problems []string
}

// readyReport is the whole check's outcome.
type readyReport struct {
	version  string
	steps    []readyStep
	evidence string
	files    int
	took     time.Duration
}

// failed names the steps that did not pass (skipped ones excepted).
func (r *readyReport) failed() []string {
	var out []string
	for _, s := range r.steps {
		if s.status == readyFailed {
			out = append(out, s.name)
		}
	}
	return out
}

func newReadyCmd(g *globals) *cobra.Command {
	var (
		o                 readyOptions
		checksFile        string
		promURL           string
		headers           []string
		blastN            int
		maxP95, blastTime time.Duration
	)
	c := &cobra.Command{
		Use:   "ready <version>",
		Short: "The runbook's 90-second readiness check: version seal, preflight, blast radius, artifact completeness, green button",
		Long: `ready runs the runbook's 90-second block as one command, against the canary at --canary:
  version seal           the git tag exists and git describe matches (release_tag.txt)
  preflight              the checks of --checks, or the runbook's 10, within --budget (preflight.txt
                         and each check's file; see ` + "`canarybot preflight`" + `)
  blast radius           --blast-n HTTP probes and as many WebSocket sessions (micro_blast_<version>.log)
  artifact completeness  every evidence file the steps above should have written is there
  green button           the T-2 ritual as canary.yaml's green_button section configures it (see
                         ` + "`canarybot green-button`" + `), which also counts the release artifacts
                         (artifact_count.txt); without green_button.expected_artifacts it is
                         skipped: reported, never passed
Without --checks and --budget, the preflight's come from canary.yaml's preflight section.
Checks of kind kubernetes read the cluster of --kubeconfig and --namespace.
Every step runs even when an earlier one failed, so the summary shows all that is wrong; it ends
with the evidence count and READY FOR GO/NO-GO DECISION, or NOT READY naming the failed steps.
Exit 0 ready, 1 not ready, 2 bad input.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("ready takes the version to check, e.g. `canarybot ready v1.4.0 --canary https://canary.example.com`")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.version = args[0]
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("budget") {
				o.budget = cfg.Preflight.Budget
			}
			o.checks = cfg.Preflight.Checks
			if len(cfg.GreenButton.ExpectedArtifacts) > 0 {
				w, err := newGateWiring(cfg, productionGateEnv(g.logger()), nil)
				if err != nil {
					return err
				}
				source := o.repo
				if source == "" {
					source = "."
				}
				o.greenButton = func(ev rollout.Evidence) rollout.Gate {
					gb := w.greenButton(ev, source)
					gb.Who = g.who()
					return gb
				}
			}
			if o.budget <= 0 {
				return badInput("--budget %s must be positive, e.g. 60s", o.budget)
			}
			if o.canary != "" {
				u, err := url.Parse(o.canary)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return badInput("--canary %q is not an http(s) base URL such as https://canary.example.com", o.canary)
				}
			}
			if checksFile != "" {
				cs, err := preflight.LoadChecks(checksFile)
				if err != nil {
					return &exitError{code: exitBadInput, err: err}
				}
				o.checks = cs
			}
			if promURL == "" {
				promURL = os.Getenv("PROMETHEUS_URL")
			}
			if promURL != "" {
				prom, err := signals.NewPrometheus(signals.PrometheusOptions{URL: promURL, Logger: g.logger()})
				if err != nil {
					return badInput("--prometheus: %v", err)
				}
				o.prometheus = prom
			}
			h, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			o.blast = checks.BlastOptions{N: blastN, MaxP95: maxP95, Timeout: blastTime, Header: h}
			if blastN < 1 || maxP95 <= 0 || blastTime <= 0 {
				return badInput("--blast-n (%d) must be at least 1, --max-p95 (%s) and --probe-timeout (%s) positive", blastN, maxP95, blastTime)
			}
			o.getenv = os.Getenv
			rep, err := runReady(cmd.Context(), g, o)
			if err != nil {
				return err
			}
			printReady(g.out, rep)
			if f := rep.failed(); len(f) > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("ready %s: NOT READY: %s failed", o.version, strings.Join(f, ", "))}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.canary, "canary", "", "the canary's base URL: the blast radius probes it, http checks whose url is a path go there")
	fl.StringVar(&checksFile, "checks", "", "YAML file of preflight checks instead of canary.yaml's (the runbook's 10 by default)")
	fl.StringVar(&promURL, "prometheus", "", "Prometheus base URL for promql checks (default $PROMETHEUS_URL)")
	fl.StringVar(&o.repo, "repo", "", "git repository of the version seal (default: the current directory)")
	fl.DurationVar(&o.budget, "budget", preflight.DefaultBudget, "time for the preflight")
	fl.IntVar(&blastN, "blast-n", checks.DefaultBlastN, "HTTP probes, and as many WebSocket sessions, of the blast radius")
	fl.DurationVar(&maxP95, "max-p95", checks.DefaultMaxP95, "the blast radius fails when either kind's p95 is above this")
	fl.DurationVar(&blastTime, "probe-timeout", checks.DefaultProbeTimeout, "time limit of each blast probe")
	fl.StringArrayVar(&headers, "header", nil, "header k=v sent with every blast probe, repeatable; e.g. X-Canary=always through the router")
	return c
}

// runReady runs the five steps in the runbook's order; each writes its
// evidence. The error is for what stops the check itself (the evidence
// directory, a cancelled context); a failed step is in the report.
func runReady(ctx context.Context, g *globals, o readyOptions) (*readyReport, error) {
	start := time.Now()
	ev, err := g.evidenceFor(o.version)
	if err != nil {
		return nil, err
	}
	pchecks := o.checks
	if pchecks == nil {
		pchecks = preflight.DefaultChecks()
	}
	popts := preflight.Options{Version: o.version, Canary: o.canary, Prometheus: o.prometheus, Repo: o.repo,
		Budget: o.budget, Evidence: ev, Getenv: o.getenv}
	if err := g.kube.preflight(&popts, pchecks); err != nil {
		return nil, err
	}
	rep := &readyReport{version: o.version, evidence: ev.Path()}

	// 0) Version seal: the git check alone, whatever the preflight lists.
	seal := preflight.Check{Name: "release_tag", Kind: preflight.KindGit, Evidence: "release_tag.txt"}
	rep.steps = append(rep.steps, timed(stepSeal, func() readyStep {
		r, err := preflight.Run(ctx, []preflight.Check{seal}, popts)
		if err != nil {
			return readyStep{status: readyFailed, detail: err.Error()}
		}
		return readyStep{status: statusOf(r.Passed()), detail: r.Results[0].Detail}
	}))

	// 1) Preflight.
	rep.steps = append(rep.steps, timed(stepPreflight, func() readyStep {
		r, err := preflight.Run(ctx, pchecks, popts)
		if err != nil {
			return readyStep{status: readyFailed, detail: err.Error()}
		}
		if err := ev.Write(ctx, preflight.SummaryFile, r.Text()); err != nil {
			return readyStep{status: readyFailed, detail: fmt.Sprintf("writing %s: %v", preflight.SummaryFile, err)}
		}
		return readyStep{status: statusOf(r.Passed()), detail: r.Summary(), problems: r.Problems()}
	}))

	// 2) Blast radius.
	blastFile := "micro_blast_" + o.version + ".log"
	rep.steps = append(rep.steps, timed(stepBlast, func() readyStep {
		if o.canary == "" {
			return readyStep{status: readyFailed, detail: "cannot run: no canary URL (--canary)"}
		}
		bo := o.blast
		bo.URL = o.canary
		res, err := checks.Blast(ctx, bo)
		if err != nil {
			return readyStep{status: readyFailed, detail: err.Error()}
		}
		if err := ev.Write(ctx, blastFile, res.Log()); err != nil {
			return readyStep{status: readyFailed, detail: fmt.Sprintf("writing %s: %v", blastFile, err)}
		}
		if !res.Passed() {
			return readyStep{status: readyFailed, detail: strings.Join(res.Failures(), "; ")}
		}
		return readyStep{status: readyPassed, detail: fmt.Sprintf("%d HTTP + %d WebSocket probes pass; p95 %s / %s",
			res.HTTP.Total, res.WS.Total, res.HTTP.P95.Round(time.Millisecond), res.WS.P95.Round(time.Millisecond))}
	}))

	// 3) Artifact completeness: every evidence file the steps so far
	// should have written is there. The release's build artifacts are
	// counted by the green button's own gate (artifact_count.txt), which
	// owns that file.
	rep.steps = append(rep.steps, timed(stepArtifacts, func() readyStep {
		want := dedupe(append(append([]string{"release_tag.txt"}, preflight.Produces(pchecks, o.version)...), blastFile))
		var missing []string
		for _, name := range want {
			if fi, err := os.Stat(filepath.Join(ev.Path(), name)); err != nil || !fi.Mode().IsRegular() {
				missing = append(missing, name)
			}
		}
		present := len(want) - len(missing)
		note := "; release artifacts are counted by the green button"
		if o.greenButton == nil {
			note = "; release artifacts not counted: the green button is not configured"
		}
		if len(missing) > 0 {
			return readyStep{status: readyFailed, detail: fmt.Sprintf("%d/%d evidence files present; missing: %s%s", present, len(want), strings.Join(missing, ", "), note)}
		}
		return readyStep{status: readyPassed, detail: fmt.Sprintf("%d/%d evidence files present%s", present, len(want), note)}
	}))

	// 4) Green button.
	rep.steps = append(rep.steps, timed(stepGreenButton, func() readyStep {
		if o.greenButton == nil {
			return readyStep{status: readySkipped, detail: "skipped: not configured (no green_button.expected_artifacts in canary.yaml: SBOM, provenance and the signed GO are not checked)"}
		}
		res, err := o.greenButton(ev).Run(ctx, &rollout.Release{ID: o.version, Version: o.version})
		switch {
		case err != nil:
			return readyStep{status: readyFailed, detail: err.Error()}
		case res.Status == rollout.GatePassed:
			return readyStep{status: readyPassed, detail: res.Detail}
		}
		return readyStep{status: readyFailed, detail: res.Detail}
	}))

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ready %s: stopped: %w", o.version, context.Cause(ctx))
	}
	n, err := countEvidence(ev.Path())
	if err != nil {
		return nil, err
	}
	rep.files = n
	rep.took = time.Since(start)
	return rep, nil
}

func timed(name string, run func() readyStep) readyStep {
	t0 := time.Now()
	s := run()
	s.name, s.took = name, time.Since(t0)
	return s
}

func statusOf(ok bool) string {
	if ok {
		return readyPassed
	}
	return readyFailed
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// countEvidence counts the evidence files in dir, the manifest aside:
// the runbook's `ls evidence/ | wc -l`.
func countEvidence(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("counting evidence: %w", err)
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != evidence.ManifestName {
			n++
		}
	}
	return n, nil
}

// printReady is the one-screen summary.
func printReady(out io.Writer, r *readyReport) {
	fmt.Fprintf(out, "90-SECOND READINESS CHECK %s\n", r.version)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, s := range r.steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.name, s.status, s.took.Round(time.Millisecond), s.detail)
	}
	tw.Flush()
	for _, s := range r.steps {
		if s.status != readyFailed || len(s.problems) == 0 {
			continue
		}
		fmt.Fprintf(out, "%s:\n", s.name)
		for _, p := range s.problems {
			fmt.Fprintf(out, "  %s\n", p)
		}
	}
	fmt.Fprintf(out, "evidence files: %d in %s\n", r.files, r.evidence)
	fmt.Fprintf(out, "wall time: %s (the runbook allows %s)\n", r.took.Round(time.Millisecond), runbookReadyBudget)
	if f := r.failed(); len(f) > 0 {
		fmt.Fprintf(out, "NOT READY: %s failed\n", strings.Join(f, ", "))
		return
	}
	fmt.Fprintln(out, "READY FOR GO/NO-GO DECISION")
}
