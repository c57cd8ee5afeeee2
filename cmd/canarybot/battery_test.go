package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/internal/testenv"
)

func TestBatteryCommand(t *testing.T) {
	t.Parallel()
	t.Run("passes against the demo service", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		pg := testenv.Postgres(t, testenv.PostgresConfig{})
		dsn := pg.DSN(pg.CreateDatabase(t, "../../checks/testdata/sql/outbox.sql", "../../checks/testdata/sql/outbox_smooth.sql"))
		out, code := cli(t, "battery", "v1.4.0", "--base", serveDemo(t, demo.TrackCanary), "--dsn", dsn,
			"--tick", "ETHUSDT:1.005:0.01:1.01", "--evidence-dir", dir)
		if code != exitComplete {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{"idempotency_burst", "decimal_tick_alignment   passed", "csp_flood                passed",
			"outbox_lag               passed", "4 pending events, lag at most", "sbom_license_drift       skipped", "the green button writes it",
			"verdict: PASS; 1 not run", "written: " + filepath.Join(dir, "v1.4.0", "battery_v1.4.0.txt")} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		text := readEvidence(t, dir, "v1.4.0", "battery_v1.4.0.txt")
		for _, want := range []string{"answers: 1×201, 99×409", "ETHUSDT: 1.005 at tick 0.01 = 1.01 ✅", "## sbom_license_drift: skipped"} {
			if !strings.Contains(text, want) {
				t.Errorf("battery_v1.4.0.txt lacks %q:\n%s", want, text)
			}
		}
	})
	t.Run("fails against a service without protections", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		url := serveFunc(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/tick-align" {
				w.Write([]byte(`{"result":"12345.6"}`))
				return
			}
			w.WriteHeader(http.StatusCreated)
		})
		out, code := cli(t, "battery", "v1.4.0", "--base", url, "--evidence-dir", dir)
		if code != exitFailure || !strings.Contains(out, "FAIL (3 failed: idempotency_burst, decimal_tick_alignment, csp_flood)") {
			t.Fatalf("exit %d, want 1 naming the three:\n%s", code, out)
		}
		for _, want := range []string{"does not enforce idempotency", "deviation -0.08", "has no rate limit", "not run: no DATABASE_URL"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		readEvidence(t, dir, "v1.4.0", "battery_v1.4.0.txt")
	})
}

func TestBatteryCommandBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no version", []string{"--base", "http://127.0.0.1:1"}, "battery takes one <version>, got 0"},
		{"no base", []string{"v1.4.0"}, "--base is required"},
		{"bad base", []string{"v1.4.0", "--base", "localhost:4001"}, "give the service's base URL"},
		{"bad tick", []string{"v1.4.0", "--base", "http://127.0.0.1:1", "--tick", "BTCUSDT:1e3:0.01:1000"}, `"1e3" is not a plain decimal`},
		{"bad header", []string{"v1.4.0", "--base", "http://127.0.0.1:1", "--header", "=x"}, "use name=value"},
		{"bad version", []string{"v1/4", "--base", "http://127.0.0.1:1"}, "use a release tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, code := cli(t, append(append([]string{"battery"}, tt.args...), "--evidence-dir", t.TempDir())...)
			if code != exitBadInput || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 2 saying %q:\n%s", code, tt.want, out)
			}
		})
	}
}
