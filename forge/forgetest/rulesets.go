package forgetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Ruleset is a repository ruleset of the fake, as the freeze uses them.
type Ruleset struct {
	ID          int64
	Name        string
	Target      string
	Enforcement string
	// Include is the ref_name condition's include list.
	Include []string
	// RequiredChecks are the contexts of its required_status_checks rules.
	RequiredChecks []string

	raw map[string]any // the request body, echoed back as GitHub does
}

// Rulesets is the repository's rulesets, oldest first.
func (f *Fake) Rulesets() []Ruleset {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Ruleset
	for _, rs := range f.rulesetList() {
		c := *rs
		c.raw = nil
		out = append(out, c)
	}
	return out
}

// DenyAdmin makes every ruleset call answer status (403 or 404), as GitHub
// does for a token that may not administer the repository; 0 allows them
// again.
func (f *Fake) DenyAdmin(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denyAdmin = status
}

func (f *Fake) registerRulesetRoutes() {
	deny := func() (int, any, bool) {
		if f.denyAdmin == http.StatusNotFound {
			return http.StatusNotFound, nil, false
		}
		return f.denyAdmin, basicError("Resource not accessible by integration"), false
	}
	f.handle("GET /repos/{o}/{r}/rulesets", func(r *http.Request, seg []string) (int, any, bool) {
		if f.denyAdmin != 0 {
			return deny()
		}
		out := []map[string]any{}
		for _, rs := range f.rulesetList() {
			// The list leaves out conditions and rules, as GitHub's does.
			m := f.rulesetJSON(rs)
			delete(m, "conditions")
			delete(m, "rules")
			out = append(out, m)
		}
		return http.StatusOK, out, false
	})
	f.handle("POST /repos/{o}/{r}/rulesets", func(r *http.Request, seg []string) (int, any, bool) {
		if f.denyAdmin != 0 {
			return deny()
		}
		rs, err := parseRuleset(r)
		if err != nil {
			return http.StatusUnprocessableEntity, validationError(err.Error()), false
		}
		for _, o := range f.rulesets {
			if o.Name == rs.Name {
				return http.StatusUnprocessableEntity, validationError("Name must be unique"), false
			}
		}
		f.nextRuleset++
		rs.ID = f.nextRuleset
		f.rulesets[rs.ID] = rs
		f.applied[fmt.Sprintf("ruleset create %d", rs.ID)]++
		f.applied[fmt.Sprintf("ruleset %d %s", rs.ID, rs.Enforcement)]++
		return http.StatusCreated, f.rulesetJSON(rs), true
	})
	f.handle("PUT /repos/{o}/{r}/rulesets/{id}", func(r *http.Request, seg []string) (int, any, bool) {
		if f.denyAdmin != 0 {
			return deny()
		}
		id, _ := strconv.ParseInt(seg[4], 10, 64)
		old, ok := f.rulesets[id]
		if !ok {
			return http.StatusNotFound, nil, false
		}
		rs, err := parseRuleset(r)
		if err != nil {
			return http.StatusUnprocessableEntity, validationError(err.Error()), false
		}
		rs.ID = id
		if rs.Name == "" {
			rs.Name = old.Name
		}
		f.rulesets[id] = rs
		f.applied[fmt.Sprintf("ruleset %d %s", id, rs.Enforcement)]++
		return http.StatusOK, f.rulesetJSON(rs), true
	})
	f.handle("GET /repos/{o}/{r}/rulesets/{id}", func(r *http.Request, seg []string) (int, any, bool) {
		if f.denyAdmin != 0 {
			return deny()
		}
		id, _ := strconv.ParseInt(seg[4], 10, 64)
		rs, ok := f.rulesets[id]
		if !ok {
			return http.StatusNotFound, nil, false
		}
		return http.StatusOK, f.rulesetJSON(rs), false
	})
}

// rulesetList is the rulesets oldest first; f.mu is held.
func (f *Fake) rulesetList() []*Ruleset {
	var out []*Ruleset
	for id := int64(1); id <= f.nextRuleset; id++ {
		if rs, ok := f.rulesets[id]; ok {
			out = append(out, rs)
		}
	}
	return out
}

func parseRuleset(r *http.Request) (*Ruleset, error) {
	var raw map[string]any
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		return nil, err
	}
	var in struct {
		Name, Target, Enforcement string
		Conditions                struct {
			RefName struct{ Include []string } `json:"ref_name"`
		}
		Rules []struct {
			Type       string
			Parameters struct {
				RequiredStatusChecks []struct{ Context string } `json:"required_status_checks"`
			}
		}
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	rs := &Ruleset{Name: in.Name, Target: in.Target, Enforcement: in.Enforcement, Include: in.Conditions.RefName.Include, raw: raw}
	if rs.Target == "" {
		rs.Target = "branch"
	}
	for _, rule := range in.Rules {
		if rule.Type == "required_status_checks" {
			for _, c := range rule.Parameters.RequiredStatusChecks {
				rs.RequiredChecks = append(rs.RequiredChecks, c.Context)
			}
		}
	}
	return rs, nil
}

func (f *Fake) rulesetJSON(rs *Ruleset) map[string]any {
	now := time.Now().UTC().Format(time.RFC3339)
	m := map[string]any{
		"id": rs.ID, "name": rs.Name, "target": rs.Target, "enforcement": rs.Enforcement,
		"source_type": "Repository", "source": f.Owner + "/" + f.Repo,
		"node_id": fmt.Sprintf("RRS_%d", rs.ID), "current_user_can_bypass": "never",
		"_links": map[string]any{
			"self": map[string]any{"href": f.ghURL("repos", f.Owner, f.Repo, "rulesets", strconv.FormatInt(rs.ID, 10))},
			"html": map[string]any{"href": fmt.Sprintf("https://github.com/%s/%s/rules/%d", f.Owner, f.Repo, rs.ID)},
		},
		"created_at": now, "updated_at": now,
	}
	for _, k := range []string{"conditions", "rules", "bypass_actors"} {
		if v, ok := rs.raw[k]; ok {
			m[k] = v
		}
	}
	return m
}
