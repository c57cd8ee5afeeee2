package forge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-github/v60/github"
)

// The one-liner's block in a release's notes: replaced on a rerun, so the
// notes never hold it twice and what a person wrote around it stays.
const (
	notesBegin = "<!-- canarybot:oneliner -->"
	notesEnd   = "<!-- /canarybot:oneliner -->"
)

// ErrBadAsset means an asset file cannot be attached (missing, a
// directory, or two with one name).
var ErrBadAsset = errors.New("bad release asset")

// UploadURLFor is the uploads endpoint that goes with a REST API base, for
// go-github's Client.UploadURL: uploads.github.com for github.com,
// uploads.<host> for a GHE.com api.<host>, and /api/uploads/ beside
// /api/v3 for GitHub Enterprise Server.
func UploadURLFor(apiURL string) (string, error) {
	u, err := url.Parse(strings.TrimRight(apiURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: API URL %q is not an http(s) URL", ErrInvalidSetting, apiURL)
	}
	if host, ok := strings.CutPrefix(u.Host, "api."); ok {
		u.Host, u.Path = "uploads."+host, "/"
		return u.String(), nil
	}
	u.Path = strings.TrimSuffix(u.Path, "/api/v3") + "/api/uploads/"
	return u.String(), nil
}

// SetUploadURL points gh's uploads at the endpoint that goes with apiURL.
// go-github's WithEnterpriseURLs, given the API URL for both, would put
// them under /api/v3/api/uploads/, which no server answers.
func SetUploadURL(gh *github.Client, apiURL string) error {
	s, err := UploadURLFor(apiURL)
	if err != nil {
		return err
	}
	u, _ := url.Parse(s)
	gh.UploadURL = u
	return nil
}

// ReleaseOptions say what to attach to which release.
type ReleaseOptions struct {
	// Tag is the release's tag, e.g. v1.4.0.
	Tag string
	// Target is the commitish a new draft points at (default: the
	// repository's default branch, as GitHub decides).
	Target string
	// OneLiner goes into the notes, in a block of its own.
	OneLiner string
	// Assets are files to attach, named as their base name.
	Assets []string
}

// ReleaseResult says what Attach did.
type ReleaseResult struct {
	ID                          int64
	URL                         string
	Draft                       bool
	Created, NotesUpdated       bool
	Uploaded, Replaced, Skipped []string
}

// Releaser attaches the release evidence to a GitHub release.
type Releaser struct {
	Client      *github.Client
	Owner, Repo string
	Log         *slog.Logger
}

type assetFile struct {
	path, name string
	size       int64
	sha256     string
}

// Attach finds the release of o.Tag (drafts included), creating it as a
// draft when there is none, puts the one-liner into its notes and attaches
// the assets.
//
// Run it again and nothing is done twice: an asset already attached under
// the same name with the same bytes is skipped (the same sha256 digest where
// GitHub reports one, the same size where it does not), and one with other
// bytes is deleted and uploaded again, so the release always ends up
// carrying exactly these files. The notes are edited only when the
// one-liner's block changed.
func (r *Releaser) Attach(ctx context.Context, o ReleaseOptions) (ReleaseResult, error) {
	var res ReleaseResult
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if strings.TrimSpace(o.Tag) == "" {
		return res, errors.New("forge: no release tag given")
	}
	files, err := checkAssets(o.Assets)
	if err != nil {
		return res, err
	}
	rel, err := r.find(ctx, o.Tag)
	if err != nil {
		return res, err
	}
	if rel == nil {
		rel, _, err = r.Client.Repositories.CreateRelease(ctx, r.Owner, r.Repo, &github.RepositoryRelease{
			TagName:         github.String(o.Tag),
			TargetCommitish: optional(o.Target),
			Name:            github.String(o.Tag),
			Body:            github.String(withOneLiner("", o.OneLiner)),
			Draft:           github.Bool(true),
		})
		if err != nil {
			return res, fmt.Errorf("forge: creating the draft release %s: %w", o.Tag, err)
		}
		res.Created = true
		log.Info("github: created a draft release", "tag", o.Tag, "id", rel.GetID())
	} else if body := withOneLiner(rel.GetBody(), o.OneLiner); body != rel.GetBody() {
		rel, _, err = r.Client.Repositories.EditRelease(ctx, r.Owner, r.Repo, rel.GetID(), &github.RepositoryRelease{Body: github.String(body)})
		if err != nil {
			return res, fmt.Errorf("forge: putting the one-liner into the notes of release %s: %w", o.Tag, err)
		}
		res.NotesUpdated = true
	}
	res.ID, res.URL, res.Draft = rel.GetID(), rel.GetHTMLURL(), rel.GetDraft()

	have := map[string]releaseAsset{}
	if !res.Created {
		assets, err := r.assets(ctx, rel.GetID())
		if err != nil {
			return res, err
		}
		for _, a := range assets {
			have[a.Name] = a
		}
	}
	for _, f := range files {
		if a, ok := have[f.name]; ok {
			if a.same(f) {
				res.Skipped = append(res.Skipped, f.name)
				continue
			}
			if _, err := r.Client.Repositories.DeleteReleaseAsset(ctx, r.Owner, r.Repo, a.ID); err != nil {
				return res, fmt.Errorf("forge: removing the outdated %s from release %s: %w", f.name, o.Tag, err)
			}
			log.Info("github: replacing a release asset whose bytes differ", "tag", o.Tag, "asset", f.name)
			res.Replaced = append(res.Replaced, f.name)
		} else {
			res.Uploaded = append(res.Uploaded, f.name)
		}
		if err := r.upload(ctx, rel.GetID(), f); err != nil {
			return res, fmt.Errorf("forge: attaching %s to release %s: %w", f.name, o.Tag, err)
		}
	}
	return res, nil
}

// find returns the release of tag, nil when there is none. It lists the
// releases because GitHub's by-tag lookup does not see drafts.
func (r *Releaser) find(ctx context.Context, tag string) (*github.RepositoryRelease, error) {
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, resp, err := r.Client.Repositories.ListReleases(ctx, r.Owner, r.Repo, opts)
		if err != nil {
			return nil, fmt.Errorf("forge: listing releases: %w", err)
		}
		for _, rel := range page {
			if rel.GetTagName() == tag {
				return rel, nil
			}
		}
		if resp.NextPage == 0 {
			return nil, nil
		}
		opts.Page = resp.NextPage
	}
}

func (r *Releaser) upload(ctx context.Context, id int64, f assetFile) error {
	file, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadAsset, err)
	}
	defer file.Close()
	// The media type GitHub's description declares for uploads; go-github
	// would otherwise guess one from the extension (application/json).
	opts := &github.UploadOptions{Name: f.name, MediaType: "application/octet-stream"}
	_, _, err = r.Client.Repositories.UploadReleaseAsset(ctx, r.Owner, r.Repo, id, opts, file)
	return err
}

// releaseAsset is the part of GitHub's release asset that Attach compares;
// go-github v60 predates the digest field.
type releaseAsset struct {
	ID     int64   `json:"id"`
	Name   string  `json:"name"`
	Size   int64   `json:"size"`
	Digest *string `json:"digest"`
}

func (a releaseAsset) same(f assetFile) bool {
	if a.Digest != nil {
		d, ok := strings.CutPrefix(*a.Digest, "sha256:")
		return ok && d == f.sha256
	}
	return a.Size == f.size
}

// assets lists release id's assets with their digests.
func (r *Releaser) assets(ctx context.Context, id int64) ([]releaseAsset, error) {
	var out []releaseAsset
	u := fmt.Sprintf("repos/%s/%s/releases/%d/assets?per_page=100", r.Owner, r.Repo, id)
	for u != "" {
		req, err := r.Client.NewRequest("GET", u, nil)
		if err != nil {
			return nil, err
		}
		var page []releaseAsset
		resp, err := r.Client.Do(ctx, req, &page)
		if err != nil {
			return nil, fmt.Errorf("forge: listing the assets of release %d: %w", id, err)
		}
		out = append(out, page...)
		u = ""
		if resp.NextPage != 0 {
			u = fmt.Sprintf("repos/%s/%s/releases/%d/assets?per_page=100&page=%d", r.Owner, r.Repo, id, resp.NextPage)
		}
	}
	return out, nil
}

func checkAssets(paths []string) ([]assetFile, error) {
	var out []assetFile
	seen := map[string]string{}
	for _, p := range paths {
		name := filepath.Base(p)
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("%w: %s and %s would both be attached as %s", ErrBadAsset, prev, p, name)
		}
		seen[name] = p
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadAsset, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: reading %s: %w", ErrBadAsset, p, err)
		}
		out = append(out, assetFile{path: p, name: name, size: n, sha256: hex.EncodeToString(h.Sum(nil))})
	}
	return out, nil
}

// withOneLiner puts line into body's one-liner block, replacing the block
// if there is one and adding it on top otherwise.
func withOneLiner(body, line string) string {
	line = strings.TrimSpace(line)
	if line == "" {
		return body
	}
	block := notesBegin + "\n" + line + "\n" + notesEnd
	if i := strings.Index(body, notesBegin); i >= 0 {
		if j := strings.Index(body[i:], notesEnd); j >= 0 {
			return body[:i] + block + body[i+j+len(notesEnd):]
		}
	}
	if strings.TrimSpace(body) == "" {
		return block + "\n"
	}
	return block + "\n\n" + body
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
