package checks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults of the outbox lag test.
const (
	// DefaultOutboxQuery is the runbook's: the age in seconds of up to ten
	// pending outbox events, oldest first (the runbook's had no order, so
	// which ten it saw was up to the planner).
	DefaultOutboxQuery = `SELECT extract(epoch FROM now() - created_at) AS lag
FROM "Outbox"
WHERE status = 'pending'
ORDER BY created_at
LIMIT 10`
	// DefaultOutboxMaxLag is the runbook's spike threshold: its awk
	// printed "Lag spike" for any lag over 10 s.
	DefaultOutboxMaxLag = 10 * time.Second
	// DefaultOutboxSkew is how far in the future an event may be dated
	// before it counts as clock skew: a writer whose clock runs ahead
	// gives negative lags, the "teeth" the runbook looks for.
	DefaultOutboxSkew = time.Second
	// DefaultOutboxTimeout bounds the connection and the query.
	DefaultOutboxTimeout = 10 * time.Second
)

// OutboxOptions configure the outbox lag test.
type OutboxOptions struct {
	// Query returns the lags, in seconds, in its first column; default
	// DefaultOutboxQuery. It runs in a read-only transaction.
	Query string
	// MaxLag bounds every lag (default 10 s): a value over it is a spike.
	MaxLag time.Duration
	// MaxSkew is the largest negative lag allowed (default 1 s).
	MaxSkew time.Duration
	// Timeout bounds the connection and the query (default 10 s).
	Timeout time.Duration
}

func (o OutboxOptions) withDefaults() OutboxOptions {
	if o.Query == "" {
		o.Query = DefaultOutboxQuery
	}
	if o.MaxLag == 0 {
		o.MaxLag = DefaultOutboxMaxLag
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = DefaultOutboxSkew
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultOutboxTimeout
	}
	return o
}

// OutboxLag reads the pending outbox events' lags from the database at
// o.DSN: it passes when every lag is within MaxLag (no spike) and none is
// more than MaxSkew in the future (no clock skew); no pending event passes
// with a lag of 0. Without a DSN it does not run; a database it cannot
// reach or query fails, since the operator asked for the test by giving
// the DSN.
func OutboxLag(ctx context.Context, o BatteryOptions) TestResult {
	start := time.Now()
	oo := o.Outbox.withDefaults()
	r := TestResult{Name: NameOutboxLag, Status: StatusSkipped, Counts: map[string]int{}}
	if o.DSN == "" {
		r.Detail = "not run: no DATABASE_URL (pass --dsn or set DATABASE_URL)"
		r.Evidence = r.Detail + "\n"
		return r
	}
	lags, err := outboxLags(ctx, o.DSN, oo)
	r.Elapsed = time.Since(start)
	if err != nil {
		r.Status, r.Detail = StatusFailed, "outbox lag query: "+err.Error()
		r.Evidence = fmt.Sprintf("query: %s\nresult: failed — %s\n", oneLine(oo.Query), r.Detail)
		return r
	}
	var ev strings.Builder
	fmt.Fprintf(&ev, "query: %s\nbound: every lag ≤ %s, none below -%s\n", oneLine(oo.Query), oo.MaxLag, oo.MaxSkew)
	var spikes, skews []string
	worst := 0.0
	for _, lag := range lags {
		mark := ""
		switch {
		case lag > oo.MaxLag.Seconds():
			r.Counts["spike"]++
			spikes = append(spikes, formatSeconds(lag))
			mark = " ⚠ lag spike"
		case lag < -oo.MaxSkew.Seconds():
			r.Counts["skew"]++
			skews = append(skews, formatSeconds(lag))
			mark = " ⚠ dated in the future: clock skew"
		default:
			r.Counts["ok"]++
		}
		worst = max(worst, lag)
		fmt.Fprintf(&ev, "%s%s\n", formatSeconds(lag), mark)
	}
	switch {
	case len(spikes) > 0 || len(skews) > 0:
		var why []string
		if len(spikes) > 0 {
			why = append(why, fmt.Sprintf("%d lag spike(s) over %s: %s", len(spikes), oo.MaxLag, strings.Join(spikes, ", ")))
		}
		if len(skews) > 0 {
			why = append(why, fmt.Sprintf("%d event(s) dated in the future (clock skew between the writers and the database): %s", len(skews), strings.Join(skews, ", ")))
		}
		r.Status, r.Detail = StatusFailed, fmt.Sprintf("%d pending events: %s", len(lags), strings.Join(why, "; "))
	case len(lags) == 0:
		r.Status, r.Detail = StatusPassed, "no pending outbox events: lag 0"
	default:
		r.Status, r.Detail = StatusPassed, fmt.Sprintf("%d pending events, lag at most %s (bound %s), no spike, no skew", len(lags), formatSeconds(worst), oo.MaxLag)
	}
	fmt.Fprintf(&ev, "result: %s — %s\n", r.Status, r.Detail)
	r.Evidence = ev.String()
	return r
}

// outboxLags runs the query read-only under a statement timeout and reads
// its first column as seconds.
func outboxLags(ctx context.Context, dsn string, o OutboxOptions) ([]float64, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, password redacted only as well as
		// it can guess where one is.
		return nil, errors.New("the DSN does not parse as a PostgreSQL URL or key=value string (not quoted here: it may hold a password)")
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) && ce.Unwrap() != nil {
			err = ce.Unwrap()
		}
		// pgx puts one line per attempt (address, TLS or not); a detail
		// is one line, and the attempts often fail alike.
		var lines []string
		for _, l := range strings.Split(err.Error(), "\n") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
				lines = append(lines, l)
			}
		}
		return nil, fmt.Errorf("cannot connect to %s:%d/%s: %s", cfg.Host, cfg.Port, cfg.Database, strings.Join(lines, "; "))
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		_ = conn.Close(cctx)
	}()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", o.Timeout.Milliseconds())); err != nil {
		return nil, err
	}
	// Simple protocol: every value comes back as text, whatever type the
	// query gives its lag (numeric, double precision, interval seconds).
	rows, err := tx.Query(ctx, o.Query, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, queryError(err)
	}
	defer rows.Close()
	var lags []float64
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) == 0 || raw[0] == nil {
			return nil, errors.New("a row has no lag (NULL or no column): the query must return the lag in seconds in its first column")
		}
		v, err := strconv.ParseFloat(string(raw[0]), 64)
		if err != nil {
			return nil, fmt.Errorf("lag %q is not a number of seconds: the query must return the lag in seconds in its first column", raw[0])
		}
		lags = append(lags, v)
	}
	if err := rows.Err(); err != nil {
		return nil, queryError(err)
	}
	return lags, nil
}

func queryError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Errorf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	return err
}

func formatSeconds(s float64) string { return strconv.FormatFloat(s, 'f', 1, 64) + "s" }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
