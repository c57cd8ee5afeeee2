package server

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// webhookPayload is the part of Alertmanager's webhook body (version 4) the
// bot reads.
type webhookPayload struct {
	Version string `json:"version"`
	Alerts  []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
	} `json:"alerts"`
}

// maxWebhookBody bounds what the webhook reads; Alertmanager batches are
// small.
const maxWebhookBody = 1 << 20

// alertmanager takes Alertmanager's push of firing alerts: the firing ones
// that carry the trigger labels (and this release's service) roll back at
// once. A bad payload is a 400 and changes nothing.
func (s *Server) alertmanager(w http.ResponseWriter, r *http.Request) {
	if s.opt.AlertmanagerToken != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opt.AlertmanagerToken)) != 1 {
			s.triggers.WithLabelValues("unauthorized").Inc()
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
	if err != nil || len(body) > maxWebhookBody {
		s.triggers.WithLabelValues("bad_request").Inc()
		http.Error(w, "body unreadable or over 1 MiB", http.StatusBadRequest)
		return
	}
	var p webhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		s.triggers.WithLabelValues("bad_request").Inc()
		http.Error(w, "not an Alertmanager webhook payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	if p.Version == "" || p.Alerts == nil {
		s.triggers.WithLabelValues("bad_request").Inc()
		http.Error(w, `not an Alertmanager webhook payload: want {"version": "4", "alerts": [...]}`, http.StatusBadRequest)
		return
	}
	var firing []rollout.Alert
	for _, a := range p.Alerts {
		alert := rollout.Alert{Name: a.Labels["alertname"], Labels: a.Labels, Summary: a.Annotations["summary"], Since: a.StartsAt}
		if a.Status != "firing" || !s.opt.Triggers.Matches(alert) {
			continue
		}
		if s.opt.Service != "" && a.Labels["service"] != s.opt.Service {
			continue
		}
		firing = append(firing, alert)
	}
	if len(firing) == 0 {
		s.triggers.WithLabelValues("ignored").Inc()
		fmt.Fprintln(w, "no firing auto-rollback trigger for this release")
		return
	}
	if s.opt.OnTriggers == nil {
		s.triggers.WithLabelValues("unavailable").Inc()
		http.Error(w, "no release engine is wired to this server", http.StatusServiceUnavailable)
		return
	}
	if err := s.opt.OnTriggers(r.Context(), firing); err != nil {
		s.triggers.WithLabelValues("unavailable").Inc()
		s.log.Error("trigger not handed to the engine; Alertmanager will retry", "err", err)
		// The reason is in the log; the caller learns only to retry.
		http.Error(w, "could not hand the trigger to the engine; retry", http.StatusServiceUnavailable)
		return
	}
	s.triggers.WithLabelValues("rollback").Inc()
	names := make([]string, len(firing))
	for i, a := range firing {
		names[i] = a.Name
	}
	fmt.Fprintf(w, "rollback requested: %s\n", strings.Join(names, ", "))
}
