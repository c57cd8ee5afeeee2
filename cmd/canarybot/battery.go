package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/checks"
)

// newBatteryCmd is the runbook's corner-case quick battery.
func newBatteryCmd(g *globals) *cobra.Command {
	var o checks.BatteryOptions
	var headers, ticks []string
	c := &cobra.Command{
		Use:   "battery <version> --base URL",
		Short: "Corner-case battery: idempotency burst, decimal ticks, outbox lag, CSP flood, SBOM drift; writes battery_<version>.txt",
		Long: `The runbook's corner-case battery against the service at --base:
  idempotency burst   100 orders with one X-Idempotency-Key, 10 at a time: exactly 1×2xx and 99×409
  decimal ticks       each --tick vector aligned by GET /api/tick-align: zero deviation
  outbox lag          needs --dsn (default: the variable battery.dsn_env names, $DATABASE_URL)
  CSP flood           50 reports to /api/csp-report, 10 at a time: some 429
  SBOM license drift  needs sbom_<version>.json in the evidence and --previous-sbom:
                      fails on GPL/AGPL brought in since, or an SBOM without licenses
What the flags leave out comes from canary.yaml's battery section (base, previous_sbom,
dsn_env, outbox, tick_vectors, burst_requests, flood_requests, parallel, timeout, headers).
A test that cannot run is reported as not run, never as passed.
Exit 0 when none failed (tests not run are allowed and printed), 1 when any failed, 2 bad input.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("battery takes one <version>, got %d arguments, e.g. `canarybot battery v1.4.0 --base http://127.0.0.1:4001`", len(args))
			}
			// canary.yaml's battery section fills what the flags leave out.
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			def := batteryOptions(cfg.Battery, os.Getenv)
			if o.Base == "" {
				o.Base = def.Base
			}
			if o.Base == "" {
				return badInput("--base is required (or battery.base in canary.yaml): the service's base URL, e.g. --base http://127.0.0.1:4001")
			}
			if o.DSN == "" {
				o.DSN = def.DSN
			}
			if o.PreviousSBOM == "" {
				o.PreviousSBOM = def.PreviousSBOM
			}
			o.Outbox, o.BurstRequests, o.FloodRequests, o.Parallel, o.Timeout = def.Outbox, def.BurstRequests, def.FloodRequests, def.Parallel, def.Timeout
			h, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			o.Header = def.Header
			for k, v := range h {
				if o.Header == nil {
					o.Header = map[string]string{}
				}
				o.Header[k] = v
			}
			for _, s := range ticks {
				v, err := checks.ParseTickVector(s)
				if err != nil {
					return badInput("--tick: %v", err)
				}
				o.TickVectors = append(o.TickVectors, v)
			}
			if len(ticks) == 0 {
				o.TickVectors = def.TickVectors
			}
			if err := o.Validate(); err != nil {
				return badInput("--base: %v", err)
			}
			ev, err := g.evidenceFor(args[0])
			if err != nil {
				return err
			}
			o.Version, o.EvidenceDir = args[0], ev.Path()
			res, err := checks.Battery(cmd.Context(), o)
			if err != nil {
				return err
			}
			name := "battery_" + args[0] + ".txt"
			if err := ev.Write(cmd.Context(), name, res.Text()); err != nil {
				return err
			}
			for _, t := range res.Tests {
				fmt.Fprintln(g.out, t.Line())
			}
			fmt.Fprintf(g.out, "verdict: %s\nwritten: %s\n", res.Verdict(), filepath.Join(ev.Path(), name))
			if !res.Passed() {
				return &exitError{code: exitFailure, err: fmt.Errorf("corner-case battery against %s: %s", o.Base, res.Verdict())}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.Base, "base", "", "the service's base URL (required)")
	// Not the flag's default: --help would print the DSN, password and all.
	fl.StringVar(&o.DSN, "dsn", "", "PostgreSQL of the outbox (default: the variable battery.dsn_env names, $DATABASE_URL)")
	fl.StringArrayVar(&ticks, "tick", nil, "tick vector SYMBOL:PRICE:TICK:EXPECTED, repeatable (default the runbook's BTCUSDT and BTCTRY)")
	fl.StringVar(&o.PreviousSBOM, "previous-sbom", "", "the previous release's SBOM, for the license drift test (see `canarybot sbom drift`)")
	fl.StringArrayVar(&headers, "header", nil, "header k=v sent with every request, repeatable; e.g. X-Canary=always through the router")
	return c
}
