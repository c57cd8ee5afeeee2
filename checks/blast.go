// Package checks holds the runbook's pre-canary checks as code: the micro
// blast radius (HTTP and WebSocket probes against the canary) and the
// corner-case battery. Each check returns a typed result and the text that
// goes into the release's evidence.
package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// ErrBadOptions is wrapped by the errors for options a check cannot run
// with; the CLI answers them as bad input.
var ErrBadOptions = errors.New("bad check options")

// Defaults of BlastOptions.
const (
	DefaultBlastN           = 30
	DefaultBlastConcurrency = 10
	DefaultProbeTimeout     = 5 * time.Second
	DefaultMaxP95           = 500 * time.Millisecond
	DefaultHTTPPath         = "/healthz"
	DefaultWSPath           = "/ws"
)

// BlastOptions configure a micro blast radius test.
type BlastOptions struct {
	// URL is the canary's base URL, or the router's with the header
	// X-Canary: always.
	URL string
	// N is the number of HTTP probes and, as many again, of WebSocket
	// sessions (default 30).
	N int
	// Concurrency bounds the probes in flight, both kinds together
	// (default 10).
	Concurrency int
	// Timeout bounds each probe (default 5 s).
	Timeout time.Duration
	// WSPath and HTTPPath are appended to URL (defaults /ws and /healthz).
	WSPath, HTTPPath string
	// MaxP95 bounds each kind's p95 latency (default 500 ms).
	MaxP95 time.Duration
	// MinSuccess is the least success ratio of each kind, in (0, 1]; 0
	// means the default 1: the runbook expects every probe to pass.
	MinSuccess float64
	// Header is sent with every probe; a "Host" entry sets the request's
	// host.
	Header map[string]string
}

func (o BlastOptions) withDefaults() BlastOptions {
	if o.N == 0 {
		o.N = DefaultBlastN
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultBlastConcurrency
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultProbeTimeout
	}
	if o.WSPath == "" {
		o.WSPath = DefaultWSPath
	}
	if o.HTTPPath == "" {
		o.HTTPPath = DefaultHTTPPath
	}
	if o.MaxP95 == 0 {
		o.MaxP95 = DefaultMaxP95
	}
	if o.MinSuccess == 0 {
		o.MinSuccess = 1
	}
	return o
}

// Validate reports, wrapping ErrBadOptions, what Blast could not run
// with, so a caller can refuse before it prepares anything.
func (o BlastOptions) Validate() error { return o.withDefaults().validate() }

func (o BlastOptions) validate() error {
	if _, err := parseBase(o.URL); err != nil {
		return err
	}
	switch {
	case o.N < 1:
		return fmt.Errorf("%w: N must be at least 1 probe of each kind, got %d", ErrBadOptions, o.N)
	case o.Concurrency < 1:
		return fmt.Errorf("%w: concurrency must be at least 1, got %d", ErrBadOptions, o.Concurrency)
	case o.Timeout < 0 || o.MaxP95 < 0:
		return fmt.Errorf("%w: the probe timeout (%s) and max p95 (%s) must be positive", ErrBadOptions, o.Timeout, o.MaxP95)
	case o.MinSuccess < 0 || o.MinSuccess > 1:
		return fmt.Errorf("%w: min success is a ratio between 0 and 1 (e.g. 0.95), got %g", ErrBadOptions, o.MinSuccess)
	case !strings.HasPrefix(o.HTTPPath, "/") || !strings.HasPrefix(o.WSPath, "/"):
		return fmt.Errorf("%w: the HTTP path %q and WebSocket path %q must start with /", ErrBadOptions, o.HTTPPath, o.WSPath)
	}
	return nil
}

// parseBase checks that raw is an absolute http(s) URL and returns it
// without a trailing slash.
func parseBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: URL %q: give the service's base URL, such as http://127.0.0.1:4001", ErrBadOptions, raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// ProbeKind is what a probe does.
type ProbeKind string

const (
	ProbeHTTP ProbeKind = "http" // a GET of HTTPPath
	ProbeWS   ProbeKind = "ws"   // connect to WSPath, receive one message, close
)

// Error classes of failed probes.
const (
	ClassTimeout     = "timeout"
	ClassRefused     = "connection refused"
	ClassWSHandshake = "ws handshake"
	ClassWSRead      = "ws read"
	ClassTransport   = "transport"
	// A non-2xx HTTP answer is classed "status <code>".
)

// Probe is one HTTP request or WebSocket session.
type Probe struct {
	Kind    ProbeKind
	Seq     int // 1-based, per kind
	OK      bool
	Status  int // HTTP status (0 for none, or for a WebSocket session that opened)
	Latency time.Duration
	Class   string // the error class when not OK
	Err     string
}

// KindStats summarise the probes of one kind. Latencies are of the
// successful probes: failures count against the success ratio instead.
type KindStats struct {
	Kind     ProbeKind
	Total    int
	OK       int
	P50, P95 time.Duration
	Errors   map[string]int // error class -> count
}

// Ratio is the share of successful probes.
func (k KindStats) Ratio() float64 {
	if k.Total == 0 {
		return 0
	}
	return float64(k.OK) / float64(k.Total)
}

// BlastResult is the outcome of a micro blast radius test.
type BlastResult struct {
	Options  BlastOptions // with the defaults applied
	Started  time.Time
	Elapsed  time.Duration
	Probes   []Probe // HTTP probes first, then WebSocket, each in Seq order
	HTTP, WS KindStats
}

// Failures says why the test failed, one reason per bound missed; none
// when it passed.
func (r BlastResult) Failures() []string {
	var out []string
	for _, k := range []KindStats{r.HTTP, r.WS} {
		if k.Ratio() < r.Options.MinSuccess {
			out = append(out, fmt.Sprintf("%s success %d/%d (%.1f%%) below %.1f%% (%s)",
				k.Kind, k.OK, k.Total, 100*k.Ratio(), 100*r.Options.MinSuccess, formatErrors(k.Errors)))
		}
		if k.OK > 0 && k.P95 > r.Options.MaxP95 {
			out = append(out, fmt.Sprintf("%s p95 %s above %s", k.Kind, ms(k.P95), ms(r.Options.MaxP95)))
		}
	}
	return out
}

// Passed reports whether each kind met the success ratio and the p95 bound.
func (r BlastResult) Passed() bool { return len(r.Failures()) == 0 }

// Log renders micro_blast_<version>.log: one line per probe, then the
// summary and the verdict.
// shownHeader reports whether the log may show a probe header's value.
func shownHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Host", "X-Canary", "User-Agent", "Accept":
		return true
	}
	return false
}

func (r BlastResult) Log() []byte {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "# micro blast radius: %d HTTP GET %s + %d WebSocket %s, concurrency %d, timeout %s\n",
		o.N, o.URL+o.HTTPPath, o.N, o.URL+o.WSPath, o.Concurrency, o.Timeout)
	if len(o.Header) > 0 {
		keys := make([]string, 0, len(o.Header))
		for k := range o.Header {
			v := o.Header[k]
			// Evidence is committed and shared: a header that may carry a
			// credential is named, not copied.
			if !shownHeader(k) {
				v = "[redacted]"
			}
			keys = append(keys, k+": "+v)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "# headers: %s\n", strings.Join(keys, ", "))
	}
	fmt.Fprintf(&b, "# started %s, took %s\n", r.Started.UTC().Format(time.RFC3339), r.Elapsed.Round(time.Millisecond))
	for _, p := range r.Probes {
		status := "-"
		if p.Status != 0 {
			status = fmt.Sprint(p.Status)
		}
		result := "ok"
		if !p.OK {
			result = "FAIL " + p.Class + ": " + p.Err
		}
		fmt.Fprintf(&b, "%-4s %3d %-3s %9s %s\n", p.Kind, p.Seq, status, ms(p.Latency), result)
	}
	for _, k := range []KindStats{r.HTTP, r.WS} {
		p50, p95 := "-", "-" // no latency without a successful probe
		if k.OK > 0 {
			p50, p95 = ms(k.P50), ms(k.P95)
		}
		fmt.Fprintf(&b, "summary %-4s %d/%d ok (%.1f%%) p50 %s p95 %s errors: %s\n",
			k.Kind, k.OK, k.Total, 100*k.Ratio(), p50, p95, formatErrors(k.Errors))
	}
	fmt.Fprintf(&b, "bounds: success ≥ %.1f%%, p95 ≤ %s\n", 100*o.MinSuccess, ms(o.MaxP95))
	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintf(&b, "verdict: FAIL: %s\n", strings.Join(f, "; "))
	} else {
		b.WriteString("verdict: PASS\n")
	}
	return []byte(b.String())
}

func formatErrors(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// Blast sends N HTTP GETs and opens N WebSocket sessions against the
// canary, at most Concurrency at a time. A probe's failure is part of the
// result, not an error; the error is for options it cannot run with
// (wrapping ErrBadOptions) or a cancelled ctx, with what ran so far.
func Blast(ctx context.Context, o BlastOptions) (BlastResult, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return BlastResult{Options: o}, err
	}
	o.URL, _ = parseBase(o.URL)
	header := http.Header{}
	host := ""
	for k, v := range o.Header {
		if strings.EqualFold(k, "Host") {
			host = v
			continue
		}
		header.Set(k, v)
	}
	// Its own transport: idle connections end with the test, and a shared
	// one's pool would not be sized for the concurrency.
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: o.Concurrency, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	res := BlastResult{Options: o, Started: time.Now(), Probes: make([]Probe, 2*o.N)}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(o.Concurrency, 2*o.N) {
		wg.Go(func() {
			for i := range jobs {
				pctx, cancel := context.WithTimeout(ctx, o.Timeout)
				if i < o.N {
					res.Probes[i] = probeHTTP(pctx, client, o.URL+o.HTTPPath, host, header)
					res.Probes[i].Seq = i + 1
				} else {
					res.Probes[i] = probeWS(pctx, client, o.URL+o.WSPath, host, header)
					res.Probes[i].Seq = i - o.N + 1
				}
				cancel()
			}
		})
	}
	// Interleave the kinds, so both see the same moment of the service.
	var err error
send:
	for j := range 2 * o.N {
		i := j / 2
		if j%2 == 1 {
			i += o.N
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			err = fmt.Errorf("blast stopped after %d of %d probes: %w", j, 2*o.N, ctx.Err())
			break send
		}
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(res.Started)
	if err != nil {
		// Unsent probes keep their zero value; drop them from the result.
		res.Probes = slices.DeleteFunc(res.Probes, func(p Probe) bool { return p.Kind == "" })
	}
	res.HTTP = stats(ProbeHTTP, res.Probes)
	res.WS = stats(ProbeWS, res.Probes)
	return res, err
}

func probeHTTP(ctx context.Context, client *http.Client, target, host string, header http.Header) Probe {
	p := Probe{Kind: ProbeHTTP}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		p.Class, p.Err = ClassTransport, err.Error()
		return p
	}
	req.Header = header.Clone()
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err == nil {
		p.Status = resp.StatusCode
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	p.Latency = time.Since(start)
	switch {
	case err != nil:
		p.Class, p.Err = classify(ctx, err, ClassTransport), err.Error()
	case p.Status < 200 || p.Status > 299:
		p.Class, p.Err = fmt.Sprintf("status %d", p.Status), http.StatusText(p.Status)
	default:
		p.OK = true
	}
	return p
}

func probeWS(ctx context.Context, client *http.Client, target, host string, header http.Header) Probe {
	p := Probe{Kind: ProbeWS}
	start := time.Now()
	h := header.Clone()
	if host != "" {
		h.Set("Host", host)
	}
	c, resp, err := websocket.Dial(ctx, target, &websocket.DialOptions{HTTPClient: client, HTTPHeader: h})
	if err != nil {
		p.Latency = time.Since(start)
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			p.Status = resp.StatusCode
		}
		p.Class, p.Err = classify(ctx, err, ClassWSHandshake), err.Error()
		return p
	}
	defer c.CloseNow()
	_, _, err = c.Read(ctx)
	p.Latency = time.Since(start)
	if err != nil {
		p.Class, p.Err = classify(ctx, err, ClassWSRead), err.Error()
		return p
	}
	p.OK = true
	// A clean close is the polite end of a session; a peer that does not
	// answer it is not the probe's failure, and CloseNow ends it anyway.
	_ = c.Close(websocket.StatusNormalClosure, "probe done")
	return p
}

// classify names the class of a probe's error; fallback is the class of
// what the probe was doing.
func classify(ctx context.Context, err error, fallback string) string {
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	}
	return fallback
}

func stats(kind ProbeKind, probes []Probe) KindStats {
	k := KindStats{Kind: kind, Errors: map[string]int{}}
	var lat []time.Duration
	for _, p := range probes {
		if p.Kind != kind {
			continue
		}
		k.Total++
		if p.OK {
			k.OK++
			lat = append(lat, p.Latency)
		} else {
			k.Errors[p.Class]++
		}
	}
	slices.Sort(lat)
	k.P50, k.P95 = percentile(lat, 0.50), percentile(lat, 0.95)
	return k
}

// percentile is the nearest-rank percentile of sorted durations: with 30
// probes the p95 is the 29th, so one slow probe of 30 does not set it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Less a hair, so 0.95×20 = 19.000000000000004 ranks 19, not 20.
	rank := int(math.Ceil(p*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
