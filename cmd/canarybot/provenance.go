package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/provenance"
)

// newProvenanceCmd writes the release's signed build provenance into its
// evidence directory: the runbook's build_provenance_<version>.json.
func newProvenanceCmd(g *globals) *cobra.Command {
	var keyPath, sourceDir string
	var artifacts []string
	c := &cobra.Command{
		Use:   "provenance <version> --artifact FILE... [--key key.pem]",
		Short: "Signed SLSA v1 build provenance of the release artifacts; writes build_provenance_<version>.json",
		Long: `Builds an in-toto Statement v1 with a SLSA Provenance v1 predicate whose
subjects are the --artifact files (name and sha256), and signs it as a DSSE
envelope. Builder, invocation and source come from the GitHub Actions
environment when GITHUB_ACTIONS=true, otherwise from the git checkout at
--source (default: the working directory).

The signing key is an ed25519 or ECDSA P-256 private key in PEM (PKCS8),
from --key or as PEM text in $` + provenance.KeyEnv + `. Without one, an
ephemeral key is generated for this run: the provenance is then UNATTESTED,
anyone could have made it. The public half is written beside the envelope as
build_provenance_<version>.pub.pem; verify with the public key you trust,
not with that copy.
Exit 0 written, 1 failed, 2 bad input.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("provenance takes one <version>, got %d arguments, e.g. `canarybot provenance v1.4.0 --artifact dist/canarybot-linux-amd64`", len(args))
			}
			version := args[0]
			if len(artifacts) == 0 {
				return badInput("--artifact is required: each release file to attest, e.g. --artifact dist/canarybot-linux-amd64 --artifact dist/checksums.txt")
			}
			key, err := provenance.LoadSigningKey(keyPath, os.Getenv)
			if err != nil {
				// The error names the file or variable and what is wrong, never the key.
				return badInput("%v", err)
			}
			res, err := provenance.Generate(cmd.Context(), provenance.Options{
				Version: version, Artifacts: artifacts, Getenv: os.Getenv, Dir: sourceDir,
			}, key)
			switch {
			case errors.Is(err, fs.ErrNotExist), errors.Is(err, provenance.ErrNoArtifacts),
				errors.Is(err, provenance.ErrDuplicateSubject), errors.Is(err, provenance.ErrNotGitRepo),
				errors.Is(err, provenance.ErrGitHubEnv):
				return badInput("%v", err)
			case err != nil:
				return err
			}
			ev, err := g.evidenceFor(version)
			if err != nil {
				return err
			}
			// The public half is written even for a real key: a stale
			// ephemeral one left beside the envelope would otherwise mislead.
			for _, f := range []struct {
				name string
				data []byte
			}{
				{provenance.EnvelopeName(version), res.Envelope},
				{provenance.PublicKeyName(version), res.PublicPEM},
			} {
				if err := ev.Write(cmd.Context(), f.name, f.data); err != nil {
					return err
				}
			}
			fmt.Fprintf(g.out, "build type: %s\nbuilder:    %s\n", res.BuildType, res.BuilderID)
			for _, s := range res.Subjects {
				fmt.Fprintf(g.out, "subject:    %s sha256:%s\n", s.Name, s.SHA256)
			}
			if res.Ephemeral {
				fmt.Fprintf(g.out, "UNATTESTED: signed with an ephemeral key (%s) generated for this run; anyone could have made this provenance. Pass --key or set $%s to attest it.\n", res.KeyID, provenance.KeyEnv)
			} else {
				fmt.Fprintf(g.out, "attested:   signed with key %s\n", res.KeyID)
			}
			fmt.Fprintf(g.out, "written:    %s\n            %s\n",
				filepath.Join(ev.Path(), provenance.EnvelopeName(version)),
				filepath.Join(ev.Path(), provenance.PublicKeyName(version)))
			return nil
		},
	}
	fl := c.Flags()
	fl.StringArrayVar(&artifacts, "artifact", nil, "a release file to attest, repeatable (required)")
	fl.StringVar(&keyPath, "key", "", "PEM private key, ed25519 or ECDSA P-256 (default $"+provenance.KeyEnv+" as PEM text; else an ephemeral key: unattested)")
	fl.StringVar(&sourceDir, "source", "", "git checkout the artifacts were built from, outside GitHub Actions (default: working directory)")
	return c
}
