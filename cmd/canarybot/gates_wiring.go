package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/checks"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/greenbutton"
	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/sbom"
)

// gateEnv is where the gates' secrets and GitHub's settings come from: the
// process environment in production, a map in tests.
type gateEnv struct {
	lookup func(string) (string, bool)
	// transport paces and retries the GitHub calls.
	transport forge.TransportOptions
	log       *slog.Logger
}

func productionGateEnv(log *slog.Logger) gateEnv {
	t := forge.DefaultTransportOptions()
	t.Log = log
	return gateEnv{lookup: os.LookupEnv, transport: t, log: log}
}

func (e gateEnv) getenv(k string) string {
	v, _ := e.lookup(k)
	return v
}

func (e gateEnv) logger() *slog.Logger {
	if e.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.log
}

// freezeProgressPath is the freeze's progress file: beside the state file,
// where `canarybot freeze` keeps it too, so the engine, Slack, the webhook
// and the CLI all see one freeze.
func freezeProgressPath(cfg config.Config) string {
	return filepath.Join(filepath.Dir(cfg.StatePath), "canarybot-freeze.json")
}

// githubCredentials are the variables any of which means "GitHub is meant
// to be configured here".
var githubCredentials = []string{forge.EnvToken, forge.EnvAppID, forge.EnvAppKey, forge.EnvAppKeyFile, forge.EnvInstallationID}

// freezeOps is the one change freeze of a serve or run process. Its
// operations take turns: the engine's T-30 start, a start or lift from
// Slack and the first night's lift must not label the same PRs at once.
type freezeOps struct {
	freeze *forge.Freeze
	mu     sync.Mutex
	log    *slog.Logger
}

// newFreezeOps builds the freeze from canary.yaml's github section and the
// environment, whose GITHUB_REPOSITORY and GITHUB_API_URL the section
// overrides. Without credentials or without a repository it returns nil: the
// freeze is not configured here, and the engine records its step as
// skipped. Credentials that are present but unusable are bad input.
func newFreezeOps(cfg config.Config, env gateEnv) (*freezeOps, error) {
	lookup := freezeLookup(cfg, env)
	var creds []string
	for _, k := range githubCredentials {
		if v, _ := env.lookup(k); strings.TrimSpace(v) != "" {
			creds = append(creds, k)
		}
	}
	repo, _ := lookup(forge.EnvRepository)
	switch {
	case len(creds) == 0:
		env.logger().Info("change freeze not configured: no GITHUB_TOKEN or GitHub App in the environment; the freeze step will be recorded as skipped")
		return nil, nil
	case strings.TrimSpace(repo) == "":
		env.logger().Warn("change freeze not configured: GitHub credentials are set but no repository; set github.repository in canary.yaml or GITHUB_REPOSITORY", "set", strings.Join(creds, ","))
		return nil, nil
	}
	ghc, err := forge.ConfigFromEnv(lookup)
	if err != nil {
		return nil, badInput("github (the change freeze): %v", err)
	}
	client, err := forge.NewClient(ghc, nil, env.transport)
	if err != nil {
		return nil, badInput("github (the change freeze): %v", err)
	}
	return &freezeOps{
		freeze: &forge.Freeze{
			Client: client, Owner: ghc.Owner, Repo: ghc.Repo,
			Label: cfg.GitHub.Freeze.Label, Mode: cfg.GitHub.Freeze.Mode,
			// Where branch protection requires the check (statuses mode), a
			// PR opened while no freeze is in force needs a success.
			ReportThawed: true,
			Progress:     forge.FileProgress{Path: freezeProgressPath(cfg)},
			Log:          env.logger(),
		},
		log: env.logger(),
	}, nil
}

// freezeLookup is GitHub's settings as the freeze reads them: canary.yaml's
// github.repository and github.api_url over the environment's.
func freezeLookup(cfg config.Config, env gateEnv) func(string) (string, bool) {
	return func(k string) (string, bool) {
		switch {
		case k == forge.EnvRepository && cfg.GitHub.Repository != "":
			return cfg.GitHub.Repository, true
		case k == forge.EnvAPIURL && cfg.GitHub.APIURL != "":
			return cfg.GitHub.APIURL, true
		}
		return env.lookup(k)
	}
}

// lockedGate runs a gate while holding the freeze's turn.
type lockedGate struct {
	ops  *freezeOps
	gate *forge.FreezeGate
}

func (g *lockedGate) Produces(version string) []string { return g.gate.Produces(version) }

func (g *lockedGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	g.ops.mu.Lock()
	defer g.ops.mu.Unlock()
	return g.gate.Run(ctx, r)
}

// liftFreezeGate is the StepLiftFreeze gate: after a clean first night it
// lifts the freeze the release's T-30 step started. The engine runs it only
// for a complete release; a rolled-back one keeps its freeze for the IC.
type liftFreezeGate lockedGate

func (g *liftFreezeGate) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	g.ops.mu.Lock()
	defer g.ops.mu.Unlock()
	lifted, err := g.gate.LiftAfterFirstNight(ctx, r)
	if err != nil {
		return rollout.GateResult{}, err
	}
	if !lifted {
		return rollout.GateResult{Status: rollout.GateSkipped,
			Detail: "no freeze of " + r.Version + " is in force (its freeze step did not start one, or another release's freeze replaced it)"}, nil
	}
	sum, err := g.gate.Freeze.Status(ctx)
	if err != nil {
		return rollout.GateResult{Status: rollout.GatePassed, Detail: "freeze lifted after the first night"}, nil
	}
	return rollout.GateResult{Status: rollout.GatePassed, Detail: "freeze lifted after the first night: " + sum.Line()}, nil
}

// gateWiring builds the pre-canary gates of each release the engine host
// runs, from canary.yaml and the environment. Everything that can be
// wrong with them (an exceptions file, a signing key) is checked when it
// is built, so that a release does not find out at T-2.
type gateWiring struct {
	cfg    config.Config
	env    gateEnv
	freeze *freezeOps
	// kube is the engine's cluster client (the Ingress's and the state
	// ConfigMap's), which kubernetes preflight checks share; nil off
	// Kubernetes, where they read $KUBECONFIG or the pod's account.
	kube *kubeConn
	// green button, resolved once
	key        *provenance.Key
	exceptions []sbom.Exception
	lgpl       sbom.LGPLPolicy
}

// newGateWiring resolves the green button's key and exceptions; freeze is
// nil where GitHub is not configured.
func newGateWiring(cfg config.Config, env gateEnv, freeze *freezeOps) (*gateWiring, error) {
	w := &gateWiring{cfg: cfg, env: env, freeze: freeze}
	gb := cfg.GreenButton
	if len(gb.ExpectedArtifacts) == 0 {
		return w, nil
	}
	var err error
	if w.key, err = signingKeyFromEnv(gb.KeyEnv, env.getenv); err != nil {
		return nil, badInput("green_button.key_env: %v", err)
	}
	if w.exceptions, err = readExceptions(gb.Exceptions); err != nil {
		return nil, badInput("green_button.exceptions: %v", err)
	}
	if w.lgpl, err = sbom.ParseLGPLPolicy(gb.LGPL); err != nil {
		return nil, badInput("green_button.lgpl: %v", err)
	}
	if gb.VulnDB != "" {
		// Found out at start, not at T-2 with the release under way.
		if _, err := os.Stat(gb.VulnDB); err != nil {
			return nil, badInput("green_button.vuln_db: %v; give the grype database directory (the one holding 6/vulnerability.db)", err)
		}
	}
	return w, nil
}

// signingKeyFromEnv reads the PEM key in the variable named; nil when it is
// empty (the green button then signs with an ephemeral key and says so).
func signingKeyFromEnv(name string, getenv func(string) string) (*provenance.Key, error) {
	v := getenv(name)
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	k, err := provenance.ParsePrivateKey([]byte(strings.ReplaceAll(v, `\n`, "\n")))
	if err != nil {
		return nil, fmt.Errorf("$%s must hold the signing key's PEM text (ed25519 or ECDSA P-256): %w", name, err)
	}
	return k, nil
}

func readExceptions(path string) ([]sbom.Exception, error) {
	if path == "" {
		return nil, nil
	}
	return sbom.ReadExceptions(path)
}

// onCluster is the wiring with the engine's cluster client, for its
// kubernetes preflight checks; kc nil or a nil wiring change nothing.
func (w *gateWiring) onCluster(kc *kubeConn) *gateWiring {
	if w == nil || kc == nil {
		return w
	}
	c := *w
	c.kube = kc
	return &c
}

// gates are the freeze, lift, preflight and green-button gates of one
// release. checks, when not nil, replace canary.yaml's preflight checks
// (`--preflight FILE`). On a nil wiring only such checks are wired, as
// before canary.yaml configured the gates.
func (w *gateWiring) gates(ev rollout.Evidence, canary string, prom rollout.Metrics, checks []preflight.Check) map[rollout.StepName]rollout.Gate {
	gates := map[rollout.StepName]rollout.Gate{}
	popts := preflight.Options{Canary: canary, Prometheus: prom, Repo: ".", Evidence: ev}
	if w == nil {
		if checks != nil {
			gates[rollout.StepPreflight] = &preflight.Gate{Checks: checks, Options: popts}
		}
		return gates
	}
	if checks == nil {
		checks = w.cfg.Preflight.Checks
	}
	popts.Budget, popts.Getenv = w.cfg.Preflight.Budget, w.env.getenv
	if w.kube != nil {
		popts.Kube, popts.KubeNamespace = w.kube.client, w.kube.namespace
	}
	gates[rollout.StepPreflight] = &preflight.Gate{Checks: checks, Options: popts}
	if w.freeze != nil {
		fg := &forge.FreezeGate{Freeze: w.freeze.freeze, Evidence: ev}
		gates[rollout.StepFreeze] = &lockedGate{ops: w.freeze, gate: fg}
		gates[rollout.StepLiftFreeze] = &liftFreezeGate{ops: w.freeze, gate: fg}
	}
	if gb := w.greenButton(ev, "."); gb != nil {
		gates[rollout.StepGreenButton] = gb
	}
	// The IC's GO — or the NO-GO that aborted the release — goes into the
	// go/no-go record, signed with the green button's key.
	if dir, ok := ev.(interface{ Path() string }); ok {
		gates[rollout.StepGoNoGo] = &greenbutton.Seal{Key: w.key, Evidence: ev,
			Read: func(_ context.Context, _ *rollout.Release, name string) ([]byte, error) {
				return os.ReadFile(filepath.Join(dir.Path(), name))
			}}
	}
	return gates
}

// greenButton is the ritual canary.yaml configures, nil without expected
// artifacts. Who is left empty: as the engine's gate, the release's IC
// pressed it.
func (w *gateWiring) greenButton(ev rollout.Evidence, source string) *greenbutton.GreenButton {
	gb := w.cfg.GreenButton
	if len(gb.ExpectedArtifacts) == 0 {
		return nil
	}
	g := &greenbutton.GreenButton{
		Source: source, ArtifactsDir: gb.ArtifactsDir, Expected: gb.ExpectedArtifacts,
		PreviousSBOM: gb.PreviousSBOM, Exceptions: w.exceptions, LGPL: w.lgpl,
		VulnDB: gb.VulnDB, VulnFailOn: vulnThreshold(gb.VulnFailOn),
		Key: w.key, RequireKey: gb.RequireKey, Evidence: ev, Getenv: w.env.getenv, ToolVersion: version,
	}
	// Earlier releases' evidence is not part of this one's SBOM.
	if rel, ok := inside(source, w.cfg.EvidenceDir); ok {
		g.Exclude = append(g.Exclude, "./"+filepath.ToSlash(rel))
	}
	return g
}

// batteryOptions is canary.yaml's battery section as the checks package
// takes it; the DSN is read from the variable dsn_env names.
func batteryOptions(b config.Battery, getenv func(string) string) checks.BatteryOptions {
	o := checks.BatteryOptions{
		Base: b.Base, PreviousSBOM: b.PreviousSBOM, DSN: getenv(b.DSNEnv),
		Outbox:        checks.OutboxOptions{Query: b.Outbox.Query, MaxLag: b.Outbox.MaxLag, MaxSkew: b.Outbox.MaxSkew, Timeout: b.Outbox.Timeout},
		BurstRequests: b.BurstRequests, FloodRequests: b.FloodRequests, Parallel: b.Parallel, Timeout: b.Timeout,
	}
	for _, v := range b.TickVectors {
		o.TickVectors = append(o.TickVectors, checks.TickVector{Symbol: v.Symbol, Price: v.Price, Tick: v.Tick, Expected: v.Expected})
	}
	if len(b.Headers) > 0 {
		o.Header = map[string]string{}
		for k, v := range b.Headers {
			o.Header[k] = v
		}
	}
	return o
}

// githubWebhookRoutes mounts POST /github/webhook on serve when
// GITHUB_WEBHOOK_SECRET is set. The secret without a configured freeze is
// bad input: GitHub would deliver events that nothing could act on.
func githubWebhookRoutes(ops *freezeOps, env gateEnv) (map[string]http.Handler, error) {
	secret := env.getenv(forge.EnvWebhookSecret)
	if secret == "" {
		return nil, nil
	}
	if ops == nil {
		return nil, badInput("%s is set but the change freeze is not configured: set GITHUB_TOKEN (or a GitHub App) and github.repository or GITHUB_REPOSITORY, or unset %s", forge.EnvWebhookSecret, forge.EnvWebhookSecret)
	}
	h, err := forge.NewWebhookHandler([]byte(secret), ops.freeze, env.logger())
	if err != nil {
		return nil, badInput("%v", err)
	}
	return map[string]http.Handler{"POST /github/webhook": h}, nil
}

// slackFreezeWait is how long `/canary freeze start|lift` waits for the
// freeze before answering that it carries on in the background: at
// GitHub's pace for writes, labelling a thousand PRs takes over half an
// hour, and Slack's response_url outlives the wait.
const slackFreezeWait = 2 * time.Minute

// slackFreezeBudget bounds a freeze run from Slack that outlasted the wait.
// Progress is saved after every call, so one cut short resumes on the
// next start or lift.
const slackFreezeBudget = 2 * time.Hour

// slackFreeze is the slackHandler's freeze option: `/canary freeze
// start|lift|status`, the same forge.Freeze code as `canarybot freeze`
// and the engine's freeze step. The server acknowledges within Slack's 3 s
// and posts this answer to response_url.
func (ops *freezeOps) slackFreeze(h *slackHandler) func(ctx context.Context, action, version, user string) (string, error) {
	if ops == nil {
		return nil
	}
	return func(ctx context.Context, action, version, user string) (string, error) {
		return ops.slack(ctx, h, action, version, user, slackFreezeWait)
	}
}

func (ops *freezeOps) slack(ctx context.Context, h *slackHandler, action, version, user string, wait time.Duration) (string, error) {
	who := h.users.Mention(user)
	f := ops.freeze
	if action == bot.FreezeStatus {
		sum, err := f.Status(ctx)
		if err != nil {
			return "", err
		}
		return "Change freeze: " + sum.Line(), nil
	}
	if action == bot.FreezeStart && version == "" {
		return "", errors.New("there is no release to freeze for: start one with `/canary start <version>`, or run `canarybot freeze start <version>`")
	}
	if !ops.mu.TryLock() {
		return "", errors.New("a freeze start or lift is already running here; `/canary freeze status` shows how far it has got")
	}
	type result struct {
		sum forge.Summary
		err error
	}
	done := make(chan result, 1)
	// Detached from the request: the work carries on after the answer.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slackFreezeBudget)
	go func() {
		defer ops.mu.Unlock()
		defer cancel()
		var sum forge.Summary
		var err error
		if action == bot.FreezeStart {
			sum, err = f.Start(wctx, version)
		} else {
			sum, err = f.Lift(wctx)
		}
		if sum.Version != "" {
			if werr := h.writeFreezeEvidence(wctx, sum); werr != nil {
				ops.log.Warn("freeze evidence not written", "version", sum.Version, "err", werr)
			}
		}
		if err != nil {
			ops.log.Error("freeze from Slack", "action", action, "user", user, "err", err)
		} else {
			ops.log.Info("freeze from Slack", "action", action, "user", user, "summary", sum.Line())
		}
		done <- result{sum, err}
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case res := <-done:
		switch {
		case errors.Is(res.err, forge.ErrNotFrozen):
			return "", errors.New("no freeze is in force, so there is nothing to lift")
		case errors.Is(res.err, forge.ErrOtherFreeze):
			return "", res.err
		case res.err != nil:
			return "", fmt.Errorf("%w (run it again to resume where it stopped)", res.err)
		}
		verb := "started"
		if action == bot.FreezeLift {
			verb = "lifted"
		}
		return fmt.Sprintf("Change freeze of *%s* %s by %s: %s", res.sum.Version, verb, who, res.sum.Line()), nil
	case <-timer.C:
		sum, _ := f.Status(ctx)
		return fmt.Sprintf("Change freeze %s by %s is under way and carries on in the background: %s. `/canary freeze status` shows how far it has got.", action, who, sum.Line()), nil
	}
}

// writeFreezeEvidence writes freeze_<version>.txt into the release's
// evidence: through the engine hosted here when it drives that release,
// else into the directory itself unless another process's engine owns it.
func (h *slackHandler) writeFreezeEvidence(ctx context.Context, sum forge.Summary) error {
	name := "freeze_" + sum.Version + ".txt"
	p, err := h.open()
	if err != nil {
		return err
	}
	r, err := p.store.Load(ctx, "")
	if err != nil && !errors.Is(err, rollout.ErrNotFound) {
		return err
	}
	if r != nil && r.Version == sum.Version && !r.Phase.Terminal() {
		if h.host != nil {
			if ev, ok := h.host.Evidence(r.ID); ok {
				return ev.Write(ctx, name, sum.Text())
			}
		}
		// One evidence directory has one writer.
		return fmt.Errorf("%s's evidence belongs to the engine driving it elsewhere; run `canarybot freeze status` there", sum.Version)
	}
	cfg, err := h.g.loadConfig()
	if err != nil {
		return err
	}
	ev, err := evidence.Open(cfg.EvidenceDir, sum.Version)
	if err != nil {
		return err
	}
	return ev.Write(ctx, name, sum.Text())
}

// compile-time checks that the adapters are gates the engine can run.
var (
	_ rollout.Gate = (*lockedGate)(nil)
	_ rollout.Gate = (*liftFreezeGate)(nil)
)
