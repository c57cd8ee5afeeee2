package preflight

// Default Prometheus expressions of the runbook's preflight. They assume
// the runbook's scrape job "spark" and track labels, as deploy/prometheus
// does.
const (
	// QueryTargetsUp is 1 only when every scrape target of the job is up;
	// no target at all is no data, a failure.
	QueryTargetsUp = `min(up{job="spark"})`
	// QueryAutoRollbackFiring counts firing alerts that would roll the
	// canary back; "or vector(0)" makes none firing a 0 rather than no data.
	QueryAutoRollbackFiring = `count(ALERTS{alertstate="firing",auto_rollback="true"}) or vector(0)`
	// QueryEventLoopP95 is the canary's event-loop lag p95, the runbook's
	// backpressure indicator (bound 50 ms).
	QueryEventLoopP95 = `max(quantile_over_time(0.95, nodejs_eventloop_lag_seconds{track="canary"}[5m]))`
)

// DefaultChecks are the runbook's 10 preflight checks. The http checks'
// URLs are paths on the canary (Options.Canary). The database checks read
// their DSNs from $DATABASE_URL and, for pgBouncer's console,
// $PGBOUNCER_ADMIN_URL; without them they report cannot_run.
func DefaultChecks() []Check {
	one, zero, eloop := 1.0, 0.0, 0.050
	deadRatio, backupAge := MaxDeadRatio, float64(MaxBackupAge)
	return []Check{
		{Name: "release_tag", Kind: KindGit, Evidence: "release_tag.txt"},
		{Name: "canary_health", Kind: KindHTTP, URL: "/healthz"},
		{Name: "csp_headers", Kind: KindHTTP, URL: "/healthz",
			Headers:  map[string][]string{"Content-Security-Policy": {"default-src"}},
			Evidence: "csp_headers_" + VersionPlaceholder + ".txt"},
		{Name: "scrape_targets_up", Kind: KindPromQL, Query: QueryTargetsUp, Op: OpGE, Value: &one},
		{Name: "no_auto_rollback_alert", Kind: KindPromQL, Query: QueryAutoRollbackFiring, Op: OpEQ, Value: &zero},
		{Name: "eventloop_lag_p95", Kind: KindPromQL, Query: QueryEventLoopP95, Op: OpLE, Value: &eloop},
		PrismaMigrationsCheck(),
		{Name: "pg_dead_tuples_top5", Kind: KindPostgres, SQL: SQLDeadTuplesTop5,
			Column: "dead_ratio", Op: OpLE, Value: &deadRatio,
			Evidence: "pg_dead_tuples_top5.txt"},
		{Name: "pitr_backup_status", Kind: KindPostgres, SQL: SQLBackupStatus,
			Column: "backup_age_seconds", Op: OpLE, Value: &backupAge,
			Evidence: "backup_status_" + VersionPlaceholder + ".txt"},
		PgBouncerPoolsCheck(),
	}
}

// PrismaMigrationsCheck passes when Prisma has no unfinished, failed or
// rolled-back migration.
func PrismaMigrationsCheck() Check {
	return Check{Name: "prisma_migrations", Kind: KindPostgres, SQL: SQLPrismaPending,
		Evidence: "prisma_status_" + VersionPlaceholder + ".txt"}
}

// PgBouncerPoolsCheck passes when no pool has a client waiting for a
// server connection.
func PgBouncerPoolsCheck() Check {
	zero := 0.0
	return Check{Name: "pgbouncer_pools", Kind: KindPostgres, SQL: SQLShowPools, DSNEnv: PgBouncerAdminEnv,
		Column: "cl_waiting", Op: OpEQ, Value: &zero,
		Evidence: "pgbouncer_pools_" + VersionPlaceholder + ".tsv"}
}

// DefaultCheck is the default check named name, false if there is none.
func DefaultCheck(name string) (Check, bool) {
	for _, c := range DefaultChecks() {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Produces lists the evidence files a run of checks for version writes:
// preflight.txt first, then each check's file. A check that cannot run or
// times out leaves its file missing, and the run does not pass.
func Produces(checks []Check, version string) []string {
	out := []string{SummaryFile}
	for _, c := range checks {
		if name := c.EvidenceName(version); name != "" {
			out = append(out, name)
		}
	}
	return out
}
