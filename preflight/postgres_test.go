package preflight

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/canarybot/canarybot/internal/testenv"
)

// noEnv is an empty environment: a test must not pick up a DATABASE_URL
// from the machine it runs on.
func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// runCheck runs one check through Run and returns its result and the
// evidence it wrote.
func runCheck(t *testing.T, c Check, env map[string]string) (Result, string) {
	t.Helper()
	ev := &memEvidence{}
	rep, err := Run(context.Background(), []Check{c}, Options{Version: "v1.4.0", Getenv: envOf(env), Evidence: ev, Budget: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := ev.get(c.EvidenceName("v1.4.0"))
	return rep.Results[0], text
}

// waitFor polls query on dsn until it returns true: PostgreSQL reports
// statistics and archiving asynchronously.
func waitFor(t *testing.T, dsn, query string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			var ok bool
			err = conn.QueryRow(ctx, query).Scan(&ok)
			conn.Close(context.Background())
			if err == nil && ok {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for `%s`: %v", query, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func mustDefault(t *testing.T, name string) Check {
	t.Helper()
	c, ok := DefaultCheck(name)
	if !ok {
		t.Fatalf("no default check %s", name)
	}
	return c
}

// TestPostgresDefaultChecks runs the runbook's four database checks
// against a real PostgreSQL and pgBouncer, each on a fixture that passes
// and one that fails.
func TestPostgresDefaultChecks(t *testing.T) {
	t.Parallel()
	srv := testenv.Postgres(t, testenv.PostgresConfig{PoolSizes: map[string]int{"tiny": 1}})
	ctx := context.Background()
	if err := srv.Exec(ctx, "postgres", "CREATE DATABASE tiny"); err != nil {
		t.Fatal(err)
	}
	db := func(t *testing.T, files ...string) map[string]string {
		return map[string]string{DefaultDSNEnv: srv.DSN(srv.CreateDatabase(t, files...))}
	}
	deadTuples := func(t *testing.T, files ...string) map[string]string {
		env := db(t, files...)
		// The fixture's session reports its statistics as it ends.
		waitFor(t, env[DefaultDSNEnv], `SELECT coalesce(sum(n_dead_tup), 0) >= 100 FROM pg_stat_user_tables`)
		return env
	}

	tests := []struct {
		name     string
		check    string
		env      func(t *testing.T) map[string]string
		status   Status
		detail   string
		evidence []string
	}{
		{"migrations applied", "prisma_migrations",
			func(t *testing.T) map[string]string { return db(t, "testdata/sql/prisma_table.sql") },
			Passed, "0 rows, want rows == 0",
			[]string{"# prisma_migrations: SELECT migration_name", "migration_name\tstarted_at\tfinished_at\trolled_back_at\tapplied_steps_count\n# want: rows == 0\n# result: passed"}},
		{"migration unfinished and one rolled back", "prisma_migrations",
			func(t *testing.T) map[string]string {
				return db(t, "testdata/sql/prisma_table.sql", "testdata/sql/prisma_pending.sql")
			},
			Failed, "2 rows, want rows == 0: 20250228120000_drop_legacy_orders | 2025-02-28 12:00:00+00 | NULL | 2025-02-28 12:05:00+00 | 0; 20250301100000_outbox_status_index",
			[]string{"20250301100000_outbox_status_index\t2025-03-01 10:00:00+00\t\\N\t\\N\t0\n", "# result: failed"}},
		{"no prisma table", "prisma_migrations",
			func(t *testing.T) map[string]string { return db(t) },
			Failed, `relation "_prisma_migrations" does not exist (SQLSTATE 42P01)`, nil},
		{"few dead tuples", "pg_dead_tuples_top5",
			func(t *testing.T) map[string]string { return deadTuples(t, "testdata/sql/dead_tuples_clean.sql") },
			Passed, "every dead_ratio <= 0.2 (1 rows)",
			[]string{"relname\tschemaname\tn_dead_tup\tn_live_tup\tdead_ratio", "orders\tpublic\t100\t4900\t0\t"}},
		{"bloated table", "pg_dead_tuples_top5",
			func(t *testing.T) map[string]string { return deadTuples(t, "testdata/sql/dead_tuples_bloated.sql") },
			Failed, "1 of 2 rows miss dead_ratio <= 0.2: orders: dead_ratio 0.8000",
			[]string{"orders\tpublic\t4000\t1000\t0.8000\t", "prices\tpublic\t0\t10\t0\t"}},
		{"nothing ever archived", "pitr_backup_status",
			func(t *testing.T) map[string]string { return db(t) },
			Failed, "1 of 1 rows miss backup_age_seconds <= 3600: 0: backup_age_seconds is NULL",
			[]string{"archived_count\tlast_archived_wal", "\\N\n# want: every backup_age_seconds <= 3600"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, ev := runCheck(t, mustDefault(t, tt.check), tt.env(t))
			assertResult(t, res, tt.status, tt.detail)
			for _, want := range tt.evidence {
				if !strings.Contains(ev, want) {
					t.Errorf("evidence lacks %q:\n%s", want, ev)
				}
			}
		})
	}

	// The pgBouncer cases run one after the other, before the parallel
	// ones: a client made to wait stays counted until pgBouncer notices it
	// left.
	t.Run("pools idle", func(t *testing.T) {
		res, ev := runCheck(t, mustDefault(t, "pgbouncer_pools"), map[string]string{PgBouncerAdminEnv: srv.AdminDSN()})
		assertResult(t, res, Passed, "every cl_waiting == 0")
		if !strings.HasPrefix(ev, "database\tuser\tcl_active\tcl_waiting\t") {
			t.Errorf("evidence:\n%s", ev)
		}
	})
	t.Run("pool saturated", func(t *testing.T) {
		holder, err := pgx.Connect(ctx, srv.BouncerDSN("tiny"))
		if err != nil {
			t.Fatal(err)
		}
		// Session pooling: the holder keeps tiny's one server connection.
		if _, err := holder.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		waited := make(chan error, 1)
		go func() {
			conn, err := pgx.Connect(wctx, srv.BouncerDSN("tiny"))
			if err == nil {
				_, err = conn.Exec(wctx, "SELECT 1")
				conn.Close(context.Background())
			}
			waited <- err
		}()
		t.Cleanup(func() {
			cancel()
			holder.Close(context.Background())
			<-waited
		})
		waitForWaiting(t, srv.AdminDSN(), "tiny")
		res, ev := runCheck(t, mustDefault(t, "pgbouncer_pools"), map[string]string{PgBouncerAdminEnv: srv.AdminDSN()})
		assertResult(t, res, Failed, "tiny: cl_waiting 1")
		if !strings.Contains(ev, "\ntiny\tcanary\t1\t1\t") {
			t.Errorf("evidence:\n%s", ev)
		}
	})
}

// waitForWaiting polls SHOW POOLS until database db has a waiting client.
func waitForWaiting(t *testing.T, adminDSN, db string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		rows, err := conn.Query(ctx, "SHOW POOLS", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		waiting := false
		for rows.Next() {
			v := rows.RawValues()
			waiting = waiting || (string(v[0]) == db && string(v[3]) != "0")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no client of %s waiting in pgBouncer", db)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestPostgresBackupArchived is the passing side of the PITR check: a
// cluster that archives its WAL.
func TestPostgresBackupArchived(t *testing.T) {
	t.Parallel()
	srv := testenv.Postgres(t, testenv.PostgresConfig{ArchiveCommand: "cp %p {dir}/%f"})
	dsn := srv.DSN(srv.CreateDatabase(t, "testdata/sql/wal_switch.sql"))
	waitFor(t, dsn, `SELECT archived_count > 0 FROM pg_stat_archiver`)
	res, ev := runCheck(t, mustDefault(t, "pitr_backup_status"), map[string]string{DefaultDSNEnv: dsn})
	assertResult(t, res, Passed, "every backup_age_seconds <= 3600 (1 rows)")
	if !strings.Contains(ev, "# result: passed") || !strings.Contains(ev, "000000010000000000000001") {
		t.Errorf("evidence:\n%s", ev)
	}
}

// TestPostgresCheckTrouble covers what goes wrong around the query: no
// DSN, nothing listening, a wrong database, a slow or writing query, a
// column that is not there. A check that could not reach its database
// never passes.
func TestPostgresCheckTrouble(t *testing.T) {
	t.Parallel()
	srv := testenv.Postgres(t, testenv.PostgresConfig{})
	dsn := srv.DSN(srv.CreateDatabase(t, "testdata/sql/dead_tuples_clean.sql"))
	refused := "postgres://canary:s3cret@" + closedAddr(t) + "/app?sslmode=disable"
	one := 1.0
	tests := []struct {
		name   string
		check  Check
		env    map[string]string
		status Status
		detail string
	}{
		{"no DSN", Check{SQL: "SELECT 1"}, nil, CannotRun, "no DSN: $DATABASE_URL is not set"},
		{"DSN from the named variable", Check{SQL: "SELECT 1", DSNEnv: "ORDERS_DB", Op: OpEQ, Value: &one},
			map[string]string{"ORDERS_DB": dsn}, Passed, "1 rows, want rows == 1"},
		{"nothing listening", Check{SQL: "SELECT 1"}, map[string]string{DefaultDSNEnv: refused}, CannotRun, "cannot reach 127.0.0.1:"},
		{"DSN does not parse", Check{SQL: "SELECT 1"}, map[string]string{DefaultDSNEnv: "postgres://canary:s3cret@127.0.0.1:notaport/x"}, CannotRun, "does not parse"},
		{"no such database", Check{SQL: "SELECT 1"}, map[string]string{DefaultDSNEnv: srv.DSN("nonexistent")}, Failed, `database "nonexistent" does not exist (SQLSTATE 3D000)`},
		{"statement timeout", Check{SQL: "SELECT pg_sleep(20)", Timeout: 300 * time.Millisecond}, map[string]string{DefaultDSNEnv: dsn}, Failed, "timed out: no answer within 300ms"},
		{"read only", Check{SQL: "DELETE FROM orders"}, map[string]string{DefaultDSNEnv: dsn}, Failed, "cannot execute DELETE in a read-only transaction (SQLSTATE 25006)"},
		{"no such column", Check{SQL: "SELECT 1 AS x", Column: "y", Op: OpEQ, Value: &one}, map[string]string{DefaultDSNEnv: dsn}, Failed, `column "y" is not in the answer (its columns: x)`},
		{"text column", Check{SQL: "SELECT 'abc' AS x", Column: "x", Op: OpEQ, Value: &one}, map[string]string{DefaultDSNEnv: dsn}, Failed, `x is "abc", not a number`},
		{"column passes", Check{SQL: "SELECT g AS n FROM generate_series(1, 3) g", Column: "n", Op: OpLE, Value: &one},
			map[string]string{DefaultDSNEnv: dsn}, Failed, "2 of 3 rows miss n <= 1: n 2; n 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.check
			c.Name, c.Kind, c.Evidence = "q", KindPostgres, "q.txt"
			res, ev := runCheck(t, c, tt.env)
			assertResult(t, res, tt.status, tt.detail)
			if strings.Contains(res.Detail+ev, "s3cret") {
				t.Errorf("the password shows: %q\n%s", res.Detail, ev)
			}
			if res.Status != Passed && tt.status == CannotRun && ev != "" {
				t.Errorf("a check that could not run wrote evidence:\n%s", ev)
			}
		})
	}
}

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

func TestPostgresCheckValidation(t *testing.T) {
	t.Parallel()
	one := 1.0
	tests := []struct {
		check Check
		want  string
	}{
		{Check{}, "sql is empty"},
		{Check{SQL: "SELECT 1", DSNEnv: "postgres://u:p@h/db"}, "is not an environment variable name"},
		{Check{SQL: "SELECT 1", Column: "n"}, "column n has no bound"},
		{Check{SQL: "SELECT 1", Op: "!="}, `op "!=" is not one of`},
		{Check{SQL: "SELECT 1", Op: OpEQ}, "value is missing"},
		{Check{SQL: "SELECT 1", Value: &one}, `op "" is not one of`},
		{Check{SQL: "SELECT 1", Timeout: -time.Second}, "timeout -1s is negative"},
		{Check{SQL: "SELECT 1", URL: "/healthz"}, "url is not a setting of kind postgres"},
	}
	for _, tt := range tests {
		c := tt.check
		c.Name, c.Kind = "q", KindPostgres
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error saying %q", tt.check, err, tt.want)
		}
	}
	for _, c := range DefaultChecks() {
		if err := c.Validate(); err != nil {
			t.Errorf("default check %s: %v", c.Name, err)
		}
	}
	if err := ValidateAll(DefaultChecks()); errors.Is(err, ErrBadChecks) {
		t.Errorf("defaults: %v", err)
	}
}

func TestParsePostgresChecks(t *testing.T) {
	t.Parallel()
	cs, err := LoadChecks("testdata/postgres_checks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].DSNEnv != "ORDERS_DATABASE_URL" || cs[1].Column != "n_dead_tup" || cs[1].Op != OpLE ||
		cs[1].Value == nil || *cs[1].Value != 100000 || cs[1].Timeout != 5*time.Second {
		t.Errorf("parsed %+v", cs)
	}
	_, err = ParseChecks([]byte("checks:\n  - name: q\n    kind: postgres\n    sql: SELECT 1\n    dsn: postgres://u:p@h/db\n"), "bad.yaml")
	if !errors.Is(err, ErrBadChecks) || !strings.Contains(err.Error(), `line 5: unknown key "dsn"`) || !strings.Contains(err.Error(), "dsn_env") {
		t.Errorf("a DSN in the file: %v", err)
	}
}
