package signals

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// acceptHeader asks for the Prometheus text format, which every client
// library serves; textparse still reads OpenMetrics or protobuf if a target
// answers with them.
const acceptHeader = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

// scrapeTarget is a Target plus what the scrape loop remembers about it
// between scrapes. Only ScrapeOnce (under Embedded.scrapeMu) touches it.
type scrapeTarget struct {
	url     string
	labels  labels.Labels // the target's labels, instance included
	symbols *labels.SymbolTable
	builder *labels.Builder

	up, duration, scraped labels.Labels

	// prev holds the series written by the previous scrape: a series that
	// is gone now gets a stale marker, as Prometheus does, so that a
	// removed instance stops counting at once instead of for 5 minutes.
	prev map[uint64]labels.Labels
}

// scrapeBody is what one HTTP scrape brought back.
type scrapeBody struct {
	data        []byte
	contentType string
	took        time.Duration
	err         error
}

func newScrapeTargets(ts []Target) ([]*scrapeTarget, error) {
	out := make([]*scrapeTarget, 0, len(ts))
	seen := make(map[uint64]int, len(ts))
	for i, t := range ts {
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("signals: target %d: URL %q must be an absolute http(s) URL such as http://127.0.0.1:9100/metrics", i, t.URL)
		}
		m := make(map[string]string, len(t.Labels)+1)
		for k, v := range t.Labels {
			if !model.LegacyValidation.IsValidLabelName(k) || strings.HasPrefix(k, "__") {
				return nil, fmt.Errorf("signals: target %d (%s): label name %q is not valid: use letters, digits and underscores, not starting with a digit or \"__\"", i, t.URL, k)
			}
			m[k] = v
		}
		if _, ok := m[model.InstanceLabel]; !ok {
			m[model.InstanceLabel] = u.Host
		}
		ls := labels.FromMap(m)
		if j, dup := seen[ls.Hash()]; dup {
			return nil, fmt.Errorf("signals: targets %d and %d both have labels %s; give each a distinct instance label", j, i, ls)
		}
		seen[ls.Hash()] = i
		withName := func(name string) labels.Labels {
			return labels.NewBuilder(ls).Set(model.MetricNameLabel, name).Labels()
		}
		out = append(out, &scrapeTarget{
			url:      t.URL,
			labels:   ls,
			symbols:  labels.NewSymbolTable(),
			builder:  labels.NewBuilder(labels.EmptyLabels()),
			up:       withName("up"),
			duration: withName("scrape_duration_seconds"),
			scraped:  withName("scrape_samples_scraped"),
		})
	}
	return out, nil
}

// fetch GETs the target's metrics. It touches no shared state, so targets
// are fetched concurrently.
func (t *scrapeTarget) fetch(ctx context.Context, client *http.Client, timeout time.Duration) scrapeBody {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, ct, err := t.get(ctx, client)
	return scrapeBody{data: body, contentType: ct, took: time.Since(start), err: err}
}

func (t *scrapeTarget) get(ctx context.Context, client *http.Client) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", acceptHeader)
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		drain(resp.Body)
		return nil, "", fmt.Errorf("server returned HTTP status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxScrapeBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading the response: %w", err)
	}
	if len(data) > maxScrapeBytes {
		return nil, "", fmt.Errorf("response is larger than %d bytes", maxScrapeBytes)
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// store writes one scrape into the TSDB at virtual time ts: the samples with
// the target's labels (target labels win over scraped ones), stale markers
// for series that disappeared, and up / scrape_duration_seconds /
// scrape_samples_scraped. A scrape that failed or could not be parsed writes
// up=0 and marks all of the target's previous series stale. Only a storage
// failure is returned.
func (t *scrapeTarget) store(ctx context.Context, db storage.AppendableV2, ts time.Time, body scrapeBody, logger *slog.Logger) error {
	tms := timestamp.FromTime(ts)
	app := db.AppenderV2(ctx)
	seen := make(map[uint64]labels.Labels, len(t.prev))

	scrapeErr := body.err
	if scrapeErr == nil {
		var storeErr error
		scrapeErr, storeErr = t.appendSamples(app, tms, body, seen, logger)
		if storeErr != nil {
			_ = app.Rollback()
			return fmt.Errorf("signals: storing the scrape of %s: %w", t.url, storeErr)
		}
		if scrapeErr != nil {
			// Like Prometheus, a scrape that cannot be parsed counts as failed
			// as a whole: drop what was read of it.
			if err := app.Rollback(); err != nil {
				return fmt.Errorf("signals: discarding the bad scrape of %s: %w", t.url, err)
			}
			app = db.AppenderV2(ctx)
			clear(seen)
		}
	}
	up := 1.0
	if scrapeErr != nil {
		up = 0
		logger.Warn("scrape of target failed; recorded up=0", "url", t.url, "target", t.labels.String(), "err", scrapeErr)
	}

	stale := math.Float64frombits(value.StaleNaN)
	for h, ls := range t.prev {
		if _, ok := seen[h]; ok {
			continue
		}
		if _, err := app.Append(0, ls, 0, tms, stale, nil, nil, storage.AOptions{}); err != nil && !isDroppable(err) {
			_ = app.Rollback()
			return fmt.Errorf("signals: marking %s stale: %w", ls, err)
		}
	}
	report := []struct {
		ls labels.Labels
		v  float64
	}{
		{t.up, up},
		{t.duration, body.took.Seconds()},
		{t.scraped, float64(len(seen))},
	}
	for _, r := range report {
		if _, err := app.Append(0, r.ls, 0, tms, r.v, nil, nil, storage.AOptions{}); err != nil {
			_ = app.Rollback()
			return fmt.Errorf("signals: storing %s: %w", r.ls, err)
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("signals: committing the scrape of %s: %w", t.url, err)
	}
	t.prev = seen
	return nil
}

// appendSamples parses the body and appends each sample. It returns a scrape
// error for a body that cannot be parsed and a storage error for an append
// the TSDB refused for a reason other than the sample itself.
func (t *scrapeTarget) appendSamples(app storage.AppenderV2, tms int64, body scrapeBody, seen map[uint64]labels.Labels, logger *slog.Logger) (scrapeErr, storeErr error) {
	p, err := textparse.New(body.data, body.contentType, t.symbols, textparse.ParserOptions{FallbackContentType: "text/plain"})
	if p == nil {
		return fmt.Errorf("cannot read content type %q: %w", body.contentType, err), nil
	}
	var (
		lset    labels.Labels
		dropped int
	)
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("parsing the exposition: %w", err), nil
		}
		var (
			v  float64
			h  *histogram.Histogram
			fh *histogram.FloatHistogram
		)
		switch entry {
		case textparse.EntrySeries:
			// An explicit timestamp in the exposition is wall time; the
			// store runs on virtual time, so every sample gets the scrape's.
			_, _, v = p.Series()
		case textparse.EntryHistogram:
			_, _, h, fh = p.Histogram()
		default:
			continue
		}
		p.Labels(&lset)
		t.builder.Reset(lset)
		t.labels.Range(func(l labels.Label) { t.builder.Set(l.Name, l.Value) })
		ls := t.builder.Labels()
		_, err = app.Append(0, ls, 0, tms, v, h, fh, storage.AOptions{})
		switch {
		case err == nil:
			seen[ls.Hash()] = ls
		case isDroppable(err):
			dropped++
		default:
			return nil, fmt.Errorf("appending %s: %w", ls, err)
		}
	}
	if dropped > 0 {
		logger.Warn("scrape had samples the TSDB refused (duplicate series or out of order)", "url", t.url, "dropped", dropped)
	}
	return nil, nil
}

// isDroppable tells the per-sample rejections, after which the rest of the
// scrape is still good, from real storage failures.
func isDroppable(err error) bool {
	return errors.Is(err, storage.ErrOutOfOrderSample) ||
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp) ||
		errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrTooOldSample)
}

// drain discards what is left of a response body so the connection can be
// reused.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, maxScrapeBytes)) }
