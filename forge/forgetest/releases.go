package forgetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file adds releases and their assets to the fake. Assets are uploaded
// to the uploads URL (UploadURL), not the API URL, as on GitHub.

type release struct {
	id                         int64
	tag, target, name, body    string
	draft, prerelease          bool
	created, published, update time.Time
	assets                     []*asset
}

type asset struct {
	id                       int64
	name, label, contentType string
	data                     []byte
	created                  time.Time
}

// Release is a release of the fake, as a test inspects it.
type Release struct {
	ID                      int64
	Tag, Target, Name, Body string
	Draft                   bool
	Assets                  []Asset
}

// Asset is a file attached to a release.
type Asset struct {
	ID                int64
	Name, ContentType string
	Data              []byte
}

// UploadURL is the uploads host to give go-github's Client.UploadURL: the
// fake lays it out as GitHub Enterprise Server does, beside the API.
func (f *Fake) UploadURL() string { return f.Server.URL + uploadsPrefix + "/" }

// Releases is every release, newest first.
func (f *Fake) Releases() []Release {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Release
	for _, r := range slices.Backward(f.ext.releases) {
		rel := Release{ID: r.id, Tag: r.tag, Target: r.target, Name: r.name, Body: r.body, Draft: r.draft}
		for _, a := range r.assets {
			rel.Assets = append(rel.Assets, Asset{ID: a.id, Name: a.name, ContentType: a.contentType, Data: slices.Clone(a.data)})
		}
		out = append(out, rel)
	}
	return out
}

// AddRelease creates a release as a person would and returns its id.
func (f *Fake) AddRelease(tag, body string, draft bool) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ext.newRelease(tag, "main", tag, body, draft, false).id
}

// AddAsset attaches a file to release id as a person would.
func (f *Fake) AddAsset(id int64, name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.ext.findRelease(id)
	f.ext.lastID++
	r.assets = append(r.assets, &asset{id: f.ext.lastID, name: name, contentType: "application/octet-stream", data: data, created: time.Now().UTC()})
}

func (x *extension) newRelease(tag, target, name, body string, draft, pre bool) *release {
	x.lastID++
	now := time.Now().UTC().Truncate(time.Second)
	r := &release{id: x.lastID, tag: tag, target: target, name: name, body: body, draft: draft, prerelease: pre, created: now, update: now}
	if !draft {
		r.published = now
	}
	x.releases = append(x.releases, r)
	return r
}

func (x *extension) findRelease(id int64) *release {
	for _, r := range x.releases {
		if r.id == id {
			return r
		}
	}
	return nil
}

func (x *extension) release(f *Fake, r *http.Request, route string, seg []string, body []byte) extReply {
	var id int64
	if len(seg) >= 5 {
		// The release's id, or the asset's in releases/assets/{id}.
		id, _ = strconv.ParseInt(seg[len(seg)-1], 10, 64)
		if len(seg) == 6 && seg[5] == "assets" {
			id, _ = strconv.ParseInt(seg[4], 10, 64)
		}
	}
	switch route {
	case "GET /repos/{o}/{r}/releases":
		var all []any
		for _, rel := range slices.Backward(x.releases) {
			all = append(all, x.releaseJSON(f, rel))
		}
		page, per := pageOf(r)
		lo, hi := min((page-1)*per, len(all)), min(page*per, len(all))
		return extReply{status: http.StatusOK, body: append([]any{}, all[lo:hi]...), header: linkHeader(r, page, (len(all)+per-1)/per)}
	case "POST /repos/{o}/{r}/releases":
		var in struct {
			TagName                     string `json:"tag_name"`
			TargetCommitish, Name, Body *string
			Draft, Prerelease           bool
		}
		if err := json.Unmarshal(body, &in); err != nil || in.TagName == "" {
			return apiError(http.StatusUnprocessableEntity, "Validation Failed")
		}
		for _, rel := range x.releases {
			if rel.tag == in.TagName && !rel.draft && !in.Draft {
				return extReply{status: http.StatusUnprocessableEntity, body: map[string]any{
					"message": "Validation Failed", "documentation_url": docsURL,
					"errors": []map[string]string{{"resource": "Release", "code": "already_exists", "field": "tag_name"}},
				}}
			}
		}
		target, name := "main", in.TagName
		if in.TargetCommitish != nil {
			target = *in.TargetCommitish
		}
		if in.Name != nil {
			name = *in.Name
		}
		rel := x.newRelease(in.TagName, target, name, deref(in.Body), in.Draft, in.Prerelease)
		f.applied["release create "+in.TagName]++
		return extReply{status: http.StatusCreated, body: x.releaseJSON(f, rel), changed: true}
	case "GET /repos/{o}/{r}/releases/{id}":
		rel := x.findRelease(id)
		if rel == nil {
			return apiError(http.StatusNotFound, "Not Found")
		}
		return extReply{status: http.StatusOK, body: x.releaseJSON(f, rel)}
	case "PATCH /repos/{o}/{r}/releases/{id}":
		rel := x.findRelease(id)
		if rel == nil {
			return apiError(http.StatusNotFound, "Not Found")
		}
		var in struct {
			TagName                     *string `json:"tag_name"`
			TargetCommitish, Name, Body *string
			Draft, Prerelease           *bool
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return apiError(http.StatusUnprocessableEntity, "Problems parsing JSON")
		}
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&rel.tag, in.TagName)
		set(&rel.target, in.TargetCommitish)
		set(&rel.name, in.Name)
		set(&rel.body, in.Body)
		if in.Prerelease != nil {
			rel.prerelease = *in.Prerelease
		}
		if in.Draft != nil {
			rel.draft = *in.Draft
			if !rel.draft && rel.published.IsZero() {
				rel.published = time.Now().UTC().Truncate(time.Second)
			}
		}
		rel.update = time.Now().UTC().Truncate(time.Second)
		f.applied[fmt.Sprintf("release edit %d", rel.id)]++
		return extReply{status: http.StatusOK, body: x.releaseJSON(f, rel), changed: true}
	case "GET /repos/{o}/{r}/releases/{id}/assets":
		rel := x.findRelease(id)
		if rel == nil {
			return apiError(http.StatusNotFound, "Not Found")
		}
		out := []any{}
		for _, a := range rel.assets {
			out = append(out, x.assetJSON(f, a))
		}
		return extReply{status: http.StatusOK, body: out}
	case "DELETE /repos/{o}/{r}/releases/assets/{id}":
		for _, rel := range x.releases {
			for i, a := range rel.assets {
				if a.id == id {
					rel.assets = slices.Delete(rel.assets, i, i+1)
					f.applied["asset delete "+a.name]++
					return extReply{status: http.StatusNoContent, changed: true}
				}
			}
		}
		return apiError(http.StatusNotFound, "Not Found")
	case "POST {uploads}/repos/{o}/{r}/releases/{id}/assets":
		rel := x.findRelease(id)
		if rel == nil {
			return apiError(http.StatusNotFound, "Not Found")
		}
		name := r.URL.Query().Get("name")
		ct := r.Header.Get("Content-Type")
		if name == "" || ct == "" {
			return apiError(http.StatusUnprocessableEntity, "Validation Failed: name and Content-Type are required")
		}
		// GitHub replaces what a file name may not hold with dots.
		name = strings.Map(func(c rune) rune {
			if c == ' ' || c == '/' {
				return '.'
			}
			return c
		}, name)
		for _, a := range rel.assets {
			if a.name == name {
				return extReply{status: http.StatusUnprocessableEntity, body: map[string]any{
					"message": "Validation Failed", "documentation_url": docsURL,
					"errors": []map[string]string{{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}},
				}}
			}
		}
		x.lastID++
		a := &asset{id: x.lastID, name: name, label: r.URL.Query().Get("label"), contentType: ct, data: body, created: time.Now().UTC().Truncate(time.Second)}
		rel.assets = append(rel.assets, a)
		f.applied["asset upload "+name]++
		return extReply{status: http.StatusCreated, body: x.assetJSON(f, a), changed: true}
	}
	return apiError(http.StatusNotFound, "Not Found")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (f *Fake) user() map[string]any {
	base := f.URL + "/users/canarybot"
	return map[string]any{
		"login": "canarybot", "id": 1, "node_id": nodeID("User", "1"), "type": "Bot", "site_admin": false,
		"avatar_url": "https://avatars.githubusercontent.com/u/1", "gravatar_id": "",
		"url": base, "html_url": f.Server.URL + "/canarybot",
		"followers_url": base + "/followers", "following_url": base + "/following{/other_user}",
		"gists_url": base + "/gists{/gist_id}", "starred_url": base + "/starred{/owner}{/repo}",
		"subscriptions_url": base + "/subscriptions", "organizations_url": base + "/orgs",
		"repos_url": base + "/repos", "events_url": base + "/events{/privacy}",
		"received_events_url": base + "/received_events",
	}
}

func (x *extension) releaseJSON(f *Fake, r *release) map[string]any {
	id := strconv.FormatInt(r.id, 10)
	assets := []any{}
	for _, a := range r.assets {
		assets = append(assets, x.assetJSON(f, a))
	}
	var published any
	if !r.published.IsZero() {
		published = stamp(r.published)
	}
	html := f.htmlURL("releases/tag/" + r.tag)
	if r.draft {
		html = f.htmlURL("releases/tag/untagged-" + id)
	}
	return map[string]any{
		"id": r.id, "node_id": nodeID("Release", id), "tag_name": r.tag, "target_commitish": r.target,
		"name": r.name, "body": r.body, "draft": r.draft, "prerelease": r.prerelease,
		"created_at": stamp(r.created), "published_at": published, "updated_at": stamp(r.update),
		"author": f.user(), "assets": assets,
		"url": f.apiURL("releases/" + id), "html_url": html, "assets_url": f.apiURL("releases/" + id + "/assets"),
		"upload_url":  fmt.Sprintf("%srepos/%s/%s/releases/%s/assets{?name,label}", f.UploadURL(), f.Owner, f.Repo, id),
		"tarball_url": f.apiURL("tarball/" + r.tag), "zipball_url": f.apiURL("zipball/" + r.tag),
	}
}

func (x *extension) assetJSON(f *Fake, a *asset) map[string]any {
	id := strconv.FormatInt(a.id, 10)
	sum := sha256.Sum256(a.data)
	var label any
	if a.label != "" {
		label = a.label
	}
	return map[string]any{
		"id": a.id, "node_id": nodeID("ReleaseAsset", id), "name": a.name, "label": label,
		"content_type": a.contentType, "size": len(a.data), "digest": "sha256:" + hex.EncodeToString(sum[:]),
		"state": "uploaded", "download_count": 0, "uploader": f.user(),
		"created_at": stamp(a.created), "updated_at": stamp(a.created),
		"url":                  f.apiURL("releases/assets/" + id),
		"browser_download_url": f.htmlURL("releases/download/" + a.name),
	}
}

// linkHeader is the Link header GitHub sends with page of last.
func linkHeader(r *http.Request, page, last int) http.Header {
	mk := func(p int, rel string) string {
		u := *r.URL
		u.Scheme, u.Host = "http", r.Host
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		u.RawQuery = q.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var parts []string
	if page < last {
		parts = append(parts, mk(page+1, "next"), mk(last, "last"))
	}
	if page > 1 {
		parts = append(parts, mk(1, "first"), mk(page-1, "prev"))
	}
	h := http.Header{}
	if len(parts) > 0 {
		h.Set("Link", strings.Join(parts, ", "))
	}
	return h
}
