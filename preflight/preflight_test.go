package preflight

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/rollout"
)

// memEvidence is an in-memory rollout.Evidence.
type memEvidence struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (m *memEvidence) Write(_ context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string][]byte{}
	}
	m.files[name] = append([]byte(nil), data...)
	return nil
}

func (m *memEvidence) get(name string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	return string(b), ok
}

func (m *memEvidence) names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sortedKeys(m.files)
}

// runSingle runs one check and returns its result.
func runSingle(t *testing.T, c Check, o Options) Result {
	t.Helper()
	rep, err := Run(context.Background(), []Check{c}, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep.Results[0]
}

func assertResult(t *testing.T, got Result, status Status, detail string) {
	t.Helper()
	if got.Status != status || !strings.Contains(got.Detail, detail) {
		t.Errorf("got %s %q, want %s containing %q", got.Status, got.Detail, status, detail)
	}
}

func serveDemo(t *testing.T) string {
	t.Helper()
	s := demo.NewService(demo.TrackCanary, 1)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return srv.URL
}

// serveHung answers nothing until the client gives up or the test ends.
func serveHung(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: cleanups are LIFO
	return srv.URL
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestHTTPCheck(t *testing.T) {
	t.Parallel()
	canary := serveDemo(t)
	unavailable := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	noCSP := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	weakCSP := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "script-src 'self'")
	})
	hung := serveHung(t)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	csp := map[string][]string{"Content-Security-Policy": {"default-src", "frame-ancestors 'none'"}}

	tests := []struct {
		name   string
		check  Check
		canary string
		status Status
		detail string
	}{
		{"demo healthz passes", Check{URL: canary + "/healthz", Headers: csp, Body: `^ok canary`}, "", Passed, "200 in"},
		{"path on the canary", Check{URL: "/healthz"}, canary, Passed, "GET " + canary + "/healthz: 200"},
		{"expected status", Check{URL: canary + "/no-such-route", Status: 404}, "", Passed, "404"},
		{"wrong status", Check{URL: unavailable}, "", Failed, "status 503, want 200"},
		{"missing header", Check{URL: noCSP, Headers: csp}, "", Failed, "header Content-Security-Policy missing"},
		{"header lacks directive", Check{URL: weakCSP, Headers: csp}, "", Failed, `header Content-Security-Policy lacks "default-src"`},
		{"body mismatch", Check{URL: canary + "/healthz", Body: `^ok stable`}, "", Failed, `body does not match /^ok stable/: "ok canary"`},
		{"slow", Check{URL: hung, MaxLatency: 50 * time.Millisecond}, "", Failed, "slow: no answer from " + hung + " within max_latency 50ms"},
		{"bad certificate", Check{URL: tlsSrv.URL}, "", Failed, "TLS certificate of " + tlsSrv.URL + " is not valid: signed by an unknown authority"},
		{"no URL", Check{}, canary, CannotRun, "no URL configured"},
		{"path without canary", Check{URL: "/healthz"}, "", CannotRun, "no canary URL is given (--canary)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.check
			c.Name, c.Kind = "probe", KindHTTP
			assertResult(t, runSingle(t, c, Options{Canary: tt.canary, Budget: 10 * time.Second}), tt.status, tt.detail)
		})
	}
}

func TestHTTPCheckWritesHeaders(t *testing.T) {
	t.Parallel()
	ev := &memEvidence{}
	c := Check{Name: "csp", Kind: KindHTTP, URL: "/healthz", Evidence: "csp_headers_{version}.txt",
		Headers: map[string][]string{"Content-Security-Policy": {"default-src"}}}
	res := runSingle(t, c, Options{Version: "v1.4.0", Canary: serveDemo(t), Evidence: ev})
	assertResult(t, res, Passed, "200")
	got, ok := ev.get("csp_headers_v1.4.0.txt")
	if !ok || res.Evidence != "csp_headers_v1.4.0.txt" {
		t.Fatalf("evidence not written (result names %q); files: %v", res.Evidence, ev.names())
	}
	for _, want := range []string{"HTTP/1.1 200 OK\n", "Content-Security-Policy: default-src 'self';"} {
		if !strings.Contains(got, want) {
			t.Errorf("evidence lacks %q:\n%s", want, got)
		}
	}
}

// gitRepo makes a repository with one commit tagged tag, and extra
// commits after it.
func gitRepo(t *testing.T, tag string, after int) string {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.com",
			"-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("commit", "-q", "--allow-empty", "-m", "release")
	git("tag", tag)
	for range after {
		git("commit", "-q", "--allow-empty", "-m", "after the release")
	}
	return dir
}

func TestGitCheck(t *testing.T) {
	t.Parallel()
	tagged := gitRepo(t, "v1.4.0", 0)
	ahead := gitRepo(t, "v1.4.0", 1)
	tests := []struct {
		name     string
		dir      string // the check's dir
		repo     string // Options.Repo
		version  string
		status   Status
		detail   string
		evidence string // prefix of release_tag.txt; "" means none written
	}{
		{"tag at HEAD", "", tagged, "v1.4.0", Passed, "tag v1.4.0 exists and git describe matches", "v1.4.0\n"},
		{"dir overrides repo", tagged, ahead, "v1.4.0", Passed, "git describe matches", "v1.4.0\n"},
		{"missing tag", tagged, "", "v1.5.0", Failed, "tag v1.5.0 does not exist in " + tagged, ""},
		{"describe mismatch", ahead, "", "v1.4.0", Failed, "git describe says v1.4.0-1-g", "v1.4.0-1-g"},
		{"not a repository", t.TempDir(), "", "v1.4.0", Failed, "git rev-parse in", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := &memEvidence{}
			c := Check{Name: "release_tag", Kind: KindGit, Dir: tt.dir, Evidence: "release_tag.txt"}
			assertResult(t, runSingle(t, c, Options{Version: tt.version, Repo: tt.repo, Evidence: ev}), tt.status, tt.detail)
			got, ok := ev.get("release_tag.txt")
			if ok != (tt.evidence != "") || !strings.HasPrefix(got, tt.evidence) {
				t.Errorf("release_tag.txt written %t: %q, want prefix %q", ok, got, tt.evidence)
			}
		})
	}
}

func TestCommandCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		argv     []string
		timeout  time.Duration
		status   Status
		detail   string
		evidence string // "-" means not written
	}{
		{"exit 0", []string{"echo", "all", "good"}, 0, Passed, "echo all good: exit 0", "all good\n"},
		{"exit 0, no output", []string{"true"}, 0, Passed, "exit 0", ""},
		{"exit 3", []string{"sh", "-c", "echo partial; echo boom >&2; exit 3"}, 0, Failed, "exit status 3: boom", "partial\n"},
		{"timeout", []string{"sleep", "30"}, 100 * time.Millisecond, Failed, "sleep 30: timed out after 100ms", "-"},
		{"not installed", []string{"canarybot-no-such-program"}, 0, CannotRun, "executable file not found", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := &memEvidence{}
			c := Check{Name: "cmd", Kind: KindCommand, Argv: tt.argv, Timeout: tt.timeout, Evidence: "cmd_{version}.txt"}
			assertResult(t, runSingle(t, c, Options{Version: "v1", Evidence: ev, Budget: 20 * time.Second}), tt.status, tt.detail)
			got, ok := ev.get("cmd_v1.txt")
			if tt.evidence == "-" {
				if ok {
					t.Errorf("evidence written: %q", got)
				}
			} else if !ok || got != tt.evidence {
				t.Errorf("evidence written %t: %q, want %q", ok, got, tt.evidence)
			}
		})
	}
}

func TestDefaultChecksWithoutTargets(t *testing.T) {
	t.Parallel()
	ev := &memEvidence{}
	rep, err := Run(context.Background(), DefaultChecks(), Options{Version: "v1.4.0", Repo: gitRepo(t, "v1.4.0", 0), Evidence: ev, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"canary_health":          "no canary URL is given",
		"csp_headers":            "no canary URL is given",
		"scrape_targets_up":      "no Prometheus URL configured",
		"no_auto_rollback_alert": "no Prometheus URL configured",
		"eventloop_lag_p95":      "no Prometheus URL configured",
		"prisma_migrations":      "no DSN: $DATABASE_URL is not set",
		"pg_dead_tuples_top5":    "no DSN: $DATABASE_URL is not set",
		"pitr_backup_status":     "no DSN: $DATABASE_URL is not set",
		"pgbouncer_pools":        "no DSN: $PGBOUNCER_ADMIN_URL is not set",
	}
	if len(rep.Results) != 10 {
		t.Fatalf("%d results, want the runbook's 10", len(rep.Results))
	}
	for _, res := range rep.Results {
		if res.Name == "release_tag" {
			assertResult(t, res, Passed, "describe matches")
			continue
		}
		assertResult(t, res, CannotRun, want[res.Name])
	}
	if rep.Passed() || rep.Summary() != "1/10 passed, 9 cannot run" {
		t.Errorf("passed %t, summary %q", rep.Passed(), rep.Summary())
	}
	if got := ev.names(); !slices.Equal(got, []string{"release_tag.txt"}) {
		t.Errorf("evidence written: %v, want only release_tag.txt", got)
	}
}

func TestBudget(t *testing.T) {
	t.Parallel()
	checks := []Check{
		{Name: "hung_http", Kind: KindHTTP, URL: serveHung(t), Evidence: "hung.txt"},
		{Name: "hung_command", Kind: KindCommand, Argv: []string{"sleep", "30"}, Evidence: "sleep.txt"},
		{Name: "quick", Kind: KindCommand, Argv: []string{"true"}, Evidence: "quick.txt"},
	}
	ev := &memEvidence{}
	var seen []string
	rep, err := Run(context.Background(), checks, Options{Version: "v1", Budget: 300 * time.Millisecond, Evidence: ev,
		OnResult: func(r Result) { seen = append(seen, r.Name) }})
	if err != nil {
		t.Fatal(err)
	}
	assertResult(t, rep.Results[0], Failed, "timed out: still running when the 300ms budget ran out")
	assertResult(t, rep.Results[1], Failed, "timed out: still running when the 300ms budget ran out")
	assertResult(t, rep.Results[2], Passed, "exit 0")
	if slices.Sort(seen); !slices.Equal(seen, []string{"hung_command", "hung_http", "quick"}) {
		t.Errorf("OnResult saw %v, want each check once", seen)
	}
	if got := ev.names(); !slices.Equal(got, []string{"quick.txt"}) {
		t.Errorf("evidence written: %v, want only the finished check's", got)
	}
	if rep.Summary() != "1/3 passed, 0 cannot run" {
		t.Errorf("summary %q", rep.Summary())
	}
}

func TestInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, []Check{{Name: "c", Kind: KindCommand, Argv: []string{"sleep", "30"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertResult(t, rep.Results[0], Failed, "interrupted: context canceled")
}

func TestReportText(t *testing.T) {
	t.Parallel()
	rep := &Report{Results: []Result{
		{Name: "release_tag", Kind: KindGit, Status: Passed, Duration: 12340 * time.Microsecond, Detail: "tag v1.4.0 exists"},
		{Name: "canary_health", Kind: KindHTTP, Status: Failed, Duration: 2 * time.Second, Detail: "status 503, want 200"},
		{Name: "pgbouncer_pools", Kind: KindPostgres, Status: CannotRun, Detail: "the postgres check kind is not built yet"},
	}}
	want, err := os.ReadFile(filepath.Join("testdata", "preflight.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rep.Text()); got != string(want) {
		t.Errorf("Text:\n%s\nwant:\n%s", got, want)
	}
	wantProblems := []string{"canary_health failed: status 503, want 200", "pgbouncer_pools cannot run: the postgres check kind is not built yet"}
	if got := rep.Problems(); !slices.Equal(got, wantProblems) {
		t.Errorf("Problems: %q", got)
	}
}

func TestProduces(t *testing.T) {
	t.Parallel()
	want := []string{"preflight.txt", "release_tag.txt", "csp_headers_v1.4.0.txt", "prisma_status_v1.4.0.txt", "pg_dead_tuples_top5.txt", "backup_status_v1.4.0.txt", "pgbouncer_pools_v1.4.0.tsv"}
	if got := (&Gate{}).Produces("v1.4.0"); !slices.Equal(got, want) {
		t.Errorf("Produces: %q, want %q", got, want)
	}
}

func TestGate(t *testing.T) {
	t.Parallel()
	release := &rollout.Release{ID: "r1", Version: "v1.4.0"}
	t.Run("passes when every check passes", func(t *testing.T) {
		t.Parallel()
		ev := &memEvidence{}
		g := &Gate{Checks: []Check{{Name: "ok", Kind: KindCommand, Argv: []string{"echo", "fine"}, Evidence: "ok_{version}.txt"}}, Options: Options{Evidence: ev}}
		res, err := g.Run(context.Background(), release)
		if err != nil || res.Status != rollout.GatePassed || res.Detail != "1/1 passed, 0 cannot run" {
			t.Fatalf("Run: %+v, %v", res, err)
		}
		if got := ev.names(); !slices.Equal(got, []string{"ok_v1.4.0.txt", "preflight.txt"}) {
			t.Errorf("evidence: %v", got)
		}
	})
	t.Run("a check that cannot run is a NO-GO", func(t *testing.T) {
		t.Parallel()
		ev := &memEvidence{}
		g := &Gate{Checks: []Check{
			{Name: "ok", Kind: KindCommand, Argv: []string{"true"}},
			{Name: "prisma_migrations", Kind: KindPostgres, SQL: "SELECT 1"},
		}, Options: Options{Evidence: ev, Getenv: noEnv}}
		res, err := g.Run(context.Background(), release)
		if err != nil || res.Status != rollout.GateFailed ||
			res.Detail != "NO-GO: preflight 1/2 passed, 1 cannot run: prisma_migrations cannot run: no DSN: $DATABASE_URL is not set" {
			t.Fatalf("Run: %+v, %v", res, err)
		}
		if text, ok := ev.get("preflight.txt"); !ok || !strings.HasSuffix(text, "1/2 passed, 1 cannot run\n") {
			t.Errorf("preflight.txt: %q", text)
		}
	})
	t.Run("no evidence store", func(t *testing.T) {
		t.Parallel()
		if _, err := (&Gate{}).Run(context.Background(), release); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("invalid checks", func(t *testing.T) {
		t.Parallel()
		_, err := (&Gate{Checks: []Check{{Name: "x", Kind: "ftp"}}, Options: Options{Evidence: &memEvidence{}}}).Run(context.Background(), release)
		if !errors.Is(err, ErrBadChecks) {
			t.Fatalf("err %v, want ErrBadChecks", err)
		}
	})
}
