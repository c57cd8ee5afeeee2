package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// DefaultDSNEnv is where a postgres check reads its DSN when it names
	// no dsn_env.
	DefaultDSNEnv = "DATABASE_URL"
	// DefaultPostgresTimeout bounds a postgres check's connection and
	// statement when it sets no timeout.
	DefaultPostgresTimeout = 10 * time.Second
	// maxEvidenceRows caps the rows a check copies into its evidence; all
	// rows are still counted and compared.
	maxEvidenceRows = 1000
	// maxDetailRows is how many offending rows a detail names.
	maxDetailRows = 3
	// sqlStateQueryCanceled is what PostgreSQL answers when the
	// statement_timeout ends a statement.
	sqlStateQueryCanceled = "57014"
)

// envName is an environment variable name; a DSN never matches it.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c Check) dsnEnv() string {
	if c.DSNEnv == "" {
		return DefaultDSNEnv
	}
	return c.DSNEnv
}

func (c Check) validatePostgres() error {
	if strings.TrimSpace(c.SQL) == "" {
		return errors.New("sql is empty: give the query to run, e.g. SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NULL")
	}
	if c.DSNEnv != "" && !envName.MatchString(c.DSNEnv) {
		return fmt.Errorf("dsn_env %q is not an environment variable name: name the variable that holds the DSN (e.g. DATABASE_URL); the DSN itself never goes in the checks file", c.DSNEnv)
	}
	switch {
	case c.Op == "" && c.Value == nil:
		if c.Column != "" {
			return fmt.Errorf("column %s has no bound: give op and value, e.g. op: \"<=\" and value: 0.2", c.Column)
		}
		// A query that lists what is wrong: no rows passes.
	case !slices.Contains([]string{OpLT, OpLE, OpEQ, OpGE, OpGT}, c.Op):
		return fmt.Errorf("op %q is not one of <, <=, ==, >=, >: give the comparison of the row count (or of column) with value", c.Op)
	case c.Value == nil:
		return errors.New("value is missing: give the bound the row count (or column) is compared with, e.g. value: 0")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %s is negative", c.Timeout)
	}
	return nil
}

// bound is the check's comparison: its op and value, or rows == 0 when it
// gives neither.
func (c Check) bound() (string, float64) {
	if c.Op == "" && c.Value == nil {
		return OpEQ, 0
	}
	return c.Op, *c.Value
}

// getenv is o.Getenv, or the process environment.
func (o Options) getenv(name string) string {
	if o.Getenv != nil {
		return o.Getenv(name)
	}
	return os.Getenv(name)
}

// table is a query's answer as text, the way psql shows it: the simple
// query protocol returns every value in its text form. A nil value is SQL
// NULL.
type table struct {
	columns []string
	rows    [][]*string
	// total counts every row, including those past maxEvidenceRows.
	total int
}

// queryer is a connection or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func runPostgres(ctx context.Context, c Check, o Options) (Result, []byte) {
	env := c.dsnEnv()
	dsn := o.getenv(env)
	if dsn == "" {
		return cannotRun("no DSN: $%s is not set", env), nil
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, with the password redacted only
		// as well as it can guess where one is.
		return cannotRun("the DSN in $%s does not parse as a PostgreSQL URL or key=value string (not quoted here: it may hold a password)", env), nil
	}
	// Simple protocol everywhere: pgBouncer's console speaks nothing else,
	// and text values are what the evidence shows.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	console := cfg.Database == consoleDatabase
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)

	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultPostgresTimeout
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	conn, err := pgx.ConnectConfig(qctx, cfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			// The server answered: a wrong database, role or password is
			// the check failing, not the check unable to run.
			return failed("connecting to %s ($%s): %s (SQLSTATE %s)", where, env, pgErr.Message, pgErr.Code), nil
		}
		if ctx.Err() != nil {
			return failed("%v", context.Cause(ctx)), nil
		}
		return cannotRun("cannot reach %s ($%s): %v", where, env, connectCause(err)), nil
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		_ = conn.Close(cctx)
	}()

	var q queryer = conn
	if !console {
		// Read-only: a preflight proves, it never changes. The statement
		// timeout makes the server stop a slow query itself, rather than
		// leave it running after the check gave up.
		tx, err := conn.BeginTx(qctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			return queryFailed(ctx, qctx, where, timeout, err), nil
		}
		defer func() { _ = tx.Rollback(context.Background()) }()
		left := timeout
		if d, ok := qctx.Deadline(); ok {
			left = time.Until(d)
		}
		if _, err := tx.Exec(qctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", max(1, left.Milliseconds()))); err != nil {
			return queryFailed(ctx, qctx, where, timeout, err), nil
		}
		q = tx
	}
	tab, err := query(qctx, q, c.SQL)
	if err != nil {
		return queryFailed(ctx, qctx, where, timeout, err), nil
	}
	res := evaluate(c, tab)
	res.Detail = where + ": " + res.Detail
	return res, postgresEvidence(c, tab, res)
}

// connectCause is the innermost useful text of a connection error, without
// pgx's "failed to connect to `user=… database=…`" prefix (the where says it).
func connectCause(err error) string {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		err = ce.Unwrap()
	}
	// One line per address tried (and per TLS attempt): a detail is one
	// line, and the attempts often fail alike.
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// queryFailed describes a failed statement: the budget or the caller
// stopping it, the check's own timeout, or the server's error.
func queryFailed(parent, qctx context.Context, where string, timeout time.Duration, err error) Result {
	var pgErr *pgconn.PgError
	switch {
	case parent.Err() != nil:
		return failed("%v", context.Cause(parent))
	case qctx.Err() != nil || (errors.As(err, &pgErr) && pgErr.Code == sqlStateQueryCanceled):
		return failed("%s: timed out: no answer within %s", where, timeout)
	case errors.As(err, &pgErr):
		return failed("%s: %s (SQLSTATE %s)", where, pgErr.Message, pgErr.Code)
	}
	return failed("%s: %v", where, err)
}

func query(ctx context.Context, q queryer, sql string) (*table, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	tab := &table{}
	for _, f := range rows.FieldDescriptions() {
		tab.columns = append(tab.columns, f.Name)
	}
	for rows.Next() {
		tab.total++
		raw := rows.RawValues()
		row := make([]*string, len(raw))
		for i, v := range raw {
			if v != nil {
				s := string(v)
				row[i] = &s
			}
		}
		// Every row is compared (evaluate), but only so many are kept:
		// keep them all up to the cap, then just the count.
		if len(tab.rows) < maxEvidenceRows {
			tab.rows = append(tab.rows, row)
		}
	}
	return tab, rows.Err()
}

// evaluate compares the answer with the check's bound: the row count, or
// every row's column.
func evaluate(c Check, tab *table) Result {
	op, bound := c.bound()
	if c.Column == "" {
		n := float64(tab.total)
		if compare(n, op, bound) {
			return passed("%d rows, want rows %s %s", tab.total, op, formatFloat(bound))
		}
		detail := fmt.Sprintf("%d rows, want rows %s %s", tab.total, op, formatFloat(bound))
		if len(tab.rows) > 0 {
			var shown []string
			for _, row := range tab.rows[:min(len(tab.rows), maxDetailRows)] {
				shown = append(shown, rowText(row))
			}
			detail += ": " + strings.Join(shown, "; ")
			if tab.total > maxDetailRows {
				detail += "; …"
			}
		}
		return failed("%s", detail)
	}
	col := slices.Index(tab.columns, c.Column)
	if col < 0 {
		return failed("column %q is not in the answer (its columns: %s)", c.Column, strings.Join(tab.columns, ", "))
	}
	if tab.total == 0 {
		return passed("no rows: nothing to compare with %s %s %s", c.Column, op, formatFloat(bound))
	}
	var off []string
	for _, row := range tab.rows {
		v := row[col]
		label := ""
		if col != 0 {
			label = valueText(row[0]) + ": "
		}
		switch f, err := parseValue(v); {
		case v == nil:
			off = append(off, label+c.Column+" is NULL")
		case err != nil:
			off = append(off, fmt.Sprintf("%s%s is %q, not a number", label, c.Column, *v))
		case !compare(f, op, bound):
			off = append(off, fmt.Sprintf("%s%s %s", label, c.Column, *v))
		}
	}
	if len(off) == 0 {
		return passed("every %s %s %s (%d rows)", c.Column, op, formatFloat(bound), tab.total)
	}
	shown := off[:min(len(off), maxDetailRows)]
	more := ""
	if len(off) > len(shown) {
		more = "; …"
	}
	return failed("%d of %d rows miss %s %s %s: %s%s", len(off), len(tab.rows), c.Column, op, formatFloat(bound), strings.Join(shown, "; "), more)
}

// parseValue reads a number in PostgreSQL's text form; booleans count as
// 1 and 0.
func parseValue(v *string) (float64, error) {
	if v == nil {
		return 0, errors.New("NULL")
	}
	switch *v {
	case "t", "true":
		return 1, nil
	case "f", "false":
		return 0, nil
	}
	return strconv.ParseFloat(strings.TrimSpace(*v), 64)
}

func valueText(v *string) string {
	if v == nil {
		return "NULL"
	}
	return *v
}

func rowText(row []*string) string {
	parts := make([]string, len(row))
	for i, v := range row {
		parts[i] = valueText(v)
	}
	return strings.Join(parts, " | ")
}

// tsvEscaper writes a value in PostgreSQL's COPY text format.
var tsvEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

// tsv is the answer in PostgreSQL's COPY text format (tab-separated, NULL
// as \N) under a header line of column names.
func (t *table) tsv() []byte {
	var b strings.Builder
	for i, name := range t.columns {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(tsvEscaper.Replace(name))
	}
	b.WriteByte('\n')
	for _, row := range t.rows {
		for i, v := range row {
			if i > 0 {
				b.WriteByte('\t')
			}
			if v == nil {
				b.WriteString(`\N`)
			} else {
				b.WriteString(tsvEscaper.Replace(*v))
			}
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// postgresEvidence is the answer: bare TSV for a .tsv file (the runbook's
// pgbouncer_pools_<version>.tsv), else the query, the TSV, the bound and
// the result, each note behind "# ".
func postgresEvidence(c Check, tab *table, res Result) []byte {
	if strings.HasSuffix(c.Evidence, ".tsv") {
		return tab.tsv()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: %s\n", c.Name, strings.Join(strings.Fields(c.SQL), " "))
	b.Write(tab.tsv())
	if tab.total > len(tab.rows) {
		fmt.Fprintf(&b, "# … %d more rows not copied\n", tab.total-len(tab.rows))
	}
	what := "rows"
	if c.Column != "" {
		what = "every " + c.Column
	}
	op, bound := c.bound()
	fmt.Fprintf(&b, "# want: %s %s %s\n# result: %s — %s\n", what, op, formatFloat(bound), res.Status, res.Detail)
	return []byte(b.String())
}
