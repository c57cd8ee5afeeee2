package forgetest

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file adds GitHub's Git Data API (refs, commits, trees, blobs) to the
// fake, backed by a real object store: blobs, trees and commits are hashed
// exactly as git hashes them, so a tree built twice from the same content
// has the same SHA, as on GitHub, and a test can check a SHA against
// `git hash-object`.

// uploadsPrefix is where the fake serves GitHub's uploads host, laid out as
// GitHub Enterprise Server lays it out (https://HOST/api/uploads/).
const uploadsPrefix = "/api/uploads"

const docsURL = "https://docs.github.com/rest"

// extension is the state of the routes in gitdata.go and releases.go. Its
// zero value is ready; Fake.mu guards it.
type extension struct {
	objects  map[string]*object
	refs     map[string]string // "heads/main" → commit SHA
	races    map[string]int    // ref → ref updates still to be raced
	lost     map[string]lostAnswer
	raced    int
	releases []*release
	lastID   int64
}

func (x *extension) init() {
	if x.objects == nil {
		x.objects, x.refs, x.races, x.lost = map[string]*object{}, map[string]string{}, map[string]int{}, map[string]lostAnswer{}
	}
}

type object struct {
	kind    string // blob, tree or commit
	data    []byte
	entries []treeEntry
	commit  commitObject
}

type treeEntry struct {
	mode, name, sha string // mode as GitHub shows it: 100644, 040000, …
}

func (e treeEntry) kind() string {
	switch e.mode {
	case "040000":
		return "tree"
	case "160000":
		return "commit"
	}
	return "blob"
}

type signature struct {
	Name  string    `json:"name"`
	Email string    `json:"email"`
	Date  time.Time `json:"date"`
}

type commitObject struct {
	tree              string
	parents           []string
	message           string
	author, committer signature
}

// Commit is a commit of the fake's repository.
type Commit struct {
	SHA, Tree, Message string
	Parents            []string
}

// extReply is what a route of this file or releases.go answers.
type extReply struct {
	status  int
	body    any // JSON; nil with 204
	header  http.Header
	changed bool
}

func apiError(status int, msg string) extReply {
	return extReply{status: status, body: map[string]string{"message": msg, "documentation_url": docsURL}}
}

// serveExt answers the routes of this file and releases.go with the same
// bookkeeping as serve (call counts, canned replies, refused writes,
// authentication); it returns false for every other route.
func (f *Fake) serveExt(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.EscapedPath()
	upload := strings.HasPrefix(p, uploadsPrefix+"/")
	if upload {
		p = strings.TrimPrefix(p, uploadsPrefix)
	} else {
		p = strings.TrimPrefix(p, "/api/v3")
	}
	seg := strings.Split(strings.Trim(p, "/"), "/")
	for i := range seg {
		seg[i], _ = url.PathUnescape(seg[i])
	}
	if len(seg) < 4 || seg[0] != "repos" || (seg[3] != "git" && seg[3] != "releases") {
		return false
	}
	route := r.Method + " " + extRoute(seg, upload)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))

	f.mu.Lock()
	f.calls[route]++
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	var rep extReply
	switch {
	case len(f.replies) > 0:
		canned := f.replies[0]
		f.replies = f.replies[1:]
		f.mu.Unlock()
		for k, v := range canned.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(canned.Status)
		_, _ = io.WriteString(w, canned.Body)
		return true
	case r.Method != http.MethodGet && ((f.failAfter > 0 && f.writes >= f.failAfter) || (f.refuse != nil && f.refuse(f.writes))):
		rep = extReply{status: http.StatusBadGateway, body: map[string]string{"message": "Server Error"}}
	case r.Header.Get("Authorization") == "":
		rep = apiError(http.StatusUnauthorized, "Requires authentication")
	case seg[1] != f.Owner || seg[2] != f.Repo:
		rep = apiError(http.StatusNotFound, "Not Found")
	default:
		f.ext.init()
		if seg[3] == "git" {
			rep = f.ext.git(f, r, route, seg, body)
		} else {
			rep = f.ext.release(f, r, route, seg, body)
		}
	}
	if rep.changed {
		f.writes++
	}
	f.mu.Unlock()

	for k, vs := range rep.header {
		w.Header()[k] = vs
	}
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return true
	}
	writeJSON(w, rep.status, rep.body)
	return true
}

// extRoute names a route in GitHub's docs' terms, as routeOf does.
func extRoute(seg []string, upload bool) string {
	rest := seg[3:]
	out := "/repos/{o}/{r}/" + rest[0]
	switch {
	case rest[0] == "git" && len(rest) >= 3 && (rest[1] == "ref" || rest[1] == "refs"):
		out += "/" + rest[1] + "/{ref}"
	case rest[0] == "git" && len(rest) == 3:
		out += "/" + rest[1] + "/{sha}"
	case rest[0] == "releases" && len(rest) == 3 && rest[1] == "tags":
		out += "/tags/{tag}"
	case rest[0] == "releases" && len(rest) == 3 && rest[1] == "assets":
		out += "/assets/{id}"
	case rest[0] == "releases" && len(rest) >= 2:
		out += "/{id}"
		if len(rest) > 2 {
			out += "/" + strings.Join(rest[2:], "/")
		}
	default:
		if len(rest) > 1 {
			out += "/" + strings.Join(rest[1:], "/")
		}
	}
	if upload {
		return "{uploads}" + out
	}
	return out
}

func (x *extension) git(f *Fake, r *http.Request, route string, seg []string, body []byte) extReply {
	switch route {
	case "GET /repos/{o}/{r}/git/ref/{ref}":
		ref := strings.Join(seg[5:], "/")
		sha, ok := x.refs[ref]
		if !ok {
			return apiError(http.StatusNotFound, "Not Found")
		}
		return extReply{status: http.StatusOK, body: x.refJSON(f, ref, sha)}
	case "PATCH /repos/{o}/{r}/git/refs/{ref}":
		return x.updateRef(f, strings.Join(seg[5:], "/"), body)
	case "GET /repos/{o}/{r}/git/commits/{sha}":
		o := x.objects[seg[5]]
		if o == nil || o.kind != "commit" {
			return apiError(http.StatusNotFound, "Not Found")
		}
		return extReply{status: http.StatusOK, body: x.commitJSON(f, seg[5])}
	case "POST /repos/{o}/{r}/git/commits":
		return x.createCommit(f, body)
	case "POST /repos/{o}/{r}/git/trees":
		return x.createTree(f, body)
	case "GET /repos/{o}/{r}/git/trees/{sha}":
		o := x.objects[seg[5]]
		if o != nil && o.kind == "commit" {
			seg[5], o = o.commit.tree, x.objects[o.commit.tree]
		}
		if o == nil || o.kind != "tree" {
			return apiError(http.StatusNotFound, "Not Found")
		}
		return extReply{status: http.StatusOK, body: x.treeJSON(f, seg[5], r.URL.Query().Get("recursive") != "")}
	case "POST /repos/{o}/{r}/git/blobs":
		var in struct{ Content, Encoding *string }
		if err := json.Unmarshal(body, &in); err != nil || in.Content == nil {
			return apiError(http.StatusUnprocessableEntity, "Invalid request.\n\n\"content\" wasn't supplied.")
		}
		data := []byte(*in.Content)
		enc := "utf-8"
		if in.Encoding != nil {
			enc = *in.Encoding
		}
		switch enc {
		case "utf-8":
		case "base64":
			d, err := base64.StdEncoding.DecodeString(*in.Content)
			if err != nil {
				return apiError(http.StatusUnprocessableEntity, "Invalid request.\n\nContent is not valid Base64.")
			}
			data = d
		default:
			return apiError(http.StatusUnprocessableEntity, "Invalid request.\n\nencoding must be utf-8 or base64.")
		}
		sha := x.put(&object{kind: "blob", data: data})
		f.applied["git blob"]++
		return extReply{status: http.StatusCreated, body: map[string]any{"sha": sha, "url": f.apiURL("git/blobs/" + sha)}, changed: true}
	}
	return apiError(http.StatusNotFound, "Not Found")
}

// put stores o under its git hash and returns the hash.
func (x *extension) put(o *object) string {
	sha := objectSHA(o)
	if _, ok := x.objects[sha]; !ok {
		x.objects[sha] = o
	}
	return sha
}

// objectSHA is git's object name: sha1 of "<kind> <size>\0<content>".
func objectSHA(o *object) string {
	var content []byte
	switch o.kind {
	case "blob":
		content = o.data
	case "tree":
		es := slices.Clone(o.entries)
		// git orders a tree's entries by name, a subtree's name taken as
		// ending in "/".
		key := func(e treeEntry) string {
			if e.mode == "040000" {
				return e.name + "/"
			}
			return e.name
		}
		sort.Slice(es, func(i, j int) bool { return key(es[i]) < key(es[j]) })
		for _, e := range es {
			raw, _ := hex.DecodeString(e.sha)
			content = append(content, strings.TrimPrefix(e.mode, "0")+" "+e.name+"\x00"...)
			content = append(content, raw...)
		}
	case "commit":
		c := o.commit
		var b strings.Builder
		fmt.Fprintf(&b, "tree %s\n", c.tree)
		for _, p := range c.parents {
			fmt.Fprintf(&b, "parent %s\n", p)
		}
		fmt.Fprintf(&b, "author %s <%s> %d +0000\n", c.author.Name, c.author.Email, c.author.Date.Unix())
		fmt.Fprintf(&b, "committer %s <%s> %d +0000\n\n%s", c.committer.Name, c.committer.Email, c.committer.Date.Unix(), c.message)
		content = []byte(b.String())
	}
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", o.kind, len(content))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

func (f *Fake) apiURL(rest string) string {
	return fmt.Sprintf("%s/repos/%s/%s/%s", f.URL, f.Owner, f.Repo, rest)
}

func (f *Fake) htmlURL(rest string) string {
	return fmt.Sprintf("%s/%s/%s/%s", f.Server.URL, f.Owner, f.Repo, rest)
}

func nodeID(kind, id string) string {
	return base64.StdEncoding.EncodeToString([]byte(kind + ":" + id))
}

func (x *extension) refJSON(f *Fake, ref, sha string) map[string]any {
	return map[string]any{
		"ref": "refs/" + ref, "node_id": nodeID("Ref", ref), "url": f.apiURL("git/refs/" + ref),
		"object": map[string]any{"type": "commit", "sha": sha, "url": f.apiURL("git/commits/" + sha)},
	}
}

func (x *extension) commitJSON(f *Fake, sha string) map[string]any {
	c := x.objects[sha].commit
	parents := []map[string]any{}
	for _, p := range c.parents {
		parents = append(parents, map[string]any{"sha": p, "url": f.apiURL("git/commits/" + p), "html_url": f.htmlURL("commit/" + p)})
	}
	return map[string]any{
		"sha": sha, "node_id": nodeID("Commit", sha), "url": f.apiURL("git/commits/" + sha), "html_url": f.htmlURL("commit/" + sha),
		"author": c.author, "committer": c.committer, "message": c.message,
		"tree":    map[string]any{"sha": c.tree, "url": f.apiURL("git/trees/" + c.tree)},
		"parents": parents,
		"verification": map[string]any{
			"verified": false, "reason": "unsigned", "signature": nil, "payload": nil, "verified_at": nil,
		},
	}
}

func (x *extension) treeJSON(f *Fake, sha string, recursive bool) map[string]any {
	var walk func(prefix, sha string) []map[string]any
	walk = func(prefix, sha string) []map[string]any {
		out := []map[string]any{}
		for _, e := range x.objects[sha].entries {
			m := map[string]any{"path": prefix + e.name, "mode": e.mode, "type": e.kind(), "sha": e.sha}
			switch e.kind() {
			case "blob":
				m["size"] = len(x.objects[e.sha].data)
				m["url"] = f.apiURL("git/blobs/" + e.sha)
			case "tree":
				m["url"] = f.apiURL("git/trees/" + e.sha)
			}
			out = append(out, m)
			if recursive && e.kind() == "tree" {
				out = append(out, walk(prefix+e.name+"/", e.sha)...)
			}
		}
		return out
	}
	return map[string]any{"sha": sha, "url": f.apiURL("git/trees/" + sha), "truncated": false, "tree": walk("", sha)}
}

// dir is a tree being edited: entries by name, and subtrees opened for
// editing.
type dir struct {
	entries map[string]treeEntry
	open    map[string]*dir
}

func (x *extension) openDir(sha string) *dir {
	d := &dir{entries: map[string]treeEntry{}, open: map[string]*dir{}}
	if sha != "" {
		for _, e := range x.objects[sha].entries {
			d.entries[e.name] = e
		}
	}
	return d
}

// write stores d and its open subtrees; empty subtrees vanish, as in git.
func (x *extension) write(d *dir) string {
	for name, sub := range d.open {
		if sha := x.write(sub); len(x.objects[sha].entries) > 0 {
			d.entries[name] = treeEntry{mode: "040000", name: name, sha: sha}
		} else {
			delete(d.entries, name)
		}
	}
	es := make([]treeEntry, 0, len(d.entries))
	for _, e := range d.entries {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return x.put(&object{kind: "tree", entries: es})
}

var treeModes = map[string]string{"100644": "blob", "100755": "blob", "120000": "blob", "040000": "tree", "160000": "commit"}

func (x *extension) createTree(f *Fake, body []byte) extReply {
	var in struct {
		BaseTree *string `json:"base_tree"`
		Tree     []struct {
			Path, Mode, Type string
			SHA              json.RawMessage
			Content          *string
		} `json:"tree"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Tree == nil {
		return apiError(http.StatusUnprocessableEntity, "Invalid request.\n\n\"tree\" wasn't supplied.")
	}
	base := ""
	if in.BaseTree != nil {
		base = *in.BaseTree
		if o := x.objects[base]; o == nil || o.kind != "tree" {
			return apiError(http.StatusUnprocessableEntity, "base_tree is not a valid tree oid")
		}
	}
	root := x.openDir(base)
	for _, e := range in.Tree {
		parts := strings.Split(e.Path, "/")
		if e.Path == "" || slices.Contains(parts, "") || slices.Contains(parts, ".") || slices.Contains(parts, "..") {
			return apiError(http.StatusUnprocessableEntity, fmt.Sprintf("tree.path %q contains a malformed path component", e.Path))
		}
		if kind, ok := treeModes[e.Mode]; !ok || kind != e.Type {
			return apiError(http.StatusUnprocessableEntity, fmt.Sprintf("Must supply a valid tree.mode and tree.type for %q", e.Path))
		}
		deleting := string(e.SHA) == "null" && e.Content == nil
		var sha string
		switch {
		case deleting:
		case e.Content != nil && e.SHA != nil:
			return apiError(http.StatusUnprocessableEntity, "Must supply either tree.sha or tree.content, not both")
		case e.Content != nil:
			if e.Type != "blob" {
				return apiError(http.StatusUnprocessableEntity, "tree.content is only for blobs")
			}
			sha = x.put(&object{kind: "blob", data: []byte(*e.Content)})
		default:
			if err := json.Unmarshal(e.SHA, &sha); err != nil {
				return apiError(http.StatusUnprocessableEntity, "Must supply tree.sha or tree.content")
			}
			if o := x.objects[sha]; o == nil || o.kind != e.Type {
				return apiError(http.StatusUnprocessableEntity, "GitRPC::BadObjectState")
			}
		}
		d := root
		for _, name := range parts[:len(parts)-1] {
			sub := d.open[name]
			if sub == nil {
				cur, ok := d.entries[name]
				if ok && cur.mode != "040000" {
					return apiError(http.StatusUnprocessableEntity, fmt.Sprintf("tree.path %q goes through the file %q", e.Path, name))
				}
				sub = x.openDir(cur.sha)
				d.open[name] = sub
			}
			d = sub
		}
		name := parts[len(parts)-1]
		delete(d.open, name)
		if deleting {
			delete(d.entries, name)
			continue
		}
		d.entries[name] = treeEntry{mode: e.Mode, name: name, sha: sha}
	}
	sha := x.write(root)
	f.applied["git tree"]++
	rep := x.treeJSON(f, sha, false)
	return extReply{status: http.StatusCreated, body: rep, changed: true}
}

func (x *extension) createCommit(f *Fake, body []byte) extReply {
	var in struct {
		Message           *string
		Tree              string
		Parents           []string
		Author, Committer *struct {
			Name, Email string
			Date        *time.Time
		}
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Message == nil || in.Tree == "" {
		return apiError(http.StatusUnprocessableEntity, "Invalid request.\n\n\"message\" and \"tree\" are required.")
	}
	if o := x.objects[in.Tree]; o == nil || o.kind != "tree" {
		return apiError(http.StatusUnprocessableEntity, "Tree SHA does not exist")
	}
	for _, p := range in.Parents {
		if o := x.objects[p]; o == nil || o.kind != "commit" {
			return apiError(http.StatusUnprocessableEntity, "Parent SHA does not exist or is not a commit object")
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	sig := func(s *struct {
		Name, Email string
		Date        *time.Time
	}, def signature) signature {
		if s == nil {
			return def
		}
		out := signature{Name: s.Name, Email: s.Email, Date: now}
		if s.Date != nil {
			out.Date = s.Date.UTC()
		}
		return out
	}
	author := sig(in.Author, signature{Name: "token-user", Email: "token-user@users.noreply.github.com", Date: now})
	c := commitObject{tree: in.Tree, parents: in.Parents, message: *in.Message, author: author, committer: sig(in.Committer, author)}
	sha := x.put(&object{kind: "commit", commit: c})
	f.applied["git commit"]++
	return extReply{status: http.StatusCreated, body: x.commitJSON(f, sha), changed: true}
}

func (x *extension) updateRef(f *Fake, ref string, body []byte) extReply {
	var in struct {
		SHA   string
		Force bool
	}
	if err := json.Unmarshal(body, &in); err != nil || in.SHA == "" {
		return apiError(http.StatusUnprocessableEntity, "Invalid request.\n\n\"sha\" wasn't supplied.")
	}
	cur, ok := x.refs[ref]
	if !ok {
		return apiError(http.StatusUnprocessableEntity, "Reference does not exist")
	}
	if o := x.objects[in.SHA]; o == nil || o.kind != "commit" {
		return apiError(http.StatusUnprocessableEntity, "Object does not exist")
	}
	if x.races[ref] > 0 {
		// Someone else's push lands first.
		x.races[ref]--
		x.raced++
		cur = x.commitOn(ref, "someone else's change "+strconv.Itoa(x.raced),
			map[string][]byte{fmt.Sprintf("other/change-%d.txt", x.raced): []byte(strconv.Itoa(x.raced) + "\n")})
	}
	if !in.Force && cur != in.SHA && !x.descends(in.SHA, cur) {
		return apiError(http.StatusUnprocessableEntity, "Update is not a fast forward")
	}
	x.refs[ref] = in.SHA
	f.applied["ref "+ref]++
	if lost, ok := x.lost[ref]; ok && cur != in.SHA {
		delete(x.lost, ref)
		if lost.thenRace {
			x.races[ref]++
		}
		return extReply{status: http.StatusBadGateway, body: map[string]string{"message": "Server Error"}, changed: true}
	}
	return extReply{status: http.StatusOK, body: x.refJSON(f, ref, in.SHA), changed: true}
}

// lostAnswer is a ref update that takes effect but whose answer is lost.
type lostAnswer struct{ thenRace bool }

// LoseRefUpdateAnswer makes the next update of branch's ref that moves it
// take effect and answer 502, as when a proxy loses GitHub's answer. With
// thenRace, someone else pushes on top before the update is sent again.
func (f *Fake) LoseRefUpdateAnswer(branch string, thenRace bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ext.init()
	f.ext.lost["heads/"+branch] = lostAnswer{thenRace: thenRace}
}

// descends tells whether ancestor is reachable from sha.
func (x *extension) descends(sha, ancestor string) bool {
	seen := map[string]bool{}
	stack := []string{sha}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s == ancestor {
			return true
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		if o := x.objects[s]; o != nil && o.kind == "commit" {
			stack = append(stack, o.commit.parents...)
		}
	}
	return false
}

// commitOn commits files (nil data deletes) on top of ref, creating the ref
// when it does not exist, and returns the commit.
func (x *extension) commitOn(ref, message string, files map[string][]byte) string {
	x.init()
	parent, ok := x.refs[ref]
	base := ""
	var parents []string
	if ok {
		base = x.objects[parent].commit.tree
		parents = []string{parent}
	}
	root := x.openDir(base)
	for path, data := range files {
		parts := strings.Split(path, "/")
		d := root
		for _, name := range parts[:len(parts)-1] {
			sub := d.open[name]
			if sub == nil {
				sub = x.openDir(d.entries[name].sha)
				d.open[name] = sub
			}
			d = sub
		}
		name := parts[len(parts)-1]
		if data == nil {
			delete(d.entries, name)
			continue
		}
		d.entries[name] = treeEntry{mode: "100644", name: name, sha: x.put(&object{kind: "blob", data: data})}
	}
	who := signature{Name: "A Person", Email: "person@example.com", Date: time.Now().UTC().Truncate(time.Second)}
	sha := x.put(&object{kind: "commit", commit: commitObject{tree: x.write(root), parents: parents, message: message, author: who, committer: who}})
	x.refs[ref] = sha
	return sha
}

// Push commits files on branch as a person would (a nil value deletes the
// file), creating the branch if it does not exist, and returns the commit.
func (f *Fake) Push(branch, message string, files map[string][]byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ext.commitOn("heads/"+branch, message, files)
}

// RaceRefUpdates makes someone else push a commit to branch just before each
// of the next n updates of its ref, so that an update built on the old head
// is not a fast forward.
func (f *Fake) RaceRefUpdates(branch string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ext.init()
	f.ext.races["heads/"+branch] = n
}

// Head is the commit branch points at, "" when it does not exist.
func (f *Fake) Head(branch string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ext.refs["heads/"+branch]
}

// Commit returns commit sha.
func (f *Fake) Commit(sha string) (Commit, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.ext.objects[sha]
	if o == nil || o.kind != "commit" {
		return Commit{}, false
	}
	return Commit{SHA: sha, Tree: o.commit.tree, Message: o.commit.message, Parents: slices.Clone(o.commit.parents)}, true
}

// Log is branch's first-parent history, newest first.
func (f *Fake) Log(branch string) []Commit {
	var out []Commit
	for sha := f.Head(branch); sha != ""; {
		c, _ := f.Commit(sha)
		out = append(out, c)
		sha = ""
		if len(c.Parents) > 0 {
			sha = c.Parents[0]
		}
	}
	return out
}

// Files is every file of commit sha, by path.
func (f *Fake) Files(sha string) map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]byte{}
	o := f.ext.objects[sha]
	if o == nil || o.kind != "commit" {
		return out
	}
	var walk func(prefix, tree string)
	walk = func(prefix, tree string) {
		for _, e := range f.ext.objects[tree].entries {
			if e.kind() == "tree" {
				walk(prefix+e.name+"/", e.sha)
			} else if e.kind() == "blob" {
				out[prefix+e.name] = slices.Clone(f.ext.objects[e.sha].data)
			}
		}
	}
	walk("", o.commit.tree)
	return out
}

// BlobSHA is git's name for a blob holding data (`git hash-object`).
func BlobSHA(data []byte) string { return objectSHA(&object{kind: "blob", data: data}) }

// escapeRefSlashes makes a git ref in a Git Data path (heads/main) one path
// segment, for routing only: GitHub wants the ref's slashes unescaped, while
// the description's {ref} matches a single segment.
func escapeRefSlashes(u *url.URL) {
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/repos/") {
		return
	}
	for _, kind := range []string{"/git/ref/", "/git/refs/", "/git/matching-refs/"} {
		i := strings.Index(p, kind)
		if i < 0 {
			continue
		}
		raw := p[:i+len(kind)] + strings.ReplaceAll(p[i+len(kind):], "/", "%2F")
		if path, err := url.PathUnescape(raw); err == nil {
			u.Path, u.RawPath = path, raw
		}
		return
	}
}
