package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/sbom"
)

// newSBOMCmd groups the SBOM commands; drift is the license drift check
// between two releases' SBOMs.
func newSBOMCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "sbom",
		Short: "SBOM checks: license drift between two releases",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("unknown sbom command %q; see `canarybot sbom --help`", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	c.AddCommand(newSBOMDriftCmd(g))
	return c
}

func newSBOMDriftCmd(g *globals) *cobra.Command {
	var previous, current, exceptions, lgpl string
	c := &cobra.Command{
		Use:   "drift --previous OLD --current NEW",
		Short: "Fail on GPL or AGPL licenses the current SBOM brings in since the previous one",
		Long: `Compares the licenses of two SBOMs (SPDX 2.x or CycloneDX 1.x JSON, told apart
by content). Packages are matched by PURL without version, or by name.
A package fails when it is new, or its license now requires a copyleft family
it did not, and its license requires GPL or AGPL: MIT OR GPL-3.0-only is a
choice and passes; MIT AND GPL-2.0-only fails. Non-SPDX strings such as
GPLv2 are classified by name. Copyleft already in the previous SBOM passes.
LGPL warns by default (--lgpl fail|warn|allow).
An SBOM with packages and no licenses fails: nothing would have been checked.
--exceptions is a YAML list of {package: <key or glob>, license: <id>, reason: <why>}.
Exit 0 no new violation (warnings printed), 1 a new violation or no licenses,
2 bad input.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("drift takes no arguments, got %q; use --previous OLD --current NEW", args)
			}
			if previous == "" || current == "" {
				return badInput("--previous and --current are both required, e.g. `canarybot sbom drift --previous evidence/v1.3.0/sbom_v1.3.0.json --current evidence/v1.4.0/sbom_v1.4.0.json`")
			}
			policy, err := sbom.ParseLGPLPolicy(lgpl)
			if err != nil {
				return badInput("--lgpl: %w", err)
			}
			o := sbom.Options{LGPL: policy}
			if exceptions != "" {
				if o.Exceptions, err = sbom.ReadExceptions(exceptions); err != nil {
					return badInput("--exceptions: %w", err)
				}
			}
			prev, err := sbom.Read(previous)
			if err != nil {
				return badInput("--previous: %w", err)
			}
			cur, err := sbom.Read(current)
			if err != nil {
				return badInput("--current: %w", err)
			}
			r := sbom.Drift(prev, cur, o)
			fmt.Fprint(g.out, r.Text())
			if r.Failed {
				return &exitError{code: exitFailure, err: fmt.Errorf("license drift %s → %s: %s", previous, current, r.Verdict())}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&previous, "previous", "", "the previous release's SBOM (required)")
	fl.StringVar(&current, "current", "", "this release's SBOM (required)")
	fl.StringVar(&exceptions, "exceptions", "", "YAML list of {package, license, reason} exempting reviewed offenders")
	fl.StringVar(&lgpl, "lgpl", string(sbom.LGPLWarn), "what a new LGPL package does: fail, warn or allow")
	return c
}
