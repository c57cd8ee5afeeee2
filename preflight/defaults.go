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
// URLs are paths on the canary (Options.Canary). The four database checks
// are of kind postgres, which is not built yet: they report cannot_run and
// write no evidence.
func DefaultChecks() []Check {
	one, zero, eloop := 1.0, 0.0, 0.050
	return []Check{
		{Name: "release_tag", Kind: KindGit, Evidence: "release_tag.txt"},
		{Name: "canary_health", Kind: KindHTTP, URL: "/healthz"},
		{Name: "csp_headers", Kind: KindHTTP, URL: "/healthz",
			Headers:  map[string][]string{"Content-Security-Policy": {"default-src"}},
			Evidence: "csp_headers_" + VersionPlaceholder + ".txt"},
		{Name: "scrape_targets_up", Kind: KindPromQL, Query: QueryTargetsUp, Op: OpGE, Value: &one},
		{Name: "no_auto_rollback_alert", Kind: KindPromQL, Query: QueryAutoRollbackFiring, Op: OpEQ, Value: &zero},
		{Name: "eventloop_lag_p95", Kind: KindPromQL, Query: QueryEventLoopP95, Op: OpLE, Value: &eloop},
		{Name: "prisma_migrations", Kind: KindPostgres,
			SQL:      `SELECT migration_name, started_at, finished_at, rolled_back_at FROM _prisma_migrations WHERE finished_at IS NULL OR rolled_back_at IS NOT NULL`,
			Evidence: "prisma_status_" + VersionPlaceholder + ".txt"},
		{Name: "pg_dead_tuples_top5", Kind: KindPostgres,
			SQL:      `SELECT relname, n_dead_tup, n_live_tup FROM pg_stat_user_tables ORDER BY n_dead_tup DESC LIMIT 5`,
			Evidence: "pg_dead_tuples_top5.txt"},
		{Name: "pitr_backup_status", Kind: KindPostgres, SQL: `SELECT * FROM backup_status`},
		{Name: "pgbouncer_pools", Kind: KindPostgres, SQL: `SHOW POOLS`,
			Evidence: "pgbouncer_pools_" + VersionPlaceholder + ".tsv"},
	}
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
