package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestDiagnoseParts runs the report on fixtures of a prom-client service's
// metrics and on parts that are missing or down. The database and
// Prometheus parts against real servers are in
// TestReadyAndDiagnoseRunbookDefaults.
func TestDiagnoseParts(t *testing.T) {
	t.Parallel()
	serveFile := func(name string) string {
		data, err := os.ReadFile(filepath.Join("testdata", "diagnose", name))
		if err != nil {
			t.Fatal(err)
		}
		return serveFunc(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.Write(data)
		})
	}
	refused := closedAddr(t)
	tests := []struct {
		name    string
		opts    diagnoseOptions
		env     map[string]string
		verdict map[string]string
		reading map[string]string
	}{
		{"prom-client summary, healthy", diagnoseOptions{metrics: serveFile("promclient_ok.prom")}, nil,
			map[string]string{"eventloop_lag_p95": verdictOK, "gc_pause_avg": verdictOK, "pitr_backup": verdictNotConfigured, "scrape_targets": verdictNotConfigured},
			map[string]string{"eventloop_lag_p95": "12ms p95", "gc_pause_avg": "8ms average of 500 pauses since the process started", "pitr_backup": "$DATABASE_URL is not set"}},
		{"under pressure", diagnoseOptions{metrics: serveFile("promclient_pressure.prom")}, nil,
			map[string]string{"eventloop_lag_p95": verdictFail, "gc_pause_avg": verdictFail},
			map[string]string{"eventloop_lag_p95": "120ms p95", "gc_pause_avg": "30ms average of 200 pauses"}},
		{"the demo's gauge", diagnoseOptions{metrics: serveDemo(t, "canary") + "/metrics"}, nil,
			map[string]string{"eventloop_lag_p95": verdictOK},
			map[string]string{"eventloop_lag_p95": `current lag (the endpoint has no p95) {track="canary"}`}},
		{"not the text format", diagnoseOptions{metrics: serveFunc(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>{oops")) })}, nil,
			map[string]string{"eventloop_lag_p95": verdictUnreachable, "gc_pause_avg": verdictUnreachable},
			map[string]string{"eventloop_lag_p95": "is not in the Prometheus text format"}},
		{"everything down", diagnoseOptions{metrics: "http://u:s3cret@" + refused + "/metrics", prometheus: "http://" + refused},
			map[string]string{"DATABASE_URL": "postgres://canary:s3cret@" + refused + "/app", "PGBOUNCER_ADMIN_URL": "postgres://canary:s3cret@" + refused + "/pgbouncer"},
			map[string]string{"eventloop_lag_p95": verdictUnreachable, "scrape_targets": verdictUnreachable, "pitr_backup": verdictUnreachable, "pgbouncer_pools": verdictUnreachable},
			map[string]string{"eventloop_lag_p95": "connection refused", "pitr_backup": "cannot reach 127.0.0.1:", "scrape_targets": "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := tt.opts
			o.timeout, o.minTargets = 5*time.Second, 1
			o.getenv = func(k string) string { return tt.env[k] }
			parts := diagnose(context.Background(), o)
			if len(parts) != 5 {
				t.Fatalf("%d parts, want 5", len(parts))
			}
			by := map[string]diagnosis{}
			for _, p := range parts {
				by[p.Part] = p
			}
			for part, want := range tt.verdict {
				if got := by[part].Verdict; got != want {
					t.Errorf("%s: verdict %s (%s), want %s", part, got, by[part].Reading, want)
				}
			}
			for part, want := range tt.reading {
				if got := by[part].Reading; !strings.Contains(got, want) {
					t.Errorf("%s: reading %q lacks %q", part, got, want)
				}
			}
			var b bytes.Buffer
			printDiagnosis(&b, parts)
			if strings.Contains(b.String(), "s3cret") {
				t.Errorf("a password shows:\n%s", b.String())
			}
			if !strings.Contains(b.String(), "PART") || strings.Count(b.String(), "\n") != 7 {
				t.Errorf("report:\n%s", b.String())
			}
		})
	}
}

func TestDiagnoseCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"extra"}, {"--metrics", "127.0.0.1:9"}, {"--timeout", "0s"}, {"--prometheus", "ftp://x"}} {
		if out, code := runCmd(t, context.Background(), newDiagnoseCmd, "", args...); code != exitBadInput {
			t.Errorf("%q: exit %d, want 2:\n%s", args, code, out)
		}
	}
	out, code := runCmd(t, context.Background(), newDiagnoseCmd, "", "--metrics", "http://"+closedAddr(t)+"/metrics")
	if code != exitFailure || !strings.Contains(out, "diagnose: eventloop_lag_p95 UNREACHABLE, gc_pause_avg UNREACHABLE") {
		t.Errorf("exit %d, want 1 naming the unreachable parts:\n%s", code, out)
	}
}
