// Package forgetest is a fake of the parts of GitHub's REST API that
// canarybot uses, for tests. It keeps state (labels, PRs, statuses,
// rulesets), counts every request per route and every change it applied,
// and can be told to answer with rate limits or errors, or slowly.
//
// Every request the fake receives and every response it writes is checked
// against GitHub's OpenAPI description (see Spec.Middleware): a mismatch
// fails the test that started the fake, naming the operation and why.
package forgetest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PR is an open pull request of the fake.
type PR struct {
	Number int
	SHA    string
	Labels []string
	Closed bool
}

// Reply is a canned answer served instead of the real one.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
}

// handlerFunc serves one route under Fake.mu; changed says a write took
// effect. A status of 404 is answered with GitHub's Not Found body.
type handlerFunc func(r *http.Request, seg []string) (status int, body any, changed bool)

// Fake is the fake GitHub. Its methods are safe for concurrent use.
type Fake struct {
	Owner, Repo string
	Server      *httptest.Server
	// URL is the API base to configure the client with (GITHUB_API_URL).
	URL string

	mu        sync.Mutex
	routes    map[string]handlerFunc
	repoLabel map[string]string // name → description
	prs       map[int]*PR
	nextPR    int
	// events are each PR's label events, oldest first, for
	// GET /repos/{o}/{r}/issues/{n}/events.
	events    map[int][]LabelEvent
	statuses  map[string][]Status
	calls     map[string]int
	applied   map[string]int
	auth      []string
	replies   []Reply
	failAfter int // writes applied before every write fails; 0: never
	writes    int
	refuse    func(n int) bool
	latency   time.Duration
	pushes    int

	rulesets    map[int64]*Ruleset
	nextRuleset int64
	denyAdmin   int // status for ruleset calls; 0: allowed

	prTemplate map[string]any

	// ext is the state of the Git Data and release routes (gitdata.go,
	// releases.go), which serveExt answers.
	ext extension
}

// Status is a commit status the fake received.
type Status struct {
	State, Context, Description, TargetURL string
}

//go:embed templates/pull-request-simple.json
var pullRequestTemplate []byte

// New starts a fake of owner/repo with n open PRs numbered 1..n.
func New(tb testing.TB, owner, repo string, n int) *Fake {
	tb.Helper()
	spec := LoadSpec(tb)
	f := &Fake{
		Owner: owner, Repo: repo,
		routes:    map[string]handlerFunc{},
		repoLabel: map[string]string{}, prs: map[int]*PR{}, statuses: map[string][]Status{},
		calls: map[string]int{}, applied: map[string]int{},
		rulesets: map[int64]*Ruleset{}, events: map[int][]LabelEvent{},
	}
	// GitHub's own example of a listed pull request, so that every field
	// the description requires is there; the fake overlays its values.
	if err := json.Unmarshal(pullRequestTemplate, &f.prTemplate); err != nil {
		tb.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		f.prs[i] = &PR{Number: i, SHA: SHA(i)}
	}
	f.nextPR = n + 1
	f.registerFreezeRoutes()
	f.registerRulesetRoutes()
	f.registerEventRoutes()
	report := func(v Violation) { tb.Errorf("github fake: %s", v) }
	f.Server = httptest.NewServer(spec.Middleware(report, http.HandlerFunc(f.serve)))
	tb.Cleanup(f.Server.Close)
	// go-github's Enterprise URLs add /api/v3/; serve the same there.
	f.URL = f.Server.URL + "/api/v3"
	return f
}

// handle registers fn for route, named as routeOf names it (e.g.
// "POST /repos/{o}/{r}/statuses/{sha}"). Files adding routes register them
// from New through a method like registerFreezeRoutes.
func (f *Fake) handle(route string, fn handlerFunc) { f.routes[route] = fn }

// SHA is the head commit the fake gives PR n.
func SHA(n int) string { return fmt.Sprintf("%040x", n*7919) }

// SetLatency makes every request take at least d (benchmarks: GitHub's
// round trip).
func (f *Fake) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// LabelPR puts a label on PR n, as a person would.
func (f *Fake) LabelPR(n int, label string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prs[n].Labels = append(f.prs[n].Labels, label)
}

// PRLabels is the labels of PR n now.
func (f *Fake) PRLabels(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.prs[n].Labels...)
}

// OpenPR opens a new pull request, as a person would, and returns it.
func (f *Fake) OpenPR(labels ...string) PR {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &PR{Number: f.nextPR, SHA: SHA(f.nextPR), Labels: append([]string(nil), labels...)}
	f.prs[p.Number] = p
	for _, l := range labels {
		f.events[p.Number] = append(f.events[p.Number], LabelEvent{Label: l, Actor: PersonLogin})
	}
	f.nextPR++
	return *p
}

// PushPR gives PR n a new head commit, as a push to its branch would, and
// returns the new head.
func (f *Fake) PushPR(n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes++
	f.prs[n].SHA = fmt.Sprintf("%040x", 1<<40+n*7919+f.pushes)
	return f.prs[n].SHA
}

// ClosePR closes (or merges) PR n: it is no longer listed as open.
func (f *Fake) ClosePR(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prs[n].Closed = true
}

// PRHead is PR n's head commit now.
func (f *Fake) PRHead(n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.prs[n].SHA
}

// Statuses is the statuses set on sha, oldest first.
func (f *Fake) Statuses(sha string) []Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Status(nil), f.statuses[sha]...)
}

// HasRepoLabel tells whether the repository has label name.
func (f *Fake) HasRepoLabel(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.repoLabel[name]
	return ok
}

// RepoLabelDescription is the description of the repository's label name.
func (f *Fake) RepoLabelDescription(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repoLabel[name]
}

// Calls is the number of requests per route ("POST /repos/{o}/{r}/statuses/{sha}"),
// answered or failed.
func (f *Fake) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.calls)
}

// TotalCalls is the number of requests received, all routes together.
func (f *Fake) TotalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.calls {
		n += v
	}
	return n
}

// Applied is the number of changes applied per target, e.g. "label+ #12",
// "label- #12", "status failure <sha>", "label create hold-for-canary",
// "ruleset create 1", "ruleset 1 disabled".
func (f *Fake) Applied() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.applied)
}

// Auth is the Authorization header of every request, in order.
func (f *Fake) Auth() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auth...)
}

// Reply queues canned answers, served one per request before any real one.
func (f *Fake) Reply(r ...Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, r...)
}

// FailWritesAfter makes every write after the next n applied ones answer
// 502 until it is called with 0.
func (f *Fake) FailWritesAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAfter, f.writes = n, 0
}

// RefuseWrite calls fn before each write with the number of writes applied
// so far; when it returns true the write is not applied and gets a 502. A
// test interrupts a run from it (it cancels the context) knowing that the
// interrupted write did not take effect. fn must not call the Fake.
func (f *Fake) RefuseWrite(fn func(applied int) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = fn
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, basicError("Not Found"))
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/api/v3")
	seg := strings.Split(strings.Trim(path, "/"), "/")
	for i := range seg {
		seg[i], _ = url.PathUnescape(seg[i])
	}
	route := r.Method + " " + routeOf(seg)
	write := r.Method != http.MethodGet && !strings.HasPrefix(route, "POST /app/")

	f.mu.Lock()
	latency := f.latency
	f.mu.Unlock()
	if latency > 0 {
		time.Sleep(latency)
	}
	if f.serveExt(w, r) {
		return
	}

	f.mu.Lock()
	f.calls[route]++
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	if len(f.replies) > 0 {
		rep := f.replies[0]
		f.replies = f.replies[1:]
		f.mu.Unlock()
		for k, v := range rep.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.Status)
		_, _ = io.WriteString(w, rep.Body)
		return
	}
	if write && ((f.failAfter > 0 && f.writes >= f.failAfter) || (f.refuse != nil && f.refuse(f.writes))) {
		f.mu.Unlock()
		writeJSON(w, http.StatusBadGateway, basicError("Server Error"))
		return
	}
	if seg[0] == "repos" && r.Header.Get("Authorization") == "" {
		f.mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, basicError("Requires authentication"))
		return
	}
	status, body, changed := http.StatusNotFound, any(nil), false
	fn := f.routes[route]
	if fn != nil && (strings.HasPrefix(route, "POST /app/") || (len(seg) >= 3 && seg[1] == f.Owner && seg[2] == f.Repo)) {
		status, body, changed = fn(r, seg)
	}
	if changed {
		f.writes++
	}
	var link string
	if route == "GET /repos/{o}/{r}/pulls" && status == http.StatusOK {
		link = f.link(r, len(f.open()))
	}
	f.mu.Unlock()
	switch {
	case status == http.StatusNotFound:
		notFound(w)
	case body == nil:
		w.WriteHeader(status)
	default:
		if link != "" {
			w.Header().Set("Link", link)
		}
		writeJSON(w, status, body)
	}
}

// routeOf names the route of a path in GitHub's docs' terms.
func routeOf(seg []string) string {
	switch {
	case len(seg) >= 3 && seg[0] == "repos":
		out := []string{"repos", "{o}", "{r}"}
		rest := seg[3:]
		switch {
		case len(rest) == 2 && rest[0] == "labels":
			return "/" + strings.Join(append(out, "labels", "{name}"), "/")
		case len(rest) == 3 && rest[0] == "issues" && rest[2] == "events":
			return "/" + strings.Join(append(out, "issues", "{n}", "events"), "/")
		case len(rest) == 3 && rest[0] == "issues" && rest[2] == "labels":
			return "/" + strings.Join(append(out, "issues", "{n}", "labels"), "/")
		case len(rest) == 4 && rest[0] == "issues" && rest[2] == "labels":
			return "/" + strings.Join(append(out, "issues", "{n}", "labels", "{name}"), "/")
		case len(rest) == 2 && rest[0] == "statuses":
			return "/" + strings.Join(append(out, "statuses", "{sha}"), "/")
		case len(rest) == 2 && rest[0] == "rulesets":
			return "/" + strings.Join(append(out, "rulesets", "{id}"), "/")
		}
		return "/" + strings.Join(append(out, rest...), "/")
	case len(seg) == 4 && seg[0] == "app" && seg[1] == "installations":
		return "/app/installations/{id}/access_tokens"
	}
	return "/" + strings.Join(seg, "/")
}

// registerFreezeRoutes: the App's token, labels, pull requests, statuses.
func (f *Fake) registerFreezeRoutes() {
	f.handle("POST /app/installations/{id}/access_tokens", func(r *http.Request, seg []string) (int, any, bool) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			return http.StatusUnauthorized, basicError("A JSON web token could not be decoded"), false
		}
		f.applied["token "+seg[2]]++
		return http.StatusCreated, map[string]any{"token": "ghs_fake" + seg[2], "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, false
	})
	f.handle("GET /repos/{o}/{r}/labels/{name}", func(r *http.Request, seg []string) (int, any, bool) {
		desc, ok := f.repoLabel[seg[4]]
		if !ok {
			return http.StatusNotFound, nil, false
		}
		return http.StatusOK, f.label(seg[4], desc), false
	})
	f.handle("POST /repos/{o}/{r}/labels", func(r *http.Request, seg []string) (int, any, bool) {
		var in struct{ Name, Description string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" {
			return http.StatusUnprocessableEntity, validationError("name is missing"), false
		}
		if _, ok := f.repoLabel[in.Name]; ok {
			return http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest/issues/labels#create-a-label",
				"errors": []map[string]string{{"resource": "Label", "code": "already_exists", "field": "name"}}}, false
		}
		f.repoLabel[in.Name] = in.Description
		f.applied["label create "+in.Name]++
		return http.StatusCreated, f.label(in.Name, in.Description), true
	})
	f.handle("PATCH /repos/{o}/{r}/labels/{name}", func(r *http.Request, seg []string) (int, any, bool) {
		if _, ok := f.repoLabel[seg[4]]; !ok {
			return http.StatusNotFound, nil, false
		}
		var in struct{ Description *string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return http.StatusUnprocessableEntity, validationError(err.Error()), false
		}
		if in.Description != nil {
			f.repoLabel[seg[4]] = *in.Description
			f.applied["label describe "+seg[4]]++
		}
		return http.StatusOK, f.label(seg[4], f.repoLabel[seg[4]]), in.Description != nil
	})
	f.handle("GET /repos/{o}/{r}/pulls", func(r *http.Request, seg []string) (int, any, bool) {
		return http.StatusOK, f.page(r), false
	})
	f.handle("POST /repos/{o}/{r}/issues/{n}/labels", func(r *http.Request, seg []string) (int, any, bool) {
		pr := f.pr(seg[4])
		if pr == nil {
			return http.StatusNotFound, nil, false
		}
		// The description allows only {"labels": [...]} (GitHub's docs also
		// mention a bare array, which go-github sends; the middleware
		// refuses that before it gets here).
		var in struct{ Labels []string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Labels) == 0 {
			return http.StatusUnprocessableEntity, validationError("labels is missing"), false
		}
		for _, l := range in.Labels {
			if !contains(pr.Labels, l) {
				pr.Labels = append(pr.Labels, l)
				f.events[pr.Number] = append(f.events[pr.Number], LabelEvent{Label: l, Actor: TokenLogin})
			}
			if _, ok := f.repoLabel[l]; !ok {
				f.repoLabel[l] = ""
			}
			f.applied[fmt.Sprintf("label+ #%d", pr.Number)]++
		}
		return http.StatusOK, f.labels(pr.Labels), true
	})
	f.handle("DELETE /repos/{o}/{r}/issues/{n}/labels/{name}", func(r *http.Request, seg []string) (int, any, bool) {
		pr := f.pr(seg[4])
		if pr == nil || !contains(pr.Labels, seg[6]) {
			return http.StatusNotFound, nil, false
		}
		kept := pr.Labels[:0]
		for _, l := range pr.Labels {
			if l != seg[6] {
				kept = append(kept, l)
			}
		}
		pr.Labels = kept
		f.applied[fmt.Sprintf("label- #%d", pr.Number)]++
		return http.StatusOK, f.labels(pr.Labels), true
	})
	f.handle("POST /repos/{o}/{r}/statuses/{sha}", func(r *http.Request, seg []string) (int, any, bool) {
		var in struct {
			State, Context, Description string
			TargetURL                   string `json:"target_url"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return http.StatusUnprocessableEntity, validationError(err.Error()), false
		}
		f.statuses[seg[4]] = append(f.statuses[seg[4]], Status{in.State, in.Context, in.Description, in.TargetURL})
		f.applied["status "+in.State+" "+seg[4]]++
		id := f.writes + 1
		now := time.Now().UTC().Format(time.RFC3339)
		return http.StatusCreated, map[string]any{
			"url": f.ghURL("repos", f.Owner, f.Repo, "statuses", seg[4]), "avatar_url": nil,
			"id": id, "node_id": fmt.Sprintf("SC_%d", id),
			"state": in.State, "context": in.Context, "description": in.Description, "target_url": in.TargetURL,
			"created_at": now, "updated_at": now, "creator": nil,
		}, true
	})
}

func (f *Fake) ghURL(parts ...string) string {
	return "https://api.github.com/" + strings.Join(parts, "/")
}

func (f *Fake) pr(s string) *PR {
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil
	}
	return f.prs[n]
}

func (f *Fake) open() []*PR {
	out := make([]*PR, 0, len(f.prs))
	for _, p := range f.prs {
		if !p.Closed {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

func pageOf(r *http.Request) (page, per int) {
	q := r.URL.Query()
	page, _ = strconv.Atoi(q.Get("page"))
	per, _ = strconv.Atoi(q.Get("per_page"))
	if page < 1 {
		page = 1
	}
	if per < 1 || per > 100 {
		per = 30
	}
	return page, per
}

func (f *Fake) page(r *http.Request) []map[string]any {
	page, per := pageOf(r)
	all := f.open()
	out := []map[string]any{}
	for i := (page - 1) * per; i < len(all) && i < page*per; i++ {
		out = append(out, f.pullRequest(all[i]))
	}
	return out
}

// pullRequest overlays p on GitHub's example; nested objects are shared
// with the template and only read.
func (f *Fake) pullRequest(p *PR) map[string]any {
	m := maps.Clone(f.prTemplate)
	n := strconv.Itoa(p.Number)
	m["number"] = p.Number
	m["id"] = 1_000_000 + p.Number
	m["state"] = "open"
	m["title"] = "Change " + n
	m["url"] = f.ghURL("repos", f.Owner, f.Repo, "pulls", n)
	m["html_url"] = "https://github.com/" + f.Owner + "/" + f.Repo + "/pull/" + n
	m["labels"] = f.labels(p.Labels)
	// GitHub's example lists a team without the "type" its own schema
	// requires (the middleware caught it); the fake's PRs request no team.
	m["requested_teams"] = []any{}
	head := maps.Clone(f.prTemplate["head"].(map[string]any))
	head["sha"] = p.SHA
	head["ref"] = "feature-" + n
	head["label"] = f.Owner + ":feature-" + n
	m["head"] = head
	return m
}

// link is the Link header GitHub sends with a page of a list of total
// items.
func (f *Fake) link(r *http.Request, total int) string {
	page, per := pageOf(r)
	return linkHeader(r, page, (total+per-1)/per).Get("Link")
}

// label is a label as GitHub shows it. The description is always a string:
// the label schema allows null, but the one inside a listed pull request
// does not.
func (f *Fake) label(name, desc string) map[string]any {
	d := desc
	return map[string]any{
		"id": 100 + len(name), "node_id": "LA_" + name, "url": f.ghURL("repos", f.Owner, f.Repo, "labels", url.PathEscape(name)),
		"name": name, "description": d, "color": "d93f0b", "default": false,
	}
}

func (f *Fake) labels(names []string) []map[string]any {
	out := []map[string]any{}
	for _, n := range names {
		out = append(out, f.label(n, f.repoLabel[n]))
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
