package testenv

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// AlertmanagerBinary is where Debian's `prometheus-alertmanager` package
// (0.25) installs the server; `make deps` installs it.
const AlertmanagerBinary = "/usr/bin/prometheus-alertmanager"

// Alertmanager starts AlertmanagerBinary (or else an alertmanager on PATH)
// on a free loopback port with config as its alertmanager.yml, waits for
// /-/ready, and stops it at t.Cleanup. Clustering is off, so it opens no
// other port. It fails the test when the binary is missing, the
// configuration is rejected or the server does not become ready.
func Alertmanager(t testing.TB, config []byte) *Server {
	t.Helper()
	binary := findBinary(t, "Alertmanager", "prometheus-alertmanager", AlertmanagerBinary, "prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	configFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(configFile, config, 0o600); err != nil {
		t.Fatalf("testenv: writing the Alertmanager configuration: %v", err)
	}
	client := &http.Client{Timeout: time.Second}
	return startServer(t, processSpec{
		name: "Alertmanager", binary: binary, dir: dir, scheme: "http",
		args: func(addr string) []string {
			return []string{
				"--config.file=" + configFile,
				"--storage.path=" + filepath.Join(dir, "data"),
				"--web.listen-address=" + addr,
				// Empty: no gossip listener on 0.0.0.0:9094.
				"--cluster.listen-address=",
				"--log.level=debug",
			}
		},
		ready: httpReady(client, "/-/ready", nil),
	})
}
