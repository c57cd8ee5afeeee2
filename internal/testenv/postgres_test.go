//go:build unix

package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPostgresAndBouncer(t *testing.T) {
	t.Parallel()
	srv := Postgres(t, PostgresConfig{PoolSizes: map[string]int{"postgres": 1}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db := srv.CreateDatabase(t)
	for name, dsn := range map[string]string{"direct": srv.DSN(db), "through pgBouncer": srv.BouncerDSN(db)} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&got); err != nil || got != db {
			t.Errorf("%s: current_database() = %q, %v; want %s", name, got, err, db)
		}
		conn.Close(ctx)
	}
	admin, err := pgx.Connect(ctx, srv.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	rows, err := admin.Query(ctx, "SHOW POOLS", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	pools := map[string]bool{}
	for rows.Next() {
		pools[string(rows.RawValues()[0])] = true
	}
	if err := rows.Err(); err != nil || !pools[db] {
		t.Errorf("SHOW POOLS lists %v (%v), want %s among them", pools, err, db)
	}
}

func TestPostgresBinDir(t *testing.T) {
	t.Parallel()
	dir, err := postgresBinDir()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if majorOf(dir) < 10 {
		t.Errorf("bin dir %s: major %d", dir, majorOf(dir))
	}
}
