package checks

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/demo"
)

// newBrokenDemo serves a real demo canary stripped of protections.
func newBrokenDemo(t *testing.T, d demo.Defects) string {
	t.Helper()
	s := demo.NewService(demo.TrackCanary, 7)
	s.SetRiskBlockProbability(0)
	s.SetDefects(d)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return srv.URL
}

// TestBrokenDemoInstance runs the blast radius and the battery against the
// demo service itself, whole and with each protection removed: each defect
// fails exactly the check that guards against it, saying why.
func TestBrokenDemoInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		defects       demo.Defects
		batteryFailed string
		batteryWhy    []string
		blastFailed   bool
		blastWhy      string
	}{
		{demo.Defects{}, "", nil, false, ""},
		{demo.Defects{NoIdempotency: true}, NameIdempotencyBurst,
			[]string{"20 orders accepted with the same key", "does not enforce idempotency"}, false, ""},
		{demo.Defects{NoRateLimit: true}, NameCSPFlood,
			[]string{"no report of 30 was rate limited (30×204): the endpoint has no rate limit"}, false, ""},
		{demo.Defects{DropWebSocket: true}, "", nil, true, "ws success 0/5"},
		{demo.Defects{NoIdempotency: true, NoRateLimit: true, DropWebSocket: true}, NameIdempotencyBurst + "," + NameCSPFlood,
			[]string{"does not enforce idempotency", "the endpoint has no rate limit"}, true, "ws success 0/5"},
	}
	for _, tt := range tests {
		t.Run(tt.defects.String(), func(t *testing.T) {
			t.Parallel()
			base := newBrokenDemo(t, tt.defects)
			res, err := Battery(context.Background(), BatteryOptions{Base: base, Version: "v1.4.0", BurstRequests: 20, FloodRequests: 30})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(res.Failed(), ","); got != tt.batteryFailed {
				t.Errorf("battery failed %q, want %q:\n%s", got, tt.batteryFailed, res.Text())
			}
			for _, want := range tt.batteryWhy {
				if !strings.Contains(res.Verdict()+string(res.Text()), want) {
					t.Errorf("battery does not say %q:\n%s", want, res.Text())
				}
			}
			blast, err := Blast(context.Background(), BlastOptions{URL: base, N: 5, MaxP95: generous})
			if err != nil {
				t.Fatal(err)
			}
			if blast.Passed() == tt.blastFailed {
				t.Errorf("blast passed %t, want %t: %v\n%s", blast.Passed(), !tt.blastFailed, blast.Failures(), blast.Log())
			}
			if tt.blastFailed {
				if !strings.Contains(strings.Join(blast.Failures(), "; "), "ws") || !strings.Contains(string(blast.Log()), tt.blastWhy) {
					t.Errorf("blast failures %v, want the WebSocket sessions named:\n%s", blast.Failures(), blast.Log())
				}
				if blast.HTTP.OK != 5 || blast.WS.Errors[ClassWSRead] != 5 {
					t.Errorf("http ok %d, ws errors %v: want every HTTP probe through and every session failing to read", blast.HTTP.OK, blast.WS.Errors)
				}
			}
		})
	}
}
