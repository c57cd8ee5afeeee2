package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/checks"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/preflight"
)

// runCmd runs a command of this issue in-process the way the root runs
// it, with --evidence-dir set, and returns its output and exit code.
// (They are registered in main.go by their owner; until then a root built
// by newRoot does not know them.)
func runCmd(t testing.TB, ctx context.Context, newCmd func(*globals) *cobra.Command, evidenceDir string, args ...string) (string, int) {
	t.Helper()
	var out testenv.SyncBuffer
	g := &globals{out: &out, errOut: &out, logLevel: "error", evidenceDir: evidenceDir}
	code := runWith(ctx, g, newCmd, args...)
	return out.String(), code
}

func runWith(ctx context.Context, g *globals, newCmd func(*globals) *cobra.Command, args ...string) int {
	cmd := newCmd(g)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(g.out)
	cmd.SetErr(g.errOut)
	cmd.SetArgs(args)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &exitError{code: exitBadInput, err: err} })
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(g.errOut, err)
	}
	return exitCode(err)
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// demoReadyChecks is a preflight for a demo canary without Prometheus or a
// database.
const demoReadyChecks = `checks:
  - name: canary_health
    kind: http
    url: /healthz
    body: "^ok canary"
  - name: csp_headers
    kind: http
    url: /healthz
    headers:
      Content-Security-Policy: [default-src]
    evidence: csp_headers_{version}.txt
`

func TestReady(t *testing.T) {
	t.Parallel()
	repo := taggedRepo(t, "v1.4.0")
	checksFile := writeFile(t, t.TempDir(), "checks.yaml", demoReadyChecks)

	t.Run("ready against the demo canary", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		canary := serveDemo(t, demo.TrackCanary)
		out, code := runCmd(t, context.Background(), newReadyCmd, dir, "v1.4.0", "--canary", canary, "--checks", checksFile, "--repo", repo, "--blast-n", "10")
		if code != exitComplete {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{
			"90-SECOND READINESS CHECK v1.4.0",
			"version seal", "tag v1.4.0 exists and git describe matches",
			"preflight", "2/2 passed, 0 cannot run",
			"blast radius", "10 HTTP + 10 WebSocket probes pass",
			"artifact completeness", "4/4 evidence files present; release artifacts not counted: the green button is not configured",
			"green button", "skipped", "skipped: not configured",
			"evidence files: 4 in " + filepath.Join(dir, "v1.4.0"),
			"(the runbook allows 1m30s)",
			"READY FOR GO/NO-GO DECISION",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		for _, f := range []string{"release_tag.txt", "preflight.txt", "csp_headers_v1.4.0.txt", "micro_blast_v1.4.0.log"} {
			readEvidence(t, dir, "v1.4.0", f)
		}
		if out, code := cli(t, "evidence", "verify", filepath.Join(dir, "v1.4.0")); code != exitComplete {
			t.Errorf("evidence verify exit %d:\n%s", code, out)
		}
	})

	t.Run("broken canary and no tag", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := demo.NewService(demo.TrackCanary, 3)
		s.SetDefects(demo.Defects{DropWebSocket: true})
		srv := httptest.NewServer(s)
		t.Cleanup(func() { srv.Close(); s.Close() })
		out, code := runCmd(t, context.Background(), newReadyCmd, dir, "v1.5.0", "--canary", srv.URL, "--checks", checksFile, "--repo", repo, "--blast-n", "5")
		if code != exitFailure {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []string{
			"tag v1.5.0 does not exist",
			"ws success 0/5",
			"missing: release_tag.txt",
			"NOT READY: version seal, blast radius, artifact completeness failed",
			"ready v1.5.0: NOT READY: version seal, blast radius, artifact completeness failed",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "READY FOR GO/NO-GO") {
			t.Errorf("a failed check says ready:\n%s", out)
		}
	})

	t.Run("runbook defaults without their targets", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		canary := serveDemo(t, demo.TrackCanary)
		// No --checks: the runbook's 10; no Prometheus, no database.
		g := &globals{out: io.Discard, errOut: io.Discard, evidenceDir: dir}
		rep, err := runReady(context.Background(), g, readyOptions{version: "v1.4.0", canary: canary, repo: repo,
			budget: 10 * time.Second, getenv: func(string) string { return "" }})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(rep.failed(), ","); got != stepPreflight+","+stepArtifacts {
			t.Errorf("failed %q, want the preflight and the missing database evidence", got)
		}
		var b bytes.Buffer
		printReady(&b, rep)
		for _, want := range []string{"3/10 passed, 7 cannot run", "prisma_migrations cannot run: no DSN: $DATABASE_URL is not set", "missing: prisma_status_v1.4.0.txt"} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("summary lacks %q:\n%s", want, b.String())
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{},
			{"v1.4.0", "--canary", "canary.example.com"},
			{"v1.4.0", "--checks", filepath.Join(t.TempDir(), "missing.yaml")},
			{"v1.4.0", "--blast-n", "0"},
			{"v1.4.0", "--budget", "0s"},
			{"v1.4.0", "--header", "no equals sign"},
		} {
			if out, code := runCmd(t, context.Background(), newReadyCmd, t.TempDir(), args...); code != exitBadInput {
				t.Errorf("%q: exit %d, want 2:\n%s", args, code, out)
			}
		}
	})
}

// TestReadyAndDiagnoseRunbookDefaults runs `ready` with the runbook's 10
// checks against everything they read: a demo canary, a real Prometheus
// scraping it, a real PostgreSQL that archives its WAL, and pgBouncer;
// then `diagnose` against the same. Not parallel: the DSNs are in the
// environment, as in production.
func TestReadyAndDiagnoseRunbookDefaults(t *testing.T) {
	canary := serveDemo(t, demo.TrackCanary)
	u, _ := url.Parse(canary)
	prom := testenv.Prometheus(t, testenv.PrometheusConfig{Targets: []testenv.ScrapeTarget{
		{Addr: u.Host, Labels: map[string]string{"track": "canary"}},
	}})
	pg := testenv.Postgres(t, testenv.PostgresConfig{ArchiveCommand: "cp %p {dir}/%f"})
	db := pg.CreateDatabase(t, "../../preflight/testdata/sql/prisma_table.sql", "../../preflight/testdata/sql/wal_switch.sql")
	t.Setenv(preflight.DefaultDSNEnv, pg.DSN(db))
	t.Setenv(preflight.PgBouncerAdminEnv, pg.AdminDSN())
	t.Setenv("PROMETHEUS_URL", prom.URL)
	waitUntil(t, "WAL archived", func() bool { return queryBool(t, pg.DSN(db), "SELECT archived_count > 0 FROM pg_stat_archiver") })
	waitUntil(t, "the canary scraped", func() bool {
		return promHasData(prom.URL, `quantile_over_time(0.95, nodejs_eventloop_lag_seconds{track="canary"}[5m])`)
	})

	t.Run("ready", func(t *testing.T) {
		dir := t.TempDir()
		out, code := runCmd(t, context.Background(), newReadyCmd, dir, "v1.4.0", "--canary", canary, "--repo", taggedRepo(t, "v1.4.0"), "--blast-n", "10")
		if code != exitComplete {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{"10/10 passed, 0 cannot run", "8/8 evidence files present", "evidence files: 8 in", "READY FOR GO/NO-GO DECISION"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if pools := readEvidence(t, dir, "v1.4.0", "pgbouncer_pools_v1.4.0.tsv"); !strings.HasPrefix(pools, "database\tuser\tcl_active\tcl_waiting\t") {
			t.Errorf("pgbouncer_pools_v1.4.0.tsv:\n%s", pools)
		}
		if prisma := readEvidence(t, dir, "v1.4.0", "prisma_status_v1.4.0.txt"); !strings.Contains(prisma, "# result: passed — ") {
			t.Errorf("prisma_status_v1.4.0.txt:\n%s", prisma)
		}
	})

	t.Run("diagnose", func(t *testing.T) {
		out, code := runCmd(t, context.Background(), newDiagnoseCmd, "", "--metrics", canary+"/metrics", "--min-targets", "1")
		if code != exitComplete {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{"pitr_backup", "pgbouncer_pools", "1 active targets, 1 up", "eventloop_lag_p95", "current lag (the endpoint has no p95)", "gc_pause_avg", "pauses since the process started"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, verdictFail) || strings.Contains(out, verdictUnreachable) || strings.Contains(out, verdictNotConfigured) {
			t.Errorf("a part is not ok:\n%s", out)
		}
	})

	t.Run("diagnose with scrapes dropped", func(t *testing.T) {
		out, code := runCmd(t, context.Background(), newDiagnoseCmd, "", "--metrics", canary+"/metrics", "--min-targets", "3")
		if code != exitFailure || !strings.Contains(out, "diagnose: scrape_targets FAIL") || !strings.Contains(out, "≥ 3 targets, all up") {
			t.Errorf("exit %d, want 1 naming the scrape targets:\n%s", code, out)
		}
	})
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func queryBool(t *testing.T, dsn, query string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	var ok bool
	return conn.QueryRow(ctx, query).Scan(&ok) == nil && ok
}

// promHasData reports whether query has a result at Prometheus.
func promHasData(base, query string) bool {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	return json.NewDecoder(resp.Body).Decode(&body) == nil && len(body.Data.Result) > 0
}

// BenchmarkReadyDemoStack is the wall time of `ready` against the demo
// stack (stable, canary, router, load, metrics store): the version seal,
// the demo's preflight (its HTTP and PromQL checks), 30 HTTP + 30
// WebSocket probes, the completeness count. The runbook gives the block
// 90 seconds.
func BenchmarkReadyDemoStack(b *testing.B) {
	cfg, err := config.Load("")
	if err != nil {
		b.Fatal(err)
	}
	stack, err := newDemoStack(&cfg.Plan, clock.NewScaled(time.Now().UTC(), 1), nil, 50, 5)
	if err != nil {
		b.Fatal(err)
	}
	defer stack.close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = stack.metrics.Run(ctx) })
	wg.Go(func() { _ = stack.load.Run(ctx) })
	if err := waitScraped(ctx, stack.metrics); err != nil {
		b.Fatal(err)
	}
	repo := gitTagged(b, b.TempDir(), "v1.4.0")
	o := readyOptions{
		version: "v1.4.0", checks: demoChecks(stack.stableURL, stack.canaryURL, stack.routerURL),
		canary: stack.canaryURL.String(), prometheus: stack.metrics, repo: repo, budget: preflight.DefaultBudget,
		blast: checks.BlastOptions{N: checks.DefaultBlastN}, getenv: func(string) string { return "" },
	}
	var wall time.Duration
	runs := 0
	for b.Loop() {
		g := &globals{out: io.Discard, errOut: io.Discard, evidenceDir: b.TempDir()}
		rep, err := runReady(ctx, g, o)
		if err != nil {
			b.Fatal(err)
		}
		if f := rep.failed(); len(f) > 0 {
			var s bytes.Buffer
			printReady(&s, rep)
			b.Fatalf("not ready: %v\n%s", f, s.String())
		}
		wall += rep.took
		runs++
	}
	b.ReportMetric(float64(wall.Milliseconds())/float64(runs), "wall-ms/ready")
}

// gitTagged makes dir a git repository whose HEAD is tagged tag; a
// benchmark's taggedRepo.
func gitTagged(tb testing.TB, dir, tag string) string {
	tb.Helper()
	for _, args := range [][]string{{"init", "-q"}, {"commit", "-q", "--allow-empty", "-m", "release"}, {"tag", tag}} {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.com",
			"-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}
