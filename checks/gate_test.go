package checks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/rollout"
)

type memEvidence map[string][]byte

func (m memEvidence) Write(ctx context.Context, name string, data []byte) error {
	m[name] = data
	return nil
}

func TestBlastGate(t *testing.T) {
	canary := demo.NewService(demo.TrackCanary, 1)
	t.Cleanup(canary.Close)
	good := httptest.NewServer(canary)
	t.Cleanup(good.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(bad.Close)
	r := &rollout.Release{ID: "v1", Version: "v1.4.0"}
	for _, tc := range []struct {
		name string
		url  string
		want rollout.GateStatus
	}{
		{"healthy canary", good.URL, rollout.GatePassed},
		{"failing canary is a NO-GO", bad.URL, rollout.GateFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := memEvidence{}
			g := &BlastGate{Options: BlastOptions{URL: tc.url, N: 5, Concurrency: 5, MaxP95: DefaultProbeTimeout}, Evidence: ev}
			res, err := g.Run(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.want || res.Detail == "" {
				t.Fatalf("gate %s (%s), want %s with a detail", res.Status, res.Detail, tc.want)
			}
			log := string(ev["micro_blast_v1.4.0.log"])
			if !strings.Contains(log, "http") || len(g.Produces("v1.4.0")) != 1 {
				t.Errorf("evidence not written as produced:\n%s", log)
			}
		})
	}
}

func TestBlastLogRedactsCredentials(t *testing.T) {
	r := BlastResult{Options: BlastOptions{URL: "http://canary", Header: map[string]string{"Authorization": "Bearer hunter2", "X-Canary": "always"}}}
	log := string(r.Log())
	if strings.Contains(log, "hunter2") || !strings.Contains(log, "Authorization: [redacted]") || !strings.Contains(log, "X-Canary: always") {
		t.Fatalf("log:\n%s", log)
	}
}
