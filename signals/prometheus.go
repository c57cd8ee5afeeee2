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
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"
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

// The environment variables PrometheusOptionsFromEnv reads. A secret may be
// given inline or, better, as a file (a mounted Secret); a file is read again
// for every request, so a rotated token is picked up without a restart.
const (
	EnvPrometheusURL               = "PROMETHEUS_URL"
	EnvPrometheusBearerToken       = "PROMETHEUS_BEARER_TOKEN"
	EnvPrometheusBearerTokenFile   = "PROMETHEUS_BEARER_TOKEN_FILE"
	EnvPrometheusBasicUser         = "PROMETHEUS_BASIC_AUTH_USER"
	EnvPrometheusBasicPassword     = "PROMETHEUS_BASIC_AUTH_PASSWORD"
	EnvPrometheusBasicPasswordFile = "PROMETHEUS_BASIC_AUTH_PASSWORD_FILE"
	EnvPrometheusCAFile            = "PROMETHEUS_CA_FILE"
	EnvPrometheusCertFile          = "PROMETHEUS_CERT_FILE"
	EnvPrometheusKeyFile           = "PROMETHEUS_KEY_FILE"
)

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
	// BearerTokenFile names a file holding the bearer token, read for
	// every request. Use it or BearerToken, not both.
	BearerTokenFile string
	// BasicUser and BasicPassword (or BasicPasswordFile), when set, are
	// sent as basic auth. Use basic auth or a bearer token, not both.
	BasicUser, BasicPassword string
	BasicPasswordFile        string
	// TLSCAFile is a PEM bundle of the CAs to trust for an https URL,
	// instead of the system's. TLSCertFile and TLSKeyFile are a client
	// certificate, for a server that wants one.
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// InsecureSkipVerify turns off certificate checks (a test server with
	// a self-signed certificate); it is logged as a warning.
	InsecureSkipVerify bool
	// Timeout bounds each query and each alerts request; 0 means 10s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// PrometheusOptionsFromEnv reads the Env* variables through getenv (pass
// os.Getenv). It checks nothing: NewPrometheus does.
func PrometheusOptionsFromEnv(getenv func(string) string) PrometheusOptions {
	return PrometheusOptions{
		URL:               getenv(EnvPrometheusURL),
		BearerToken:       getenv(EnvPrometheusBearerToken),
		BearerTokenFile:   getenv(EnvPrometheusBearerTokenFile),
		BasicUser:         getenv(EnvPrometheusBasicUser),
		BasicPassword:     getenv(EnvPrometheusBasicPassword),
		BasicPasswordFile: getenv(EnvPrometheusBasicPasswordFile),
		TLSCAFile:         getenv(EnvPrometheusCAFile),
		TLSCertFile:       getenv(EnvPrometheusCertFile),
		TLSKeyFile:        getenv(EnvPrometheusKeyFile),
	}
}

func (o PrometheusOptions) authKind() string {
	switch {
	case o.BearerToken != "":
		return "bearer"
	case o.BearerTokenFile != "":
		return "bearer (file)"
	case o.BasicPasswordFile != "":
		return "basic (password file)"
	case o.BasicUser != "" || o.BasicPassword != "":
		return "basic"
	}
	return "none"
}

// String shows the options without their secrets (file names are shown:
// they are not secret, and say where to look).
func (o PrometheusOptions) String() string {
	return fmt.Sprintf("PrometheusOptions{URL: %q, Auth: %s, BearerTokenFile: %q, BasicPasswordFile: %q, TLSCAFile: %q, TLSCertFile: %q, InsecureSkipVerify: %t, Timeout: %s}",
		displayURL(o.URL), o.authKind(), o.BearerTokenFile, o.BasicPasswordFile, o.TLSCAFile, o.TLSCertFile, o.InsecureSkipVerify, o.Timeout)
}

// GoString keeps %#v from printing the secrets.
func (o PrometheusOptions) GoString() string { return o.String() }

// LogValue keeps slog from logging the secrets.
func (o PrometheusOptions) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", displayURL(o.URL)),
		slog.String("auth", o.authKind()),
		slog.String("tls_ca_file", o.TLSCAFile),
		slog.String("tls_cert_file", o.TLSCertFile),
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
	// tls names the TLS files, for messages that say which to fix.
	tls tlsFiles
	// A pointer, so that dumping the struct with %+v prints an address,
	// not the credentials.
	secrets *redactor
}

var (
	_ rollout.Metrics      = (*Prometheus)(nil)
	_ rollout.BatchMetrics = (*Prometheus)(nil)
	_ rollout.Alerts       = (*Prometheus)(nil)
)

// NewPrometheus checks the options, reads the secret files once (so that a
// missing one fails now, not at the first tick) and builds the client. It
// does not contact the server: call Check for that.
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
	if err := checkCredentials(opts); err != nil {
		return nil, err
	}
	if base.Scheme == "http" && (opts.TLSCAFile != "" || opts.TLSCertFile != "" || opts.TLSKeyFile != "" || opts.InsecureSkipVerify) {
		return nil, fmt.Errorf("signals: TLS settings are given but PROMETHEUS_URL %s is plain http: use an https:// URL or drop the TLS settings", base)
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, fmt.Errorf("signals: a client certificate needs both %s and %s: set both, or neither", EnvPrometheusCertFile, EnvPrometheusKeyFile)
	}
	if err := checkTLSFiles(opts); err != nil {
		return nil, err
	}
	secrets, err := newRedactor(opts)
	if err != nil {
		return nil, err
	}

	files := tlsFiles{https: base.Scheme == "https", ca: opts.TLSCAFile, cert: opts.TLSCertFile, key: opts.TLSKeyFile, asked: &atomic.Bool{}}
	client, err := promconfig.NewClientFromConfig(httpConfig(opts), "canarybot_prometheus",
		promconfig.WithUserAgent("canarybot"), promconfig.WithNewTLSConfigFunc(files.newTLSConfig))
	if err != nil {
		return nil, fmt.Errorf("signals: the Prometheus client's TLS or credentials settings: %w", err)
	}
	client.Transport = answered{next: client.Transport, asked: files.asked}
	c, err := api.NewClient(api.Config{Address: base.String(), Client: client})
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
		api:     v1.NewAPI(c),
		url:     base.String(),
		timeout: timeout,
		tls:     files,
		secrets: secrets,
	}, nil
}

// checkCredentials rejects combinations that would leave it unclear which
// credentials are sent.
func checkCredentials(o PrometheusOptions) error {
	bearer := o.BearerToken != "" || o.BearerTokenFile != ""
	basic := o.BasicUser != "" || o.BasicPassword != "" || o.BasicPasswordFile != ""
	switch {
	case o.BearerToken != "" && o.BearerTokenFile != "":
		return fmt.Errorf("signals: both a bearer token and a bearer token file are set for Prometheus (%s, %s): set only one", EnvPrometheusBearerToken, EnvPrometheusBearerTokenFile)
	case bearer && basic:
		return errors.New("signals: both a bearer token and basic-auth credentials are set for Prometheus: set only the one your server expects")
	case o.BasicPassword != "" && o.BasicPasswordFile != "":
		return fmt.Errorf("signals: both a basic-auth password and a password file are set for Prometheus (%s, %s): set only one", EnvPrometheusBasicPassword, EnvPrometheusBasicPasswordFile)
	case (o.BasicPassword != "" || o.BasicPasswordFile != "") && o.BasicUser == "":
		return fmt.Errorf("signals: a basic-auth password is set for Prometheus without a user: set the user too (%s)", EnvPrometheusBasicUser)
	}
	return nil
}

// checkTLSFiles reads the TLS files once, so that a wrong path or file says
// so at start-up in canarybot's words; the client reads them again when
// they change.
func checkTLSFiles(o PrometheusOptions) error {
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return fmt.Errorf("signals: reading the Prometheus CA file (%s): %w", EnvPrometheusCAFile, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("signals: the Prometheus CA file %s holds no PEM certificate: give a PEM bundle (-----BEGIN CERTIFICATE-----)", o.TLSCAFile)
		}
	}
	if o.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile); err != nil {
			return fmt.Errorf("signals: the Prometheus client certificate (%s %s, %s %s) cannot be used: %w: give a PEM certificate and its PEM private key",
				EnvPrometheusCertFile, o.TLSCertFile, EnvPrometheusKeyFile, o.TLSKeyFile, err)
		}
	}
	return nil
}

// httpConfig is the client configuration of Prometheus's own ecosystem:
// TLS files, and credentials inline or read from a file at every request.
// Redirects are not followed: the credentials must go only to the
// configured server, and a redirect says PROMETHEUS_URL is not quite right.
func httpConfig(o PrometheusOptions) promconfig.HTTPClientConfig {
	hc := promconfig.HTTPClientConfig{
		FollowRedirects: false,
		EnableHTTP2:     true,
		TLSConfig: promconfig.TLSConfig{
			CAFile:     o.TLSCAFile,
			CertFile:   o.TLSCertFile,
			KeyFile:    o.TLSKeyFile,
			MinVersion: promconfig.TLSVersion(tls.VersionTLS12),
			// Opt-in, for test servers with self-signed certificates;
			// warned about at start-up.
			InsecureSkipVerify: o.InsecureSkipVerify,
		},
	}
	switch {
	case o.BearerToken != "" || o.BearerTokenFile != "":
		hc.Authorization = &promconfig.Authorization{Type: "Bearer", Credentials: promconfig.Secret(o.BearerToken), CredentialsFile: o.BearerTokenFile}
	case o.BasicUser != "":
		hc.BasicAuth = &promconfig.BasicAuth{Username: o.BasicUser, Password: promconfig.Secret(o.BasicPassword), PasswordFile: o.BasicPasswordFile}
	}
	return hc
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

// Result is one query's answer as the evidence keeps it: the query as sent
// ({{window}} resolved), when it was evaluated, the number the engine
// judges, Prometheus's own result (resultType and result, as JSON) and its
// warnings.
type Result struct {
	Query string
	// At is the evaluation time asked for; zero means the server's now.
	At       time.Time
	Value    float64
	Raw      json.RawMessage
	Warnings []string
}

// Sample is the part of the result the engine's port carries.
func (r Result) Sample() rollout.Sample {
	return rollout.Sample{Value: r.Value, Warnings: r.Warnings, Raw: r.Raw}
}

// maxRaw bounds the raw result kept: a query that wrongly selects many
// series is an error anyway, and its message names a few of them.
const maxRaw = 16 << 10

// Evaluate runs an instant query at time at (the zero time means the
// server's now) and keeps everything about the answer. A scalar or a single
// series is a value, NaN included; an empty result wraps
// rollout.ErrNoValues; several series are an error. A failure to get an
// answer wraps ErrUnavailable, a rejected query ErrBadQuery. The Result is
// filled as far as the answer went, on error too.
func (p *Prometheus) Evaluate(ctx context.Context, query string, at time.Time) (Result, error) {
	qctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	// The server-side timeout makes Prometheus give up too, instead of
	// evaluating a query nobody waits for any more.
	res, warnings, infos, err := p.api.Query(qctx, query, at, v1.WithTimeout(p.timeout))
	r := Result{Query: query, At: at, Warnings: collectWarnings(warnings, infos)}
	if err != nil {
		return r, p.redact(p.describe(ctx, fmt.Sprintf("query `%s`", query), err))
	}
	r.Raw = rawResult(res)
	r.Value, err = singleValue(query, res)
	return r, p.redact(err)
}

// rawResult is the result as the API's data field holds it.
func rawResult(res model.Value) json.RawMessage {
	if res == nil {
		return nil
	}
	b, err := json.Marshal(struct {
		Type   string      `json:"resultType"`
		Result model.Value `json:"result"`
	}{res.Type().String(), res})
	if err != nil || len(b) > maxRaw {
		return nil
	}
	return b
}

// Query is Evaluate for the engine's Metrics port.
func (p *Prometheus) Query(ctx context.Context, query string, at time.Time) (rollout.Sample, error) {
	r, err := p.Evaluate(ctx, query, at)
	return r.Sample(), err
}

// EvaluateAll evaluates a tick's queries at the same time, concurrently,
// each under its own timeout, so that a tick takes about as long as its
// slowest query rather than the sum. The i-th result and error answer
// queries[i], with Evaluate's meaning.
func (p *Prometheus) EvaluateAll(ctx context.Context, queries []string, at time.Time) ([]Result, []error) {
	results := make([]Result, len(queries))
	errs := make([]error, len(queries))
	var next atomic.Int64
	work := func() {
		for i := int(next.Add(1) - 1); i < len(queries); i = int(next.Add(1) - 1) {
			results[i], errs[i] = p.Evaluate(ctx, queries[i], at)
		}
	}
	var wg sync.WaitGroup
	for range min(len(queries), maxConcurrentQueries) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	return results, errs
}

// QueryAll is EvaluateAll for the engine's BatchMetrics port.
func (p *Prometheus) QueryAll(ctx context.Context, queries []string, at time.Time) ([]rollout.Sample, []error) {
	results, errs := p.EvaluateAll(ctx, queries, at)
	samples := make([]rollout.Sample, len(results))
	for i, r := range results {
		samples[i] = r.Sample()
	}
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
	if tlsErr := p.tls.describe(err); tlsErr != nil {
		return fmt.Errorf("%s: %w: %w", prefix, ErrUnavailable, tlsErr)
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
		if code, ok := strings.CutPrefix(e.Msg, "bad response code 3"); ok {
			return fmt.Errorf("%s: %w: the server answered with a redirect (HTTP 3%s); canarybot does not follow redirects, so that its credentials go only to the configured server: set PROMETHEUS_URL to the address it redirects to", prefix, ErrUnavailable, code)
		}
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

// redactor knows the credentials that must never be printed: the inline
// ones, and those in files, read again when an error is scrubbed so that a
// rotated token is scrubbed too.
type redactor struct {
	fixed []string
	// files reads the secrets held in files, with what derives from them
	// (the basic-auth header value).
	files func() []string
}

// newRedactor reads each secret file once, so that a missing, unreadable or
// empty file is an error at start-up rather than a 401 at the first tick.
func newRedactor(o PrometheusOptions) (*redactor, error) {
	r := &redactor{}
	r.add(o.BearerToken, o.BasicPassword)
	if o.BasicUser != "" && o.BasicPasswordFile == "" {
		r.add(basicCredentials(o.BasicUser, o.BasicPassword))
	}
	for _, f := range []struct{ name, env string }{
		{o.BearerTokenFile, EnvPrometheusBearerTokenFile},
		{o.BasicPasswordFile, EnvPrometheusBasicPasswordFile},
	} {
		if f.name == "" {
			continue
		}
		if _, err := readSecretFile(f.name); err != nil {
			return nil, fmt.Errorf("signals: %s: %w", f.env, err)
		}
	}
	r.files = func() []string {
		var out []string
		if tok, err := readSecretFile(o.BearerTokenFile); err == nil {
			out = append(out, tok)
		}
		if pw, err := readSecretFile(o.BasicPasswordFile); err == nil {
			out = append(out, pw, basicCredentials(o.BasicUser, pw))
		}
		return out
	}
	return r, nil
}

// readSecretFile reads a secret as Prometheus's client does (surrounding
// white space trimmed); "" names no file.
func readSecretFile(name string) (string, error) {
	if name == "" {
		return "", errors.New("no file")
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("reading the secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("the secret file %s is empty: write the credential into it", name)
	}
	return s, nil
}

func basicCredentials(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

func (r *redactor) add(secrets ...string) {
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			r.fixed = append(r.fixed, s)
		}
	}
}

func (r *redactor) all() []string {
	out := r.fixed
	if r.files != nil {
		for _, s := range r.files() {
			if len(s) >= minSecretLen {
				out = append(out, s)
			}
		}
	}
	return out
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
	for _, s := range p.secrets.all() {
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
