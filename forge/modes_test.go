package forge_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
)

// TestRulesetsMode: with a token that may administer the repository, one
// ruleset blocks every PR, the PRs get only the label, and the lift
// disables the ruleset; a second release reuses it.
func TestRulesetsMode(t *testing.T) {
	const n = 130
	fake := forgetest.New(t, "acme", "exchange", n)
	var s sleeps
	f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json"))
	f.Mode = forge.ModeAuto
	ctx := context.Background()

	sum, err := f.Start(ctx, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	rs := fake.Rulesets()
	if len(rs) != 1 {
		t.Fatalf("rulesets %+v, want one", rs)
	}
	want := forgetest.Ruleset{ID: rs[0].ID, Name: forge.DefaultRulesetName, Target: "branch", Enforcement: "active", Include: []string{"~DEFAULT_BRANCH"}, RequiredChecks: []string{"canary/freeze"}}
	if !reflect.DeepEqual(rs[0], want) {
		t.Errorf("ruleset %+v, want %+v", rs[0], want)
	}
	if sum.Mode != forge.ModeRulesets || sum.StatusesSet != 0 || sum.LabelsAdded != n || sum.Blocked() != n {
		t.Errorf("summary %+v", sum)
	}
	for i := 1; i <= n; i++ {
		if st := fake.Statuses(forgetest.SHA(i)); len(st) != 0 {
			t.Fatalf("PR #%d got statuses %v; the ruleset blocks, statuses are not needed", i, st)
		}
	}
	if !strings.Contains(sum.Line(), "rulesets (ruleset 1, on") {
		t.Errorf("status line %q does not say the mode", sum.Line())
	}
	// The ruleset goes on before any PR is touched: blocking does not wait
	// for the labels.
	if got := fake.Applied()["ruleset create 1"]; got != 1 {
		t.Errorf("ruleset created %d times", got)
	}

	sum, err = f.Lift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs := fake.Rulesets(); rs[0].Enforcement != "disabled" {
		t.Errorf("after lift the ruleset is %s", rs[0].Enforcement)
	}
	if sum.LabelsRemoved != n || sum.StatusesCleared != 0 || sum.Blocked() != 0 {
		t.Errorf("lift summary %+v", sum)
	}

	// The next release turns the same ruleset on again.
	if _, err := f.Start(ctx, "v1.5.0"); err != nil {
		t.Fatal(err)
	}
	if rs := fake.Rulesets(); len(rs) != 1 || rs[0].Enforcement != "active" {
		t.Errorf("second release: rulesets %+v, want the one, active again", rs)
	}
}

// TestModeFallsBackToStatuses: where GitHub refuses the ruleset (403 for an
// integration without administration, 404 for a token that may not see
// the settings), the per-PR statuses block, and the summary says why.
func TestModeFallsBackToStatuses(t *testing.T) {
	for _, status := range []int{403, 404} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			fake := forgetest.New(t, "acme", "exchange", 3)
			fake.DenyAdmin(status)
			var s sleeps
			path := filepath.Join(t.TempDir(), "f.json")
			f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), path)
			f.Mode = forge.ModeAuto
			sum, err := f.Start(context.Background(), "v1.4.0")
			if err != nil {
				t.Fatal(err)
			}
			if sum.Mode != forge.ModeStatuses || !strings.Contains(sum.ModeReason, "may not administer") {
				t.Errorf("mode %q because %q", sum.Mode, sum.ModeReason)
			}
			exactlyOnce(t, fake, 3, "failure")
			if len(s.all()) != 0 {
				t.Errorf("waited %v on a refusal", s.all())
			}
			st, err := (&forge.Freeze{Progress: forge.FileProgress{Path: path}}).Status(context.Background())
			if err != nil || !strings.Contains(st.Line(), "mode statuses") || !strings.Contains(st.Line(), "labelling 3/3 done") {
				t.Errorf("status %q, %v", st.Line(), err)
			}

			// Forced rulesets mode fails instead.
			fake2 := forgetest.New(t, "acme", "exchange", 1)
			fake2.DenyAdmin(status)
			f2 := newFreeze(t, fake2, tokenClient(t, fake2, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json"))
			f2.Mode = forge.ModeRulesets
			if _, err := f2.Start(context.Background(), "v1.4.0"); err == nil || !strings.Contains(err.Error(), "may not administer") {
				t.Errorf("forced rulesets without admin: %v", err)
			}
		})
	}
}

// TestLiftUsesCurrentHeads: PRs pushed to, opened or closed during the
// freeze (with no webhook to tell the freeze) are handled by the lift's
// re-listing: success on each open PR's current head, none on a closed
// one, and no label taken off a PR the freeze did not label.
func TestLiftUsesCurrentHeads(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 4)
	var s sleeps
	f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json"))
	ctx := context.Background()
	if _, err := f.Start(ctx, "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	newHead := fake.PushPR(2)
	opened := fake.OpenPR("hold-for-canary") // a person's label
	fake.ClosePR(4)

	sum, err := f.Lift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	applied := fake.Applied()
	if got := applied["status success "+newHead]; got != 1 {
		t.Errorf("pushed PR #2: %d success statuses on its new head, want 1", got)
	}
	if got := applied["status success "+forgetest.SHA(2)]; got != 0 {
		t.Errorf("pushed PR #2: %d success statuses on its old head, want 0", got)
	}
	if got := applied["status success "+opened.SHA]; got != 1 {
		t.Errorf("PR #%d opened during the freeze: %d success statuses, want 1 (a required check must report)", opened.Number, got)
	}
	if got := applied["status success "+forgetest.SHA(4)]; got != 0 {
		t.Errorf("closed PR #4 got %d success statuses", got)
	}
	if l := fake.PRLabels(opened.Number); len(l) != 1 {
		t.Errorf("PR #%d labels %v: the person's label must stay", opened.Number, l)
	}
	if got := applied[fmt.Sprintf("label- #%d", 4)]; got != 1 {
		t.Errorf("closed PR #4: label removed %d times, want 1", got)
	}
	if sum.StatusesCleared != 4 || sum.LabelsRemoved != 4 {
		t.Errorf("lift summary %+v", sum)
	}
	if fake.RepoLabelDescription("hold-for-canary") != "canarybot: no merge freeze in force" {
		t.Errorf("label description after lift %q", fake.RepoLabelDescription("hold-for-canary"))
	}
}

// loseAnswer performs the first request whose path ends in suffix and then
// reports a timeout, as when GitHub applied a write but the answer never
// arrived.
type loseAnswer struct {
	suffix string
	lost   bool
}

func (l *loseAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && !l.lost && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, l.suffix) {
		l.lost = true
		resp.Body.Close()
		return nil, timeoutErr{}
	}
	return resp, err
}

// TestRulesetCreateAnswerLost: the Transport does not repeat the create
// (it could duplicate the ruleset); the run fails, a lift finds the
// unrecorded ruleset by name and turns it off, and the next start reuses
// it: one ruleset throughout.
func TestRulesetCreateAnswerLost(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 2)
	var s sleeps
	c, err := forge.NewClient(forge.Config{APIURL: fake.Server.URL, Owner: "acme", Repo: "exchange", Token: "t"}, &loseAnswer{suffix: "/rulesets"}, fastOptions(&s, &forge.Metrics{}))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "f.json")
	f := newFreeze(t, fake, c, path)
	f.Mode = forge.ModeAuto
	ctx := context.Background()
	if _, err := f.Start(ctx, "v1.4.0"); err == nil {
		t.Fatal("start with a lost answer reported no error")
	}
	if got := fake.Calls()["POST /repos/{o}/{r}/rulesets"]; got != 1 {
		t.Fatalf("ruleset create sent %d times, want 1 (not repeated after a timeout)", got)
	}
	if _, err := f.Lift(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := fake.Rulesets(); len(rs) != 1 || rs[0].Enforcement != "disabled" {
		t.Fatalf("after the lift: %+v, want the one ruleset disabled", rs)
	}
	if _, err := f.Start(ctx, "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	if rs := fake.Rulesets(); len(rs) != 1 || rs[0].Enforcement != "active" {
		t.Fatalf("after the next start: %+v, want the one ruleset active", rs)
	}
}
