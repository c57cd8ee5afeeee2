package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/demo"
)

// demoServeOptions are `demo serve`'s knobs.
type demoServeOptions struct {
	rps, wsClients, weight int
	defects                demo.Defects
}

func newDemoServeCmd(g *globals) *cobra.Command {
	var o demoServeOptions
	var defects string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the demo stack (stable, canary, router, load) without a release, until interrupted",
		Long: `demo serve starts the demo's stable and canary instances, the weighted router in front of
them and the load generator, on loopback, prints their URLs, and runs until interrupted (Ctrl-C).
No release runs: it is something real to try preflight, blast, battery, ready and diagnose against.

--defects strips the canary of protections, to see the checks fail for the right reason:
idempotency (every order accepted), ratelimit (no 429 on CSP reports), websocket (sessions
dropped before any message), or all.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("%s", "demo serve takes no arguments, only flags, e.g. `canarybot demo serve --defects websocket`")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := demo.ParseDefects(defects)
			if err != nil {
				return badInput("--defects: %v", err)
			}
			o.defects = d
			if o.rps < 1 || o.rps > demo.MaxRPS || o.wsClients < 1 || o.weight < 0 || o.weight > 100 {
				return badInput("--rps must be 1 to %d (got %d), --ws-clients at least 1 (got %d), --weight 0 to 100 (got %d)", demo.MaxRPS, o.rps, o.wsClients, o.weight)
			}
			return demoServe(cmd.Context(), g, o, nil)
		},
	}
	fl := c.Flags()
	fl.IntVar(&o.rps, "rps", 20, "load: HTTP requests per second through the router")
	fl.IntVar(&o.wsClients, "ws-clients", 5, "load: WebSocket clients through the router")
	fl.IntVar(&o.weight, "weight", 10, "the router's canary weight, in percent")
	fl.StringVar(&defects, "defects", "", "strip the canary of protections: idempotency, ratelimit, websocket (comma-separated) or all")
	return c
}

// demoStackURLs are what `demo serve` prints, handed to started (tests).
type demoStackURLs struct {
	stable, canary, router string
}

// demoServe runs the stack until ctx ends. started, if set, is called once
// the URLs are printed. The metrics store is not run: nothing here queries
// it, and it has no HTTP API of its own to offer.
func demoServe(ctx context.Context, g *globals, o demoServeOptions, started func(demoStackURLs)) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	stack, err := newDemoStack(&cfg.Plan, clock.NewScaled(time.Now().UTC(), 1), g.logger(), o.rps, o.wsClients)
	if err != nil {
		return err
	}
	defer stack.close()
	stack.canary.SetDefects(o.defects)
	stack.stable.SetRiskBlockProbability(0)
	stack.canary.SetRiskBlockProbability(0)
	if err := stack.router.SetWeight(ctx, o.weight); err != nil {
		return fmt.Errorf("demo serve: setting the canary weight: %w", err)
	}

	ctx, stop := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop(nil)
	runBackground(ctx, &wg, stop, "the load generator", stack.load.Run)

	urls := demoStackURLs{stable: stack.stableURL.String(), canary: stack.canaryURL.String(), router: stack.routerURL.String()}
	printDemoStack(g.out, urls, o)
	if started != nil {
		started(urls)
	}
	<-ctx.Done()
	if cause := context.Cause(ctx); errors.Is(cause, errDemoStopped) {
		return cause
	}
	fmt.Fprintln(g.out, "demo serve: stopped")
	return nil
}

func printDemoStack(out io.Writer, u demoStackURLs, o demoServeOptions) {
	fmt.Fprintf(out, `canarybot demo serve: the demo stack, no release (Ctrl-C stops it)
  stable   %[1]s   (metrics %[1]s/metrics)
  canary   %[2]s   (metrics %[2]s/metrics; defects: %[4]s)
  router   %[3]s   (canary weight %[5]d%%; header X-Canary: always goes to the canary)
  load     %[6]d rps + %[7]d WebSocket clients through the router
try:
  canarybot blast %[2]s v1.4.0 30
  canarybot battery v1.4.0 --base %[2]s
  canarybot preflight v1.4.0 --canary %[2]s
  canarybot ready v1.4.0 --canary %[2]s
  canarybot diagnose --metrics %[2]s/metrics
`, u.stable, u.canary, u.router, o.defects, o.weight, o.rps, o.wsClients)
}
