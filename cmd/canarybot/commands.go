package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/rollout"
)

// newCommandCmd builds a command that queues a person's command for the
// engine running the release and waits until the engine has applied or
// refused it.
func newCommandCmd(g *globals, kind rollout.CommandKind, use, short string) *cobra.Command {
	var release string
	var wait time.Duration
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			reason := strings.Join(args, " ")
			if kind == rollout.CmdAbort && reason == "" {
				return badInput("abort needs a reason, e.g. `canarybot abort preflight failed: pgbouncer saturated`")
			}
			if (kind == rollout.CmdPromote || kind == rollout.CmdResume || kind == rollout.CmdGo) && len(args) > 0 {
				return badInput("%s takes no arguments, got %q", kind, reason)
			}
			return g.send(cmd.Context(), release, rollout.Command{Kind: kind, Reason: reason}, wait)
		},
	}
	commandFlags(c, &release, &wait)
	return c
}

// commandFlags are the flags of every command queued for a running engine.
func commandFlags(c *cobra.Command, release *string, wait *time.Duration) {
	c.Flags().StringVar(release, "release", "", "release (version) to act on (default: the current one in --state)")
	c.Flags().DurationVar(wait, "wait", 2*time.Minute, "how long to wait for the engine to apply the command")
}

func newHoldCmd(g *globals) *cobra.Command {
	var release string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "hold [duration] [reason]",
		Short: "Hold the release (IC only); default duration is the plan's hold (15m)",
		RunE: func(cmd *cobra.Command, args []string) error {
			var d time.Duration
			if len(args) > 0 {
				if v, err := time.ParseDuration(args[0]); err == nil {
					if v <= 0 {
						return badInput("hold duration must be positive, got %s", args[0])
					}
					d, args = v, args[1:]
				}
			}
			return g.send(cmd.Context(), release, rollout.Command{Kind: rollout.CmdHold, Duration: d, Reason: strings.Join(args, " ")}, wait)
		},
	}
	commandFlags(c, &release, &wait)
	return c
}

func newHandoverCmd(g *globals) *cobra.Command {
	var release string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "ic <user>",
		Short: "Hand command of the release to another Incident Commander (IC only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.send(cmd.Context(), release, rollout.Command{Kind: rollout.CmdHandover, Target: strings.TrimPrefix(args[0], "@")}, wait)
		},
	}
	commandFlags(c, &release, &wait)
	return c
}

// send queues the command and waits for the running engine to apply it.
func (g *globals) send(ctx context.Context, release string, c rollout.Command, wait time.Duration) error {
	p, err := g.open()
	if err != nil {
		return err
	}
	r, err := p.load(ctx, release)
	if err != nil {
		return err
	}
	c.User = g.who()
	c, err = p.enqueue(ctx, r, c)
	if errors.Is(err, errReleaseEnded) {
		return &exitError{code: exitBadInput, err: err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.out, "queued `%s` for %s as %s; waiting for the engine to apply it…\n", c.String(), r.Version, c.User)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		r, err = p.store.Load(ctx, r.ID)
		if err != nil {
			return err
		}
		for i := len(r.Log) - 1; i >= 0; i-- {
			e := r.Log[i]
			if e.User == c.User && strings.HasPrefix(e.Text, c.String()) && !e.At.Before(c.At.Add(-time.Hour)) && containsID(r.Commands, c.ID) {
				if e.Kind == rollout.LogRefused {
					return badInput("%s", strings.TrimPrefix(e.Text, c.String()+" — "))
				}
				fmt.Fprintf(g.out, "applied: %s is now %s (stage %d, weight %d%%)\n", r.Version, r.Phase, r.CurrentStage(), r.Weight)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("the engine did not apply the command within %s: is `canarybot run` (or the bot) running on %s? The command stays queued", wait, r.Version)
}

// errReleaseEnded is returned for a command to a release that has ended.
var errReleaseEnded = errors.New("the release has ended")

// enqueue queues a command for the engine driving the release, unless the
// release has ended or no engine has been seen lately: a command queued
// with nobody to apply it would fire whenever an engine next starts.
func (p *parts) enqueue(ctx context.Context, r *rollout.Release, c rollout.Command) (rollout.Command, error) {
	if r.Phase.Terminal() {
		return c, fmt.Errorf("%w: release %s is already %s; nothing was queued", errReleaseEnded, r.Version, r.Phase)
	}
	seen, err := p.store.LastHeartbeat(ctx, r.ID)
	if err != nil {
		return c, err
	}
	if age := time.Since(seen); age > engineSilence {
		last := "never"
		if !seen.IsZero() {
			last = age.Round(time.Second).String() + " ago"
		}
		return c, fmt.Errorf("no engine is driving %s (last heartbeat: %s), so nothing would apply `%s`; nothing was queued. Resume the release with `canarybot run %s` on this state file and try again",
			r.Version, last, c.String(), r.Version)
	}
	c.ID, c.At = newID(), time.Now().UTC()
	return c, p.store.Enqueue(ctx, r.ID, c)
}

// engineSilence is how long without a heartbeat before the CLI decides no
// engine is driving the release. A tick's queries or a preflight can keep
// an engine busy for a minute.
const engineSilence = 90 * time.Second

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newRollbackCmd(g *globals) *cobra.Command {
	var reason, stage, release string
	var dryRun bool
	var wait time.Duration
	c := &cobra.Command{
		Use:   "rollback --reason R [--stage S] [--dry-run]",
		Short: "Roll the canary back to weight 0 now (IC only); --dry-run is the runbook's drill",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return badInput("--reason is required, e.g. --reason auto_trigger_eventloop_backpressure")
			}
			if !dryRun {
				return g.send(cmd.Context(), release, rollout.Command{Kind: rollout.CmdRollback, Reason: reason}, wait)
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			version := release
			if version == "" {
				version = "drill"
				if p, err := g.open(); err == nil {
					if r, err := p.load(cmd.Context(), ""); err == nil {
						version = r.Version
					}
				}
			}
			if stage == "" {
				stage = "unspecified"
			}
			text := drill(&cfg.Plan, version, stage, reason, "the configured router", time.Now())
			ev, err := evidence.Open(cfg.EvidenceDir, version)
			if err != nil {
				return err
			}
			if err := ev.Write(cmd.Context(), "rollback_dryrun.txt", text); err != nil {
				return err
			}
			fmt.Fprint(g.out, string(text))
			fmt.Fprintf(g.out, "written: %s\n", filepath.Join(ev.Path(), "rollback_dryrun.txt"))
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&reason, "reason", "", "why (recorded in the evidence)")
	fl.StringVar(&stage, "stage", "", "stage being rolled back, e.g. 25% (informational)")
	fl.BoolVar(&dryRun, "dry-run", false, "the drill: log each step, touch nothing, write rollback_dryrun.txt")
	commandFlags(c, &release, &wait)
	return c
}

func newStatusCmd(g *globals) *cobra.Command {
	var rows int
	c := &cobra.Command{
		Use:   "status [version]",
		Short: "Show where a release is: phase, stage, weight, the last decision and the table's last rows",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.open()
			if err != nil {
				return err
			}
			r, err := p.load(cmd.Context(), firstArg(args))
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "release %s  phase %s", r.Version, r.Phase)
			if r.Phase == rollout.PhaseStage {
				fmt.Fprintf(g.out, "  stage %d/%d", r.Stage+1, len(p.plan.Stages))
			}
			fmt.Fprintf(g.out, "  weight %d%%  IC %s\n", r.Weight, r.IC)
			if r.Last.Kind != "" {
				fmt.Fprintf(g.out, "last decision: %s — %s\n", r.Last.Kind, r.Last.Reason)
			}
			m := rollout.Machine{Plan: p.plan, Render: p.render}
			switch w := m.Next(r); w.Kind {
			case rollout.WaitCommand:
				fmt.Fprintf(g.out, "waiting for %s\n", w.Why)
			case rollout.WaitStep:
				fmt.Fprintf(g.out, "next: step %s at %s\n", w.Step, w.At.UTC().Format(time.RFC3339))
			}
			if !r.HoldUntil.IsZero() {
				fmt.Fprintf(g.out, "holding until %s: %s\n", r.HoldUntil.UTC().Format(time.RFC3339), r.HoldReason)
			}
			for _, s := range r.Steps {
				fmt.Fprintf(g.out, "step %-13s %-8s %s %s\n", s.Name, s.Status, s.By, s.Detail)
			}
			if n := len(r.Rows); n > 0 {
				fmt.Fprintln(g.out, p.render.TableHeader(p.plan))
				for _, row := range r.Rows[max(0, n-rows):] {
					fmt.Fprintln(g.out, p.render.TableRow(p.plan, row))
				}
			}
			return nil
		},
	}
	c.Flags().IntVar(&rows, "rows", 10, "how many of the table's last rows to show")
	return c
}

func newSnapshotCmd(g *globals) *cobra.Command {
	var release string
	c := &cobra.Command{
		Use:   "snapshot <stage-weight>",
		Short: "Write rollout_stage_<weight>.txt from the readings recorded so far (the runbook's snapshot-metrics.sh)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.open()
			if err != nil {
				return err
			}
			r, err := p.load(cmd.Context(), release)
			if err != nil {
				return err
			}
			idx := -1
			for i, s := range p.plan.Stages {
				if fmt.Sprint(s.Weight) == strings.TrimSuffix(args[0], "%") {
					idx = i
				}
			}
			if idx < 0 {
				var ws []string
				for _, s := range p.plan.Stages {
					ws = append(ws, fmt.Sprint(s.Weight))
				}
				return badInput("no stage with weight %s; the plan's stages are %s", args[0], strings.Join(ws, ", "))
			}
			cfg, _ := g.loadConfig()
			ev, err := evidence.Open(cfg.EvidenceDir, r.Version)
			if err != nil {
				return err
			}
			text := p.render.StageReport(p.plan, r, idx)
			name := fmt.Sprintf("rollout_stage_%d.txt", p.plan.Stages[idx].Weight)
			if err := ev.Write(cmd.Context(), name, text); err != nil {
				return err
			}
			fmt.Fprint(g.out, string(text))
			fmt.Fprintf(g.out, "written: %s\n", filepath.Join(ev.Path(), name))
			return nil
		},
	}
	c.Flags().StringVar(&release, "release", "", "release (version) (default: the current one)")
	return c
}

func newOneLinerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "oneliner <version>",
		Short: "Print the release note one-liner and write release_oneliner.txt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.writeFromRelease(cmd.Context(), args[0], "release_oneliner.txt", func(p *parts, r *rollout.Release) []byte {
				return []byte(p.render.OneLiner(p.plan, r) + "\n")
			})
		},
	}
}

func newRCACmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rca <version>",
		Short: "Write mini_rca_<version>.md pre-filled with the release's facts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.writeFromRelease(cmd.Context(), args[0], "mini_rca_"+args[0]+".md", func(p *parts, r *rollout.Release) []byte {
				return p.render.RCA(p.plan, r)
			})
		},
	}
}

func (g *globals) writeFromRelease(ctx context.Context, version, name string, render func(*parts, *rollout.Release) []byte) error {
	p, err := g.open()
	if err != nil {
		return err
	}
	r, err := p.load(ctx, version)
	if err != nil {
		return err
	}
	cfg, _ := g.loadConfig()
	ev, err := evidence.Open(cfg.EvidenceDir, r.Version)
	if err != nil {
		return err
	}
	text := render(p, r)
	if err := ev.Write(ctx, name, text); err != nil {
		return err
	}
	fmt.Fprint(g.out, string(text))
	return nil
}

func newEvidenceCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "evidence", Short: "Verify and check a release's evidence directory"}
	dirOf := func(args []string) (string, error) {
		if len(args) == 1 {
			return args[0], nil
		}
		cfg, err := g.loadConfig()
		if err != nil {
			return "", err
		}
		p, err := g.open()
		if err != nil {
			return "", err
		}
		r, err := p.load(context.Background(), "")
		if err != nil {
			return "", badInput("name the evidence directory, e.g. `canarybot evidence verify evidence/v1.4.0`")
		}
		return filepath.Join(cfg.EvidenceDir, r.Version), nil
	}
	verify := &cobra.Command{
		Use:   "verify [dir]",
		Short: "Detect any edited, deleted, added or reordered evidence file against manifest.json",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := dirOf(args)
			if err != nil {
				return err
			}
			rep, err := evidence.Verify(dir)
			if err != nil {
				if errors.Is(err, evidence.ErrNoManifest) || errors.Is(err, os.ErrNotExist) {
					return badInput("%v", err)
				}
				return err
			}
			fmt.Fprintln(g.out, rep.String())
			if !rep.OK {
				return &exitError{code: exitFailure, err: fmt.Errorf("evidence in %s does not verify: %d problems", dir, len(rep.Problems))}
			}
			return nil
		},
	}
	check := &cobra.Command{
		Use:   "check [dir]",
		Short: "Print evidence completeness as N/M against the runbook's expected list",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := dirOf(args)
			if err != nil {
				return err
			}
			comp, err := evidence.Check(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, comp.String())
			if len(comp.Missing) > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("%d expected evidence files missing", len(comp.Missing))}
			}
			return nil
		},
	}
	c.AddCommand(verify, check, newEvidenceCommitCmd(g))
	return c
}

func newConfigCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Show or validate the configuration"}
	c.AddCommand(&cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (the file merged over the runbook's defaults)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			data, err := config.Marshal(cfg)
			if err != nil {
				return err
			}
			_, err = g.out.Write(data)
			return err
		},
	}, &cobra.Command{
		Use:   "validate [file]",
		Short: "Check a configuration file; every problem is reported with its field, line and what was expected",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.configPath
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				path = config.DefaultFileName
			}
			if _, err := config.Load(path); err != nil {
				return &exitError{code: exitBadInput, err: err}
			}
			fmt.Fprintf(g.out, "%s: ok\n", path)
			return nil
		},
	})
	return c
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print canarybot's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintf(g.out, "canarybot %s\n", version)
		},
	}
}

func firstArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return ""
}
