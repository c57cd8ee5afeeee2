package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/sbom"
)

// newSBOMCmd groups the SBOM commands: generate makes a release's SBOM,
// drift is the license drift check between two releases' SBOMs.
func newSBOMCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "sbom",
		Short: "SBOMs: generate a release's, check license drift between two releases, scan for known vulnerabilities",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("unknown sbom command %q; see `canarybot sbom --help`", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	c.AddCommand(newSBOMGenerateCmd(g), newSBOMDriftCmd(g), newSBOMScanCmd(g))
	return c
}

func newSBOMGenerateCmd(g *globals) *cobra.Command {
	var dir, binary, output, modCache string
	var exclude []string
	var noDefaults bool
	c := &cobra.Command{
		Use:   "generate <version> [--dir .] [--binary FILE] [--output DIR]",
		Short: "SBOM of a source directory and/or a built binary: sbom_<version>.json (SPDX) and sbom_<version>.cdx.json (CycloneDX)",
		Long: `Catalogs --dir (default the working directory) and/or --binary with syft
(linked in, no syft binary needed) and writes SPDX 2.3 JSON as
sbom_<version>.json and CycloneDX JSON as sbom_<version>.cdx.json into
the release's evidence directory (added to its manifest), or into --output
as plain files.
Excluded from --dir: ` + fmt.Sprint(sbom.DefaultExcludes()) + `
and each --exclude (./path from the top, or **/name at any depth).
Go module licenses are read from the module cache only (--modcache, default
$GOMODCACHE, $GOPATH/pkg/mod, ~/go/pkg/mod): no go tool run, no network.
Run ` + "`go mod download`" + ` first. License coverage is printed; an SBOM with no
license at all fails and is not written.
Exit 0 written, 1 no packages or no licenses, 2 bad input.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("generate takes one <version>, got %d arguments, e.g. `canarybot sbom generate v1.4.0 --dir .`", len(args))
			}
			release := args[0]
			if dir == "" && binary == "" {
				dir = "."
			}
			res, err := sbom.Generate(cmd.Context(), sbom.GenerateOptions{
				Dir: dir, Binary: binary, Exclude: exclude, NoDefaultExcludes: noDefaults,
				ModCacheDir: modCache, Name: filepath.Base(absPath(dir, binary)), Version: release, ToolVersion: version,
			})
			switch {
			case errors.Is(err, sbom.ErrBadExclude), errors.Is(err, fs.ErrNotExist):
				return badInput("%v", err)
			case errors.Is(err, sbom.ErrNoLicenses), errors.Is(err, sbom.ErrNoPackages):
				fmt.Fprintf(g.out, "license coverage: %s\n", res.Coverage())
				return &exitError{code: exitFailure, err: fmt.Errorf("SBOM not written: %w", err)}
			case err != nil:
				return err
			}
			files := []struct {
				name string
				data []byte
			}{{sbom.SPDXName(release), res.SPDX}, {sbom.CycloneDXName(release), res.CycloneDX}}
			var where string
			if output != "" {
				if err := os.MkdirAll(output, 0o755); err != nil {
					return err
				}
				for _, f := range files {
					if err := os.WriteFile(filepath.Join(output, f.name), f.data, 0o644); err != nil {
						return err
					}
				}
				where = output
			} else {
				ev, err := g.evidenceFor(release)
				if err != nil {
					return err
				}
				for _, f := range files {
					if err := ev.Write(cmd.Context(), f.name, f.data); err != nil {
						return err
					}
				}
				where = ev.Path()
			}
			fmt.Fprintf(g.out, "license coverage: %s (module cache %s)\n", res.Coverage(), res.ModCacheDir)
			if n := len(res.Unlicensed); n > 0 {
				show := res.Unlicensed[:min(n, 10)]
				fmt.Fprintf(g.out, "without a license: %v", show)
				if n > len(show) {
					fmt.Fprintf(g.out, " and %d more", n-len(show))
				}
				fmt.Fprintln(g.out)
			}
			for _, f := range files {
				fmt.Fprintf(g.out, "written: %s\n", filepath.Join(where, f.name))
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&dir, "dir", "", "source directory to catalog (default . when --binary is not given)")
	fl.StringVar(&binary, "binary", "", "a built binary to catalog")
	fl.StringArrayVar(&exclude, "exclude", nil, "exclusion besides the defaults: ./path or **/name, repeatable")
	fl.BoolVar(&noDefaults, "no-default-excludes", false, "catalog test fixtures, build outputs and evidence too")
	fl.StringVar(&modCache, "modcache", "", "Go module cache to read licenses from")
	fl.StringVar(&output, "output", "", "write the two files into this directory instead of the evidence")
	return c
}

// absPath names what the SBOM is of: the directory, else the binary.
func absPath(dir, binary string) string {
	p := dir
	if p == "" {
		p = binary
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
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
