package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/signals"
)

// newPreflightCmd is `canarybot preflight <version>`: the runbook's
// 60-second preflight, checks from --checks or the runbook's 10.
func newPreflightCmd(g *globals) *cobra.Command {
	var (
		checksFile, canary, promURL, repo string
		budget                            time.Duration
	)
	c := &cobra.Command{
		Use:   "preflight <version>",
		Short: "Run the 60-second preflight checks and write preflight.txt and their evidence",
		Long: `Runs the readiness checks concurrently within --budget and writes preflight.txt
(one line per check, then "N/M passed, K cannot run") and each check's own
evidence file into the release's evidence directory.

Without --checks, canary.yaml's preflight.checks run, and when it lists none
(or there is no canary.yaml) the runbook's 10: the git tag and describe
(release_tag.txt), the canary's /healthz and its Content-Security-Policy
(csp_headers_<version>.txt, needs --canary), scrape targets up, no
auto_rollback alert firing and event-loop lag p95 (need --prometheus or
PROMETHEUS_URL), and four database checks (kind postgres; DSNs from
$DATABASE_URL and $PGBOUNCER_ADMIN_URL, never from a file): without a DSN or
a reachable server they are reported as "cannot run", never as passed.
Checks of kind kubernetes read the cluster of --kubeconfig (default
$KUBECONFIG, the pod's service account, ~/.kube/config); --namespace is the
namespace of those that name none.

Exit 0 only when every check passed; 1 when any failed or could not run;
2 for bad input (a bad checks file, a bad URL).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("preflight takes the version to check, e.g. `canarybot preflight v1.4.0`")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ver := args[0]
			if cmd.Flags().Changed("budget") && budget <= 0 {
				return badInput("--budget %s must be positive, e.g. 60s", budget)
			}
			if canary != "" {
				u, err := url.Parse(canary)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return badInput("--canary %q is not an http(s) base URL such as https://canary.example.com", canary)
				}
			}
			// canary.yaml's preflight section, the runbook's 10 when it lists none.
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("budget") {
				budget = cfg.Preflight.Budget
			}
			checks := cfg.Preflight.Checks
			if checksFile != "" {
				if checks, err = preflight.LoadChecks(checksFile); err != nil {
					return &exitError{code: exitBadInput, err: err}
				}
			}
			o := preflight.Options{Version: ver, Canary: canary, Repo: repo, Budget: budget}
			// kubernetes checks read the cluster of the global --kubeconfig
			// and --namespace.
			if err := g.kube.preflight(&o, checks); err != nil {
				return err
			}
			if promURL == "" {
				promURL = os.Getenv("PROMETHEUS_URL")
			}
			if promURL != "" {
				prom, err := signals.NewPrometheus(signals.PrometheusOptions{URL: promURL, Logger: g.logger()})
				if err != nil {
					return badInput("--prometheus: %v", err)
				}
				o.Prometheus = prom
			}
			ev, err := g.evidenceFor(ver)
			if err != nil {
				return err
			}
			o.Evidence = ev
			o.OnResult = func(r preflight.Result) { fmt.Fprintln(g.out, r.Line()) }

			rep, err := preflight.Run(cmd.Context(), checks, o)
			if errors.Is(err, preflight.ErrBadChecks) {
				return &exitError{code: exitBadInput, err: err}
			} else if err != nil {
				return err
			}
			if err := ev.Write(cmd.Context(), preflight.SummaryFile, rep.Text()); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s\nwritten: %s\n", rep.Summary(), filepath.Join(ev.Path(), preflight.SummaryFile))
			if !rep.Passed() {
				return &exitError{code: exitFailure, err: fmt.Errorf("preflight %s: %s:\n  %s",
					ver, rep.Summary(), strings.Join(rep.Problems(), "\n  "))}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&checksFile, "checks", "", "YAML file of checks to run instead of the runbook's 10")
	fl.StringVar(&canary, "canary", "", "the canary's base URL; http checks whose url is a path go there")
	fl.StringVar(&promURL, "prometheus", "", "Prometheus base URL for promql checks (default $PROMETHEUS_URL)")
	fl.DurationVar(&budget, "budget", preflight.DefaultBudget, "time for the whole preflight; a check still running then fails as timed out (default: preflight.budget in canary.yaml)")
	fl.StringVar(&repo, "repo", "", "git repository of git checks without a dir (default: the current directory)")
	return c
}
