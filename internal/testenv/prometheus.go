// Package testenv starts the real servers that adapter tests run against.
// Every helper fails the test, never skips it, when a server is missing:
// a test that silently did not run would read as a test that passed.
package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// PrometheusBinary is where Debian's `prometheus` package (2.42) installs
// the server; `make deps` installs it.
const PrometheusBinary = "/usr/bin/prometheus"

// PrometheusJob is the job name of every scrape target. The runbook's rules
// read it: CanaryScrapeTargetsMissing fires when no target of job "spark"
// carries track="canary".
const PrometheusJob = "spark"

const (
	defaultInterval = time.Second
	// readyTimeout bounds the wait for /-/ready; a cold start on a busy
	// two-core machine takes a few seconds.
	readyTimeout = 30 * time.Second
	// startAttempts covers the short race between finding a free port and
	// Prometheus binding it.
	startAttempts = 3
	logTail       = 4 << 10
)

// PrometheusConfig describes the server to start.
type PrometheusConfig struct {
	// Targets are scraped as job PrometheusJob, each with its own labels.
	Targets []ScrapeTarget
	// RuleFiles are rule files to load; relative paths are taken from the
	// test's working directory (its package directory).
	RuleFiles []string
	// ScrapeInterval and EvalInterval default to 1s, so that data and
	// alert states show up within a test's time.
	ScrapeInterval, EvalInterval time.Duration
	// WebTLS, when set, makes the server answer https only, and with a
	// ClientCAFile only to clients presenting a certificate that CA
	// signed. Prometheus honours it; StartPrometheus has its own TLS
	// option and refuses this one.
	WebTLS *WebTLS
}

// WebTLS is the TLS side of Prometheus's --web.config.file (the exporter
// toolkit's tls_server_config), and what the readiness probe needs to pass
// it: the probe verifies the server as a real client would, never with
// InsecureSkipVerify.
type WebTLS struct {
	// CertFile and KeyFile are the server's certificate (for 127.0.0.1)
	// and key, PEM.
	CertFile, KeyFile string
	// ClientCAFile, when set, is the PEM bundle of CAs whose client
	// certificates the server accepts; without one from them it refuses
	// the connection (client_auth_type RequireAndVerifyClientCert).
	ClientCAFile string
	// CAFile is the PEM bundle the readiness probe trusts the server's
	// certificate by.
	CAFile string
	// ClientCertFile and ClientKeyFile are the certificate the readiness
	// probe presents; needed with ClientCAFile.
	ClientCertFile, ClientKeyFile string
}

// webConfig renders the --web.config.file content.
func (w *WebTLS) webConfig() ([]byte, error) {
	server := map[string]string{"cert_file": w.CertFile, "key_file": w.KeyFile}
	if w.ClientCAFile != "" {
		server["client_auth_type"] = "RequireAndVerifyClientCert"
		server["client_ca_file"] = w.ClientCAFile
	}
	return yaml.Marshal(map[string]any{"tls_server_config": server})
}

// probeClient is the readiness probe's client: it trusts CAFile and
// presents the client certificate, as the code under test will.
func (w *WebTLS) probeClient() (*http.Client, error) {
	switch {
	case w.CertFile == "" || w.KeyFile == "":
		return nil, errors.New("WebTLS needs the server's CertFile and KeyFile")
	case w.CAFile == "":
		return nil, errors.New("WebTLS needs CAFile, the CA that signed the server's certificate, for the readiness probe to verify it")
	case w.ClientCAFile != "" && (w.ClientCertFile == "" || w.ClientKeyFile == ""):
		return nil, errors.New("WebTLS with a ClientCAFile needs ClientCertFile and ClientKeyFile, a certificate that CA signed, for the readiness probe to be let in")
	}
	pem, err := os.ReadFile(w.CAFile)
	if err != nil {
		return nil, fmt.Errorf("WebTLS CAFile: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("WebTLS CAFile %s holds no PEM certificate", w.CAFile)
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if w.ClientCertFile != "" {
		pair, err := tls.LoadX509KeyPair(w.ClientCertFile, w.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("WebTLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = cfg
	return &http.Client{Transport: transport, Timeout: time.Second}, nil
}

// ScrapeTarget is one target: a host:port (an http:// URL is accepted too;
// only its host is used) serving /metrics, and the labels added to every
// series scraped from it.
type ScrapeTarget struct {
	Addr   string
	Labels map[string]string
}

// PrometheusServer is a running Prometheus.
type PrometheusServer struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:40123
	// (https with WebTLS).
	URL string
	// Dir holds the configuration file and the TSDB; it is removed at
	// cleanup.
	Dir string
	log *SyncBuffer
}

// Log returns the last few KiB of the server's own log, to explain a
// failure.
func (s *PrometheusServer) Log() string { return s.log.Tail(logTail) }

// Prometheus starts PrometheusBinary (or else the prometheus on PATH) on a
// free loopback port with the given scrape targets, rule files and TLS,
// waits for /-/ready, and stops it (and removes its data dir) at t.Cleanup. It
// fails the test when the binary is missing or the server does not become
// ready.
func Prometheus(t testing.TB, cfg PrometheusConfig) *PrometheusServer {
	t.Helper()
	binary := PrometheusBinary
	if _, err := os.Stat(binary); err != nil {
		// scripts/deps.sh accepts any prometheus on PATH.
		if p, lerr := exec.LookPath("prometheus"); lerr == nil {
			binary = p
		}
	}
	return startWith(t, binary, cfg)
}

func startWith(t testing.TB, binary string, cfg PrometheusConfig) *PrometheusServer {
	t.Helper()
	if _, err := os.Stat(binary); err != nil {
		t.Fatalf("testenv: the Prometheus server is not installed (%v): run `make deps`, which installs Debian's prometheus package", err)
	}
	// TempDir's removal is registered before the process's stop, so it
	// runs after it: cleanups run last-in first-out.
	dir := t.TempDir()
	configFile := filepath.Join(dir, "prometheus.yml")
	web := cfg.WebTLS
	cfg.WebTLS = nil // it goes into the web configuration, not prometheus.yml
	content, err := prometheusYAML(cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.WriteFile(configFile, content, 0o600); err != nil {
		t.Fatalf("testenv: writing the Prometheus configuration: %v", err)
	}
	l := listener{scheme: "http", client: &http.Client{Timeout: time.Second}}
	if web != nil {
		if l.client, err = web.probeClient(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		webYAML, err := web.webConfig()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		l.webConfigFile = filepath.Join(dir, "web.yml")
		if err := os.WriteFile(l.webConfigFile, webYAML, 0o600); err != nil {
			t.Fatalf("testenv: writing the Prometheus web configuration: %v", err)
		}
		l.scheme = "https"
	}

	var lastErr error
	for range startAttempts {
		srv, err := startPrometheus(t, binary, dir, configFile, l)
		if err == nil {
			return srv
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("testenv: %v", lastErr)
	return nil
}

var errAddrInUse = errors.New("address already in use")

// listener is how the server serves its API and how the readiness probe
// reaches it.
type listener struct {
	scheme        string
	webConfigFile string // "" serves plain http
	client        *http.Client
}

func startPrometheus(t testing.TB, binary, dir, configFile string, l listener) (*PrometheusServer, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// A fresh TSDB directory per attempt: a failed attempt may leave a lock.
	dataDir, err := os.MkdirTemp(dir, "data-")
	if err != nil {
		return nil, fmt.Errorf("creating the TSDB directory: %w", err)
	}
	log := &SyncBuffer{}
	args := []string{
		"--config.file=" + configFile,
		"--storage.tsdb.path=" + dataDir,
		"--web.listen-address=" + addr,
		"--log.level=info",
		// Hidden flag (2.42 and later): the scrape manager applies new
		// targets every 5s by default, which would hold the first scrape
		// back by up to 5s.
		"--scrape.discovery-reload-interval=100ms",
	}
	if l.webConfigFile != "" {
		args = append(args, "--web.config.file="+l.webConfigFile)
	}
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		killProcessGroup(cmd)
		<-exited
	}

	srv := &PrometheusServer{URL: l.scheme + "://" + addr, Dir: dir, log: log}
	if err := waitReady(l.client, srv.URL, exited); err != nil {
		stop()
		if strings.Contains(log.String(), "address already in use") {
			return nil, fmt.Errorf("port %d was taken before Prometheus bound it: %w", port, errAddrInUse)
		}
		return nil, fmt.Errorf("%w\nPrometheus log:\n%s", err, log.Tail(logTail))
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("testenv: Prometheus at %s logged:\n%s", srv.URL, log.Tail(logTail))
		}
	})
	return srv, nil
}

// waitReady polls /-/ready through client until it answers 200, the
// process exits, or readyTimeout passes.
func waitReady(client *http.Client, base string, exited <-chan error) error {
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /-/ready: %s", resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			// The last probe error tells a TLS mistake from a slow start.
			return fmt.Errorf("Prometheus at %s was not ready after %s (last probe: %v)", base, readyTimeout, last)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("Prometheus exited before it was ready: %v", err)
		case <-tick.C:
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// prometheusYAML renders the configuration file.
func prometheusYAML(cfg PrometheusConfig) ([]byte, error) {
	if cfg.WebTLS != nil {
		// Only StartPrometheus gets here with it set; serving plain http
		// instead would pass a test that meant to check TLS.
		return nil, errors.New("PrometheusConfig.WebTLS is honoured by Prometheus only: with StartPrometheus, use PrometheusOptions.TLS")
	}
	scrape := cfg.ScrapeInterval
	if scrape <= 0 {
		scrape = defaultInterval
	}
	eval := cfg.EvalInterval
	if eval <= 0 {
		eval = defaultInterval
	}
	type staticConfig struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels,omitempty"`
	}
	statics := make([]staticConfig, 0, len(cfg.Targets))
	for i, tg := range cfg.Targets {
		host, err := targetHost(tg.Addr)
		if err != nil {
			return nil, fmt.Errorf("scrape target %d: %w", i, err)
		}
		statics = append(statics, staticConfig{Targets: []string{host}, Labels: tg.Labels})
	}
	rules := make([]string, 0, len(cfg.RuleFiles))
	for _, f := range cfg.RuleFiles {
		// Prometheus reads rule paths relative to its configuration file,
		// which lives in a temporary directory.
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("rule file %s: %w", f, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("rule file: %w", err)
		}
		rules = append(rules, abs)
	}
	doc := map[string]any{
		"global": map[string]any{
			"scrape_interval": scrape.String(),
			// The default timeout (10s) must not exceed the interval.
			"scrape_timeout":      scrape.String(),
			"evaluation_interval": eval.String(),
		},
		"rule_files": rules,
		"scrape_configs": []map[string]any{{
			"job_name":       PrometheusJob,
			"static_configs": statics,
		}},
	}
	return yaml.Marshal(doc)
}

func targetHost(addr string) (string, error) {
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("address %q: %w", addr, err)
		}
		addr = u.Host
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("address %q is not host:port (e.g. 127.0.0.1:8080): %w", addr, err)
	}
	return addr, nil
}
