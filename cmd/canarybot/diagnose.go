package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/canarybot/canarybot/preflight"
)

// Verdicts of a diagnosis part.
const (
	verdictOK            = "ok"
	verdictFail          = "FAIL"
	verdictUnreachable   = "UNREACHABLE"
	verdictNotConfigured = "not configured"
)

// Thresholds of the diagnosis, the runbook's signal bounds.
const (
	diagEventLoopMax = 50 * time.Millisecond
	diagGCPauseMax   = 20 * time.Millisecond
	// diagTimeout bounds each part: the report is for the middle of an
	// incident, and one part that hangs must not hold up the others.
	diagTimeout    = 5 * time.Second
	maxMetricsBody = 16 << 20
)

// diagnosis is one part of the report.
type diagnosis struct {
	Part      string
	Verdict   string
	Threshold string
	Reading   string
}

// diagnoseOptions say where the parts are; an empty one is not configured.
type diagnoseOptions struct {
	prometheus string
	metrics    string
	minTargets int
	timeout    time.Duration
	getenv     func(string) string
}

func newDiagnoseCmd(g *globals) *cobra.Command {
	o := diagnoseOptions{getenv: os.Getenv}
	c := &cobra.Command{
		Use:   "diagnose",
		Short: "The runbook's pocket emergency commands as one read-only report, each with its threshold and verdict",
		Long: `diagnose reads, and changes nothing:
  pitr_backup        the age of the last WAL archived (pg_stat_archiver), from $DATABASE_URL: ≤ 3600 s
  pgbouncer_pools    SHOW POOLS on pgBouncer's admin console, from $PGBOUNCER_ADMIN_URL: no client waiting
  scrape_targets     Prometheus's active scrape targets (--prometheus or $PROMETHEUS_URL): at least
                     --min-targets, all up; fewer is the early warning that scrapes drop
  eventloop_lag_p95  from the service's metrics endpoint (--metrics): ≤ 50 ms
  gc_pause_avg       from the same endpoint: average GC pause ≤ 20 ms
The parts run at once, each within --timeout. A part whose address is not given is "not configured";
one that cannot be reached is UNREACHABLE.
Exit 0 when every configured part is ok, 1 when any is FAIL or UNREACHABLE.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput("%s", "diagnose takes no arguments, only flags, e.g. `canarybot diagnose --metrics http://127.0.0.1:4001/metrics`")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.prometheus == "" {
				o.prometheus = o.getenv("PROMETHEUS_URL")
			}
			for flag, u := range map[string]string{"--prometheus": o.prometheus, "--metrics": o.metrics} {
				if u == "" {
					continue
				}
				if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
					return badInput("%s %q is not an http(s) URL such as http://127.0.0.1:9090", flag, u)
				}
			}
			if o.timeout <= 0 || o.minTargets < 0 {
				return badInput("--timeout (%s) must be positive and --min-targets (%d) not negative", o.timeout, o.minTargets)
			}
			parts := diagnose(cmd.Context(), o)
			printDiagnosis(g.out, parts)
			var bad []string
			for _, p := range parts {
				if p.Verdict == verdictFail || p.Verdict == verdictUnreachable {
					bad = append(bad, p.Part+" "+p.Verdict)
				}
			}
			if len(bad) > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("diagnose: %s", strings.Join(bad, ", "))}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.prometheus, "prometheus", "", "Prometheus base URL (default $PROMETHEUS_URL)")
	fl.StringVar(&o.metrics, "metrics", "", "the service's metrics endpoint, e.g. http://127.0.0.1:4001/api/public/metrics.prom")
	fl.IntVar(&o.minTargets, "min-targets", 1, "fewest active scrape targets expected")
	fl.DurationVar(&o.timeout, "timeout", diagTimeout, "time limit of each part")
	return c
}

// diagnose runs every part concurrently and returns them in report order.
func diagnose(ctx context.Context, o diagnoseOptions) []diagnosis {
	parts := make([]diagnosis, 5)
	var wg sync.WaitGroup
	wg.Go(func() {
		parts[0] = diagnoseSQL(ctx, o, "pitr_backup", "pitr_backup_status", "backup_age_seconds ≤ 3600")
	})
	wg.Go(func() {
		parts[1] = diagnoseSQL(ctx, o, "pgbouncer_pools", "pgbouncer_pools", "cl_waiting == 0 in every pool")
	})
	wg.Go(func() { parts[2] = diagnoseTargets(ctx, o) })
	wg.Go(func() { parts[3], parts[4] = diagnoseMetrics(ctx, o) })
	wg.Wait()
	return parts
}

// diagnoseSQL runs one of the preflight's database checks without writing
// evidence.
func diagnoseSQL(ctx context.Context, o diagnoseOptions, part, check, threshold string) diagnosis {
	d := diagnosis{Part: part, Threshold: threshold}
	c, ok := preflight.DefaultCheck(check)
	if !ok {
		d.Verdict, d.Reading = verdictFail, "no such default check "+check
		return d
	}
	env := c.DSNEnv
	if env == "" {
		env = preflight.DefaultDSNEnv
	}
	if o.getenv(env) == "" {
		d.Verdict, d.Reading = verdictNotConfigured, "$"+env+" is not set"
		return d
	}
	rep, err := preflight.Run(ctx, []preflight.Check{c}, preflight.Options{Budget: o.timeout, Getenv: o.getenv})
	if err != nil {
		d.Verdict, d.Reading = verdictFail, err.Error()
		return d
	}
	res := rep.Results[0]
	d.Reading = res.Detail
	switch res.Status {
	case preflight.Passed:
		d.Verdict = verdictOK
	case preflight.CannotRun:
		d.Verdict = verdictUnreachable
	default:
		d.Verdict = verdictFail
	}
	return d
}

// diagnoseTargets counts Prometheus's active scrape targets and how many
// are up.
func diagnoseTargets(ctx context.Context, o diagnoseOptions) diagnosis {
	d := diagnosis{Part: "scrape_targets", Threshold: fmt.Sprintf("≥ %d targets, all up", o.minTargets)}
	if o.prometheus == "" {
		d.Verdict, d.Reading = verdictNotConfigured, "no --prometheus or $PROMETHEUS_URL"
		return d
	}
	client, err := api.NewClient(api.Config{Address: o.prometheus})
	if err != nil {
		d.Verdict, d.Reading = verdictFail, err.Error()
		return d
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := v1.NewAPI(client).Targets(ctx)
	if err != nil {
		d.Verdict, d.Reading = verdictUnreachable, fmt.Sprintf("%s: %v", redactURL(o.prometheus), err)
		return d
	}
	var down []string
	for _, t := range res.Active {
		if t.Health != v1.HealthGood {
			down = append(down, fmt.Sprintf("%s %s (%s)", t.ScrapeURL, t.Health, t.LastError))
		}
	}
	n := len(res.Active)
	d.Reading = fmt.Sprintf("%d active targets, %d up", n, n-len(down))
	if len(down) > 0 {
		d.Reading += "; down: " + strings.Join(down, "; ")
	}
	d.Verdict = verdictOK
	if n < o.minTargets || len(down) > 0 {
		d.Verdict = verdictFail
	}
	return d
}

// diagnoseMetrics reads the event-loop lag p95 and the average GC pause
// from the service's own metrics endpoint.
func diagnoseMetrics(ctx context.Context, o diagnoseOptions) (eloop, gc diagnosis) {
	eloop = diagnosis{Part: "eventloop_lag_p95", Threshold: "≤ " + diagEventLoopMax.String()}
	gc = diagnosis{Part: "gc_pause_avg", Threshold: "≤ " + diagGCPauseMax.String()}
	if o.metrics == "" {
		eloop.Verdict, eloop.Reading = verdictNotConfigured, "no --metrics endpoint"
		gc.Verdict, gc.Reading = eloop.Verdict, eloop.Reading
		return eloop, gc
	}
	families, err := scrapeMetrics(ctx, o.metrics, o.timeout)
	if err != nil {
		eloop.Verdict, eloop.Reading = verdictUnreachable, err.Error()
		gc.Verdict, gc.Reading = eloop.Verdict, eloop.Reading
		return eloop, gc
	}
	eloop.Verdict, eloop.Reading = eventLoopP95(families)
	gc.Verdict, gc.Reading = gcPauseAvg(families)
	return eloop, gc
}

func scrapeMetrics(ctx context.Context, endpoint string, timeout time.Duration) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, err
	}
	// The text format: prom-client and client_golang both serve it.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// url.Error repeats the URL, credentials and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("GET %s: %w", redactURL(endpoint), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", redactURL(endpoint), resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, maxMetricsBody))
	if err != nil {
		return nil, fmt.Errorf("%s is not in the Prometheus text format: %w", redactURL(endpoint), err)
	}
	return families, nil
}

// eventLoopP95 reads nodejs_eventloop_lag_seconds: its 0.95 quantile when
// it is a summary (what the runbook greps for), else the gauge's current
// value, which says so; the worst series counts.
func eventLoopP95(families map[string]*dto.MetricFamily) (string, string) {
	f := families["nodejs_eventloop_lag_seconds"]
	if f == nil {
		return verdictFail, "the endpoint has no nodejs_eventloop_lag_seconds"
	}
	worst, what, seen := math.Inf(-1), "", false
	for _, m := range f.GetMetric() {
		var v float64
		var kind string
		switch {
		case m.GetSummary() != nil:
			i := slices.IndexFunc(m.GetSummary().GetQuantile(), func(q *dto.Quantile) bool { return q.GetQuantile() == 0.95 })
			if i < 0 {
				continue
			}
			v, kind = m.GetSummary().GetQuantile()[i].GetValue(), "p95"
		case m.GetGauge() != nil:
			v, kind = m.GetGauge().GetValue(), "current lag (the endpoint has no p95)"
		default:
			continue
		}
		if !seen || v > worst {
			worst, what, seen = v, kind+labelsText(m), true
		}
	}
	if !seen {
		return verdictFail, "nodejs_eventloop_lag_seconds has no 0.95 quantile nor a gauge value"
	}
	d := secondsDuration(worst)
	verdict := verdictOK
	if d > diagEventLoopMax {
		verdict = verdictFail
	}
	return verdict, fmt.Sprintf("%s %s", d, what)
}

// gcPauseAvg is the average pause of nodejs_gc_duration_seconds (a
// histogram or summary) over all GC kinds since the process started.
func gcPauseAvg(families map[string]*dto.MetricFamily) (string, string) {
	f := families["nodejs_gc_duration_seconds"]
	if f == nil {
		return verdictFail, "the endpoint has no nodejs_gc_duration_seconds"
	}
	var sum float64
	var count uint64
	for _, m := range f.GetMetric() {
		switch {
		case m.GetHistogram() != nil:
			sum += m.GetHistogram().GetSampleSum()
			count += m.GetHistogram().GetSampleCount()
		case m.GetSummary() != nil:
			sum += m.GetSummary().GetSampleSum()
			count += m.GetSummary().GetSampleCount()
		}
	}
	if count == 0 {
		return verdictFail, "no GC pause recorded yet (nodejs_gc_duration_seconds has count 0)"
	}
	avg := secondsDuration(sum / float64(count))
	verdict := verdictOK
	if avg > diagGCPauseMax {
		verdict = verdictFail
	}
	return verdict, fmt.Sprintf("%s average of %d pauses since the process started", avg, count)
}

func secondsDuration(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond)
}

func labelsText(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		if l.GetName() == "quantile" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	if len(parts) == 0 {
		return ""
	}
	return " {" + strings.Join(parts, ",") + "}"
}

// redactURL drops a URL's credentials before it is printed.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	return u.Redacted()
}

func printDiagnosis(out io.Writer, parts []diagnosis) {
	fmt.Fprintf(out, "canarybot diagnose (read-only) at %s UTC\n", time.Now().UTC().Format("2006-01-02 15:04:05"))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PART\tVERDICT\tTHRESHOLD\tREADING")
	for _, p := range parts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Part, p.Verdict, p.Threshold, p.Reading)
	}
	tw.Flush()
}
