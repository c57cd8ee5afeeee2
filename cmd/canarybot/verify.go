package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/provenance"
)

// newVerifyCmd checks a signed provenance and, optionally, the artifacts it
// names: what anyone holding the public key can do without canarybot's state.
func newVerifyCmd(g *globals) *cobra.Command {
	var keyPath string
	var artifacts []string
	c := &cobra.Command{
		Use:   "verify <envelope> --key pub.pem [--artifact FILE...]",
		Short: "Verify a signed build provenance (build_provenance_<version>.json) and the artifacts' digests",
		Long: `Checks the DSSE envelope's signature with the public key, its payload type,
that the payload is an in-toto Statement v1 with a valid SLSA Provenance v1
predicate, and that each --artifact's sha256 matches the subject of the same
file name. Without --artifact only the envelope is checked, and it says so.
A signed go/no-go record (go_nogo_signed_<version>.txt.sig) is checked the
same way: signature, payload type, and with --artifact go_nogo_signed_<version>.txt
that the file is exactly the signed text.
Exit 0 verified, 1 not verified (the message says which check failed), 2 bad input.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("verify takes one <envelope>, got %d arguments, e.g. `canarybot verify evidence/v1.4.0/build_provenance_v1.4.0.json --key release.pub.pem`", len(args))
			}
			if keyPath == "" {
				return badInput("--key is required: the PEM public key the provenance should be signed with")
			}
			envelope, err := os.ReadFile(args[0])
			if err != nil {
				return badInput("envelope: %v", err)
			}
			pub, err := os.ReadFile(keyPath)
			if err != nil {
				return badInput("--key: %v", err)
			}
			if pt, err := provenance.EnvelopePayloadType(envelope); err == nil && pt == provenance.RecordPayloadType {
				return verifyRecord(cmd.Context(), g, args[0], keyPath, envelope, pub, artifacts)
			}
			rep, err := provenance.Verify(cmd.Context(), envelope, pub, artifacts)
			switch {
			case errors.Is(err, provenance.ErrBadKey):
				return badInput("--key %s: %v", keyPath, err)
			case errors.Is(err, provenance.ErrNotEnvelope):
				return badInput("%s: %v", args[0], err)
			case errors.Is(err, fs.ErrNotExist):
				return badInput("%v", err)
			case err != nil:
				return &exitError{code: exitFailure, err: fmt.Errorf("%s NOT verified: %w", args[0], err)}
			}
			fmt.Fprintf(g.out, "signature:    ok (key %s)\n", rep.KeyID)
			fmt.Fprintf(g.out, "payload type: ok (%s)\n", rep.PayloadType)
			fmt.Fprintf(g.out, "statement:    ok (in-toto v1, SLSA provenance v1, %d subjects)\n", len(rep.Subjects))
			fmt.Fprintf(g.out, "build type:   %s\nbuilder:      %s\n", rep.BuildType, rep.BuilderID)
			for _, s := range rep.Checked {
				fmt.Fprintf(g.out, "artifact:     ok %s sha256:%s\n", s.Name, s.SHA256)
			}
			if len(rep.Checked) == 0 {
				fmt.Fprintln(g.out, "artifacts:    none given, digests NOT checked (pass --artifact FILE)")
			}
			fmt.Fprintf(g.out, "verified: %s\n", args[0])
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&keyPath, "key", "", "PEM public key (PKIX) of the signer, ed25519 or ECDSA P-256 (required)")
	fl.StringArrayVar(&artifacts, "artifact", nil, "a file to check against the provenance's subjects, repeatable")
	return c
}
