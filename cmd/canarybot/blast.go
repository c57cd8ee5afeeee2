package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/checks"
	"github.com/canarybot/canarybot/evidence"
)

// newBlastCmd is the runbook's micro-blast-radius-test.sh.
func newBlastCmd(g *globals) *cobra.Command {
	var o checks.BlastOptions
	var headers []string
	c := &cobra.Command{
		Use:   "blast <url> <version> [N]",
		Short: "Micro blast radius: N HTTP GETs and N WebSocket sessions against the canary; writes micro_blast_<version>.log",
		Long: `Micro blast radius: N HTTP GETs (default 30) and N WebSocket sessions (connect,
receive one message, close) against the canary, a bounded number at a time.
It fails when either kind's success ratio is below --min-success or its p95
latency above --max-p95. Through the router, add --header X-Canary=always.
Exit 0 passed, 1 failed, 2 bad input.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || len(args) > 3 {
				return badInput("blast takes <url> <version> [N], got %d arguments, e.g. `canarybot blast http://127.0.0.1:4001 v1.4.0 30`", len(args))
			}
			o.URL = args[0]
			o.N = checks.DefaultBlastN
			if len(args) == 3 {
				n, err := strconv.Atoi(args[2])
				if err != nil || n < 1 {
					return badInput("N must be a whole number of probes of each kind, at least 1, got %q", args[2])
				}
				o.N = n
			}
			if o.MinSuccess <= 0 || o.MinSuccess > 1 {
				return badInput("--min-success is a ratio above 0 and at most 1 (e.g. 0.95), got %g", o.MinSuccess)
			}
			if o.MaxP95 <= 0 || o.Timeout <= 0 || o.Concurrency < 1 {
				return badInput("--max-p95 (%s) and --timeout (%s) must be positive and --concurrency (%d) at least 1", o.MaxP95, o.Timeout, o.Concurrency)
			}
			h, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			o.Header = h
			if err := o.Validate(); err != nil {
				return badInput("%v", err)
			}
			ev, err := g.evidenceFor(args[1])
			if err != nil {
				return err
			}
			res, err := checks.Blast(cmd.Context(), o)
			if err != nil {
				return err
			}
			name := "micro_blast_" + args[1] + ".log"
			if err := ev.Write(cmd.Context(), name, res.Log()); err != nil {
				return err
			}
			for _, line := range strings.Split(string(res.Log()), "\n") {
				if strings.HasPrefix(line, "summary ") || strings.HasPrefix(line, "bounds: ") || strings.HasPrefix(line, "verdict: ") {
					fmt.Fprintln(g.out, line)
				}
			}
			fmt.Fprintf(g.out, "written: %s\n", filepath.Join(ev.Path(), name))
			if !res.Passed() {
				return &exitError{code: exitFailure, err: fmt.Errorf("micro blast radius against %s failed: %s", o.URL, strings.Join(res.Failures(), "; "))}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.DurationVar(&o.MaxP95, "max-p95", checks.DefaultMaxP95, "fail when either kind's p95 latency is above this")
	fl.Float64Var(&o.MinSuccess, "min-success", 1, "fail when either kind's success ratio is below this (the runbook expects all to pass)")
	fl.IntVar(&o.Concurrency, "concurrency", checks.DefaultBlastConcurrency, "probes in flight at once, both kinds together")
	fl.DurationVar(&o.Timeout, "timeout", checks.DefaultProbeTimeout, "time limit of each probe")
	fl.StringVar(&o.HTTPPath, "http-path", checks.DefaultHTTPPath, "path of the HTTP probes (a query may follow)")
	fl.StringVar(&o.WSPath, "ws-path", checks.DefaultWSPath, "path of the WebSocket sessions")
	fl.StringArrayVar(&headers, "header", nil, "header k=v sent with every probe, repeatable; e.g. X-Canary=always through the router")
	return c
}

// parseHeaders reads repeated k=v flags.
func parseHeaders(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " :\t") {
			return nil, badInput("--header %q: use name=value, e.g. --header X-Canary=always", kv)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// evidenceFor opens the evidence directory of version under the configured
// root, refusing a version that cannot name a directory as bad input.
func (g *globals) evidenceFor(version string) (*evidence.Dir, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	ev, err := evidence.Open(cfg.EvidenceDir, version)
	if errors.Is(err, evidence.ErrBadName) {
		return nil, badInput("%v", err)
	}
	return ev, err
}
