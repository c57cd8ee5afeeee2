package forge_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
)

// sleeps records the waits the Transport asks for instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func fastOptions(s *sleeps, m *forge.Metrics) forge.TransportOptions {
	o := forge.DefaultTransportOptions()
	o.WriteInterval = 0
	o.Sleep = s.sleep
	o.Metrics = m
	return o
}

func tokenClient(t *testing.T, fake *forgetest.Fake, o forge.TransportOptions) *github.Client {
	t.Helper()
	c, err := forge.NewClient(forge.Config{APIURL: fake.Server.URL, Owner: fake.Owner, Repo: fake.Repo, Token: "ghp_test"}, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newFreeze is a freeze in ModeStatuses, which most tests exercise; the
// mode tests set Mode themselves.
func newFreeze(t *testing.T, fake *forgetest.Fake, c *github.Client, path string) *forge.Freeze {
	t.Helper()
	return &forge.Freeze{
		Client: c, Owner: fake.Owner, Repo: fake.Repo, Mode: forge.ModeStatuses,
		Progress: forge.FileProgress{Path: path},
		Now:      func() time.Time { return time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC) },
	}
}

// exactlyOnce checks that each of n PRs was labelled and statused once.
func exactlyOnce(t *testing.T, fake *forgetest.Fake, n int, state string) {
	t.Helper()
	applied := fake.Applied()
	for i := 1; i <= n; i++ {
		if got := applied[fmt.Sprintf("label+ #%d", i)]; got != 1 {
			t.Errorf("PR #%d labelled %d times, want 1", i, got)
		}
		if got := applied["status "+state+" "+forgetest.SHA(i)]; got != 1 {
			t.Errorf("PR #%d got %d %s statuses, want 1", i, got, state)
		}
	}
}

// TestFreezeStartAndLiftOverPages freezes and lifts 1,000 open PRs, ten pages
// of them, every call checked against GitHub's OpenAPI description.
func TestFreezeStartAndLiftOverPages(t *testing.T) {
	const n = 1000
	fake := forgetest.New(t, "acme", "exchange", n)
	var s sleeps
	c := tokenClient(t, fake, fastOptions(&s, &forge.Metrics{}))
	f := newFreeze(t, fake, c, filepath.Join(t.TempDir(), "freeze.json"))
	ctx := context.Background()

	sum, err := f.Start(ctx, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if sum.PRs != n || sum.LabelsAdded != n || sum.StatusesSet != n || sum.Phase != forge.PhaseFrozen || !sum.Listed {
		t.Fatalf("summary %+v", sum)
	}
	if !fake.HasRepoLabel("hold-for-canary") {
		t.Error("label not created")
	}
	exactlyOnce(t, fake, n, "failure")
	calls := fake.Calls()
	if got, want := calls["GET /repos/{o}/{r}/pulls"], (n+99)/100; got != want {
		t.Errorf("%d list pages fetched, want %d (per_page 100)", got, want)
	}
	st := fake.Statuses(forgetest.SHA(7))[0]
	if st.Context != "canary/freeze" || !strings.Contains(st.Description, "v1.4.0") || st.TargetURL == "" {
		t.Errorf("status %+v", st)
	}
	if a := fake.Auth(); a[len(a)-1] != "Bearer ghp_test" {
		t.Errorf("Authorization %q", a[len(a)-1])
	}

	// A second start of the finished freeze calls nothing.
	before := len(fake.Auth())
	if _, err := f.Start(ctx, "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	if after := len(fake.Auth()); after != before {
		t.Errorf("second start made %d calls, want 0", after-before)
	}
	if _, err := f.Start(ctx, "v1.5.0"); !errors.Is(err, forge.ErrOtherFreeze) {
		t.Errorf("start of another version during a freeze: %v, want ErrOtherFreeze", err)
	}

	sum, err = f.Lift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.LabelsRemoved != n || sum.StatusesCleared != n || sum.Phase != forge.PhaseLifted || sum.Blocked() != 0 {
		t.Fatalf("lift summary %+v", sum)
	}
	for i := 1; i <= n; i++ {
		if l := fake.PRLabels(i); len(l) != 0 {
			t.Fatalf("PR #%d keeps labels %v after lift", i, l)
		}
		if got := fake.Applied()["status success "+forgetest.SHA(i)]; got != 1 {
			t.Fatalf("PR #%d: %d success statuses", i, got)
		}
	}
	text := string(sum.Text())
	for _, want := range []string{"version: v1.4.0", fmt.Sprintf("open PRs: %d", n), fmt.Sprintf("labels removed at lift: %d", n), fmt.Sprintf("#%d ", n)} {
		if !strings.Contains(text, want) {
			t.Errorf("Text lacks %q:\n%.600s", want, text)
		}
	}
}

func TestFreezeResumesWithoutDuplicates(t *testing.T) {
	const n = 120
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		stop func(fake *forgetest.Fake, cancel context.CancelFunc)
	}{
		{"GitHub fails half-way", func(fake *forgetest.Fake, _ context.CancelFunc) { fake.FailWritesAfter(n) }},
		{"the run is cancelled half-way", func(fake *forgetest.Fake, cancel context.CancelFunc) {
			fake.RefuseWrite(func(applied int) bool {
				if applied == n+1 {
					cancel()
					return true
				}
				return false
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := forgetest.New(t, "acme", "exchange", n)
			var s sleeps
			o := fastOptions(&s, &forge.Metrics{})
			o.MaxAttempts = 2
			c := tokenClient(t, fake, o)
			path := filepath.Join(t.TempDir(), "freeze.json")
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			tc.stop(fake, cancel)
			sum, err := newFreeze(t, fake, c, path).Start(runCtx, "v1.4.0")
			if err == nil {
				t.Fatal("interrupted start reported no error")
			}
			if sum.Phase != forge.PhaseStarting || sum.StatusesSet >= n {
				t.Fatalf("after interruption: %+v", sum)
			}
			fake.FailWritesAfter(0)
			fake.RefuseWrite(nil)
			sum, err = newFreeze(t, fake, c, path).Start(ctx, "v1.4.0")
			if err != nil {
				t.Fatal(err)
			}
			if sum.StatusesSet != n || sum.Phase != forge.PhaseFrozen {
				t.Fatalf("after resume: %+v", sum)
			}
			exactlyOnce(t, fake, n, "failure")
			if got := fake.Applied()["label create hold-for-canary"]; got != 1 {
				t.Errorf("label created %d times", got)
			}
		})
	}
}

func TestLiftKeepsAPersonsLabel(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 5)
	fake.LabelPR(3, "hold-for-canary")
	fake.LabelPR(4, "needs-review")
	var s sleeps
	f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json"))
	ctx := context.Background()
	sum, err := f.Start(ctx, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if sum.LabelsAdded != 4 || sum.AlreadyLabelled != 1 || sum.StatusesSet != 5 {
		t.Fatalf("start: %+v", sum)
	}
	if got := fake.Applied()["label+ #3"]; got != 0 {
		t.Errorf("PR #3 already had the label but was labelled %d times", got)
	}
	sum, err = f.Lift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.LabelsRemoved != 4 {
		t.Errorf("lift removed %d labels, want 4", sum.LabelsRemoved)
	}
	if l := fake.PRLabels(3); len(l) != 1 || l[0] != "hold-for-canary" {
		t.Errorf("PR #3 labels after lift %v, want the person's hold-for-canary kept", l)
	}
	if l := fake.PRLabels(4); len(l) != 1 || l[0] != "needs-review" {
		t.Errorf("PR #4 labels after lift %v", l)
	}
	if st := fake.Statuses(forgetest.SHA(3)); len(st) != 2 || st[1].State != "success" {
		t.Errorf("PR #3 statuses %+v; the freeze's own status must still be lifted", st)
	}
}

func TestLiftWithoutFreeze(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 1)
	var s sleeps
	f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json"))
	if _, err := f.Lift(context.Background()); !errors.Is(err, forge.ErrNotFrozen) {
		t.Fatalf("lift with no freeze: %v, want ErrNotFrozen", err)
	}
	sum, err := f.Status(context.Background())
	if err != nil || sum.Line() != "no freeze recorded" {
		t.Fatalf("status %q, %v", sum.Line(), err)
	}
}

// TestLiftRefusesAnotherRepository: the progress file's PR numbers belong
// to the repository the freeze started on; lifting with another
// GITHUB_REPOSITORY must touch nothing.
func TestLiftRefusesAnotherRepository(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 3)
	var s sleeps
	path := filepath.Join(t.TempDir(), "f.json")
	c := tokenClient(t, fake, fastOptions(&s, &forge.Metrics{}))
	if _, err := newFreeze(t, fake, c, path).Start(context.Background(), "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(fake.Calls())
	other := newFreeze(t, fake, c, path)
	other.Repo = "billing"
	if _, err := other.Lift(context.Background()); !errors.Is(err, forge.ErrOtherFreeze) || !strings.Contains(err.Error(), "acme/exchange") {
		t.Fatalf("lift of acme/billing with acme/exchange's progress: %v, want ErrOtherFreeze naming acme/exchange", err)
	}
	if _, err := other.Start(context.Background(), "v1.4.0"); !errors.Is(err, forge.ErrOtherFreeze) {
		t.Fatalf("start on another repository: %v, want ErrOtherFreeze", err)
	}
	if after := fmt.Sprint(fake.Calls()); after != before {
		t.Fatalf("calls made after the refusal:\nbefore %s\nafter  %s", before, after)
	}
}
