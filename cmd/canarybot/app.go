package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
)

// producer is a gate that writes evidence files of its own.
type producer interface {
	Produces(version string) []string
}

// runbookProducers names, for each runbook evidence file that the engine
// does not write itself, the step that would write it.
func runbookProducers(version string) map[string]string {
	return map[string]string{
		"release_tag.txt":                       "the preflight git check",
		"preflight.txt":                         "preflight",
		"pgbouncer_pools_" + version + ".tsv":   "the preflight pgBouncer check",
		"prisma_status_" + version + ".txt":     "the preflight migration check",
		"csp_headers_" + version + ".txt":       "the preflight CSP header check",
		"pg_dead_tuples_top5.txt":               "the preflight dead-tuple check",
		"micro_blast_" + version + ".log":       "the blast-radius step",
		"artifact_count.txt":                    "the green button",
		"sbom_" + version + ".json":             "the green button",
		"build_provenance_" + version + ".json": "the green button",
		"go_nogo_signed_" + version + ".txt":    "the green button",
		"rollback_dryrun.txt":                   "the rollback drill",
	}
}

// perStageProducers are the runbook's per-stage files the engine cannot
// write without a database or log source.
var perStageProducers = map[string]string{
	"db_health_stage_": "no database is configured for per-stage health snapshots",
	"pgbouncer_stage_": "no pgBouncer is configured for per-stage pool snapshots",
	"logs_stage_":      "no log source is configured for per-stage log capture",
}

// expectEvidence records in the manifest which runbook files this release
// will produce, and why the others are waived: their step is not configured
// here, or (after a rollback) their stage was never reached.
func expectEvidence(dir *evidence.Dir, plan *rollout.Plan, r *rollout.Release, gates map[rollout.StepName]rollout.Gate) error {
	var weights []int
	for _, s := range plan.Stages {
		weights = append(weights, s.Weight)
	}
	produced := map[string]bool{}
	for _, g := range gates {
		if p, ok := g.(producer); ok {
			for _, f := range p.Produces(r.Version) {
				produced[f] = true
			}
		}
	}
	producers := runbookProducers(r.Version)
	reached := len(plan.Stages)
	if r.Rollback != nil && r.Rollback.Phase == rollout.PhaseStage {
		reached = r.Rollback.Stage
	}
	if r.Phase == rollout.PhaseAborted {
		reached = len(r.StageStarts)
	}
	waived := map[string]string{}
	all := evidence.RunbookFiles(r.Version, weights)
	for _, f := range all {
		if step, ok := producers[f]; ok && !produced[f] {
			waived[f] = step + " is not configured in this deployment"
			continue
		}
		for prefix, source := range perStageProducers {
			if strings.HasPrefix(f, prefix) {
				waived[f] = source
			}
		}
		for i, w := range weights {
			if i < reached {
				continue
			}
			if f == fmt.Sprintf("rollout_stage_%d.txt", w) || f == fmt.Sprintf("summary_stage_%d.txt", w) {
				if r.Phase == rollout.PhaseAborted {
					waived[f] = "not reached: the release was aborted"
				} else {
					waived[f] = fmt.Sprintf("not reached: rolled back at stage %d", reached)
				}
			}
		}
	}
	return dir.Expect(all, waived)
}

// parts are what every command that touches a release opens.
type parts struct {
	plan *rollout.Plan
	// store keeps the releases: the --state file, or a ConfigMap
	// (--state-configmap, the default in a cluster without --state).
	store store.State
	// outbox keeps the Slack notifier's state and outbox: the --state
	// file, or with the state in a ConfigMap a second ConfigMap beside it;
	// nil when nothing posts to Slack.
	outbox bot.SlackStore
	render report.Renderer
	// where names the state for people: "state file canarybot.db",
	// "ConfigMap spark/canarybot-state".
	where       string
	onConfigMap bool
}

// open opens the release state the flags name: the --state file, or the
// ConfigMap of --state-configmap (in a cluster without --state, the one
// `serve` uses), so that `kubectl exec deploy/canarybot -- canarybot
// promote` queues for the engine that `serve` runs.
func (g *globals) open() (*parts, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	if name := g.kube.configMap(inCluster(), g.statePath != ""); name != "" {
		kc, err := dialKube(g.kube.kubeconfig, g.kube.namespace)
		if err != nil {
			return nil, err
		}
		return configMapParts(cfg, kc, name)
	}
	st, err := store.Open(cfg.StatePath)
	if err != nil {
		return nil, err
	}
	return &parts{plan: &cfg.Plan, store: st, outbox: st, render: report.Renderer{}, where: "state file " + cfg.StatePath}, nil
}

// load returns the release of a version ("" = the current release).
func (p *parts) load(ctx context.Context, version string) (*rollout.Release, error) {
	r, err := p.store.Load(ctx, version)
	switch {
	case errors.Is(err, rollout.ErrNotFound) && p.onConfigMap:
		if version == "" {
			return nil, badInput("no release in %s: start one with `canarybot run <version>` or `/canary start`, or name the right one with --state-configmap and --namespace", p.where)
		}
		return nil, badInput("no release %s in %s (check --state-configmap and --namespace)", version, p.where)
	case errors.Is(err, rollout.ErrNotFound):
		if version == "" {
			return nil, badInput("no release in this state file: start one with `canarybot run <version>` or `canarybot demo`, or point --state at the right file")
		}
		return nil, badInput("no release %s in this state file (check --state)", version)
	case err != nil && p.onConfigMap:
		// A missing permission or namespace is for a person to fix.
		return nil, kubeError(fmt.Errorf("state %s: %w", p.where, err))
	}
	return r, err
}

func fmtTime(t time.Time) string { return t.UTC().Format("15:04:05") }
