// Command canarybot runs a canary release as an experiment: hypothesis,
// measurement, evidence, rollback. See the README for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/rollout"
)

// Exit codes, as documented in the README.
const (
	exitComplete   = 0
	exitFailure    = 1
	exitBadInput   = 2
	exitRolledBack = 3
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries the process exit code with the error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func badInput(format string, args ...any) error {
	return &exitError{code: exitBadInput, err: fmt.Errorf(format, args...)}
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitComplete
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, config.ErrInvalid):
		return exitBadInput
	}
	return exitFailure
}

// releaseExit is the exit code a finished release stands for.
func releaseExit(r *rollout.Release) error {
	switch r.Phase {
	case rollout.PhaseComplete:
		return nil
	case rollout.PhaseRolledBack:
		return &exitError{code: exitRolledBack, err: fmt.Errorf("release %s rolled back: %s", r.Version, r.Rollback.Reason)}
	case rollout.PhaseAborted:
		return &exitError{code: exitFailure, err: fmt.Errorf("release %s aborted: %s", r.Version, r.AbortReason)}
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("release %s stopped in phase %s", r.Version, r.Phase)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "canarybot:", err)
	}
	os.Exit(exitCode(err))
}

// globals are the flags every command shares.
type globals struct {
	configPath  string
	evidenceDir string
	statePath   string
	user        string
	logLevel    string
	// kube is the cluster of --kubeconfig, --namespace and
	// --state-configmap.
	kube        kubeTarget
	out, errOut io.Writer
}

func newRoot(out, errOut io.Writer) *cobra.Command {
	g := &globals{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "canarybot",
		Short:         "Run a canary release scientifically: hypothesis, measurement, evidence, rollback",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("unknown command %q; see `canarybot --help` for the commands", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitBadInput, err: fmt.Errorf("%w\nsee `%s --help`", err, c.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "canary.yaml to use (default: ./canary.yaml if present, else the runbook's defaults)")
	pf.StringVar(&g.evidenceDir, "evidence-dir", "", "evidence root; a release writes to <dir>/<version>/ (default from config: evidence)")
	pf.StringVar(&g.statePath, "state", "", "state file (default from config: canarybot.db)")
	pf.StringVar(&g.user, "as", "", "who is acting, for the war-room log and the IC checks (default: $USER)")
	pf.StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	g.kube.addFlags(pf)
	root.AddCommand(
		newDemoCmd(g), newRunCmd(g), newStatusCmd(g), newSnapshotCmd(g),
		newCommandCmd(g, rollout.CmdPromote, "promote", "Promote to the next stage (IC only; only on Proceed)"),
		newHoldCmd(g),
		newCommandCmd(g, rollout.CmdResume, "resume", "End a hold (IC only)"),
		newCommandCmd(g, rollout.CmdGo, "go", "Record the IC's GO at go/no-go; stage 1 starts at T-0"),
		newCommandCmd(g, rollout.CmdReview, "review [note]", "Record the red-team review as done (T-5)"),
		newCommandCmd(g, rollout.CmdAbort, "abort <reason>", "NO-GO: stop the release before traffic moves (IC only)"),
		newHandoverCmd(g),
		newRollbackCmd(g), newBlastCmd(g), newReadyCmd(g), newDiagnoseCmd(g), newGreenButtonCmd(g), newReleaseCmd(g), newPreflightCmd(g), newBatteryCmd(g), newSBOMCmd(g), newServeCmd(g), newFreezeCmd(g), newProvenanceCmd(g), newVerifyCmd(g), newOneLinerCmd(g), newRCACmd(g), newEvidenceCmd(g), newConfigCmd(g), newVersionCmd(g),
	)
	return root
}

func (g *globals) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(g.errOut, &slog.HandlerOptions{Level: level}))
}

func (g *globals) who() string {
	if g.user != "" {
		return g.user
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "operator"
}

// loadConfig reads the config the flags name, then applies the flags that
// override it. A missing ./canary.yaml means the defaults; a missing file
// named with --config is an error.
func (g *globals) loadConfig() (config.Config, error) {
	path := g.configPath
	if path == "" {
		if _, err := os.Stat(config.DefaultFileName); err == nil {
			path = config.DefaultFileName
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return cfg, &exitError{code: exitBadInput, err: err}
	}
	if g.evidenceDir != "" {
		cfg.EvidenceDir = g.evidenceDir
	}
	if g.statePath != "" {
		cfg.StatePath = g.statePath
	}
	return cfg, nil
}
