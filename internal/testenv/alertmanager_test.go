package testenv

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAlertmanagerDeliversToWebhook: an alert posted to the real
// Alertmanager reaches the webhook its configuration names.
func TestAlertmanagerDeliversToWebhook(t *testing.T) {
	t.Parallel()
	got := make(chan []byte, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- body
	}))
	t.Cleanup(hook.Close)
	am := Alertmanager(t, []byte(fmt.Sprintf(`
route:
  receiver: hook
  group_wait: 0s
receivers:
  - name: hook
    webhook_configs:
      - url: %s/hook
`, hook.URL)))

	alert := `[{"labels":{"alertname":"TestAlert","service":"spark"},"annotations":{"summary":"s"}}]`
	resp, err := http.Post(am.URL+"/api/v2/alerts", "application/json", strings.NewReader(alert))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}
	select {
	case body := <-got:
		var p struct {
			Alerts []struct {
				Status string            `json:"status"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("webhook body %s: %v", body, err)
		}
		if len(p.Alerts) != 1 || p.Alerts[0].Labels["alertname"] != "TestAlert" || p.Alerts[0].Status != "firing" {
			t.Errorf("webhook got %s, want the one firing TestAlert", body)
		}
	case <-time.After(30 * time.Second):
		// Not a timing assertion: a delivery that never comes would
		// otherwise hang the test until go test's own timeout.
		t.Fatalf("the webhook was never called\nAlertmanager log:\n%s", am.Log())
	}
}

// TestServerStopStart: a stopped server refuses connections; started again
// it answers on the same URL with the data it had.
func TestServerStopStart(t *testing.T) {
	t.Parallel()
	srv := StartPrometheus(t, PrometheusOptions{})
	get := func() error {
		resp, err := http.Get(srv.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("running server: %v", err)
	}
	url := srv.URL
	srv.Stop()
	if srv.Running() {
		t.Error("Running() after Stop")
	}
	if err := get(); err == nil {
		t.Error("a stopped server still answers")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if srv.URL != url || get() != nil {
		t.Errorf("restarted at %s (err %v), want %s answering", srv.URL, get(), url)
	}
}

// TestPrometheusTLSAndBasicAuth: with both, plain http and a missing or
// wrong password are refused; the right password over TLS gets in.
func TestPrometheusTLSAndBasicAuth(t *testing.T) {
	t.Parallel()
	cert := SelfSignedCert(t)
	auth := &BasicAuth{User: "canarybot", Password: "s3cret-pw"}
	srv := StartPrometheus(t, PrometheusOptions{TLS: cert, BasicAuth: auth})
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("URL %s, want https", srv.URL)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool(), MinVersion: tls.VersionTLS12}}}
	status := func(url, authz string) int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct {
		name, url, auth string
		want            int
	}{
		{"right password", srv.URL + "/api/v1/status/buildinfo", auth.Header(), http.StatusOK},
		{"no password", srv.URL + "/api/v1/status/buildinfo", "", http.StatusUnauthorized},
		{"wrong password", srv.URL + "/api/v1/status/buildinfo", BasicAuth{User: auth.User, Password: "nope"}.Header(), http.StatusUnauthorized},
		{"plain http", "http" + strings.TrimPrefix(srv.URL, "https") + "/-/ready", auth.Header(), http.StatusBadRequest},
	} {
		if got := status(tt.url, tt.auth); got != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestWithAlerting(t *testing.T) {
	t.Parallel()
	out, err := withAlerting([]byte("global: {}\n"), []string{"http://127.0.0.1:9093"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("127.0.0.1:9093")) || !bytes.Contains(out, []byte("alertmanagers:")) {
		t.Errorf("rendered:\n%s\nwant an alertmanagers section targeting 127.0.0.1:9093", out)
	}
	if _, err := withAlerting([]byte("global: {}\n"), []string{"no-port"}); err == nil {
		t.Error("an Alertmanager address without a port was accepted")
	}
}

func TestAlertmanagerMissingFailsWithInstructions(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	done := make(chan string)
	go func() {
		defer close(done)
		done <- findBinary(rec, "Alertmanager", "prometheus-alertmanager", filepath.Join(t.TempDir(), "none"))
	}()
	if got := <-done; got != "" {
		t.Fatalf("findBinary of a missing file = %q, want a fatal failure", got)
	}
	if !strings.Contains(rec.msg, "make deps") || !strings.Contains(rec.msg, "prometheus-alertmanager") {
		t.Errorf("failure %q does not say to run `make deps` for prometheus-alertmanager", rec.msg)
	}
}
