package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/store"
)

// freezeOpts are the flags of `canarybot freeze`.
type freezeOpts struct {
	progress string
	// record is where the freeze's progress is kept: the --progress file,
	// or with the state in a ConfigMap the freeze's ConfigMap beside it
	// (shared with serve's replicas); where names it for messages.
	record        forge.Progress
	where         string
	label         string
	targetURL     string
	mode          string
	reportThawed  bool
	writeInterval time.Duration
	// logEvery is how often a plain progress line goes to stderr when it
	// is not a terminal; 0 never.
	logEvery time.Duration
	// metrics counts the GitHub client's waits, for the progress line.
	metrics *forge.Metrics
}

func newFreezeCmd(g *globals) *cobra.Command {
	o := &freezeOpts{}
	c := &cobra.Command{
		Use:   "freeze",
		Short: "Freeze merges for a release (a ruleset or failing statuses, and a label on every open PR) and lift the freeze",
		Long: `freeze blocks merges from T-30 to T+24h as the runbook asks, then labels every open PR
hold-for-canary. Where the token may administer the repository (--mode auto, the default), one
repository ruleset on the default branch requiring the canary/freeze check blocks every PR with
one call; where it may not (GitHub answers 403 or 404), each open PR's head gets a failing
canary/freeze commit status, which blocks the merge once branch protection requires the
canary/freeze check. lift unblocks first (disables the ruleset, or sets success on the current
head of every open PR), then removes the labels the freeze added (a label a person put on stays).
sync applies the freeze to the one PR of a workflow's pull_request event.

GitHub is reached as Actions sets it up: GITHUB_TOKEN, or a GitHub App (GITHUB_APP_ID,
GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE, GITHUB_INSTALLATION_ID);
GITHUB_REPOSITORY=owner/name; GITHUB_API_URL for GitHub Enterprise. canary.yaml's github section
is read as serve and run read it: its repository and api_url take the place of GITHUB_REPOSITORY
and GITHUB_API_URL, and its freeze.label and freeze.mode are the defaults of --label and --mode,
so that the CLI and the engine freeze the same repository under the same label.

Progress is saved after every change, so an interrupted start or lift carries on where it
stopped when run again, without repeating a call.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("unknown freeze command %q; use start <version>, lift, status or sync", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	pf := c.PersistentFlags()
	pf.StringVar(&o.progress, "progress", "", "freeze progress file (default: canarybot-freeze.json beside the state file; with the state in a ConfigMap, the ConfigMap <name>-freeze beside it)")
	pf.StringVar(&o.label, "label", forge.DefaultFreezeLabel, "label put on the frozen PRs (default: github.freeze.label in canary.yaml)")
	pf.StringVar(&o.targetURL, "target-url", "", "link of the failing status (default: the Actions run when GITHUB_RUN_ID is set, else the PR)")
	pf.StringVar(&o.mode, "mode", forge.ModeAuto, "how to block merges: auto (a ruleset where the token may administer the repository, else statuses), rulesets or statuses (default: github.freeze.mode in canary.yaml)")
	pf.BoolVar(&o.reportThawed, "report-thawed", true, "sync and the webhook set a success canary/freeze status on a PR while no freeze is in force (needed where branch protection requires the check)")
	pf.DurationVar(&o.writeInterval, "write-interval", time.Second, "least time between two content-creating GitHub calls (GitHub asks for about one a second)")
	pf.DurationVar(&o.logEvery, "log-every", forge.DefaultProgressInterval, "when stderr is not a terminal, write a progress line this often (0: never); on a terminal a progress bar updates in place")

	start := &cobra.Command{
		Use:   "start <version>",
		Short: "Label every open PR and set a failing canary/freeze status on its head",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ev, err := g.evidenceFor(args[0])
			if err != nil {
				return err
			}
			f, err := o.freeze(cmd, g)
			if err != nil {
				return err
			}
			bar := o.progressLine(g)
			f.OnProgress = bar.Report
			sum, err := f.Start(cmd.Context(), args[0])
			bar.Finish()
			// The evidence is written even for an interrupted start: it says
			// how far the freeze got.
			if sum.Phase != forge.PhaseNone && sum.Version == args[0] {
				name := "freeze_" + args[0] + ".txt"
				if werr := ev.Write(cmd.Context(), name, sum.Text()); werr != nil {
					return errors.Join(err, werr)
				}
				fmt.Fprintln(g.out, sum.Line())
				fmt.Fprintf(g.out, "written: %s\n", filepath.Join(ev.Path(), name))
			}
			if errors.Is(err, forge.ErrOtherFreeze) {
				return badInput("%v", err)
			}
			if err != nil {
				return fmt.Errorf("freeze start %s (run it again to resume): %w", args[0], err)
			}
			return nil
		},
	}
	lift := &cobra.Command{
		Use:   "lift",
		Short: "Remove the labels the freeze added and set the canary/freeze statuses to success",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := o.freeze(cmd, g)
			if err != nil {
				return err
			}
			bar := o.progressLine(g)
			f.OnProgress = bar.Report
			sum, err := f.Lift(cmd.Context())
			bar.Finish()
			if errors.Is(err, forge.ErrNotFrozen) {
				return badInput("%v (%s)", err, o.where)
			}
			if sum.Version != "" {
				if ev, everr := g.evidenceFor(sum.Version); everr == nil {
					if werr := ev.Write(cmd.Context(), "freeze_"+sum.Version+".txt", sum.Text()); werr != nil {
						err = errors.Join(err, werr)
					}
				}
				fmt.Fprintln(g.out, sum.Line())
			}
			if err != nil {
				return fmt.Errorf("freeze lift (run it again to resume): %w", err)
			}
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Say whether a freeze is in force, in which mode, and how far labelling has got",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.resolveProgress(cmd.Context(), g); err != nil {
				return err
			}
			// No GitHub call: the recorded progress is the answer.
			sum, err := (&forge.Freeze{Progress: o.record}).Status(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, sum.Line())
			return nil
		},
	}
	sync := &cobra.Command{
		Use:   "sync",
		Short: "Apply the freeze to the pull request of this workflow's event ($GITHUB_EVENT_PATH)",
		Long: `sync is for teams that run canarybot in a workflow on pull_request_target (or
pull_request) events instead of pointing a webhook at canarybot serve: while a freeze is in
force, a PR that is opened, reopened or pushed to gets the label and, in statuses mode, the
failing status on its new head; otherwise (with --report-thawed) its head gets success.

Whether a freeze is in force comes from the progress file when it exists, and otherwise from
the freeze label's description on GitHub, which start and lift keep up to date: a workflow's
runner has no progress file. Use pull_request_target for PRs from forks: their pull_request
runs get a read-only token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := os.Getenv("GITHUB_EVENT_NAME")
			if name != "" && name != "pull_request" && name != "pull_request_target" {
				fmt.Fprintf(g.out, "event %s: nothing to do (run sync on pull_request_target or pull_request events)\n", name)
				return nil
			}
			path := os.Getenv("GITHUB_EVENT_PATH")
			if path == "" {
				return badInput("GITHUB_EVENT_PATH is not set; sync runs in a workflow triggered by pull_request_target or pull_request events")
			}
			payload, err := os.ReadFile(path)
			if err != nil {
				return badInput("reading the event payload: %v", err)
			}
			ev, err := forge.ParsePREvent(payload)
			if err != nil {
				return badInput("%s: %v", path, err)
			}
			f, err := o.freeze(cmd, g)
			if err != nil {
				return err
			}
			if file, ok := o.record.(forge.FileProgress); ok {
				if _, err := os.Stat(file.Path); err != nil {
					f.Beacon = true
				}
			}
			res, err := f.OnPullRequest(cmd.Context(), ev)
			if err != nil {
				return fmt.Errorf("freeze sync #%d: %w", ev.Number, err)
			}
			fmt.Fprintf(g.out, "#%d (%s): %s\n", ev.Number, ev.Action, res)
			return nil
		},
	}
	c.AddCommand(start, lift, status, sync)
	return c
}

func (o *freezeOpts) resolveProgress(ctx context.Context, g *globals) error {
	if o.record != nil {
		return nil
	}
	if o.progress == "" {
		if name := g.kube.configMap(inCluster(), g.statePath != ""); name != "" {
			kc, err := dialKube(g.kube.kubeconfig, g.kube.namespace)
			if err != nil {
				return err
			}
			p, err := store.NewConfigMapProgress(kc.client, kc.namespace, freezeConfigMap(name))
			if err != nil {
				return &exitError{code: exitBadInput, err: err}
			}
			if _, err := p.Load(ctx); err != nil {
				return kubeError(fmt.Errorf("freeze progress %s: %w", p, err))
			}
			o.record, o.where = p, "ConfigMap "+p.String()
			return nil
		}
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		o.progress = freezeProgressPath(cfg)
	}
	o.record, o.where = forge.FileProgress{Path: o.progress}, "progress file "+o.progress
	return nil
}

// freeze is the freeze serve and run build (newFreezeOps): canary.yaml's
// github section over the environment, so that the CLI and the engine
// freeze one repository under one label. --label and --mode, when given,
// replace the section's.
func (o *freezeOpts) freeze(cmd *cobra.Command, g *globals) (*forge.Freeze, error) {
	if err := o.resolveProgress(cmd.Context(), g); err != nil {
		return nil, err
	}
	if o.writeInterval < 0 {
		return nil, badInput("--write-interval %s is negative", o.writeInterval)
	}
	if o.logEvery < 0 {
		return nil, badInput("--log-every %s is negative; use 0 for no progress lines", o.logEvery)
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	if cmd.Flags().Changed("mode") {
		switch o.mode {
		case forge.ModeAuto, forge.ModeRulesets, forge.ModeStatuses:
		default:
			return nil, badInput("--mode %q; use auto, rulesets or statuses", o.mode)
		}
		cfg.GitHub.Freeze.Mode = o.mode
	}
	if cmd.Flags().Changed("label") {
		if strings.TrimSpace(o.label) == "" {
			return nil, badInput("--label is empty; name the label the frozen PRs get, e.g. %s", forge.DefaultFreezeLabel)
		}
		cfg.GitHub.Freeze.Label = o.label
	}
	log := g.logger()
	env := productionGateEnv(log)
	env.transport.WriteInterval = o.writeInterval
	o.metrics = &forge.Metrics{}
	env.transport.Metrics = o.metrics
	// The CLI says itself why GitHub is not configured, as an error.
	env.log = nil
	ops, err := newFreezeOps(cfg, env)
	if err != nil {
		return nil, err
	}
	if ops == nil {
		_, err := forge.ConfigFromEnv(freezeLookup(cfg, env))
		if err == nil {
			err = errors.New("GitHub is not configured")
		}
		return nil, badInput("the change freeze is not configured: %v (github.repository and github.api_url in canary.yaml stand for %s and %s)", err, forge.EnvRepository, forge.EnvAPIURL)
	}
	f := ops.freeze
	target := o.targetURL
	if target == "" {
		if run := os.Getenv("GITHUB_RUN_ID"); run != "" {
			server := os.Getenv("GITHUB_SERVER_URL")
			if server == "" {
				server = "https://github.com"
			}
			target = fmt.Sprintf("%s/%s/%s/actions/runs/%s", server, f.Owner, f.Repo, run)
		}
	}
	f.TargetURL, f.ReportThawed = target, o.reportThawed
	f.Progress = o.record
	f.Log = log
	return f, nil
}

// progressLine shows a freeze's progress on stderr: a bar rewritten in
// place on a terminal, else a plain line every --log-every.
func (o *freezeOpts) progressLine(g *globals) *forge.ProgressLine {
	every := o.logEvery
	if every == 0 {
		every = -1 // ProgressLine's "never"; its 0 is the default interval
	}
	return &forge.ProgressLine{W: g.errOut, Terminal: isTTY(g.errOut), Metrics: o.metrics, Interval: every}
}

// isTTY is true when w is a terminal. Unlike a character-device test, it
// is false for /dev/null, where escape sequences would be wasted.
func isTTY(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
