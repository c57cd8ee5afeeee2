package signals

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/canarybot/canarybot/internal/testenv"
)

// mtlsFixture is a real Prometheus that takes only client certificates of
// its CA, and the certificates the tests present to it.
type mtlsFixture struct {
	srv *testenv.PrometheusServer
	// ca signed the server's and the trusted client's certificates;
	// other is a CA the server does not know.
	ca, other *testenv.CA
	client    testenv.KeyPair // signed by ca
	stranger  testenv.KeyPair // signed by other
}

func startMutualTLSPrometheus(t *testing.T) mtlsFixture {
	t.Helper()
	f := mtlsFixture{ca: testenv.NewCA(t, "canarybot test CA"), other: testenv.NewCA(t, "some other CA")}
	server := f.ca.ServerCert(t)
	f.client = f.ca.ClientCert(t, "canarybot")
	f.stranger = f.other.ClientCert(t, "stranger")
	f.srv = testenv.Prometheus(t, testenv.PrometheusConfig{WebTLS: &testenv.WebTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile,
		ClientCAFile: f.ca.CertFile,
		CAFile:       f.ca.CertFile, ClientCertFile: f.client.CertFile, ClientKeyFile: f.client.KeyFile,
	}})
	return f
}

// installFile puts src's content at dst the way a kubelet updates a mounted
// Secret: written beside it, then renamed over it, so that a reader sees
// the old file or the new one, never half of one.
func installFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// mountSecret copies a key pair to the file names a Kubernetes TLS Secret
// gets when mounted, in a directory of its own.
func mountSecret(t *testing.T, kp testenv.KeyPair) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	installFile(t, kp.CertFile, certFile)
	installFile(t, kp.KeyFile, keyFile)
	return certFile, keyFile
}

// fromEnv builds the adapter exactly as production does, from environment
// variables spelled as the README spells them.
func fromEnv(t *testing.T, env map[string]string) *Prometheus {
	t.Helper()
	opts := PrometheusOptionsFromEnv(func(k string) string { return env[k] })
	opts.Timeout = 10 * time.Second
	return newTestPrometheus(t, opts)
}

// TestPrometheusMutualTLSRealServer runs the adapter against Debian's
// Prometheus requiring client certificates (client_auth_type
// RequireAndVerifyClientCert): configured as the README says it answers,
// and every way of getting the certificates wrong fails with a message
// that names the setting to change. Each case asks twice (a query and the
// alerts), since a refusal reaches the client either as the server's TLS
// alert or as a dropped connection, and both must read the same.
func TestPrometheusMutualTLSRealServer(t *testing.T) {
	t.Parallel()
	f := startMutualTLSPrometheus(t)
	certFile, keyFile := mountSecret(t, f.client)
	strangerCert, strangerKey := mountSecret(t, f.stranger)

	tests := []struct {
		name string
		env  map[string]string
		// wantErr: nil means the query must succeed; else every string
		// must be in both errors.
		wantErr []string
	}{
		{
			name: "CA, client certificate and key from the environment",
			env: map[string]string{
				"PROMETHEUS_URL":       f.srv.URL,
				"PROMETHEUS_CA_FILE":   f.ca.CertFile,
				"PROMETHEUS_CERT_FILE": certFile,
				"PROMETHEUS_KEY_FILE":  keyFile,
			},
		},
		{
			name: "no client certificate",
			env: map[string]string{
				"PROMETHEUS_URL":     f.srv.URL,
				"PROMETHEUS_CA_FILE": f.ca.CertFile,
			},
			wantErr: []string{"client certificate", "none to send", "set PROMETHEUS_CERT_FILE and PROMETHEUS_KEY_FILE", "client_ca_file"},
		},
		{
			name: "client certificate from a CA the server does not trust",
			env: map[string]string{
				"PROMETHEUS_URL":       f.srv.URL,
				"PROMETHEUS_CA_FILE":   f.ca.CertFile,
				"PROMETHEUS_CERT_FILE": strangerCert,
				"PROMETHEUS_KEY_FILE":  strangerKey,
			},
			wantErr: []string{"did not accept canarybot's client certificate", `"stranger" issued by "some other CA"`, "PROMETHEUS_CERT_FILE=" + strangerCert, "client_ca_file"},
		},
		{
			name: "server certificate not signed by the configured CA",
			env: map[string]string{
				"PROMETHEUS_URL":       f.srv.URL,
				"PROMETHEUS_CA_FILE":   f.other.CertFile,
				"PROMETHEUS_CERT_FILE": certFile,
				"PROMETHEUS_KEY_FILE":  keyFile,
			},
			wantErr: []string{`issued by "canarybot test CA"`, "not signed by a CA canarybot trusts", "PROMETHEUS_CA_FILE=" + f.other.CertFile, "set PROMETHEUS_CA_FILE to the PEM bundle of the CA that signed the server's certificate"},
		},
		{
			name: "no CA file: the system's CAs do not know the server's",
			env: map[string]string{
				"PROMETHEUS_URL":       f.srv.URL,
				"PROMETHEUS_CERT_FILE": certFile,
				"PROMETHEUS_KEY_FILE":  keyFile,
			},
			wantErr: []string{"not signed by a CA canarybot trusts", "the system's CAs", "set PROMETHEUS_CA_FILE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			p := fromEnv(t, tt.env)
			got, err := p.Query(ctx, `vector(1)`, time.Time{})
			_, ferr := p.Firing(ctx, time.Time{})
			if tt.wantErr == nil {
				if err != nil || got.Value != 1 {
					t.Fatalf("Query over mutual TLS = %v, %v; want 1\nPrometheus log:\n%s", got.Value, err, f.srv.Log())
				}
				if ferr != nil {
					t.Errorf("Firing over mutual TLS: %v", ferr)
				}
				if err := p.Check(ctx, []string{`up`, `vector(1)`}); err != nil {
					t.Errorf("Check over mutual TLS: %v", err)
				}
				return
			}
			for _, e := range []error{err, ferr} {
				if !errors.Is(e, ErrUnavailable) {
					t.Fatalf("error %v, want ErrUnavailable", e)
				}
				for _, sub := range tt.wantErr {
					if !strings.Contains(e.Error(), sub) {
						t.Errorf("error %q\ndoes not say %q", e, sub)
					}
				}
				if strings.Contains(e.Error(), "PRIVATE KEY") {
					t.Errorf("error %q quotes a private key", e)
				}
			}
		})
	}
}

// TestPrometheusClientCertRotationRealServer: the client certificate files
// the environment names are read again when they change, so a rotated
// certificate is used at the next request by the same client, without a
// restart. An untrusted certificate in between shows the switch really
// happens (the old, trusted one is not kept on a live connection).
func TestPrometheusClientCertRotationRealServer(t *testing.T) {
	t.Parallel()
	f := startMutualTLSPrometheus(t)
	certFile, keyFile := mountSecret(t, f.client)
	p := fromEnv(t, map[string]string{
		"PROMETHEUS_URL":       f.srv.URL,
		"PROMETHEUS_CA_FILE":   f.ca.CertFile,
		"PROMETHEUS_CERT_FILE": certFile,
		"PROMETHEUS_KEY_FILE":  keyFile,
	})
	ctx := context.Background()
	renewed := f.ca.ClientCert(t, "canarybot renewed")

	install := func(kp testenv.KeyPair) func() {
		return func() {
			installFile(t, kp.CertFile, certFile)
			installFile(t, kp.KeyFile, keyFile)
		}
	}
	steps := []struct {
		name     string
		change   func() // done to the files before the query
		wantErr  string // "" means the query must succeed
		wantSeen string // what else an error must say
	}{
		{name: "first certificate"},
		{name: "the same files again, on the kept connection"},
		{name: "rotated to a certificate the server does not trust", change: install(f.stranger),
			wantErr: "did not accept canarybot's client certificate", wantSeen: `"stranger" issued by "some other CA"`},
		{name: "rotated to a renewed trusted certificate", change: install(renewed)},
		{name: "key file removed", change: func() {
			if err := os.Remove(keyFile); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "reading the file PROMETHEUS_KEY_FILE names", wantSeen: keyFile},
		{name: "key file back", change: install(renewed)},
	}
	for i, st := range steps {
		if st.change != nil {
			st.change()
		}
		got, err := p.Query(ctx, fmt.Sprintf("vector(%d)", i), time.Time{})
		if err != nil {
			t.Logf("step %q: %v", st.name, err)
		}
		switch {
		case st.wantErr == "" && (err != nil || got.Value != float64(i)):
			t.Fatalf("step %q: Query = %v, %v; want %d\nPrometheus log:\n%s", st.name, got.Value, err, i, f.srv.Log())
		case st.wantErr != "" && err == nil:
			t.Fatalf("step %q: Query succeeded, want the server to refuse the rotated certificate", st.name)
		case st.wantErr != "" && (!strings.Contains(err.Error(), st.wantErr) || !strings.Contains(err.Error(), st.wantSeen)):
			t.Fatalf("step %q: error %q\nwant it to say %q and name %s", st.name, err, st.wantErr, st.wantSeen)
		}
	}
}

// TestDroppedConnection pins which transport errors count as the server
// dropping the connection under the first request, the forms a TLS 1.3
// refusal of a client certificate takes when its alert is lost.
func TestDroppedConnection(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://127.0.0.1:1/api/v1/query", Err: err}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"broken pipe", wrap(&net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}), true},
		{"reset", wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{"EOF", wrap(io.EOF), true},
		{"HTTP/2 connection lost before the first request", wrap(errors.New("http2: client conn could not be established")), true},
		{"refused: the server is down", wrap(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), false},
		{"timeout", wrap(context.DeadlineExceeded), false},
	}
	for _, tt := range tests {
		if got := droppedConnection(tt.err); got != tt.want {
			t.Errorf("droppedConnection(%s: %v) = %t, want %t", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestDroppedConnectionAfterAnAnswer: once the server has answered, a
// dropped connection is an outage, not a refused certificate, and the
// message must not send the operator after the certificate files.
func TestDroppedConnectionAfterAnAnswer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	files := tlsFiles{https: true, asked: &atomic.Bool{}}
	files.asked.Store(true) // a handshake where the server asked for a certificate
	reset := &url.Error{Op: "Post", URL: srv.URL, Err: &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}

	if err := files.describe(reset); err == nil || !strings.Contains(err.Error(), "PROMETHEUS_CERT_FILE") {
		t.Fatalf("describe(reset) before any answer = %v, want the client-certificate advice", err)
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := answered{next: http.DefaultTransport, asked: files.asked}.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := files.describe(reset); err != nil {
		t.Errorf("describe(reset) after an answer = %v, want nil (the generic unavailable message)", err)
	}
}
