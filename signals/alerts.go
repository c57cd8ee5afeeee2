package signals

import (
	"context"
	"slices"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/canarybot/canarybot/rollout"
)

// Firing lists the alerts Prometheus reports in state firing (pending ones
// are left out), each with all its labels (alertname included), its summary
// annotation, and Since set to when its condition started to hold.
//
// at is not used: the alerts API only tells the present. Leaving out alerts
// that look newer than at would drop a real firing alert whenever
// canarybot's clock is behind the server's, and a missed auto-rollback
// trigger is worse than one seen a tick early.
func (p *Prometheus) Firing(ctx context.Context, at time.Time) ([]rollout.Alert, error) {
	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	res, err := p.api.Alerts(actx)
	if err != nil {
		return nil, p.redact(p.describe(ctx, "listing alerts", err))
	}
	var out []rollout.Alert
	for _, a := range res.Alerts {
		if a.State != v1.AlertStateFiring {
			continue
		}
		ls := make(map[string]string, len(a.Labels))
		for k, v := range a.Labels {
			ls[string(k)] = string(v)
		}
		out = append(out, rollout.Alert{
			Name:    ls[labels.AlertName],
			Labels:  ls,
			Summary: string(a.Annotations["summary"]),
			Since:   a.ActiveAt,
		})
	}
	slices.SortFunc(out, func(a, b rollout.Alert) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return labels.Compare(labels.FromMap(a.Labels), labels.FromMap(b.Labels))
	})
	return out, nil
}
