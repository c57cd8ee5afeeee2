package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/forge"
)

// freezeOpts are the flags of `canarybot freeze`.
type freezeOpts struct {
	progress      string
	label         string
	targetURL     string
	writeInterval time.Duration
}

func newFreezeCmd(g *globals) *cobra.Command {
	o := &freezeOpts{}
	c := &cobra.Command{
		Use:   "freeze",
		Short: "Freeze merges for a release (label and failing status on every open PR) and lift the freeze",
		Long: `freeze blocks merges from T-30 to T+24h as the runbook asks: every open PR gets the
hold-for-canary label and a failing canary/freeze commit status, which blocks the merge once
branch protection requires the canary/freeze check. lift removes the labels the freeze added
(a label a person put on stays) and turns the statuses to success.

GitHub is reached as Actions sets it up: GITHUB_TOKEN, or a GitHub App (GITHUB_APP_ID,
GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE, GITHUB_INSTALLATION_ID);
GITHUB_REPOSITORY=owner/name; GITHUB_API_URL for GitHub Enterprise.

Progress is saved after every change, so an interrupted start or lift carries on where it
stopped when run again, without repeating a call.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("unknown freeze command %q; use start <version>, lift or status", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	pf := c.PersistentFlags()
	pf.StringVar(&o.progress, "progress", "", "freeze progress file (default: canarybot-freeze.json beside the state file)")
	pf.StringVar(&o.label, "label", forge.DefaultFreezeLabel, "label put on the frozen PRs")
	pf.StringVar(&o.targetURL, "target-url", "", "link of the failing status (default: the Actions run when GITHUB_RUN_ID is set, else the PR)")
	pf.DurationVar(&o.writeInterval, "write-interval", time.Second, "least time between two content-creating GitHub calls (GitHub asks for about one a second)")

	start := &cobra.Command{
		Use:   "start <version>",
		Short: "Label every open PR and set a failing canary/freeze status on its head",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ev, err := g.evidenceFor(args[0])
			if err != nil {
				return err
			}
			f, err := o.freeze(g)
			if err != nil {
				return err
			}
			sum, err := f.Start(cmd.Context(), args[0])
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
			f, err := o.freeze(g)
			if err != nil {
				return err
			}
			sum, err := f.Lift(cmd.Context())
			if errors.Is(err, forge.ErrNotFrozen) {
				return badInput("%v (progress file %s)", err, o.progress)
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
			if err := o.resolveProgress(g); err != nil {
				return err
			}
			// No GitHub call: the recorded progress is the answer.
			sum, err := (&forge.Freeze{Progress: forge.FileProgress{Path: o.progress}}).Status(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, sum.Line())
			return nil
		},
	}
	c.AddCommand(start, lift, status)
	return c
}

func (o *freezeOpts) resolveProgress(g *globals) error {
	if o.progress != "" {
		return nil
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	o.progress = filepath.Join(filepath.Dir(cfg.StatePath), "canarybot-freeze.json")
	return nil
}

func (o *freezeOpts) freeze(g *globals) (*forge.Freeze, error) {
	if err := o.resolveProgress(g); err != nil {
		return nil, err
	}
	if o.writeInterval < 0 {
		return nil, badInput("--write-interval %s is negative", o.writeInterval)
	}
	cfg, err := forge.ConfigFromEnv(os.LookupEnv)
	if errors.Is(err, forge.ErrMissingSetting) || errors.Is(err, forge.ErrInvalidSetting) {
		return nil, badInput("%v", err)
	}
	if err != nil {
		return nil, err
	}
	topts := forge.DefaultTransportOptions()
	topts.WriteInterval = o.writeInterval
	topts.Log = g.logger()
	client, err := forge.NewClient(cfg, nil, topts)
	if err != nil {
		return nil, badInput("%v", err)
	}
	target := o.targetURL
	if target == "" {
		if run := os.Getenv("GITHUB_RUN_ID"); run != "" {
			server := os.Getenv("GITHUB_SERVER_URL")
			if server == "" {
				server = "https://github.com"
			}
			target = fmt.Sprintf("%s/%s/%s/actions/runs/%s", server, cfg.Owner, cfg.Repo, run)
		}
	}
	return &forge.Freeze{
		Client: client, Owner: cfg.Owner, Repo: cfg.Repo,
		Label: o.label, TargetURL: target,
		Progress: forge.FileProgress{Path: o.progress},
	}, nil
}
