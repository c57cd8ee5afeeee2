package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// PrometheusOptions starts a Prometheus with more than PrometheusConfig
// says: alerts sent to Alertmanagers, and its web endpoints behind TLS and
// basic auth (Prometheus 2.42's --web.config.file).
type PrometheusOptions struct {
	PrometheusConfig
	// Alertmanagers are base URLs (http://127.0.0.1:9093) Prometheus sends
	// its alerts to.
	Alertmanagers []string
	// TLS, when set, makes the server answer https only, with this
	// certificate.
	TLS *Cert
	// BasicAuth, when set, is the one user the server lets in.
	BasicAuth *BasicAuth
}

// BasicAuth is a user and a plain password; the server gets its bcrypt hash.
type BasicAuth struct{ User, Password string }

// Header is the Authorization header value for the user.
func (b BasicAuth) Header() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(b.User+":"+b.Password))
}

// StartPrometheus starts PrometheusBinary like Prometheus does, with the
// options' alerting, TLS and basic auth, and returns a Server the test can
// stop and start again (same port, same TSDB). It fails the test when the
// binary is missing or the server does not become ready.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Server {
	t.Helper()
	binary := findBinary(t, "the Prometheus server", "prometheus", PrometheusBinary, "prometheus")
	dir := t.TempDir()
	content, err := prometheusYAML(opts.PrometheusConfig)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if len(opts.Alertmanagers) > 0 {
		if content, err = withAlerting(content, opts.Alertmanagers); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, content, 0o600); err != nil {
		t.Fatalf("testenv: writing the Prometheus configuration: %v", err)
	}
	args := []string{
		"--config.file=" + configFile,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--log.level=info",
		// Hidden flag (2.42 and later): see startPrometheus.
		"--scrape.discovery-reload-interval=100ms",
	}

	scheme := "http"
	transport := http.DefaultTransport.(*http.Transport).Clone()
	header := http.Header{}
	if opts.TLS != nil || opts.BasicAuth != nil {
		webFile, err := writeWebConfig(dir, opts.TLS, opts.BasicAuth)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		args = append(args, "--web.config.file="+webFile)
	}
	if opts.TLS != nil {
		scheme = "https"
		transport.TLSClientConfig = &tls.Config{RootCAs: opts.TLS.Pool(), MinVersion: tls.VersionTLS12}
	}
	if opts.BasicAuth != nil {
		header.Set("Authorization", opts.BasicAuth.Header())
	}
	client := &http.Client{Transport: transport, Timeout: time.Second}
	return startServer(t, processSpec{
		name: "Prometheus", binary: binary, dir: dir, scheme: scheme,
		args:  func(addr string) []string { return append(append([]string{}, args...), "--web.listen-address="+addr) },
		ready: httpReady(client, "/-/ready", header),
	})
}

// withAlerting adds the alerting section to a rendered prometheus.yml.
func withAlerting(content []byte, alertmanagers []string) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return nil, fmt.Errorf("re-reading the Prometheus configuration: %w", err)
	}
	targets := make([]string, 0, len(alertmanagers))
	for _, a := range alertmanagers {
		host, err := targetHost(a)
		if err != nil {
			return nil, fmt.Errorf("alertmanager: %w", err)
		}
		targets = append(targets, host)
	}
	doc["alerting"] = map[string]any{
		"alertmanagers": []map[string]any{{
			"api_version":    "v2",
			"static_configs": []map[string]any{{"targets": targets}},
		}},
	}
	return yaml.Marshal(doc)
}

// writeWebConfig writes the file --web.config.file reads (Prometheus's
// exporter-toolkit format).
func writeWebConfig(dir string, cert *Cert, auth *BasicAuth) (string, error) {
	doc := map[string]any{}
	if cert != nil {
		doc["tls_server_config"] = map[string]string{"cert_file": cert.CertFile, "key_file": cert.KeyFile}
	}
	if auth != nil {
		// The lowest cost: the server checks the hash on every request,
		// and the test's password protects nothing.
		hash, err := bcrypt.GenerateFromPassword([]byte(auth.Password), bcrypt.MinCost)
		if err != nil {
			return "", fmt.Errorf("hashing the basic-auth password: %w", err)
		}
		doc["basic_auth_users"] = map[string]string{auth.User: string(hash)}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	name := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(name, out, 0o600); err != nil {
		return "", fmt.Errorf("writing the web configuration: %w", err)
	}
	return name, nil
}

// Cert is a self-signed certificate for 127.0.0.1 and localhost, in PEM
// files: CertFile is also the CA file a client trusts it by.
type Cert struct {
	CertFile, KeyFile string
	cert              *x509.Certificate
}

// Pool is a pool holding only this certificate.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// SelfSignedCert writes a fresh certificate and key into a temporary
// directory.
func SelfSignedCert(t testing.TB) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: generating a key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "canarybot test server"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testenv: creating a certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	dir := t.TempDir()
	c := &Cert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), cert: cert}
	for _, f := range []struct {
		name, typ string
		der       []byte
	}{{c.CertFile, "CERTIFICATE", der}, {c.KeyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.name, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatalf("testenv: writing %s: %v", f.name, err)
		}
	}
	return c
}
