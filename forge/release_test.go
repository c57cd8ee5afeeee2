package forge_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
)

func newReleaser(t *testing.T, fake *forgetest.Fake) *forge.Releaser {
	t.Helper()
	c := fakeClient(t, fake)
	// Derived from the API URL as in production; the fake lays its uploads
	// out as GitHub Enterprise Server does.
	if err := forge.SetUploadURL(c, fake.URL); err != nil {
		t.Fatal(err)
	}
	if c.UploadURL.String() != fake.UploadURL() {
		t.Fatalf("upload URL %s, the fake serves uploads at %s", c.UploadURL, fake.UploadURL())
	}
	return &forge.Releaser{Client: c, Owner: fake.Owner, Repo: fake.Repo}
}

// releaseAssets writes the three files a release carries and returns their paths.
func releaseAssets(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"sbom_v1.4.0.json":             `{"spdxVersion":"SPDX-2.3","name":"canarybot"}` + "\n",
		"build_provenance_v1.4.0.json": `{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}` + "\n",
		"release_oneliner.txt":         "v1.4.0 canary: 1%→100%, no rollback\n",
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func assetNames(r forgetest.Release) []string {
	var out []string
	for _, a := range r.Assets {
		out = append(out, a.Name)
	}
	slices.Sort(out)
	return out
}

const oneLiner = "v1.4.0 canary: 1%→100%, no rollback"

func TestAttachCreatesADraftAndUploads(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	paths := releaseAssets(t)
	res, err := newReleaser(t, fake).Attach(context.Background(), forge.ReleaseOptions{Tag: "v1.4.0", OneLiner: oneLiner, Assets: paths})
	if err != nil {
		t.Fatal(err)
	}
	rels := fake.Releases()
	if len(rels) != 1 {
		t.Fatalf("%d releases, want 1", len(rels))
	}
	rel := rels[0]
	if !res.Created || !res.Draft || !rel.Draft || rel.Tag != "v1.4.0" || res.ID != rel.ID {
		t.Errorf("result %+v, release %+v; want a new draft for v1.4.0", res, rel)
	}
	if !strings.Contains(rel.Body, oneLiner) {
		t.Errorf("notes %q lack the one-liner", rel.Body)
	}
	if want := []string{"build_provenance_v1.4.0.json", "release_oneliner.txt", "sbom_v1.4.0.json"}; !slices.Equal(assetNames(rel), want) || !slices.Equal(res.Uploaded, want) {
		t.Errorf("assets %v, uploaded %v; want %v", assetNames(rel), res.Uploaded, want)
	}
	for _, a := range rel.Assets {
		data, _ := os.ReadFile(filepath.Join(filepath.Dir(paths[0]), a.Name))
		if !bytes.Equal(a.Data, data) {
			t.Errorf("%s uploaded as %q, want %q", a.Name, a.Data, data)
		}
	}
	// Uploads went to the uploads endpoint, as on GitHub, not to the API.
	if n := fake.Calls()["POST {uploads}/repos/{o}/{r}/releases/{id}/assets"]; n != 3 {
		t.Errorf("%d uploads on the uploads endpoint, want 3; calls %v", n, fake.Calls())
	}
}

func TestAttachRerunChangesNothing(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	paths := releaseAssets(t)
	r := newReleaser(t, fake)
	o := forge.ReleaseOptions{Tag: "v1.4.0", OneLiner: oneLiner, Assets: paths}
	if _, err := r.Attach(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	applied := fake.Applied()
	res, err := r.Attach(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.NotesUpdated || len(res.Uploaded)+len(res.Replaced) != 0 || len(res.Skipped) != 3 {
		t.Errorf("rerun: %+v; want everything skipped", res)
	}
	if got := fake.Applied(); !maps.Equal(got, applied) {
		t.Errorf("rerun changed the fake: %v, before %v", got, applied)
	}
	if n := len(fake.Releases()); n != 1 {
		t.Errorf("%d releases after a rerun, want 1", n)
	}
}

func TestAttachToAnExistingRelease(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	const notes = "## What's changed\n* faster order book\n"
	id := fake.AddRelease("v1.4.0", notes, false)
	fake.AddRelease("v1.3.0", "older", false)
	fake.AddAsset(id, "sbom_v1.4.0.json", []byte("an outdated SBOM"))
	fake.AddAsset(id, "exchange-linux-amd64", []byte("\x7fELF"))
	paths := releaseAssets(t)
	r := newReleaser(t, fake)

	res, err := r.Attach(context.Background(), forge.ReleaseOptions{Tag: "v1.4.0", OneLiner: oneLiner, Assets: paths})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || !res.NotesUpdated || res.ID != id || res.Draft {
		t.Errorf("result %+v; want the published release %d, notes updated", res, id)
	}
	if !slices.Equal(res.Replaced, []string{"sbom_v1.4.0.json"}) || len(res.Uploaded) != 2 {
		t.Errorf("replaced %v, uploaded %v; want the outdated SBOM replaced and two uploads", res.Replaced, res.Uploaded)
	}
	rel := fake.Releases()[1] // newest first: v1.3.0 was added after
	if rel.ID != id {
		t.Fatalf("release %+v is not %d", rel, id)
	}
	if !strings.Contains(rel.Body, oneLiner) || !strings.Contains(rel.Body, notes) {
		t.Errorf("notes %q: want the one-liner and the person's notes", rel.Body)
	}
	if want := []string{"build_provenance_v1.4.0.json", "exchange-linux-amd64", "release_oneliner.txt", "sbom_v1.4.0.json"}; !slices.Equal(assetNames(rel), want) {
		t.Errorf("assets %v, want %v (a person's asset stays)", assetNames(rel), want)
	}

	// A new one-liner replaces the old one in place.
	res, err = r.Attach(context.Background(), forge.ReleaseOptions{Tag: "v1.4.0", OneLiner: "v1.4.0 canary: rolled back at 25%", Assets: paths})
	if err != nil || !res.NotesUpdated {
		t.Fatalf("%+v, %v", res, err)
	}
	body := fake.Releases()[1].Body
	if strings.Contains(body, oneLiner) || strings.Count(body, "rolled back at 25%") != 1 || !strings.Contains(body, notes) {
		t.Errorf("notes after a new one-liner: %q", body)
	}
}

func TestAttachBadAssets(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 0)
	paths := releaseAssets(t)
	other := filepath.Join(t.TempDir(), filepath.Base(paths[0]))
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		assets []string
	}{
		{"missing", []string{filepath.Join(t.TempDir(), "nope.json")}},
		{"a directory", []string{t.TempDir()}},
		{"one name twice", []string{paths[0], other}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newReleaser(t, fake).Attach(context.Background(), forge.ReleaseOptions{Tag: "v1.4.0", Assets: tc.assets})
			if !errors.Is(err, forge.ErrBadAsset) {
				t.Errorf("error %v, want ErrBadAsset", err)
			}
		})
	}
	if n := len(fake.Releases()); n != 0 {
		t.Errorf("bad assets created %d releases", n)
	}
}

func TestUploadURLFor(t *testing.T) {
	for _, tc := range []struct{ api, want string }{
		{"https://api.github.com", "https://uploads.github.com/"},
		{"https://api.github.com/", "https://uploads.github.com/"},
		{"https://ghe.example.com/api/v3", "https://ghe.example.com/api/uploads/"},
		{"https://ghe.example.com/api/v3/", "https://ghe.example.com/api/uploads/"},
		{"https://api.acme.ghe.com", "https://uploads.acme.ghe.com/"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/api/uploads/"},
	} {
		got, err := forge.UploadURLFor(tc.api)
		if err != nil || got != tc.want {
			t.Errorf("UploadURLFor(%q) = %q, %v; want %q", tc.api, got, err, tc.want)
		}
	}
	if _, err := forge.UploadURLFor("ftp://x"); !errors.Is(err, forge.ErrInvalidSetting) {
		t.Errorf("ftp URL: %v, want ErrInvalidSetting", err)
	}
}
