package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/demo"
)

// taggedRepo is a git repository whose HEAD is tagged tag.
func taggedRepo(t *testing.T, tag string) string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"commit", "-q", "--allow-empty", "-m", "release"}, {"tag", tag}} {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.com",
			"-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func TestPreflightCommand(t *testing.T) {
	t.Parallel()
	canary := serveDemo(t, demo.TrackCanary)
	checks := func(name string) string { return filepath.Join("testdata", "preflight", name) }

	t.Run("passes with a checks file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out, code := cli(t, "preflight", "v1.4.0", "--checks", checks("passing.yaml"), "--canary", canary, "--evidence-dir", dir)
		if code != exitComplete {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{"canary_health", "smoke", "3/3 passed, 0 cannot run", "written: " + filepath.Join(dir, "v1.4.0", "preflight.txt")} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if text := readEvidence(t, dir, "v1.4.0", "preflight.txt"); strings.Count(text, " passed ") != 3 || !strings.HasSuffix(text, "3/3 passed, 0 cannot run\n") {
			t.Errorf("preflight.txt:\n%s", text)
		}
		if csp := readEvidence(t, dir, "v1.4.0", "csp_headers_v1.4.0.txt"); !strings.Contains(csp, "Content-Security-Policy: default-src") {
			t.Errorf("csp_headers_v1.4.0.txt:\n%s", csp)
		}
		if smoke := readEvidence(t, dir, "v1.4.0", "smoke_v1.4.0.txt"); smoke != "smoke ok\n" {
			t.Errorf("smoke_v1.4.0.txt: %q", smoke)
		}
		if out, code := cli(t, "evidence", "verify", filepath.Join(dir, "v1.4.0")); code != exitComplete {
			t.Errorf("evidence verify exit %d:\n%s", code, out)
		}
	})

	t.Run("a failed check exits 1 and names it", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out, code := cli(t, "preflight", "v1.4.0", "--checks", checks("failing.yaml"), "--canary", canary, "--evidence-dir", dir)
		if code != exitFailure || !strings.Contains(out, "preflight v1.4.0: 1/2 passed, 0 cannot run") ||
			!strings.Contains(out, "broken failed: sh -c echo broken >&2; exit 4: exit status 4: broken") {
			t.Fatalf("exit %d, want 1 naming the failed check:\n%s", code, out)
		}
		if text := readEvidence(t, dir, "v1.4.0", "preflight.txt"); !strings.Contains(text, "broken") {
			t.Errorf("preflight.txt:\n%s", text)
		}
	})

	t.Run("a check past the budget times out", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		file := filepath.Join(t.TempDir(), "hang.yaml")
		if err := os.WriteFile(file, []byte("checks:\n  - name: hang\n    kind: command\n    argv: [sleep, '30']\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := cli(t, "preflight", "v1.4.0", "--checks", file, "--budget", "200ms", "--evidence-dir", dir)
		if code != exitFailure || !strings.Contains(out, "hang failed: timed out: still running when the 200ms budget ran out") {
			t.Fatalf("exit %d, want 1 with the timeout:\n%s", code, out)
		}
	})

	badInputs := []struct {
		name string
		args []string
		want string
	}{
		{"no version", nil, "preflight takes the version to check"},
		{"unknown key in the checks file", []string{"v1.4.0", "--checks", checks("unknown_key.yaml")}, `unknown_key.yaml: line 5: unknown key "expect_status"`},
		{"missing checks file", []string{"v1.4.0", "--checks", checks("nope.yaml")}, "reading the checks file"},
		{"bad canary URL", []string{"v1.4.0", "--canary", "canary.example.com"}, `--canary "canary.example.com" is not an http(s) base URL`},
		{"bad Prometheus URL", []string{"v1.4.0", "--prometheus", "ftp://prom:9090"}, "--prometheus: "},
		{"zero budget", []string{"v1.4.0", "--budget", "0s"}, "--budget 0s must be positive"},
		{"bad version", []string{"../v1"}, "version"},
	}
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"preflight", "--evidence-dir", t.TempDir()}, tt.args...)
			out, code := cli(t, args...)
			if code != exitBadInput || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, tt.want, out)
			}
		})
	}
}

// TestPreflightDefaults runs the runbook's 10 checks with no Prometheus:
// the database and promql checks cannot run, and the command says so.
// Not parallel: it clears PROMETHEUS_URL and the DSNs.
func TestPreflightDefaults(t *testing.T) {
	t.Setenv("PROMETHEUS_URL", "")
	t.Setenv("DATABASE_URL", "")
	t.Setenv("PGBOUNCER_ADMIN_URL", "")
	dir := t.TempDir()
	out, code := cli(t, "preflight", "v1.4.0", "--canary", serveDemo(t, demo.TrackCanary), "--repo", taggedRepo(t, "v1.4.0"), "--evidence-dir", dir)
	if code != exitFailure {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"preflight v1.4.0: 3/10 passed, 7 cannot run",
		"scrape_targets_up cannot run: no Prometheus URL configured (--prometheus or PROMETHEUS_URL)",
		"prisma_migrations cannot run: no DSN: $DATABASE_URL is not set",
		"pgbouncer_pools cannot run: no DSN: $PGBOUNCER_ADMIN_URL is not set",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if tag := readEvidence(t, dir, "v1.4.0", "release_tag.txt"); tag != "v1.4.0\n" {
		t.Errorf("release_tag.txt: %q", tag)
	}
	readEvidence(t, dir, "v1.4.0", "csp_headers_v1.4.0.txt")
	for _, absent := range []string{"prisma_status_v1.4.0.txt", "pg_dead_tuples_top5.txt", "pgbouncer_pools_v1.4.0.tsv"} {
		if _, err := os.Stat(filepath.Join(dir, "v1.4.0", absent)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want no file from a check that did not run", absent, err)
		}
	}
}
