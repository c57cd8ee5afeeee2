package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/forge"
)

type releaseOpts struct {
	sbom, provenance, oneliner string
	assets                     []string
	target, uploadURL          string
	writeInterval              time.Duration
}

// newReleaseCmd is `canarybot release <version>`: the SBOM, provenance and
// one-liner attached to the version's GitHub release.
func newReleaseCmd(g *globals) *cobra.Command {
	o := &releaseOpts{}
	c := &cobra.Command{
		Use:   "release <version> [--sbom FILE] [--provenance FILE] [--oneliner FILE] [--asset FILE...]",
		Short: "Attach the SBOM, provenance and one-liner to the version's GitHub release (a draft if there is none)",
		Long: `release finds the GitHub release of <version> (drafts included) or creates it as a draft,
puts the one-liner into its notes (in a block of its own, replaced on a rerun; the rest of the
notes stay) and attaches the files: by default sbom_<version>.json, build_provenance_<version>.json
and release_oneliner.txt from the release's evidence directory, plus any --asset.

Run it again and nothing happens twice: an asset already attached under the same name with the
same bytes (sha256 digest, or size where GitHub gives no digest) is skipped; one with other bytes
is deleted and uploaded again.

GitHub is reached as for freeze (GITHUB_TOKEN or a GitHub App, GITHUB_REPOSITORY,
GITHUB_API_URL); uploads go to the uploads endpoint that goes with the API (uploads.github.com,
or /api/uploads on GitHub Enterprise Server), or --upload-url.
Exit 0 attached, 1 failed (run it again), 2 bad input (a file is missing).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput("release takes one <version>, e.g. `canarybot release v1.4.0`")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, g, args[0]) },
	}
	f := c.Flags()
	f.StringVar(&o.sbom, "sbom", "", "the SBOM to attach (default: sbom_<version>.json in the evidence)")
	f.StringVar(&o.provenance, "provenance", "", "the signed provenance to attach (default: build_provenance_<version>.json in the evidence)")
	f.StringVar(&o.oneliner, "oneliner", "", "the release one-liner, attached and put into the notes (default: release_oneliner.txt in the evidence)")
	f.StringSliceVar(&o.assets, "asset", nil, "another file to attach; repeat or comma-separate")
	f.StringVar(&o.target, "target", "", "commitish a new draft points at (default: the repository's default branch)")
	f.StringVar(&o.uploadURL, "upload-url", "", "GitHub's uploads endpoint (default: derived from GITHUB_API_URL)")
	f.DurationVar(&o.writeInterval, "write-interval", time.Second, "least time between two content-creating GitHub calls")
	return c
}

func (o *releaseOpts) run(cmd *cobra.Command, g *globals, version string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.EvidenceDir, version)
	pick := func(flag, given, name, maker string) (string, error) {
		p := given
		if p == "" {
			p = filepath.Join(dir, name)
		}
		st, err := os.Stat(p)
		switch {
		case err != nil:
			return "", badInput("--%s: no %s at %s; %s, or name the file with --%s", flag, name, p, maker, flag)
		case st.IsDir():
			return "", badInput("--%s: %s is a directory, not a file", flag, p)
		case st.Size() == 0:
			return "", badInput("--%s: %s is empty; %s", flag, p, maker)
		}
		return p, nil
	}
	sbom, err := pick("sbom", o.sbom, "sbom_"+version+".json", "the green button makes it")
	if err != nil {
		return err
	}
	prov, err := pick("provenance", o.provenance, "build_provenance_"+version+".json", "run `canarybot provenance "+version+" --artifact …`")
	if err != nil {
		return err
	}
	line, err := pick("oneliner", o.oneliner, "release_oneliner.txt", "run `canarybot oneliner "+version+"`")
	if err != nil {
		return err
	}
	text, err := os.ReadFile(line)
	if err != nil {
		return err
	}
	for _, a := range o.assets {
		if _, err := pick("asset", a, filepath.Base(a), "check the path"); err != nil {
			return err
		}
	}

	client, ghcfg, err := githubClient(g, o.writeInterval)
	if err != nil {
		return err
	}
	if o.uploadURL != "" {
		u, err := url.Parse(strings.TrimRight(o.uploadURL, "/") + "/")
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badInput("--upload-url %q is not an http(s) URL", o.uploadURL)
		}
		client.UploadURL = u
	}
	r := &forge.Releaser{Client: client, Owner: ghcfg.Owner, Repo: ghcfg.Repo, Log: g.logger()}
	res, err := r.Attach(cmd.Context(), forge.ReleaseOptions{
		Tag: version, Target: o.target, OneLiner: string(text),
		Assets: append([]string{sbom, prov, line}, o.assets...),
	})
	if errors.Is(err, forge.ErrBadAsset) {
		return badInput("%v", err)
	}
	if err != nil {
		return fmt.Errorf("release %s (run it again; nothing is attached twice): %w", version, err)
	}
	state := "published"
	if res.Draft {
		state = "draft"
	}
	if res.Created {
		state += ", created"
	}
	if res.NotesUpdated {
		state += ", one-liner put into the notes"
	}
	fmt.Fprintf(g.out, "release %s (%s): %s\n", version, state, res.URL)
	for _, l := range []struct {
		what  string
		names []string
	}{{"uploaded", res.Uploaded}, {"replaced", res.Replaced}, {"already attached", res.Skipped}} {
		if len(l.names) > 0 {
			fmt.Fprintf(g.out, "%s: %s\n", l.what, strings.Join(l.names, ", "))
		}
	}
	return nil
}
