//go:build unix

package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresUser is the superuser of a test cluster and pgBouncer's admin;
// every connection uses it, over loopback with trust authentication.
const PostgresUser = "canary"

// PostgresBinGlob is where initdb and postgres are looked for, newest major
// first: Debian's `postgresql` package installs them under
// /usr/lib/postgresql/<major>/bin, which is not on PATH.
const PostgresBinGlob = "/usr/lib/postgresql/*/bin"

// PgBouncerBinary is where Debian's `pgbouncer` package installs it.
const PgBouncerBinary = "/usr/sbin/pgbouncer"

// osUserPostgres is the account the servers run as when the tests run as
// root: both refuse to run as root, and the Debian package creates it.
const osUserPostgres = "postgres"

// PostgresConfig describes the cluster and pgBouncer to start.
type PostgresConfig struct {
	// ArchiveCommand, when set, turns WAL archiving on with this command
	// (%p and %f as in archive_command; {dir} is replaced by a directory
	// made for the archive), so that pg_stat_archiver moves.
	ArchiveCommand string
	// PoolSizes gives databases their own pgBouncer pool size (session
	// pooling), e.g. 1 to saturate a pool with two clients. Every other
	// database goes through the wildcard entry with pool size 5.
	PoolSizes map[string]int
}

// PostgresServer is a running PostgreSQL cluster with pgBouncer in front.
type PostgresServer struct {
	// Port and BouncerPort are the loopback ports of PostgreSQL and of
	// pgBouncer.
	Port, BouncerPort int
	// Dir holds the cluster, the archive and pgBouncer's files.
	Dir string
	pg  *SyncBuffer
	pgb *SyncBuffer
}

// DSN is a URL for database db on PostgreSQL itself.
func (s *PostgresServer) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", PostgresUser, s.Port, db)
}

// BouncerDSN is a URL for database db through pgBouncer.
func (s *PostgresServer) BouncerDSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", PostgresUser, s.BouncerPort, db)
}

// AdminDSN is pgBouncer's admin console (database "pgbouncer"), which
// speaks only the simple query protocol.
func (s *PostgresServer) AdminDSN() string { return s.BouncerDSN("pgbouncer") }

// Log is the tail of both servers' logs, to explain a failure.
func (s *PostgresServer) Log() string {
	return "postgres:\n" + s.pg.Tail(logTail) + "\npgbouncer:\n" + s.pgb.Tail(logTail)
}

// CreateDatabase creates a fresh database named after the test, runs each
// SQL file (relative to the test's package directory) in it, and returns
// its name. Files are run as one simple-protocol string each, so they may
// hold several statements.
func (s *PostgresServer) CreateDatabase(t testing.TB, sqlFiles ...string) string {
	t.Helper()
	name := "t_" + strings.ToLower(strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name += "_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: creating database %s: %v", name, err)
	}
	for _, f := range sqlFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("testenv: fixture: %v", err)
		}
		if err := s.Exec(ctx, name, string(data)); err != nil {
			t.Fatalf("testenv: fixture %s in %s: %v", f, name, err)
		}
	}
	return name
}

// Exec runs sql on database db directly (not through pgBouncer).
func (s *PostgresServer) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	return err
}

// Postgres starts a throwaway PostgreSQL cluster (Debian's `postgresql`)
// and pgBouncer (Debian's `pgbouncer`) in front of it, both on free
// loopback ports in a temporary directory, and stops and removes them at
// t.Cleanup. It fails the test when either is not installed or does not
// come up. As root (CI, the dev machines), both run as the `postgres`
// account, since neither will run as root.
func Postgres(t testing.TB, cfg PostgresConfig) *PostgresServer {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if _, err := os.Stat(PgBouncerBinary); err != nil {
		t.Fatalf("testenv: pgBouncer is not installed (%v): run `make deps`, which installs Debian's pgbouncer package", err)
	}
	cred, uid, gid, err := serverCredential()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Not t.TempDir: its parent is 0700 and owned by root, so the
	// postgres account could not reach into it.
	dir, err := os.MkdirTemp("", "canarybot-pg-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for _, d := range []string{dir, filepath.Join(dir, "archive")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if cred != nil {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatalf("testenv: handing %s to the postgres account: %v", d, err)
			}
		}
	}
	srv := &PostgresServer{Dir: dir, pg: &SyncBuffer{}, pgb: &SyncBuffer{}}

	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", PostgresUser, "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}

	var lastErr error
	for range startAttempts {
		if lastErr = srv.startPostgres(t, bin, cred, cfg); lastErr == nil || !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testenv: %v", lastErr)
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(`"`+PostgresUser+`" ""`+"\n"), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for range startAttempts {
		if lastErr = srv.startBouncer(t, cred, cfg); lastErr == nil || !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testenv: %v", lastErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: PostgreSQL on %d and pgBouncer on %d logged:\n%s", srv.Port, srv.BouncerPort, srv.Log())
		}
	})
	return srv
}

func (s *PostgresServer) startPostgres(t testing.TB, bin string, cred *syscall.Credential, cfg PostgresConfig) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	args := []string{"-D", filepath.Join(s.Dir, "data"), "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		// The socket goes in the temporary directory: the default
		// /var/run/postgresql may not exist or belong to another cluster.
		"-c", "unix_socket_directories=" + s.Dir,
		// Throwaway data: durability only costs the tests time.
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
		"-c", "max_connections=50",
	}
	if cfg.ArchiveCommand != "" {
		args = append(args, "-c", "archive_mode=on", "-c", "wal_level=replica",
			"-c", "archive_command="+strings.ReplaceAll(cfg.ArchiveCommand, "{dir}", filepath.Join(s.Dir, "archive")))
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	exited, err := s.start(t, cmd, cred, s.pg)
	if err != nil {
		return err
	}
	s.Port = port
	if err := waitPostgres(s.DSN("postgres"), exited); err != nil {
		if strings.Contains(s.pg.String(), "already in use") {
			return fmt.Errorf("port %d was taken before PostgreSQL bound it: %w", port, errAddrInUse)
		}
		return fmt.Errorf("PostgreSQL: %w\nlog:\n%s", err, s.pg.Tail(logTail))
	}
	return nil
}

func (s *PostgresServer) startBouncer(t testing.TB, cred *syscall.Credential, cfg PostgresConfig) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	var ini strings.Builder
	ini.WriteString("[databases]\n")
	names := make([]string, 0, len(cfg.PoolSizes))
	for name := range cfg.PoolSizes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&ini, "%s = host=127.0.0.1 port=%d dbname=%s pool_size=%d\n", name, s.Port, name, cfg.PoolSizes[name])
	}
	fmt.Fprintf(&ini, "* = host=127.0.0.1 port=%d\n", s.Port)
	fmt.Fprintf(&ini, `[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = %s
pool_mode = session
default_pool_size = 5
max_client_conn = 100
server_login_retry = 1
`, port, filepath.Join(s.Dir, "userlist.txt"), PostgresUser)
	conf := filepath.Join(s.Dir, "pgbouncer.ini")
	if err := os.WriteFile(conf, []byte(ini.String()), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(PgBouncerBinary, conf)
	exited, err := s.start(t, cmd, cred, s.pgb)
	if err != nil {
		return err
	}
	s.BouncerPort = port
	if err := waitPostgres(s.AdminDSN(), exited); err != nil {
		if strings.Contains(s.pgb.String(), "in use") {
			return fmt.Errorf("port %d was taken before pgBouncer bound it: %w", port, errAddrInUse)
		}
		return fmt.Errorf("pgBouncer: %w\nlog:\n%s", err, s.pgb.Tail(logTail))
	}
	return nil
}

// start runs cmd as cred in its own process group and stops it at
// cleanup; the channel closes when the process has exited.
func (s *PostgresServer) start(t testing.TB, cmd *exec.Cmd, cred *syscall.Credential, log *SyncBuffer) (<-chan struct{}, error) {
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// SIGKILL to the group: the data is thrown away, and PostgreSQL's
		// backends go with the postmaster's group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	return exited, nil
}

// waitPostgres connects to dsn until it answers, the process exits, or
// readyTimeout passes.
func waitPostgres(dsn string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			// The console has no SELECT 1: any simple query proves it up.
			_, err = conn.Exec(ctx, "SHOW VERSION", pgx.QueryExecModeSimpleProtocol)
			if err != nil && strings.Contains(err.Error(), "unrecognized configuration parameter") {
				err = nil // PostgreSQL itself: SHOW VERSION is not a setting there.
			}
			conn.Close(context.Background())
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no connection after %s: %v", readyTimeout, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it accepted connections: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// postgresBinDir finds the newest installed major version's bin directory.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob(PostgresBinGlob)
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL is not installed (no initdb under %s): run `make deps`, which installs Debian's postgresql package", PostgresBinGlob)
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// serverCredential is who the servers run as: the current user, or the
// postgres account when that is root.
func serverCredential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, 0, 0, nil
	}
	u, err := user.Lookup(osUserPostgres)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root, and PostgreSQL and pgBouncer refuse to: they run as the %q account, which does not exist (%v); Debian's postgresql package creates it: run `make deps`", osUserPostgres, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, 0, 0, fmt.Errorf("the %q account has a non-numeric uid %q or gid %q", osUserPostgres, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}
