package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/sbom"
	"github.com/canarybot/canarybot/sbom/vuln"
)

// grypeDBEnv is grype's own variable for its database directory, so a
// machine set up for the grype CLI needs no --db.
const grypeDBEnv = "GRYPE_DB_CACHE_DIR"

// newSBOMScanCmd scans a release's SBOM for known vulnerabilities with the
// grype library against a database already on disk.
func newSBOMScanCmd(g *globals) *cobra.Command {
	var dbPath, failOn, sbomPath, output string
	var maxAge time.Duration
	c := &cobra.Command{
		Use:   "scan <version> --db DIR [--fail-on high] [--sbom FILE]",
		Short: "Scan a release's SBOM for known vulnerabilities (grype, local database only); writes vulnerabilities_<version>.txt",
		Long: `Matches the packages of the release's SBOM (default sbom_<version>.json in its
evidence directory, as ` + "`canarybot sbom generate`" + ` writes it; --sbom for another
SPDX, CycloneDX or syft JSON file) against a grype vulnerability database on
disk, with grype linked in (no grype binary needed).

Nothing is downloaded. --db (default $` + grypeDBEnv + `) is the database
directory: the one holding 6/vulnerability.db, as grype leaves it. To get
one on a machine without network, run elsewhere
  GRYPE_DB_CACHE_DIR=/tmp/grype-db grype db update
(grype v0.121.x, schema v6) and copy /tmp/grype-db over. The database's
recorded checksum is verified, and one built more than --max-db-age ago is
refused (0 accepts any age).

Every finding is listed with package, version, advisory, severity and the
versions that fix it; the scan fails when one is at or above --fail-on
(negligible, low, medium, high, critical, or none to only report). Findings
of unknown severity are listed and never fail the scan.
The report is written as vulnerabilities_<version>.txt into the evidence
(added to its manifest), or into --output as a plain file.
Exit 0 passed, 1 a finding at or above --fail-on, an unusable or stale
database, or an SBOM without packages; 2 bad input.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("scan takes one <version>, got %d arguments, e.g. `canarybot sbom scan v1.4.0 --db /var/lib/grype-db`", len(args))
			}
			release := args[0]
			threshold, err := vuln.ParseSeverity(failOn)
			if err != nil {
				return badInput("--fail-on: %v", err)
			}
			if dbPath == "" {
				dbPath = os.Getenv(grypeDBEnv)
			}
			o := vuln.Options{DBPath: dbPath, FailOn: threshold, MaxDBAge: maxAge}
			if maxAge <= 0 {
				o.MaxDBAge = -1
			}

			var write func(name string, data []byte) (string, error)
			if output != "" {
				write = func(name string, data []byte) (string, error) {
					if err := os.MkdirAll(output, 0o755); err != nil {
						return "", err
					}
					p := filepath.Join(output, name)
					return p, os.WriteFile(p, data, 0o644)
				}
			}
			if sbomPath == "" || write == nil {
				ev, err := g.evidenceFor(release)
				if err != nil {
					return err
				}
				if sbomPath == "" {
					sbomPath = filepath.Join(ev.Path(), sbom.SPDXName(release))
				}
				if write == nil {
					write = func(name string, data []byte) (string, error) {
						return filepath.Join(ev.Path(), name), ev.Write(cmd.Context(), name, data)
					}
				}
			}
			doc, err := os.ReadFile(sbomPath)
			if errors.Is(err, fs.ErrNotExist) {
				return badInput("no SBOM at %s: run `canarybot sbom generate %s` first, or name one with --sbom", sbomPath, release)
			} else if err != nil {
				return badInput("reading the SBOM: %v", err)
			}

			rep, err := vuln.Scan(cmd.Context(), doc, o)
			switch {
			case errors.Is(err, vuln.ErrNoDB), errors.Is(err, vuln.ErrBadSBOM):
				return badInput("%v", err)
			case errors.Is(err, vuln.ErrStaleDB), errors.Is(err, vuln.ErrBadDB), errors.Is(err, vuln.ErrNoPackages):
				return &exitError{code: exitFailure, err: fmt.Errorf("vulnerability scan of %s not done: %w", sbomPath, err)}
			case err != nil:
				return err
			}
			text := rep.Text()
			fmt.Fprint(g.out, text)
			where, err := write(vuln.EvidenceName(release), []byte(text))
			if err != nil {
				return fmt.Errorf("writing %s: %w", vuln.EvidenceName(release), err)
			}
			fmt.Fprintf(g.out, "written: %s\n", where)
			if rep.Failed {
				return &exitError{code: exitFailure, err: fmt.Errorf("vulnerability scan of %s: %s", sbomPath, rep.Verdict())}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&dbPath, "db", "", "grype database directory, holding 6/vulnerability.db (default $"+grypeDBEnv+")")
	fl.StringVar(&failOn, "fail-on", "high", "fail at or above this severity: negligible, low, medium, high, critical, or none")
	fl.StringVar(&sbomPath, "sbom", "", "SBOM to scan (default sbom_<version>.json in the release's evidence)")
	fl.DurationVar(&maxAge, "max-db-age", vuln.DefaultMaxDBAge, "refuse a database built longer ago; 0 accepts any age")
	fl.StringVar(&output, "output", "", "write the report into this directory instead of the evidence")
	return c
}
