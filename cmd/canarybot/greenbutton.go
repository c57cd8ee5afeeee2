package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/greenbutton"
	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/sbom"
	"github.com/canarybot/canarybot/sbom/vuln"
)

// newGreenButtonCmd is the runbook's T-2 green-button ritual from a
// terminal or a CI job: the same gates the engine runs as its green-button
// step, with a line per gate and an exit code naming what failed.
func newGreenButtonCmd(g *globals) *cobra.Command {
	var source, binary, artifactsDir, expectedFile, previous, exceptions, lgpl, keyPath, modCache, vulnDB, vulnFailOn string
	var expect, exclude []string
	var requireKey bool
	c := &cobra.Command{
		Use:   "green-button <version> --expect FILE... [--artifacts-dir DIR] [--previous-sbom OLD] [--vuln-db DIR] [--key key.pem]",
		Short: "T-2 green button: tag seal, SBOMs, signed provenance, license drift, vulnerability scan, artifact count, signed go/no-go record",
		Long: `Runs, in order, each gate of the runbook's green-button ritual and writes
its evidence into the release's evidence directory (every file goes into the
manifest):
  release_tag     the tag <version> exists and the --source checkout is at it   release_tag.txt
  sbom            syft SBOM of --source (and --binary): SPDX and CycloneDX;     sbom_<version>.json
                  Go licenses from the module cache; none found fails           sbom_<version>.cdx.json
  provenance      SLSA v1 provenance of the expected artifacts, DSSE-signed     build_provenance_<version>.json (+ .pub.pem)
  license_drift   new GPL/AGPL since --previous-sbom (none given: any fails)    license_drift_<version>.txt
  vulnerabilities grype scan of the SPDX SBOM against --vuln-db, failing on     vulnerabilities_<version>.txt
                  --vuln-fail-on or worse; no --vuln-db: SKIPPED (not a pass,
                  not a NO-GO; the record says the release was not scanned)
  artifact_count  N/M of the --expect / --expected files in --artifacts-dir     artifact_count.txt
then the go/no-go record: decision, who (--as), when, each gate's result and
the sha256 of every file above, signed with the provenance's key as a DSSE
envelope beside it:                                                          go_nogo_signed_<version>.txt (+ .sig)
Every gate runs even after one fails, so the record is complete; the
decision is GO only when all passed (a skipped vulnerability scan aside).

--vuln-db is a grype database directory already on disk (nothing is
downloaded): the directory holding 6/vulnerability.db, as
` + "`GRYPE_DB_CACHE_DIR=DIR grype db update`" + ` leaves it. A missing, tampered or
more than 5 days old database fails the gate.

The key is an ed25519 or ECDSA P-256 private key in PEM, from --key or as PEM
text in $` + provenance.KeyEnv + `; without one an ephemeral key signs and
everything says UNATTESTED (--require-key makes that a failed gate).
Check the record with the public key you trust:
  canarybot verify go_nogo_signed_<version>.txt.sig --key pub.pem --artifact go_nogo_signed_<version>.txt
What the flags leave out comes from canary.yaml's green_button section
(expected_artifacts, artifacts_dir, previous_sbom, exceptions, lgpl,
vuln_db, vuln_fail_on, require_key, key_env).
Exit 0 GO, 1 NO-GO (the message names the failed gates), 2 bad input.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("green-button takes one <version>, got %d arguments, e.g. `canarybot green-button v1.4.0 --expect canarybot-linux-amd64`", len(args))
			}
			release := args[0]
			// canary.yaml's green_button section fills what the flags leave out.
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			gbc := cfg.GreenButton
			fl := cmd.Flags()
			if expectedFile != "" {
				names, err := readExpected(expectedFile)
				if err != nil {
					return badInput("--expected: %v", err)
				}
				expect = append(expect, names...)
			}
			if len(expect) == 0 {
				expect = gbc.ExpectedArtifacts
			}
			if len(expect) == 0 {
				return badInput("name the release's artifacts with --expect NAME (repeatable), --expected FILE (one name a line) or green_button.expected_artifacts in canary.yaml: artifact completeness and the provenance need them")
			}
			if artifactsDir == "" {
				artifactsDir = gbc.ArtifactsDir
			}
			if previous == "" {
				previous = gbc.PreviousSBOM
			}
			if exceptions == "" {
				exceptions = gbc.Exceptions
			}
			if !fl.Changed("lgpl") {
				lgpl = gbc.LGPL
			}
			if !fl.Changed("require-key") {
				requireKey = gbc.RequireKey
			}
			if vulnDB == "" {
				vulnDB = gbc.VulnDB
			}
			if !fl.Changed("vuln-fail-on") {
				vulnFailOn = gbc.VulnFailOn
			}
			failOn, err := vuln.ParseSeverity(vulnFailOn)
			if err != nil {
				return badInput("--vuln-fail-on: %w", err)
			}
			if vulnDB != "" {
				// As with --previous-sbom: a typo would be found only after
				// the SBOM and the provenance were made.
				if _, err := os.Stat(vulnDB); err != nil {
					return badInput("--vuln-db: %v; give the grype database directory (the one holding %s/vulnerability.db)", err, vuln.SchemaDir)
				}
			}
			policy, err := sbom.ParseLGPLPolicy(lgpl)
			if err != nil {
				return badInput("--lgpl: %w", err)
			}
			var excs []sbom.Exception
			if exceptions != "" {
				if excs, err = sbom.ReadExceptions(exceptions); err != nil {
					return badInput("--exceptions: %w", err)
				}
			}
			if previous != "" {
				// A typo here would silently turn drift into a check against
				// nothing; refuse it before anything runs.
				if _, err := os.Stat(previous); err != nil {
					return badInput("--previous-sbom: %v", err)
				}
			}
			if source == "" {
				source = "."
			}
			if fi, err := os.Stat(source); err != nil || !fi.IsDir() {
				return badInput("--source %s is not a directory: give the release's git checkout", source)
			}
			var key *provenance.Key
			if keyPath != "" {
				key, err = provenance.LoadSigningKey(keyPath, nil)
			} else {
				key, err = signingKeyFromEnv(gbc.KeyEnv, os.Getenv)
			}
			if err != nil {
				return badInput("%v", err)
			}
			ev, err := g.evidenceFor(release)
			if err != nil {
				return err
			}
			// The evidence root under another name than evidence/ would
			// otherwise be cataloged: earlier releases' files are not shipped.
			if rel, ok := inside(source, cfg.EvidenceDir); ok {
				exclude = append(exclude, "./"+filepath.ToSlash(rel))
			}
			tty := isTerminal(g.out)
			gb := &greenbutton.GreenButton{
				Source: source, Binary: binary, ArtifactsDir: artifactsDir, Expected: expect,
				Exclude: exclude, ModCacheDir: modCache, PreviousSBOM: previous,
				Exceptions: excs, LGPL: policy, VulnDB: vulnDB, VulnFailOn: failOn, Key: key, RequireKey: requireKey,
				Evidence: ev, Who: g.who(), ToolVersion: version,
				OnStart: func(step greenbutton.Step, i, n int) {
					if tty {
						fmt.Fprintf(g.out, "[%d/%d] %s …", i, n, step)
					}
				},
				OnDone: func(r greenbutton.StepResult) {
					if tty {
						// Replace the progress line with the result.
						fmt.Fprint(g.out, "\r\033[K")
					}
					mark := "✔"
					switch r.Status {
					case rollout.GatePassed:
					case rollout.GateSkipped:
						mark = "–"
					default:
						mark = "✘"
					}
					fmt.Fprintf(g.out, "%s %s\n", mark, r.Line())
				},
			}
			out, err := gb.Ritual(cmd.Context(), release)
			if errors.Is(err, greenbutton.ErrBadArtifactName) {
				return badInput("%v", err)
			}
			if err != nil {
				return err
			}
			for _, s := range out.Skipped() {
				fmt.Fprintf(g.out, "SKIPPED: %s\n", s)
			}
			if out.Ephemeral {
				fmt.Fprintf(g.out, "UNATTESTED: signed with an ephemeral key (%s) generated for this run; anyone could have made this record. Pass --key or set $%s to attest it.\n", out.KeyID, provenance.KeyEnv)
			}
			fmt.Fprintf(g.out, "decision: %s (%s), recorded by %s\nwritten:  %s\n          %s\n", out.Decision(), out.Summary(), g.who(),
				filepath.Join(ev.Path(), provenance.RecordName(release)),
				filepath.Join(ev.Path(), provenance.RecordSignatureName(release)))
			if !out.Passed() {
				return &exitError{code: exitFailure, err: fmt.Errorf("green button for %s: NO-GO: %s", release, strings.Join(out.Failures(), "; "))}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringArrayVar(&expect, "expect", nil, "a release artifact expected in --artifacts-dir, repeatable")
	fl.StringVar(&expectedFile, "expected", "", "file listing the expected artifacts, one name a line (# comments)")
	fl.StringVar(&artifactsDir, "artifacts-dir", "", "where the release artifacts are (default <source>/dist)")
	fl.StringVar(&source, "source", ".", "the release's git checkout: tag seal, SBOM and provenance source")
	fl.StringVar(&binary, "binary", "", "a built binary whose packages the SBOM adds")
	fl.StringArrayVar(&exclude, "exclude", nil, "SBOM exclusion (./path or **/name) besides the defaults, repeatable")
	fl.StringVar(&modCache, "modcache", "", "Go module cache for licenses (default $GOMODCACHE, $GOPATH/pkg/mod, ~/go/pkg/mod)")
	fl.StringVar(&previous, "previous-sbom", "", "the previous release's SBOM for the license drift gate")
	fl.StringVar(&exceptions, "exceptions", "", "YAML list of {package, license, reason} exempting reviewed licenses")
	fl.StringVar(&lgpl, "lgpl", string(sbom.LGPLWarn), "what a new LGPL package does: fail, warn or allow")
	fl.StringVar(&keyPath, "key", "", "PEM private key, ed25519 or ECDSA P-256 (default: the PEM text in the variable green_button.key_env names, $"+provenance.KeyEnv+"; else an ephemeral key: unattested)")
	fl.StringVar(&vulnDB, "vuln-db", "", "grype vulnerability database directory for the vulnerability gate (none: the scan is skipped, and the record says so)")
	fl.StringVar(&vulnFailOn, "vuln-fail-on", "high", "the vulnerability gate fails on a finding this severe or worse: negligible, low, medium, high, critical, or none (report only)")
	fl.BoolVar(&requireKey, "require-key", false, "fail the provenance gate rather than sign with an ephemeral key")
	return c
}

// vulnThreshold is green_button.vuln_fail_on as the gate takes it.
// config.Validate admits only names vuln.ParseSeverity reads; should
// another get here, the strictest threshold keeps a typo from passing a
// release.
func vulnThreshold(name string) vuln.Severity {
	s, err := vuln.ParseSeverity(name)
	if err != nil {
		return vuln.Negligible
	}
	return s
}

// verifyRecord is `canarybot verify` for a signed go/no-go record: the
// signature, the payload type and, with --artifact, that the record file is
// exactly the signed text. verify.go hands it envelopes whose payload type
// is provenance.RecordPayloadType.
func verifyRecord(ctx context.Context, g *globals, envPath, keyPath string, envelope, pub []byte, artifacts []string) error {
	if len(artifacts) > 1 {
		return badInput("a go/no-go signature covers one file: pass --artifact go_nogo_signed_<version>.txt once, got %d", len(artifacts))
	}
	var record []byte
	if len(artifacts) == 1 {
		var err error
		if record, err = os.ReadFile(artifacts[0]); err != nil {
			return badInput("%v", err)
		}
	}
	rep, err := provenance.VerifyRecord(ctx, envelope, pub, record)
	switch {
	case errors.Is(err, provenance.ErrBadKey):
		return badInput("--key %s: %v", keyPath, err)
	case errors.Is(err, provenance.ErrNotEnvelope):
		return badInput("%s: %v", envPath, err)
	case errors.Is(err, provenance.ErrRecordMismatch):
		return &exitError{code: exitFailure, err: fmt.Errorf("%s NOT verified: %s: %w", envPath, artifacts[0], err)}
	case err != nil:
		return &exitError{code: exitFailure, err: fmt.Errorf("%s NOT verified: %w", envPath, err)}
	}
	fmt.Fprintf(g.out, "signature:    ok (key %s)\n", rep.KeyID)
	fmt.Fprintf(g.out, "payload type: ok (%s, a go/no-go record)\n", provenance.RecordPayloadType)
	if rep.Compared {
		fmt.Fprintf(g.out, "record:       ok %s is the signed text\n", artifacts[0])
	} else {
		fmt.Fprintln(g.out, "record:       file NOT compared (pass --artifact go_nogo_signed_<version>.txt)")
	}
	for _, line := range strings.Split(string(rep.Record), "\n") {
		if strings.HasPrefix(line, "decision:") || strings.HasPrefix(line, "by:") || strings.HasPrefix(line, "at:") {
			fmt.Fprintf(g.out, "signed %s\n", line)
		}
	}
	fmt.Fprintf(g.out, "verified: %s\n", envPath)
	return nil
}

// readExpected reads one artifact name a line; blank lines and # comments
// are skipped.
func readExpected(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no artifact: list the release's files, one a line", path)
	}
	return out, sc.Err()
}

// inside reports whether dir lies within root, and its path relative to it.
func inside(root, dir string) (string, bool) {
	r, err1 := filepath.Abs(root)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return "", false
	}
	rel, err := filepath.Rel(r, d)
	if err != nil || rel == "." || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

// isTerminal is true when w is a character device: progress lines that
// rewrite themselves only make sense there, not in a log.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
