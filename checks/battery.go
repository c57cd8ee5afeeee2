package checks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/canarybot/canarybot/sbom"
)

// Status is a battery test's outcome. A test that could not run is
// skipped, never passed.
type Status string

const (
	StatusPassed  Status = "passed"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
)

// Names of the battery's tests, in the runbook's order.
const (
	NameIdempotencyBurst = "idempotency_burst"
	NameTickAlignment    = "decimal_tick_alignment"
	NameOutboxLag        = "outbox_lag"
	NameCSPFlood         = "csp_flood"
	NameSBOMDrift        = "sbom_license_drift"
)

// TestResult is one battery test's outcome and its evidence text.
type TestResult struct {
	Name   string
	Status Status
	// Detail is one line: what was seen and, when it failed or was
	// skipped, why.
	Detail string
	// Counts are the answers by class (status code, "transport error"),
	// or by vector outcome.
	Counts   map[string]int
	Elapsed  time.Duration
	Evidence string
}

// Passed reports whether the test ran and passed.
func (r TestResult) Passed() bool { return r.Status == StatusPassed }

// TickVector is one decimal tick alignment case: Price aligned to Tick
// must be Expected, exactly.
type TickVector struct {
	Symbol, Price, Tick, Expected string
}

// DefaultTickVectors are the runbook's two vectors.
func DefaultTickVectors() []TickVector {
	return []TickVector{
		{"BTCUSDT", "12345.6789", "0.01", "12345.68"},
		{"BTCTRY", "12345.6789", "0.1", "12345.7"},
	}
}

// ParseTickVector reads SYMBOL:PRICE:TICK:EXPECTED, as given on the
// command line.
func ParseTickVector(s string) (TickVector, error) {
	f := strings.Split(s, ":")
	if len(f) != 4 {
		return TickVector{}, fmt.Errorf("%w: tick vector %q: use SYMBOL:PRICE:TICK:EXPECTED, e.g. BTCUSDT:12345.6789:0.01:12345.68", ErrBadOptions, s)
	}
	v := TickVector{Symbol: f[0], Price: f[1], Tick: f[2], Expected: f[3]}
	for _, d := range []string{v.Price, v.Tick, v.Expected} {
		if _, err := canonicalDecimal(d); err != nil {
			return TickVector{}, fmt.Errorf("%w: tick vector %q: %v", ErrBadOptions, s, err)
		}
	}
	return v, nil
}

// Defaults of BatteryOptions, the runbook's.
const (
	DefaultBurstRequests    = 100
	DefaultFloodRequests    = 50
	DefaultBatteryParallel  = 10
	DefaultBatteryTimeout   = 10 * time.Second
	OrderPath               = "/api/exec/order"
	CSPReportPath           = "/api/csp-report"
	TickAlignPath           = "/api/tick-align"
	IdempotencyHeader       = "X-Idempotency-Key"
	burstOrderBody          = `{"symbol":"BTCUSDT","side":"buy","quantity":0.01}`
	cspReportBody           = `{"csp-report":{"blocked-uri":"test"}}`
	transportErrorCountName = "transport error"
)

// BatteryOptions configure the corner-case battery.
type BatteryOptions struct {
	// Base is the service's base URL.
	Base    string
	Version string
	// EvidenceDir is the release's evidence directory (<root>/<version>),
	// where the SBOM is looked for.
	EvidenceDir string
	// PreviousSBOM is the previous release's SBOM, which the license drift
	// test compares this release's with; empty skips that test.
	PreviousSBOM string
	// DSN is the PostgreSQL the outbox lives in; empty skips the outbox
	// test. It is never written to the evidence.
	DSN string
	// Outbox configures the outbox lag test (query, bounds).
	Outbox OutboxOptions
	// TickVectors default to DefaultTickVectors.
	TickVectors []TickVector
	// BurstRequests and FloodRequests default to the runbook's 100 and 50;
	// Parallel, the requests in flight, to 10.
	BurstRequests, FloodRequests, Parallel int
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration
	// Header is sent with every request, e.g. X-Canary: always through
	// the router.
	Header map[string]string
}

func (o BatteryOptions) withDefaults() BatteryOptions {
	if o.TickVectors == nil {
		o.TickVectors = DefaultTickVectors()
	}
	if o.BurstRequests == 0 {
		o.BurstRequests = DefaultBurstRequests
	}
	if o.FloodRequests == 0 {
		o.FloodRequests = DefaultFloodRequests
	}
	if o.Parallel == 0 {
		o.Parallel = DefaultBatteryParallel
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultBatteryTimeout
	}
	return o
}

// Validate reports, wrapping ErrBadOptions, what Battery could not run
// with.
func (o BatteryOptions) Validate() error { return o.withDefaults().validate() }

func (o BatteryOptions) validate() error {
	if _, err := parseBase(o.Base); err != nil {
		return err
	}
	if o.BurstRequests < 2 || o.FloodRequests < 1 || o.Parallel < 1 || o.Timeout < 0 {
		return fmt.Errorf("%w: the burst needs at least 2 requests (got %d), the flood at least 1 (got %d), parallel at least 1 (got %d), a positive timeout (got %s)",
			ErrBadOptions, o.BurstRequests, o.FloodRequests, o.Parallel, o.Timeout)
	}
	return nil
}

// BatteryResult is the outcome of the whole battery.
type BatteryResult struct {
	Version string
	Base    string
	Started time.Time
	Tests   []TestResult
}

// Failed lists the names of the tests that failed.
func (b BatteryResult) Failed() []string { return b.names(StatusFailed) }

// Skipped lists the names of the tests that did not run.
func (b BatteryResult) Skipped() []string { return b.names(StatusSkipped) }

func (b BatteryResult) names(s Status) []string {
	var out []string
	for _, t := range b.Tests {
		if t.Status == s {
			out = append(out, t.Name)
		}
	}
	return out
}

// Passed reports whether no test failed; skipped tests are allowed, and
// listed by Verdict.
func (b BatteryResult) Passed() bool { return len(b.Failed()) == 0 }

// Verdict is the battery's one-line verdict.
func (b BatteryResult) Verdict() string {
	v := "PASS"
	if f := b.Failed(); len(f) > 0 {
		v = fmt.Sprintf("FAIL (%d failed: %s)", len(f), strings.Join(f, ", "))
	}
	if s := b.Skipped(); len(s) > 0 {
		v += fmt.Sprintf("; %d not run: %s", len(s), strings.Join(s, ", "))
	}
	return v
}

// Line is a test's one-line report.
func (r TestResult) Line() string {
	return fmt.Sprintf("%-24s %-7s %8s  %s", r.Name, r.Status, r.Elapsed.Round(time.Millisecond), r.Detail)
}

// Text renders battery_<version>.txt: a line per test, the verdict, then
// each test's evidence.
func (b BatteryResult) Text() []byte {
	var s strings.Builder
	fmt.Fprintf(&s, "# corner-case battery %s against %s, started %s\n", b.Version, b.Base, b.Started.UTC().Format(time.RFC3339))
	for _, t := range b.Tests {
		s.WriteString(t.Line() + "\n")
	}
	fmt.Fprintf(&s, "verdict: %s\n", b.Verdict())
	for _, t := range b.Tests {
		fmt.Fprintf(&s, "\n## %s: %s\n%s", t.Name, t.Status, t.Evidence)
		if !strings.HasSuffix(t.Evidence, "\n") {
			s.WriteString("\n")
		}
	}
	return []byte(s.String())
}

// Battery runs the five tests one after the other: the burst and the flood
// would otherwise load the service together and blur each other's answers.
// The error is for options it cannot run with (wrapping ErrBadOptions) or
// a cancelled ctx.
func Battery(ctx context.Context, o BatteryOptions) (BatteryResult, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return BatteryResult{}, err
	}
	o.Base, _ = parseBase(o.Base)
	res := BatteryResult{Version: o.Version, Base: o.Base, Started: time.Now()}
	for _, test := range []func(context.Context, BatteryOptions) TestResult{
		IdempotencyBurst, TickAlignment, OutboxLag, CSPFlood, SBOMDrift,
	} {
		res.Tests = append(res.Tests, test(ctx, o))
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("battery stopped after %s: %w", res.Tests[len(res.Tests)-1].Name, err)
		}
	}
	return res, nil
}

// request is one request of a burst or flood.
type request struct {
	method, url, body string
	header            http.Header
}

// answers sends n copies of req, parallel at a time, and counts the answers
// by status code; transport errors count as "transport error", with the
// first one's text.
func answers(ctx context.Context, o BatteryOptions, n int, req request) (map[string]int, string) {
	client := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: o.Parallel}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	counts := map[string]int{}
	firstErr := ""
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	for range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return counts, ctx.Err().Error()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			key, errText := send(ctx, client, req, o.Header)
			mu.Lock()
			defer mu.Unlock()
			counts[key]++
			if errText != "" && firstErr == "" {
				firstErr = errText
			}
		})
	}
	wg.Wait()
	return counts, firstErr
}

func send(ctx context.Context, client *http.Client, r request, extra map[string]string) (string, string) {
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, strings.NewReader(r.body))
	if err != nil {
		return transportErrorCountName, err.Error()
	}
	for k, v := range extra {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return transportErrorCountName, err.Error()
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode), ""
}

// countsText lists counts in key order, like `sort | uniq -c`.
func countsText(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d×%s", counts[k], k)
	}
	if len(parts) == 0 {
		return "no answers"
	}
	return strings.Join(parts, ", ")
}

func countWhere(counts map[string]int, match func(code string) bool) int {
	n := 0
	for k, c := range counts {
		if match(k) {
			n += c
		}
	}
	return n
}

func is2xx(code string) bool { return len(code) == 3 && code[0] == '2' }

// IdempotencyBurst sends BurstRequests orders with one idempotency key,
// Parallel at a time: it passes only with exactly one 2xx and a 409 for
// every other. The key is new each run, so a rerun is not all 409s.
func IdempotencyBurst(ctx context.Context, o BatteryOptions) TestResult {
	o = o.withDefaults()
	start := time.Now()
	key := "DRILL-BURST-" + randomHex(6)
	counts, firstErr := answers(ctx, o, o.BurstRequests, request{
		method: http.MethodPost, url: strings.TrimSuffix(o.Base, "/") + OrderPath, body: burstOrderBody,
		header: http.Header{IdempotencyHeader: {key}, "Content-Type": {"application/json"}},
	})
	r := TestResult{Name: NameIdempotencyBurst, Counts: counts, Elapsed: time.Since(start)}
	ok := countWhere(counts, is2xx)
	conflicts := counts["409"]
	want := o.BurstRequests - 1
	switch {
	case ok == 1 && conflicts == want:
		r.Status, r.Detail = StatusPassed, fmt.Sprintf("1×2xx and %d×409 for key %s", want, key)
	case ok > 1:
		r.Status, r.Detail = StatusFailed, fmt.Sprintf("%d orders accepted with the same key %s (%s): the service does not enforce idempotency; want exactly 1×2xx and %d×409", ok, key, countsText(counts), want)
	default:
		r.Status, r.Detail = StatusFailed, fmt.Sprintf("answers %s for key %s; want exactly 1×2xx and %d×409", countsText(counts), key, want)
	}
	if firstErr != "" {
		r.Detail += "; first transport error: " + firstErr
	}
	r.Evidence = fmt.Sprintf("POST %s%s ×%d, %d at a time, %s: %s\nbody: %s\nanswers: %s\nwant: 1×2xx, %d×409\nresult: %s — %s\n",
		o.Base, OrderPath, o.BurstRequests, o.Parallel, IdempotencyHeader, key, burstOrderBody, countsText(counts), want, r.Status, r.Detail)
	return r
}

// CSPFlood posts FloodRequests CSP reports, Parallel at a time: it passes
// only if some are rate limited (429) and none fails otherwise.
func CSPFlood(ctx context.Context, o BatteryOptions) TestResult {
	o = o.withDefaults()
	start := time.Now()
	counts, firstErr := answers(ctx, o, o.FloodRequests, request{
		method: http.MethodPost, url: strings.TrimSuffix(o.Base, "/") + CSPReportPath, body: cspReportBody,
		header: http.Header{"Content-Type": {"application/csp-report"}},
	})
	r := TestResult{Name: NameCSPFlood, Counts: counts, Elapsed: time.Since(start)}
	limited := counts["429"]
	bad := countWhere(counts, func(c string) bool { return !is2xx(c) && c != "429" })
	switch {
	case limited > 0 && bad == 0:
		r.Status, r.Detail = StatusPassed, fmt.Sprintf("%d of %d reports rate limited (%s)", limited, o.FloodRequests, countsText(counts))
	case limited == 0:
		r.Status, r.Detail = StatusFailed, fmt.Sprintf("no report of %d was rate limited (%s): the endpoint has no rate limit; want some 429", o.FloodRequests, countsText(counts))
	default:
		r.Status, r.Detail = StatusFailed, fmt.Sprintf("%d answers neither accepted nor 429 (%s)", bad, countsText(counts))
	}
	if firstErr != "" {
		r.Detail += "; first transport error: " + firstErr
	}
	r.Evidence = fmt.Sprintf("POST %s%s ×%d, %d at a time\nbody: %s\nanswers: %s\nwant: some 429, the rest 2xx\nresult: %s — %s\n",
		o.Base, CSPReportPath, o.FloodRequests, o.Parallel, cspReportBody, countsText(counts), r.Status, r.Detail)
	return r
}

// TickAlignment asks the service to align each vector's price to its tick
// and compares the answer with the expected value exactly, as decimals:
// 12345.70 equals 12345.7, 12345.69 is a deviation of 0.01.
func TickAlignment(ctx context.Context, o BatteryOptions) TestResult {
	o = o.withDefaults()
	start := time.Now()
	client := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	r := TestResult{Name: NameTickAlignment, Counts: map[string]int{}}
	var ev strings.Builder
	var failed []string
	for _, v := range o.TickVectors {
		got, err := alignRemote(ctx, client, o, v)
		line := ""
		switch {
		case err != nil:
			r.Counts["error"]++
			line = fmt.Sprintf("%s: ERROR %v", v.Symbol, err)
		default:
			dev, err := deviation(got, v.Expected)
			if err != nil {
				r.Counts["error"]++
				line = fmt.Sprintf("%s: ERROR %v", v.Symbol, err)
			} else if dev != "0" {
				r.Counts["deviated"]++
				line = fmt.Sprintf("%s: %s at tick %s = %s, want %s: deviation %s", v.Symbol, v.Price, v.Tick, got, v.Expected, dev)
			} else {
				r.Counts["exact"]++
				fmt.Fprintf(&ev, "%s: %s at tick %s = %s ✅\n", v.Symbol, v.Price, v.Tick, got)
				continue
			}
		}
		failed = append(failed, line)
		fmt.Fprintf(&ev, "%s ❌\n", line)
	}
	r.Elapsed = time.Since(start)
	switch {
	case len(o.TickVectors) == 0:
		r.Status, r.Detail = StatusSkipped, "no tick vectors configured"
	case len(failed) > 0:
		r.Status, r.Detail = StatusFailed, fmt.Sprintf("%d of %d vectors off: %s", len(failed), len(o.TickVectors), strings.Join(failed, "; "))
	default:
		r.Status, r.Detail = StatusPassed, fmt.Sprintf("%d vectors, zero deviation", len(o.TickVectors))
	}
	r.Evidence = fmt.Sprintf("GET %s%s?price=…&tick=… per vector\n%sresult: %s — %s\n", o.Base, TickAlignPath, ev.String(), r.Status, r.Detail)
	return r
}

func alignRemote(ctx context.Context, client *http.Client, o BatteryOptions, v TickVector) (string, error) {
	q := url.Values{"symbol": {v.Symbol}, "price": {v.Price}, "tick": {v.Tick}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(o.Base, "/")+TickAlignPath+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	for k, val := range o.Header {
		if strings.EqualFold(k, "Host") {
			req.Host = val
			continue
		}
		req.Header.Set(k, val)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %.200s", TickAlignPath, resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		Result *string `json:"result"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Result == nil {
		return "", fmt.Errorf("GET %s: answer %.200q is not {\"result\":\"<decimal>\"}", TickAlignPath, body)
	}
	return *out.Result, nil
}

// deviation is got − want as a canonical decimal ("0" when equal).
func deviation(got, want string) (string, error) {
	g, err := canonicalDecimal(got)
	if err != nil {
		return "", fmt.Errorf("service answered %w", err)
	}
	w, err := canonicalDecimal(want)
	if err != nil {
		return "", fmt.Errorf("expected value: %w", err)
	}
	if g == w {
		return "0", nil
	}
	gr, _ := new(big.Rat).SetString(g)
	wr, _ := new(big.Rat).SetString(w)
	d := new(big.Rat).Sub(gr, wr)
	// Exact: both have finitely many decimals, the difference no more.
	return canonicalDecimal(d.FloatString(max(scale(g), scale(w))))
}

func scale(d string) int {
	if _, frac, ok := strings.Cut(d, "."); ok {
		return len(frac)
	}
	return 0
}

// canonicalDecimal writes a plain decimal without a plus sign, leading
// zeros, trailing fractional zeros or a negative zero, so two spellings of
// one number compare equal as strings.
func canonicalDecimal(s string) (string, error) {
	digits, neg := strings.CutPrefix(s, "-")
	if !neg {
		digits = strings.TrimPrefix(s, "+")
	}
	whole, frac, hasPoint := strings.Cut(digits, ".")
	if whole == "" || (hasPoint && frac == "") || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return "", fmt.Errorf("%q is not a plain decimal such as 12345.68", s)
	}
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	frac = strings.TrimRight(frac, "0")
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out, nil
}

// SBOMDrift compares the licenses of the release's SBOM
// (sbom_<version>.json in the evidence) with the previous release's: it
// fails on a GPL or AGPL license brought in since, or on an SBOM with no
// licenses at all; new LGPL warns. Without both SBOMs it does not run.
func SBOMDrift(ctx context.Context, o BatteryOptions) TestResult {
	start := time.Now()
	r := TestResult{Name: NameSBOMDrift, Status: StatusSkipped}
	name := "sbom_" + o.Version + ".json"
	path := filepath.Join(o.EvidenceDir, name)
	_, err := os.Stat(path)
	switch {
	case o.EvidenceDir == "" || o.Version == "":
		r.Detail = "skipped: no evidence directory to look for the SBOM in"
	case errors.Is(err, os.ErrNotExist):
		r.Detail = fmt.Sprintf("skipped: no SBOM (%s; the green button writes it)", path)
	case err != nil:
		r.Detail = fmt.Sprintf("skipped: cannot read the SBOM: %v", err)
	case o.PreviousSBOM == "":
		r.Detail = fmt.Sprintf("skipped: %s exists, but there is no previous SBOM to compare it with (pass --previous-sbom)", path)
	default:
		r = sbomDrift(o.PreviousSBOM, path)
	}
	r.Elapsed = time.Since(start)
	if r.Evidence == "" {
		r.Evidence = r.Detail + "\n"
	}
	return r
}

func sbomDrift(previous, current string) TestResult {
	// Both SBOMs are there to be compared: one that cannot be read is a
	// failure, never a pass with nothing checked.
	r := TestResult{Name: NameSBOMDrift, Status: StatusFailed}
	prev, err := sbom.Read(previous)
	if err != nil {
		r.Detail = fmt.Sprintf("previous SBOM unreadable: %v", err)
		return r
	}
	cur, err := sbom.Read(current)
	if err != nil {
		r.Detail = fmt.Sprintf("current SBOM unreadable: %v", err)
		return r
	}
	rep := sbom.Drift(prev, cur, sbom.Options{})
	r.Counts = map[string]int{"new": len(rep.New), "warnings": len(rep.Warnings), "exempted": len(rep.Exempted), "already present": len(rep.AlreadyPresent)}
	r.Status = StatusPassed
	if rep.Failed {
		r.Status = StatusFailed
	}
	r.Detail = fmt.Sprintf("%s (%d of %d packages licensed)", rep.Verdict(), rep.WithLicense, rep.Packages)
	r.Evidence = rep.Text()
	return r
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
