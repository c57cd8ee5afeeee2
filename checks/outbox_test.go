package checks

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/internal/testenv"
)

// TestOutboxLag runs the outbox lag test against a real PostgreSQL, on
// fixtures of the runbook's "Outbox" table.
func TestOutboxLag(t *testing.T) {
	t.Parallel()
	srv := testenv.Postgres(t, testenv.PostgresConfig{})
	base := "testdata/sql/outbox.sql"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "postgres://canary:s3cret@" + l.Addr().String() + "/app?sslmode=disable"
	l.Close()

	tests := []struct {
		name     string
		dsn      func(t *testing.T) string
		outbox   OutboxOptions
		status   Status
		detail   string
		evidence []string
	}{
		{"smooth", func(t *testing.T) string {
			return srv.DSN(srv.CreateDatabase(t, base, "testdata/sql/outbox_smooth.sql"))
		}, OutboxOptions{},
			StatusPassed, "4 pending events, lag at most 4.", []string{"bound: every lag ≤ 10s, none below -1s", "\n0.5s\n", "result: passed"}},
		{"nothing pending", func(t *testing.T) string { return srv.DSN(srv.CreateDatabase(t, base)) }, OutboxOptions{},
			StatusPassed, "no pending outbox events: lag 0", nil},
		{"a spike", func(t *testing.T) string {
			return srv.DSN(srv.CreateDatabase(t, base, "testdata/sql/outbox_spike.sql"))
		}, OutboxOptions{},
			StatusFailed, "3 pending events: 1 lag spike(s) over 10s: 45.", []string{"s ⚠ lag spike\n", "result: failed"}},
		{"a tighter bound", func(t *testing.T) string {
			return srv.DSN(srv.CreateDatabase(t, base, "testdata/sql/outbox_smooth.sql"))
		}, OutboxOptions{MaxLag: 2 * time.Second},
			StatusFailed, "2 lag spike(s) over 2s", nil},
		{"clock skew", func(t *testing.T) string { return srv.DSN(srv.CreateDatabase(t, base, "testdata/sql/outbox_skew.sql")) }, OutboxOptions{},
			StatusFailed, "1 event(s) dated in the future (clock skew between the writers and the database): -", []string{"⚠ dated in the future: clock skew"}},
		{"no outbox table", func(t *testing.T) string { return srv.DSN(srv.CreateDatabase(t)) }, OutboxOptions{},
			StatusFailed, `relation "Outbox" does not exist (SQLSTATE 42P01)`, nil},
		{"query without a number", func(t *testing.T) string { return srv.DSN(srv.CreateDatabase(t, base)) }, OutboxOptions{Query: "SELECT 'soon'"},
			StatusFailed, `lag "soon" is not a number of seconds`, nil},
		{"slow query", func(t *testing.T) string { return srv.DSN(srv.CreateDatabase(t, base)) }, OutboxOptions{Query: "SELECT 1 FROM pg_sleep(20)", Timeout: 300 * time.Millisecond},
			StatusFailed, "outbox lag query: ", nil},
		{"database unreachable", func(*testing.T) string { return refused }, OutboxOptions{},
			StatusFailed, "cannot connect to 127.0.0.1:", nil},
		{"no DSN", func(*testing.T) string { return "" }, OutboxOptions{},
			StatusSkipped, "not run: no DATABASE_URL", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := OutboxLag(context.Background(), BatteryOptions{DSN: tt.dsn(t), Outbox: tt.outbox})
			if r.Status != tt.status || !strings.Contains(r.Detail, tt.detail) {
				t.Errorf("%s %q, want %s containing %q", r.Status, r.Detail, tt.status, tt.detail)
			}
			for _, want := range tt.evidence {
				if !strings.Contains(r.Evidence, want) {
					t.Errorf("evidence lacks %q:\n%s", want, r.Evidence)
				}
			}
			if strings.Contains(r.Detail+r.Evidence, "s3cret") {
				t.Errorf("the password shows:\n%s\n%s", r.Detail, r.Evidence)
			}
		})
	}

	t.Run("in the battery", func(t *testing.T) {
		t.Parallel()
		dsn := srv.DSN(srv.CreateDatabase(t, base, "testdata/sql/outbox_spike.sql"))
		res, err := Battery(context.Background(), BatteryOptions{Base: newDemo(t, "canary").URL, Version: "v1.4.0", DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(res.Failed(), ","); got != NameOutboxLag {
			t.Errorf("failed %q, want only the outbox test:\n%s", got, res.Text())
		}
		if !strings.Contains(string(res.Text()), "## outbox_lag: failed\nquery: SELECT extract(epoch FROM now() - created_at) AS lag FROM \"Outbox\"") {
			t.Errorf("battery text:\n%s", res.Text())
		}
	})
}
