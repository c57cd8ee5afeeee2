package signals

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/canarybot/canarybot/rollout"
)

const (
	// defaultQueryTimeout bounds one query or alerts request.
	defaultQueryTimeout = 10 * time.Second
	// maxConcurrentQueries bounds a tick's queries in flight against the
	// server: the 8 default signals plus a baseline fit, and a long
	// custom list does not turn into a burst.
	maxConcurrentQueries = 10
	// maxDetail caps what an error quotes from a server's error message.
	maxDetail = 300
	// minSecretLen: shorter "secrets" are not scrubbed from messages, since
	// replacing every "ab" in a message would garble it and protect nothing.
	minSecretLen = 4
	// checkHint is what to look at when Prometheus cannot be reached.
	checkHint  = "is PROMETHEUS_URL right and Prometheus up?"
	urlExample = "e.g. http://127.0.0.1:9090"
)

// ErrUnavailable is wrapped by every error that says Prometheus gave no
// usable answer: it could not be reached, timed out, answered 5xx, refused
// the credentials, or is not a Prometheus API. The query itself may be fine.
var ErrUnavailable = errors.New("Prometheus is unavailable")

// ErrBadQuery is wrapped by errors where Prometheus answered but rejected
// the query (a syntax error, an unknown function, an execution error): the
// query must be fixed.
var ErrBadQuery = errors.New("Prometheus rejected the query")

// PrometheusOptions configures NewPrometheus. Printing or logging it never
// shows the token or the password.
type PrometheusOptions struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:9090
	// (PROMETHEUS_URL). A path prefix is allowed; credentials, a query
	// string and /api/v1 are not.
	URL string
	// BearerToken, when set, is sent as "Authorization: Bearer …". Take it
	// from the environment; it is never logged or put in an error.
	BearerToken string
	// BasicUser and BasicPassword, when set, are sent as basic auth. Use
	// them or BearerToken, not both.
	BasicUser, BasicPassword string
	// TLSCAFile is a PEM bundle of CAs to trust for an https URL, on top of
	// the system's.
	TLSCAFile string
	// InsecureSkipVerify turns off certificate checks (a test server with
	// a self-signed certificate); it is logged as a warning.
	InsecureSkipVerify bool
	// Timeout bounds each query and each alerts request; 0 means 10s.
	Timeout time.Duration
	Logger  *slog.Logger
}

func (o PrometheusOptions) authKind() string {
	switch {
	case o.BearerToken != "":
		return "bearer"
	case o.BasicUser != "" || o.BasicPassword != "":
		return "basic"
	}
	return "none"
}

// String shows the options without their secrets.
func (o PrometheusOptions) String() string {
	return fmt.Sprintf("PrometheusOptions{URL: %q, Auth: %s, TLSCAFile: %q, InsecureSkipVerify: %t, Timeout: %s}",
		displayURL(o.URL), o.authKind(), o.TLSCAFile, o.InsecureSkipVerify, o.Timeout)
}

// GoString keeps %#v from printing the secrets.
func (o PrometheusOptions) GoString() string { return o.String() }

// LogValue keeps slog from logging the secrets.
func (o PrometheusOptions) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", displayURL(o.URL)),
		slog.String("auth", o.authKind()),
		slog.String("tls_ca_file", o.TLSCAFile),
		slog.Bool("insecure_skip_verify", o.InsecureSkipVerify),
		slog.Duration("timeout", o.Timeout),
	)
}

// displayURL is raw with any password hidden, for messages about a URL
// that may be malformed.
func displayURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return "(a malformed URL with credentials, not shown)"
		}
		return raw
	}
	return u.Redacted()
}

// Prometheus reads signals and alerts from a Prometheus server over its HTTP
// API. It implements rollout.Metrics, rollout.BatchMetrics and
// rollout.Alerts, and is safe for concurrent use.
type Prometheus struct {
	api     v1.API
	url     string // the base URL, for messages; it carries no credentials
	timeout time.Duration
	// A pointer, so that dumping the struct with %+v prints an address,
	// not the credentials.
	secrets *redactor
}

var (
	_ rollout.Metrics      = (*Prometheus)(nil)
	_ rollout.BatchMetrics = (*Prometheus)(nil)
	_ rollout.Alerts       = (*Prometheus)(nil)
)

// NewPrometheus checks the options and builds the client. It does not
// contact the server: call Check for that.
func NewPrometheus(opts PrometheusOptions) (*Prometheus, error) {
	base, err := parsePrometheusURL(opts.URL)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	switch {
	case timeout < 0:
		return nil, fmt.Errorf("signals: Prometheus query timeout %s is negative: give a positive duration, or 0 for the default %s", timeout, defaultQueryTimeout)
	case timeout == 0:
		timeout = defaultQueryTimeout
	}
	if opts.BearerToken != "" && (opts.BasicUser != "" || opts.BasicPassword != "") {
		return nil, errors.New("signals: both a bearer token and basic-auth credentials are set for Prometheus: set only the one your server expects")
	}
	if opts.BasicPassword != "" && opts.BasicUser == "" {
		return nil, errors.New("signals: a basic-auth password is set for Prometheus without a user: set the user too")
	}
	if base.Scheme == "http" && (opts.TLSCAFile != "" || opts.InsecureSkipVerify) {
		return nil, fmt.Errorf("signals: TLS settings are given but PROMETHEUS_URL %s is plain http: use an https:// URL or drop the TLS settings", base)
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	if base.Scheme == "https" {
		tlsConfig, err := prometheusTLS(opts)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = tlsConfig
	}
	auth := &authTransport{next: transport, scheme: base.Scheme, host: base.Host}
	secrets := &redactor{}
	switch {
	case opts.BearerToken != "":
		auth.header = "Bearer " + opts.BearerToken
		secrets.add(opts.BearerToken)
	case opts.BasicUser != "":
		creds := base64.StdEncoding.EncodeToString([]byte(opts.BasicUser + ":" + opts.BasicPassword))
		auth.header = "Basic " + creds
		secrets.add(opts.BasicPassword, creds)
	}
	client, err := api.NewClient(api.Config{Address: base.String(), RoundTripper: auth})
	if err != nil {
		return nil, fmt.Errorf("signals: creating the Prometheus client for %s: %w", base, err)
	}

	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.InsecureSkipVerify {
		logger.Warn("Prometheus TLS certificate is not verified: use only against a test server", "url", base.String())
	}
	logger.Debug("reading metrics from Prometheus", "options", opts)
	return &Prometheus{
		api:     v1.NewAPI(client),
		url:     base.String(),
		timeout: timeout,
		secrets: secrets,
	}, nil
}

// String names the server, for logs.
func (p *Prometheus) String() string { return "Prometheus at " + p.url }

// parsePrometheusURL checks that raw is a server's base URL and returns it
// without a trailing slash.
func parsePrometheusURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("signals: the Prometheus URL is empty: set PROMETHEUS_URL to the server's base URL, " + urlExample)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's message quotes the whole URL, password and all.
		if strings.Contains(raw, "@") {
			return nil, errors.New("signals: PROMETHEUS_URL is not a valid URL: give the server's base URL, " + urlExample + ", and basic-auth credentials separately")
		}
		reason := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			reason = ue.Err.Error()
		}
		return nil, fmt.Errorf("signals: PROMETHEUS_URL %q is not a valid URL (%s): give the server's base URL with its scheme, %s", raw, reason, urlExample)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("signals: PROMETHEUS_URL %q must start with http:// or https://, %s", shown, urlExample)
	case u.Host == "":
		return nil, fmt.Errorf("signals: PROMETHEUS_URL %q has no host: give the server's base URL, %s", shown, urlExample)
	case u.User != nil:
		return nil, fmt.Errorf("signals: PROMETHEUS_URL %q carries credentials, which would show wherever the URL is logged: pass them as basic-auth user and password instead", shown)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("signals: PROMETHEUS_URL %q has a query or fragment: give only the server's base URL, %s", shown, urlExample)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if strings.HasSuffix(u.Path, "/api/v1") {
		return nil, fmt.Errorf("signals: PROMETHEUS_URL %q ends in /api/v1: give the server's base URL without it, %s", shown, urlExample)
	}
	return u, nil
}

func prometheusTLS(opts PrometheusOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Opt-in, for test servers with self-signed certificates; warned
		// about at start-up.
		InsecureSkipVerify: opts.InsecureSkipVerify, //nolint:gosec
	}
	if opts.TLSCAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(opts.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("signals: reading the Prometheus CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("signals: the Prometheus CA file %s holds no PEM certificate: give a PEM bundle (-----BEGIN CERTIFICATE-----)", opts.TLSCAFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// authTransport adds the Authorization header to requests for the
// configured server only, so that a redirect elsewhere never carries it.
type authTransport struct {
	next         http.RoundTripper
	scheme, host string
	header       string
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.header == "" || req.URL.Scheme != t.scheme || req.URL.Host != t.host {
		return t.next.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", t.header)
	return t.next.RoundTrip(req)
}

// Query evaluates an instant query at time at (the zero time means the
// server's now). A scalar or a single series is a value, NaN included; an
// empty result wraps rollout.ErrNoValues; several series are an error. A
// failure to get an answer wraps ErrUnavailable, a rejected query
// ErrBadQuery.
func (p *Prometheus) Query(ctx context.Context, query string, at time.Time) (rollout.Sample, error) {
	qctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	// The server-side timeout makes Prometheus give up too, instead of
	// evaluating a query nobody waits for any more.
	res, warnings, infos, err := p.api.Query(qctx, query, at, v1.WithTimeout(p.timeout))
	s := rollout.Sample{Warnings: collectWarnings(warnings, infos)}
	if err != nil {
		return s, p.redact(p.describe(ctx, fmt.Sprintf("query `%s`", query), err))
	}
	s.Value, err = singleValue(query, res)
	return s, p.redact(err)
}

// QueryAll evaluates a tick's queries at the same time, concurrently. The
// i-th sample and error answer queries[i], with Query's meaning.
func (p *Prometheus) QueryAll(ctx context.Context, queries []string, at time.Time) ([]rollout.Sample, []error) {
	samples := make([]rollout.Sample, len(queries))
	errs := make([]error, len(queries))
	var next atomic.Int64
	work := func() {
		for i := int(next.Add(1) - 1); i < len(queries); i = int(next.Add(1) - 1) {
			samples[i], errs[i] = p.Query(ctx, queries[i], at)
		}
	}
	var wg sync.WaitGroup
	for range min(len(queries), maxConcurrentQueries) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	return samples, errs
}

// Check runs every query once at the server's current time, so that a typo
// or an unreachable server shows at start-up rather than at the first tick.
// A query with no data yet passes (the canary may not be deployed); any
// other failure fails, and all failures are returned joined, each naming its
// query.
func (p *Prometheus) Check(ctx context.Context, queries []string) error {
	_, errs := p.QueryAll(ctx, queries, time.Time{})
	var failed []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, rollout.ErrNoValues) {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("signals: %d of %d queries failed against Prometheus at %s:\n%w",
		len(failed), len(queries), p.url, errors.Join(failed...))
}

// singleValue reduces a query's result to one number, the way the embedded
// store does.
func singleValue(query string, res model.Value) (float64, error) {
	switch v := res.(type) {
	case *model.Scalar:
		return float64(v.Value), nil
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, fmt.Errorf("signals: query `%s`: %w", query, rollout.ErrNoValues)
		case 1:
			if v[0].Histogram != nil {
				return 0, fmt.Errorf("signals: query `%s` returned a native histogram, not a number: wrap it in histogram_quantile, histogram_sum or histogram_count", query)
			}
			return float64(v[0].Value), nil
		default:
			metrics := make([]model.Metric, len(v))
			for i, x := range v {
				metrics[i] = x.Metric
			}
			return 0, errManySeries(query, metrics)
		}
	case model.Matrix:
		return 0, errRangeVector(query)
	case nil:
		return 0, fmt.Errorf("signals: query `%s`: Prometheus answered without a result: is PROMETHEUS_URL pointing at Prometheus?", query)
	default:
		return 0, errResultType(query, res.Type())
	}
}

// collectWarnings keeps up to maxQueryWarnings of each kind, like the
// embedded store.
func collectWarnings(warnings v1.Warnings, infos v1.Infos) []string {
	var out []string
	out = append(out, warnings[:min(len(warnings), maxQueryWarnings)]...)
	out = append(out, infos[:min(len(infos), maxQueryWarnings)]...)
	return out
}

// describe turns a client error into one that names the server and what was
// asked, says what to check, and wraps ErrUnavailable or ErrBadQuery. ctx is
// the caller's context, to tell its cancellation from a timeout.
func (p *Prometheus) describe(ctx context.Context, what string, err error) error {
	prefix := fmt.Sprintf("signals: %s on Prometheus at %s", what, p.url)
	var apiErr *v1.Error
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return fmt.Errorf("%s: cancelled: %w", prefix, err)
	case errors.Is(err, context.DeadlineExceeded):
		within := fmt.Sprintf("within the %s timeout", p.timeout)
		if ctx.Err() != nil {
			within = "before the caller's deadline"
		}
		return fmt.Errorf("%s: %w: no answer %s (%w); %s", prefix, ErrUnavailable, within, err, checkHint)
	case errors.As(err, &apiErr):
		return p.describeAPI(prefix, apiErr)
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		// The prefix names the server already; keep the reason.
		cause = ue.Err
	}
	return fmt.Errorf("%s: %w: %w; %s", prefix, ErrUnavailable, cause, checkHint)
}

func (p *Prometheus) describeAPI(prefix string, e *v1.Error) error {
	switch e.Type {
	case v1.ErrBadData, v1.ErrExec:
		return fmt.Errorf("%s: %w: %s: fix the query", prefix, ErrBadQuery, e.Msg)
	case v1.ErrTimeout, v1.ErrCanceled:
		return fmt.Errorf("%s: %w: Prometheus gave up on it (%s): make the query cheaper or the timeout (%s) longer", prefix, ErrUnavailable, e.Msg, p.timeout)
	case v1.ErrServer:
		return fmt.Errorf("%s: %w: %s%s; %s", prefix, ErrUnavailable, e.Msg, serverMessage(e.Detail), checkHint)
	case v1.ErrClient:
		switch strings.TrimPrefix(e.Msg, "client error: ") {
		case "401", "403":
			return fmt.Errorf("%s: %w: %s: the server refused canarybot's credentials; check the bearer token or basic-auth user and password it is given", prefix, ErrUnavailable, e.Msg)
		case "404":
			return fmt.Errorf("%s: %w: %s: no Prometheus API under this URL; PROMETHEUS_URL must be the server's base URL (with its path prefix, if any)", prefix, ErrUnavailable, e.Msg)
		}
		return fmt.Errorf("%s: %w: %s%s; %s", prefix, ErrUnavailable, e.Msg, serverMessage(e.Detail), checkHint)
	case v1.ErrBadResponse:
		if strings.Contains(e.Msg, "unexpected value type") {
			// The client cannot decode a string result: the server
			// answered, but not with a number.
			return fmt.Errorf("%s: the result is not a number (%s); a signal must be an instant vector or a scalar", prefix, e.Msg)
		}
		return fmt.Errorf("%s: %w: the answer is not a Prometheus API response (%s): is PROMETHEUS_URL pointing at Prometheus?", prefix, ErrUnavailable, e.Msg)
	}
	return fmt.Errorf("%s: %w: %s: %s; %s", prefix, ErrUnavailable, e.Type, e.Msg, checkHint)
}

// serverMessage is the error message of a Prometheus JSON error body, if
// the body is one. Anything else (a proxy's HTML page) is not quoted.
func serverMessage(body string) string {
	var r struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &r) != nil || r.Error == "" {
		return ""
	}
	msg := r.Error
	if len(msg) > maxDetail {
		msg = strings.ToValidUTF8(msg[:maxDetail], "") + "…"
	}
	return " (" + msg + ")"
}

// redactor knows the credentials that must never be printed.
type redactor struct{ secrets []string }

func (r *redactor) add(secrets ...string) {
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			r.secrets = append(r.secrets, s)
		}
	}
}

// redactedError is an error whose message had a secret scrubbed out. It
// unwraps to the sentinels the original matched, not to the original, whose
// text still holds the secret.
type redactedError struct {
	msg string
	is  []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.is }

// redact scrubs the credentials out of err's message. A server may echo a
// request's Authorization header in its error message, which the errors
// quote.
func (p *Prometheus) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range p.secrets.secrets {
		clean = strings.ReplaceAll(clean, s, "[REDACTED]")
	}
	if clean == msg {
		return err
	}
	r := &redactedError{msg: clean}
	for _, sentinel := range []error{ErrUnavailable, ErrBadQuery, rollout.ErrNoValues, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, sentinel) {
			r.is = append(r.is, sentinel)
		}
	}
	return r
}
