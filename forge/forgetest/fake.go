// Package forgetest is a fake of the parts of GitHub's REST API that
// canarybot uses, for tests. It keeps state (labels, PRs, statuses), counts
// every request per route and every change it applied, and can be told to
// answer with rate limits or errors.
//
// Routes are not yet checked against GitHub's OpenAPI description.
package forgetest

import (
	"encoding/json"
	"fmt"
	"io"
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
}

// Reply is a canned answer served instead of the real one.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
}

// Fake is the fake GitHub. Its methods are safe for concurrent use.
type Fake struct {
	Owner, Repo string
	Server      *httptest.Server
	// URL is the API base to configure the client with (GITHUB_API_URL).
	URL string

	mu        sync.Mutex
	repoLabel map[string]bool
	prs       map[int]*PR
	statuses  map[string][]Status
	calls     map[string]int
	applied   map[string]int
	auth      []string
	replies   []Reply
	failAfter int // writes applied before every write fails; 0: never
	writes    int
	refuse    func(n int) bool
}

// Status is a commit status the fake received.
type Status struct {
	State, Context, Description, TargetURL string
}

// New starts a fake of owner/repo with n open PRs numbered 1..n.
func New(tb testing.TB, owner, repo string, n int) *Fake {
	tb.Helper()
	f := &Fake{
		Owner: owner, Repo: repo,
		repoLabel: map[string]bool{}, prs: map[int]*PR{}, statuses: map[string][]Status{},
		calls: map[string]int{}, applied: map[string]int{},
	}
	for i := 1; i <= n; i++ {
		f.prs[i] = &PR{Number: i, SHA: SHA(i)}
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(f.Server.Close)
	// go-github's Enterprise URLs add /api/v3/; serve the same there.
	f.URL = f.Server.URL + "/api/v3"
	return f
}

// SHA is the head commit the fake gives PR n.
func SHA(n int) string { return fmt.Sprintf("%040x", n*7919) }

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
	return f.repoLabel[name]
}

// Calls is the number of requests per route ("POST /repos/{o}/{r}/statuses/{sha}"),
// answered or failed.
func (f *Fake) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.calls))
	for k, v := range f.calls {
		out[k] = v
	}
	return out
}

// Applied is the number of changes applied per target, e.g. "label+ #12",
// "label- #12", "status failure <sha>", "label create hold-for-canary".
func (f *Fake) Applied() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.applied))
	for k, v := range f.applied {
		out[k] = v
	}
	return out
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
// so far; when it returns true the write is not applied and gets a 503. A
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
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
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
		writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Server Error"})
		return
	}
	if seg[0] == "repos" && r.Header.Get("Authorization") == "" {
		f.mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Requires authentication"})
		return
	}
	status, body, changed := f.handle(r, route, seg)
	if changed {
		f.writes++
	}
	f.mu.Unlock()
	if status == http.StatusNotFound {
		notFound(w)
	} else {
		if seg[0] == "repos" && len(seg) == 4 && seg[3] == "pulls" {
			f.link(w, r)
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
		case len(rest) == 3 && rest[0] == "issues" && rest[2] == "labels":
			return "/" + strings.Join(append(out, "issues", "{n}", "labels"), "/")
		case len(rest) == 4 && rest[0] == "issues" && rest[2] == "labels":
			return "/" + strings.Join(append(out, "issues", "{n}", "labels", "{name}"), "/")
		case len(rest) == 2 && rest[0] == "statuses":
			return "/" + strings.Join(append(out, "statuses", "{sha}"), "/")
		}
		return "/" + strings.Join(append(out, rest...), "/")
	case len(seg) == 4 && seg[0] == "app" && seg[1] == "installations":
		return "/app/installations/{id}/access_tokens"
	}
	return "/" + strings.Join(seg, "/")
}

// handle applies one request under f.mu; changed says a write took effect.
func (f *Fake) handle(r *http.Request, route string, seg []string) (int, any, bool) {
	if !strings.HasPrefix(route, "POST /app/") && (len(seg) < 3 || seg[1] != f.Owner || seg[2] != f.Repo) {
		return http.StatusNotFound, nil, false
	}
	switch route {
	case "POST /app/installations/{id}/access_tokens":
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			return http.StatusUnauthorized, map[string]string{"message": "A JSON web token could not be decoded"}, false
		}
		f.applied["token "+seg[2]]++
		return http.StatusCreated, map[string]any{"token": "ghs_fake" + seg[2], "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, false
	case "GET /repos/{o}/{r}/labels/{name}":
		if !f.repoLabel[seg[4]] {
			return http.StatusNotFound, nil, false
		}
		return http.StatusOK, label(seg[4]), false
	case "POST /repos/{o}/{r}/labels":
		var in struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" {
			return http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed"}, false
		}
		if f.repoLabel[in.Name] {
			return http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": []map[string]string{{"resource": "Label", "code": "already_exists", "field": "name"}}}, false
		}
		f.repoLabel[in.Name] = true
		f.applied["label create "+in.Name]++
		return http.StatusCreated, label(in.Name), true
	case "GET /repos/{o}/{r}/pulls":
		return http.StatusOK, f.page(r), false
	case "POST /repos/{o}/{r}/issues/{n}/labels":
		pr := f.pr(seg[4])
		if pr == nil {
			return http.StatusNotFound, nil, false
		}
		// GitHub takes {"labels": [...]} or, as go-github sends, a bare array.
		raw, _ := io.ReadAll(r.Body)
		var in struct{ Labels []string }
		if err := json.Unmarshal(raw, &in.Labels); err != nil {
			if err := json.Unmarshal(raw, &in); err != nil {
				in.Labels = nil
			}
		}
		if len(in.Labels) == 0 {
			return http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed"}, false
		}
		for _, l := range in.Labels {
			if !contains(pr.Labels, l) {
				pr.Labels = append(pr.Labels, l)
			}
			f.repoLabel[l] = true
			f.applied[fmt.Sprintf("label+ #%d", pr.Number)]++
		}
		return http.StatusOK, labels(pr.Labels), true
	case "DELETE /repos/{o}/{r}/issues/{n}/labels/{name}":
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
		return http.StatusOK, labels(pr.Labels), true
	case "POST /repos/{o}/{r}/statuses/{sha}":
		var in struct {
			State, Context, Description string
			TargetURL                   string `json:"target_url"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !contains([]string{"error", "failure", "pending", "success"}, in.State) {
			return http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed"}, false
		}
		f.statuses[seg[4]] = append(f.statuses[seg[4]], Status{in.State, in.Context, in.Description, in.TargetURL})
		f.applied["status "+in.State+" "+seg[4]]++
		return http.StatusCreated, map[string]any{"state": in.State, "context": in.Context, "description": in.Description, "target_url": in.TargetURL}, true
	}
	return http.StatusNotFound, nil, false
}

func (f *Fake) pr(s string) *PR {
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil
	}
	return f.prs[n]
}

func (f *Fake) sorted() []*PR {
	out := make([]*PR, 0, len(f.prs))
	for _, p := range f.prs {
		out = append(out, p)
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
	all := f.sorted()
	out := []map[string]any{}
	for i := (page - 1) * per; i < len(all) && i < page*per; i++ {
		p := all[i]
		out = append(out, map[string]any{
			"number": p.Number, "state": "open",
			"head":   map[string]any{"sha": p.SHA, "ref": fmt.Sprintf("feature-%d", p.Number)},
			"labels": labels(p.Labels),
		})
	}
	return out
}

// link writes the Link header GitHub sends with a page of a list.
func (f *Fake) link(w http.ResponseWriter, r *http.Request) {
	page, per := pageOf(r)
	f.mu.Lock()
	last := (len(f.prs) + per - 1) / per
	f.mu.Unlock()
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
	if len(parts) > 0 {
		w.Header().Set("Link", strings.Join(parts, ", "))
	}
}

func label(name string) map[string]any {
	return map[string]any{"name": name, "color": "d93f0b"}
}

func labels(names []string) []map[string]any {
	out := []map[string]any{}
	for _, n := range names {
		out = append(out, label(n))
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
