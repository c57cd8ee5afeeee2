package signals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/canarybot/canarybot/rollout"
)

// The embedded store is a real Prometheus TSDB, PromQL engine and rule
// evaluator running in-process on virtual time, so that the demo answers the
// same PromQL and rule files as production without a Prometheus server.

const (
	// lookbackDelta is Prometheus's default: an instant vector selector sees
	// the latest sample up to 5 (virtual) minutes old.
	lookbackDelta = 5 * time.Minute
	// defaultScrapeTimeout bounds one target's HTTP scrape in wall time.
	defaultScrapeTimeout = 5 * time.Second
	// maxScrapeBytes guards against a target streaming without end.
	maxScrapeBytes = 32 << 20
	// maxQueryWarnings caps the annotations copied into a Sample.
	maxQueryWarnings = 10
)

// ErrClosed is returned by an Embedded store used after Close.
var ErrClosed = errors.New("signals: embedded store is closed")

// ErrClockNotAdvanced is returned by ScrapeOnce when the virtual clock shows
// no time later than the previous scrape: the TSDB keeps one sample per
// series and timestamp, so a second scrape at the same instant would conflict.
var ErrClockNotAdvanced = errors.New("signals: virtual clock has not advanced since the previous scrape")

// Target is one scrape target: a metrics URL and the labels added to every
// series scraped from it.
type Target struct {
	URL    string
	Labels map[string]string
}

// EmbeddedOptions configures NewEmbedded.
type EmbeddedOptions struct {
	// Clock is the virtual time source: samples are stamped, and rules and
	// queries evaluated, at its time.
	Clock interface{ Now() time.Time }
	// ScrapeEvery is the wall-clock period between scrapes in Run.
	ScrapeEvery time.Duration
	// ScrapeTimeout bounds one target's scrape in wall time; 0 means 5s.
	ScrapeTimeout time.Duration
	Targets       []Target
	// Rules is a Prometheus rule file (YAML); nil means no rules.
	Rules []byte
	// Dir is the TSDB directory; "" means a temporary directory that Close
	// removes.
	Dir    string
	Logger *slog.Logger
	// HTTPClient scrapes the targets; nil means a plain client.
	HTTPClient *http.Client
}

// Embedded is an in-process metrics store: it scrapes targets into a TSDB,
// evaluates alerting rules after each scrape, and answers instant PromQL
// queries. It implements rollout.Metrics and rollout.Alerts. It is safe for
// concurrent use.
type Embedded struct {
	clock       interface{ Now() time.Time }
	scrapeEvery time.Duration
	timeout     time.Duration
	client      *http.Client
	logger      *slog.Logger
	dir         string
	removeDir   bool

	db     *tsdb.DB
	engine *promql.Engine
	parser *cachingParser
	groups []*rules.Group

	// scrapeMu serialises scrapes: targets keep per-scrape state and the
	// TSDB wants each series' samples in time order.
	scrapeMu   sync.Mutex
	targets    []*scrapeTarget
	lastScrape time.Time
	// commitMu lets QueryAll read one snapshot: scrapes commit under the
	// write lock, a tick's queries run under the read lock.
	commitMu sync.RWMutex

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var (
	_ rollout.Metrics = (*Embedded)(nil)
	_ rollout.Alerts  = (*Embedded)(nil)
)

// NewEmbedded opens the TSDB, creates the PromQL engine and parses the rule
// file. A bad rule file is an error naming the group, the rule and the
// problem.
func NewEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	if opts.Clock == nil {
		return nil, errors.New("signals: EmbeddedOptions.Clock is required: the store stamps samples with its (virtual) time")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	timeout := opts.ScrapeTimeout
	if timeout <= 0 {
		timeout = defaultScrapeTimeout
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{}
	}

	targets, err := newScrapeTargets(opts.Targets)
	if err != nil {
		return nil, err
	}

	e := &Embedded{
		clock:       opts.Clock,
		scrapeEvery: opts.ScrapeEvery,
		timeout:     timeout,
		client:      client,
		logger:      logger,
		dir:         opts.Dir,
		targets:     targets,
		parser:      newCachingParser(parser.NewParser(parser.Options{})),
	}

	tsdbOpts := tsdb.DefaultOptions()
	if e.dir == "" {
		dir, err := os.MkdirTemp("", "canarybot-tsdb-")
		if err != nil {
			return nil, fmt.Errorf("signals: creating a temporary TSDB directory: %w", err)
		}
		e.dir, e.removeDir = dir, true
		// A throw-away store needs no write-ahead log to survive a crash.
		tsdbOpts.WALSegmentSize = -1
	}
	e.db, err = tsdb.Open(e.dir, logger.With("component", "tsdb"), nil, tsdbOpts, nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("signals: opening the TSDB in %s: %w", e.dir, err), e.removeTempDir())
	}

	e.engine = promql.NewEngine(promql.EngineOpts{
		Logger:               logger.With("component", "promql"),
		MaxSamples:           50_000_000,
		Timeout:              time.Minute,
		LookbackDelta:        lookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// Prometheus uses the global evaluation interval (1m by default)
		// as the step of a subquery written without one.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   e.parser,
	})

	if len(opts.Rules) > 0 {
		e.groups, err = e.loadRules(opts.Rules)
		if err != nil {
			_ = e.Close()
			return nil, err
		}
	}
	return e, nil
}

// Close releases the TSDB; a temporary directory is removed. Call it once Run
// has returned and no query is in flight. Close is idempotent.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		// Wait for a scrape in flight so that it does not append to a closed DB.
		e.scrapeMu.Lock()
		defer e.scrapeMu.Unlock()
		var errs []error
		if e.engine != nil {
			errs = append(errs, e.engine.Close())
		}
		if e.db != nil {
			if err := e.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("signals: closing the TSDB: %w", err))
			}
		}
		if err := e.removeTempDir(); err != nil {
			errs = append(errs, err)
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

func (e *Embedded) removeTempDir() error {
	if !e.removeDir {
		return nil
	}
	if err := os.RemoveAll(e.dir); err != nil {
		return fmt.Errorf("signals: removing the temporary TSDB directory %s: %w", e.dir, err)
	}
	return nil
}

// Run scrapes every ScrapeEvery (wall clock) until ctx is done, evaluating
// the rules after each scrape. A failing target or scrape is logged and the
// loop goes on. Run returns nil when ctx is done.
func (e *Embedded) Run(ctx context.Context) error {
	if e.scrapeEvery <= 0 {
		return errors.New("signals: EmbeddedOptions.ScrapeEvery must be positive to Run; pass the wall-clock period max(50ms, scrape interval/speed)")
	}
	if e.closed.Load() {
		return ErrClosed
	}
	ticker := time.NewTicker(e.scrapeEvery)
	defer ticker.Stop()
	for {
		if err := e.ScrapeOnce(ctx); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return nil
			}
			e.logger.Warn("scrape failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// ScrapeOnce scrapes all targets concurrently, stamps every sample with the
// clock's current virtual time and then evaluates the rule groups at that
// time. A target that cannot be scraped is recorded as up=0 and logged, not
// returned: only storage failures, a clock that has not advanced and a
// closed store are errors.
func (e *Embedded) ScrapeOnce(ctx context.Context) error {
	e.scrapeMu.Lock()
	defer e.scrapeMu.Unlock()
	if e.closed.Load() {
		return ErrClosed
	}
	ts := e.clock.Now()
	if !e.lastScrape.IsZero() && !ts.After(e.lastScrape) {
		return fmt.Errorf("%w (previous %s, now %s)", ErrClockNotAdvanced,
			e.lastScrape.Format(time.RFC3339Nano), ts.Format(time.RFC3339Nano))
	}

	bodies := make([]scrapeBody, len(e.targets))
	var wg sync.WaitGroup
	for i, t := range e.targets {
		wg.Go(func() { bodies[i] = t.fetch(ctx, e.client, e.timeout) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		// A cancelled scrape says nothing about the targets' health.
		return err
	}
	e.lastScrape = ts

	var errs []error
	e.commitMu.Lock()
	for i, t := range e.targets {
		if err := t.store(ctx, e.db, ts, bodies[i], e.logger); err != nil {
			errs = append(errs, err)
		}
	}
	e.commitMu.Unlock()
	for _, g := range e.groups {
		g.Eval(ctx, ts)
	}
	return errors.Join(errs...)
}

// Query evaluates an instant query at the virtual time at. The result must
// be a scalar or a single series; an empty result wraps rollout.ErrNoValues.
func (e *Embedded) Query(ctx context.Context, query string, at time.Time) (rollout.Sample, error) {
	if e.closed.Load() {
		return rollout.Sample{}, ErrClosed
	}
	return e.query(ctx, e.db, query, at)
}

// QueryAll evaluates a tick's queries at the same virtual time over one
// snapshot of the store. The i-th sample and error answer queries[i], with
// the same meaning as Query's.
//
// The queries run one after the other. Most of their cost is reading and
// decoding samples, and the 8 default signals share only one selection, so
// there is little to share between them; what a tick does save is parsing
// (see cachingParser). Both other ways were measured with
// BenchmarkQueryAllEight and dropped: running the queries concurrently saved
// a tenth of the wall time on 2 cores for a fifth to a third more CPU, and
// joining them into one PromQL expression (each result tagged by
// label_replace, the results joined by or) was about 8% slower, since the
// two extra operators per query cost as much as the ~10µs of per-query
// overhead they save.
func (e *Embedded) QueryAll(ctx context.Context, queries []string, at time.Time) ([]rollout.Sample, []error) {
	samples := make([]rollout.Sample, len(queries))
	errs := make([]error, len(queries))
	if e.closed.Load() {
		for i := range errs {
			errs[i] = ErrClosed
		}
		return samples, errs
	}

	// Hold the scrape loop's commits back while the tick reads, so that all
	// of its queries see the same samples: a relative signal's canary and
	// baseline queries must not straddle a scrape. The scrape stamps its
	// virtual time before it fetches, so without this a scrape at or before
	// `at` could land between two of the tick's queries.
	e.commitMu.RLock()
	defer e.commitMu.RUnlock()
	for i, q := range queries {
		samples[i], errs[i] = e.query(ctx, e.db, q, at)
	}
	return samples, errs
}

// query runs one instant query against a queryable and reduces its result to
// a single number.
func (e *Embedded) query(ctx context.Context, q storage.Queryable, query string, at time.Time) (rollout.Sample, error) {
	if at.IsZero() {
		// As with a Prometheus server: no time means now, on the store's
		// (virtual) clock.
		at = e.clock.Now()
	}
	qry, err := e.engine.NewInstantQuery(ctx, q, nil, query, at)
	if err != nil {
		return rollout.Sample{}, fmt.Errorf("signals: query `%s`: %w", query, err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return rollout.Sample{}, fmt.Errorf("signals: query `%s`: %w", query, res.Err)
	}
	var s rollout.Sample
	if len(res.Warnings) > 0 {
		warnings, infos := res.Warnings.AsStrings(query, maxQueryWarnings, maxQueryWarnings)
		s.Warnings = append(warnings, infos...)
	}
	switch v := res.Value.(type) {
	case promql.Scalar:
		s.Value = v.V
		return s, nil
	case promql.Vector:
		switch len(v) {
		case 0:
			return s, fmt.Errorf("signals: query `%s`: %w", query, rollout.ErrNoValues)
		case 1:
			if v[0].H != nil {
				return s, fmt.Errorf("signals: query `%s` returned a native histogram, not a number: wrap it in histogram_quantile, histogram_sum or histogram_count", query)
			}
			s.Value = v[0].F
			return s, nil
		default:
			metrics := make([]labels.Labels, len(v))
			for i, x := range v {
				metrics[i] = x.Metric
			}
			return s, errManySeries(query, metrics)
		}
	case promql.Matrix:
		return s, errRangeVector(query)
	default:
		return s, errResultType(query, res.Value.Type())
	}
}

// Firing lists the alerts in state firing: each with the series' labels and
// the rule's labels, the summary annotation, and Since set to when the
// condition started to hold. Alerts evaluated as firing only after at are
// left out, since they were not firing yet at that time.
func (e *Embedded) Firing(ctx context.Context, at time.Time) ([]rollout.Alert, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var out []rollout.Alert
	for _, g := range e.groups {
		for _, r := range g.AlertingRules() {
			for _, a := range r.ActiveAlerts() {
				if a.State != rules.StateFiring || a.FiredAt.After(at) {
					continue
				}
				out = append(out, rollout.Alert{
					Name:    r.Name(),
					Labels:  a.Labels.Map(),
					Summary: a.Annotations.Get("summary"),
					Since:   a.ActiveAt,
				})
			}
		}
	}
	slices.SortFunc(out, func(a, b rollout.Alert) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return labels.Compare(labels.FromMap(a.Labels), labels.FromMap(b.Labels))
	})
	return out, nil
}
