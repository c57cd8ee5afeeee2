package testenv

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPrometheusMutualTLS starts the real server demanding client
// certificates: the readiness wait gets in with the test's CA and client
// certificate, and a client without a certificate is turned away, so the
// option really reached the server.
func TestPrometheusMutualTLS(t *testing.T) {
	t.Parallel()
	ca := NewCA(t, "testenv CA")
	server, client := ca.ServerCert(t), ca.ClientCert(t, "testenv probe")
	srv := Prometheus(t, PrometheusConfig{WebTLS: &WebTLS{
		CertFile: server.CertFile, KeyFile: server.KeyFile,
		ClientCAFile: ca.CertFile,
		CAFile:       ca.CertFile, ClientCertFile: client.CertFile, ClientKeyFile: client.KeyFile,
	}})
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("URL %q, want https on loopback", srv.URL)
	}
	pair, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		certs  []tls.Certificate
		wantOK bool
	}{
		{"with the client certificate", []tls.Certificate{pair}, true},
		{"without a client certificate", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: tt.certs, MinVersion: tls.VersionTLS12},
			}}
			defer c.CloseIdleConnections()
			resp, err := c.Get(srv.URL + "/api/v1/query?query=vector(1)")
			if err == nil {
				resp.Body.Close()
			}
			switch {
			case tt.wantOK && (err != nil || resp.StatusCode != http.StatusOK):
				t.Errorf("query = %v, %v; want 200\n%s", resp, err, srv.Log())
			case !tt.wantOK && err == nil:
				t.Errorf("query without a client certificate answered %s, want the handshake refused", resp.Status)
			}
		})
	}
}

// TestWebTLSIncomplete: a WebTLS the readiness probe could never pass fails
// at once, saying what is missing, instead of timing out.
func TestWebTLSIncomplete(t *testing.T) {
	t.Parallel()
	ca := NewCA(t, "testenv CA")
	server, client := ca.ServerCert(t), ca.ClientCert(t, "testenv probe")
	tests := []struct {
		name string
		web  WebTLS
		want string
	}{
		{"no server key", WebTLS{CertFile: server.CertFile, CAFile: ca.CertFile}, "KeyFile"},
		{"no CA for the probe", WebTLS{CertFile: server.CertFile, KeyFile: server.KeyFile}, "CAFile"},
		{"client CA without a probe certificate", WebTLS{CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: ca.CertFile, ClientCAFile: ca.CertFile}, "ClientCertFile"},
		{"CA file is not PEM", WebTLS{CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: server.KeyFile}, "no PEM certificate"},
		{"probe key does not match", WebTLS{CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: ca.CertFile, ClientCAFile: ca.CertFile, ClientCertFile: client.CertFile, ClientKeyFile: server.KeyFile}, "client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &fatalRecorder{TB: t}
			done := make(chan *PrometheusServer)
			go func() {
				defer close(done)
				done <- Prometheus(rec, PrometheusConfig{WebTLS: &tt.web})
			}()
			if srv := <-done; srv != nil {
				t.Fatalf("Prometheus with %+v started at %s, want a fatal failure", tt.web, srv.URL)
			}
			if !strings.Contains(rec.msg, tt.want) {
				t.Errorf("failure %q does not mention %q", rec.msg, tt.want)
			}
		})
	}
}

// TestStartPrometheusRefusesWebTLS: StartPrometheus has its own TLS option;
// ignoring WebTLS there would serve plain http to a test that meant TLS.
func TestStartPrometheusRefusesWebTLS(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	done := make(chan *Server)
	go func() {
		defer close(done)
		done <- StartPrometheus(rec, PrometheusOptions{PrometheusConfig: PrometheusConfig{WebTLS: &WebTLS{}}})
	}()
	if srv := <-done; srv != nil {
		t.Fatalf("StartPrometheus with WebTLS started at %s, want a fatal failure", srv.URL)
	}
	if !strings.Contains(rec.msg, "PrometheusOptions.TLS") {
		t.Errorf("failure %q does not point at PrometheusOptions.TLS", rec.msg)
	}
}
