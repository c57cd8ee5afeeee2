package forgetest

import (
	"net/http"
	"strconv"
)

// The logins the fake records label events under: API calls act as the
// token's bot account, as GITHUB_TOKEN or a GitHub App does; labels a PR
// was opened with, and LabelAsPerson, as a person.
const (
	TokenLogin  = "github-actions[bot]"
	PersonLogin = "octocat"
)

// LabelEvent is a "labeled" issue event.
type LabelEvent struct {
	Label, Actor string
}

// LabelAsPerson adds label to PR n as a person would in GitHub's UI.
func (f *Fake) LabelAsPerson(n int, label string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr := f.prs[n]
	if pr == nil || contains(pr.Labels, label) {
		return
	}
	pr.Labels = append(pr.Labels, label)
	f.events[n] = append(f.events[n], LabelEvent{Label: label, Actor: PersonLogin})
}

func (f *Fake) registerEventRoutes() {
	f.handle("GET /repos/{o}/{r}/issues/{n}/events", func(r *http.Request, seg []string) (int, any, bool) {
		pr := f.pr(seg[4])
		if pr == nil {
			return http.StatusNotFound, nil, false
		}
		out := []any{}
		for i, e := range f.events[pr.Number] {
			id := pr.Number*1000 + i
			out = append(out, map[string]any{
				"id": id, "node_id": "LE_" + strconv.Itoa(id),
				"url":        f.ghURL("repos", f.Owner, f.Repo, "issues", "events", strconv.Itoa(id)),
				"actor":      f.actor(e.Actor),
				"event":      "labeled",
				"commit_id":  nil,
				"commit_url": nil,
				"created_at": "2026-11-27T10:00:00Z",
				"label":      map[string]any{"name": e.Label, "color": "ededed"},
				// Null for a person; a bot's event names its app, which the
				// description allows to be null too.
				"performed_via_github_app": nil,
			})
		}
		return http.StatusOK, out, false
	})
}

// actor is a simple-user for login.
func (f *Fake) actor(login string) map[string]any {
	u := f.user()
	u["login"] = login
	if login == PersonLogin {
		u["type"] = "User"
	}
	return u
}
