package preflight

// PgBouncerAdminEnv is where the default pgBouncer check reads the DSN of
// pgBouncer's admin console, e.g.
// postgres://admin:…@127.0.0.1:6432/pgbouncer: the database "pgbouncer" is
// the console, which pgBouncer answers itself, in the simple query
// protocol only, and without transactions, so a postgres check sends it
// the SQL as it is.
const PgBouncerAdminEnv = "PGBOUNCER_ADMIN_URL"

// consoleDatabase is the database name pgBouncer reserves for its console.
const consoleDatabase = "pgbouncer"

// SQL of the runbook's database checks.
const (
	// SQLPrismaPending lists the migrations Prisma recorded as started
	// and not finished (a failed or interrupted `migrate deploy`) or as
	// rolled back: any row means the schema is not the one the release
	// was built for. Migrations not yet applied at all are only in the
	// repository's prisma/migrations directory: `prisma migrate status`,
	// as a command check, sees those.
	SQLPrismaPending = `SELECT migration_name, started_at, finished_at, rolled_back_at, applied_steps_count
FROM _prisma_migrations
WHERE (finished_at IS NULL AND rolled_back_at IS NULL) OR rolled_back_at IS NOT NULL
ORDER BY started_at`

	// SQLDeadTuplesTop5 is the runbook's bloat check: the five tables with
	// the most dead tuples. dead_ratio is the dead share of the table's
	// tuples, counted only from 1000 dead tuples on: autovacuum cleans a
	// table once its dead tuples pass 50 + 20 % of it, so a table over
	// 20 % with that many is one autovacuum is behind on, while a tiny
	// table's ratio says nothing.
	SQLDeadTuplesTop5 = `SELECT relname, schemaname, n_dead_tup, n_live_tup,
  CASE WHEN n_dead_tup < 1000 THEN 0
       ELSE round(n_dead_tup::numeric / (n_live_tup + n_dead_tup), 4) END AS dead_ratio,
  last_autovacuum, last_vacuum
FROM pg_stat_user_tables
ORDER BY n_dead_tup DESC, relname
LIMIT 5`

	// SQLBackupStatus stands for the runbook's `SELECT * FROM backup_status`,
	// a view each site defines for itself. What PostgreSQL itself knows of
	// point-in-time recovery is its WAL archiving: a restore can reach a
	// moment only if the WAL up to it reached the archive. So the default
	// is the age of the last WAL segment archived (pg_stat_archiver), NULL
	// when nothing was ever archived or the last attempt failed: base
	// backups are made by tools outside the database (pgBackRest, WAL-G),
	// and a site with a backup_status view of its own points this check's
	// sql at it.
	SQLBackupStatus = `SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time,
  CASE WHEN last_archived_time IS NULL THEN NULL
       WHEN last_failed_time IS NOT NULL AND last_failed_time > last_archived_time THEN NULL
       ELSE round(extract(epoch FROM now() - last_archived_time)::numeric, 1) END AS backup_age_seconds
FROM pg_stat_archiver`

	// SQLShowPools is pgBouncer's pool table: cl_waiting counts clients
	// queued for a server connection, the sign of a saturated pool.
	SQLShowPools = `SHOW POOLS`
)

// Bounds of the runbook's database checks.
const (
	// MaxDeadRatio is the dead-tuple share past which autovacuum is behind
	// (its default scale factor).
	MaxDeadRatio = 0.2
	// MaxBackupAge is the oldest WAL archive PITR may rely on, in seconds:
	// an hour of writes is the most a restore could lose.
	MaxBackupAge = 3600
)
