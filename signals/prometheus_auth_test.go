package signals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/internal/testenv"
)

// secretFile writes content to a fresh file and returns its name.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestPrometheusTLSAndBasicAuthRealServer runs the adapter against Debian's
// Prometheus serving https with a certificate of the test's own CA and
// basic auth (--web.config.file).
func TestPrometheusTLSAndBasicAuthRealServer(t *testing.T) {
	t.Parallel()
	cert := testenv.SelfSignedCert(t)
	auth := testenv.BasicAuth{User: "canarybot", Password: "pa55-w0rd-for-test"}
	srv := testenv.StartPrometheus(t, testenv.PrometheusOptions{TLS: cert, BasicAuth: &auth})
	ctx := context.Background()
	pwFile := secretFile(t, auth.Password+"\n")

	tests := []struct {
		name    string
		opts    PrometheusOptions
		wantErr []string // nil: the query must succeed
	}{
		{"CA file and password", PrometheusOptions{TLSCAFile: cert.CertFile, BasicUser: auth.User, BasicPassword: auth.Password}, nil},
		{"CA file and password file", PrometheusOptions{TLSCAFile: cert.CertFile, BasicUser: auth.User, BasicPasswordFile: pwFile}, nil},
		{"insecure skip verify", PrometheusOptions{InsecureSkipVerify: true, BasicUser: auth.User, BasicPassword: auth.Password}, nil},
		{"wrong password", PrometheusOptions{TLSCAFile: cert.CertFile, BasicUser: auth.User, BasicPassword: "not-the-password"}, []string{"401", "refused canarybot's credentials"}},
		{"no credentials", PrometheusOptions{TLSCAFile: cert.CertFile}, []string{"401"}},
		{"CA not trusted", PrometheusOptions{BasicUser: auth.User, BasicPassword: auth.Password}, []string{"certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			opts.URL = srv.URL
			opts.Timeout = 10 * time.Second
			var logs bytes.Buffer
			opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			p := newTestPrometheus(t, opts)
			got, err := p.Query(ctx, `vector(7)`, time.Time{})
			_, ferr := p.Firing(ctx, time.Time{})
			if tt.wantErr == nil {
				if err != nil || got.Value != 7 {
					t.Fatalf("Query over TLS with basic auth = %v, %v; want 7\nPrometheus log:\n%s", got.Value, err, srv.Log())
				}
				if ferr != nil {
					t.Errorf("Firing over TLS with basic auth: %v", ferr)
				}
				if err := p.Check(ctx, []string{`sum(up)`, `vector(1)`}); err != nil {
					t.Errorf("Check over TLS with basic auth: %v", err)
				}
			} else {
				for _, e := range []error{err, ferr} {
					if !errors.Is(e, ErrUnavailable) {
						t.Fatalf("error %v, want ErrUnavailable", e)
					}
					for _, sub := range tt.wantErr {
						if !strings.Contains(e.Error(), sub) {
							t.Errorf("error %q does not mention %q", e, sub)
						}
					}
				}
			}
			for _, text := range []string{fmt.Sprint(err), fmt.Sprint(ferr), logs.String()} {
				if strings.Contains(text, auth.Password) {
					t.Errorf("the password shows in %q", text)
				}
			}
		})
	}
}

// bearerProxy stands in front of a real Prometheus the way an
// authenticating proxy (kube-rbac-proxy, oauth2-proxy) does: it forwards
// only requests that carry the current token.
type bearerProxy struct {
	srv   *httptest.Server
	mu    sync.Mutex
	token string
	seen  []string
}

func newBearerProxy(t *testing.T, upstream, token string) *bearerProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	bp := &bearerProxy{token: token}
	rp := httputil.NewSingleHostReverseProxy(u)
	bp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bp.mu.Lock()
		got, want := r.Header.Get("Authorization"), "Bearer "+bp.token
		bp.seen = append(bp.seen, got)
		bp.mu.Unlock()
		if got != want {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(bp.srv.Close)
	return bp
}

func (bp *bearerProxy) rotate(token string) {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	bp.token = token
}

// TestPrometheusBearerTokenFileRealServer: a token read from a file reaches
// the real Prometheus through an authenticating proxy, and a rotated token
// is picked up at the next request without building a new client.
func TestPrometheusBearerTokenFileRealServer(t *testing.T) {
	t.Parallel()
	srv := testenv.StartPrometheus(t, testenv.PrometheusOptions{})
	const first, second = "token-one-0123456789", "token-two-9876543210"
	proxy := newBearerProxy(t, srv.URL, first)
	tokenFile := secretFile(t, first+"\n")
	p := newTestPrometheus(t, PrometheusOptions{URL: proxy.srv.URL, BearerTokenFile: tokenFile})
	ctx := context.Background()

	if got, err := p.Query(ctx, `vector(1)`, time.Time{}); err != nil || got.Value != 1 {
		t.Fatalf("Query with the token file = %v, %v; want 1", got.Value, err)
	}
	proxy.rotate(second)
	_, err := p.Query(ctx, `vector(1)`, time.Time{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Query with the old token after rotation = %v, want a refusal naming the credentials", err)
	}
	if err := os.WriteFile(tokenFile, []byte(second), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Query(ctx, `vector(2)`, time.Time{}); err != nil || got.Value != 2 {
		t.Errorf("Query after the token file was rewritten = %v, %v; want 2", got.Value, err)
	}
	proxy.mu.Lock()
	seen := append([]string(nil), proxy.seen...)
	proxy.mu.Unlock()
	want := []string{"Bearer " + first, "Bearer " + first, "Bearer " + second}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("the proxy saw Authorization %q, want %q", seen, want)
	}
}

// TestPrometheusEvaluateKeepsTheAnswer: a result keeps the query as sent,
// Prometheus's raw result and its warnings, for the evidence.
func TestPrometheusEvaluateKeepsTheAnswer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","warnings":["some series were dropped"],
		  "data":{"resultType":"vector","result":[{"metric":{"track":"canary"},"value":[1700000000,"0.149"]}]}}`)
	}))
	t.Cleanup(srv.Close)
	p := newTestPrometheus(t, PrometheusOptions{URL: srv.URL})
	const q = `histogram_quantile(0.95, sum by (le) (rate(x_bucket[2m])))`
	at := time.Unix(1700000000, 0)
	res, err := p.Evaluate(context.Background(), q, at)
	if err != nil {
		t.Fatal(err)
	}
	if res.Query != q || !res.At.Equal(at) || res.Value != 0.149 {
		t.Errorf("Evaluate = %+v, want the query, the time and 0.149", res)
	}
	if len(res.Warnings) != 1 || res.Warnings[0] != "some series were dropped" {
		t.Errorf("warnings %q, want the server's", res.Warnings)
	}
	var raw struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(res.Raw, &raw); err != nil {
		t.Fatalf("raw result %s: %v", res.Raw, err)
	}
	if raw.ResultType != "vector" || len(raw.Result) != 1 || raw.Result[0].Metric["track"] != "canary" || raw.Result[0].Value[1] != "0.149" {
		t.Errorf("raw result %s, want the server's vector", res.Raw)
	}
	if s := res.Sample(); s.Value != 0.149 || len(s.Warnings) != 1 {
		t.Errorf("Sample() = %+v", s)
	}
}

func TestPrometheusOptionsFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		EnvPrometheusURL:               "https://prom:9090",
		EnvPrometheusBearerTokenFile:   "/run/secrets/token",
		EnvPrometheusBasicUser:         "u",
		EnvPrometheusBasicPasswordFile: "/run/secrets/pw",
		EnvPrometheusCAFile:            "/etc/ca.pem",
		EnvPrometheusCertFile:          "/etc/client.pem",
		EnvPrometheusKeyFile:           "/etc/client-key.pem",
		EnvPrometheusBearerToken:       "tok-0123456789",
		EnvPrometheusBasicPassword:     "pw-0123456789",
	}
	o := PrometheusOptionsFromEnv(func(k string) string { return env[k] })
	want := PrometheusOptions{
		URL: "https://prom:9090", BearerToken: "tok-0123456789", BearerTokenFile: "/run/secrets/token",
		BasicUser: "u", BasicPassword: "pw-0123456789", BasicPasswordFile: "/run/secrets/pw",
		TLSCAFile: "/etc/ca.pem", TLSCertFile: "/etc/client.pem", TLSKeyFile: "/etc/client-key.pem",
	}
	if o != want {
		t.Errorf("PrometheusOptionsFromEnv = %+v\nwant %+v", o, want)
	}
	for _, s := range []string{"tok-0123456789", "pw-0123456789"} {
		if strings.Contains(o.String(), s) {
			t.Errorf("String() %q shows a secret", o.String())
		}
	}
}
