package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/rollout"
)

const firingPayload = `{"version":"4","status":"firing","alerts":[
 {"status":"firing","labels":{"alertname":"CanaryP95LatencyCritical","auto_rollback":"true","service":"spark"},"annotations":{"summary":"p95 over 400ms"},"startsAt":"2026-11-27T10:00:00Z"},
 {"status":"firing","labels":{"alertname":"DiskAlmostFull","severity":"warning","service":"spark"}},
 {"status":"firing","labels":{"alertname":"OtherServiceDown","auto_rollback":"true","service":"billing"}},
 {"status":"resolved","labels":{"alertname":"Canary5xxSpike","auto_rollback":"true","service":"spark"}}]}`

func TestAlertmanagerWebhook(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		auth     string
		body     string
		engine   error
		noEngine bool
		status   int
		want     []string // alert names handed to the engine
	}{
		{name: "a firing trigger of this service rolls back", body: firingPayload, status: 200, want: []string{"CanaryP95LatencyCritical"}},
		{name: "token required and given", token: "s3cret", auth: "Bearer s3cret", body: firingPayload, status: 200, want: []string{"CanaryP95LatencyCritical"}},
		{name: "wrong token", token: "s3cret", auth: "Bearer guess", body: firingPayload, status: 401},
		{name: "missing token", token: "s3cret", body: firingPayload, status: 401},
		{name: "not JSON", body: "alert!", status: 400},
		{name: "JSON but not a payload", body: `{"hello":"world"}`, status: 400},
		{name: "nothing that concerns this release", body: `{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"X"}}]}`, status: 200},
		{name: "engine cannot take it: Alertmanager retries", body: firingPayload, engine: errors.New("no engine is driving v1.4.0"), status: 503},
		{name: "no engine wired", body: firingPayload, noEngine: true, status: 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			opt := Options{Triggers: rollout.Triggers{Labels: map[string]string{"auto_rollback": "true"}}, Service: "spark", AlertmanagerToken: tc.token}
			if !tc.noEngine {
				opt.OnTriggers = func(ctx context.Context, alerts []rollout.Alert) error {
					for _, a := range alerts {
						got = append(got, a.Name)
					}
					return tc.engine
				}
			}
			srv := New(opt)
			req := httptest.NewRequest(http.MethodPost, "/alertmanager/webhook", strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tc.status)
			}
			if tc.status == 401 || tc.status == 400 {
				if len(got) != 0 {
					t.Fatalf("a refused request reached the engine: %v", got)
				}
				return
			}
			if tc.engine == nil && strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("engine got %v, want %v", got, tc.want)
			}
		})
	}
}
