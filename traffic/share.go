package traffic

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// ShareStatus says how the observed canary share compares with the weight.
type ShareStatus string

const (
	// ShareMatch: the share is as close to the weight as chance allows.
	ShareMatch ShareStatus = "match"
	// ShareMismatch: the controller does not route what the Ingress says,
	// or something else sends traffic to the canary.
	ShareMismatch ShareStatus = "mismatch"
	// ShareNoData: no request was counted in the window.
	ShareNoData ShareStatus = "no_data"
)

// ShareOptions says where ingress-nginx counts the requests of the Ingress
// pair. ingress-nginx merges the canary Ingress into the stable one's
// location and counts every request under the stable Ingress's name, with
// the `canary` label set to the canary upstream when the canary served it
// (empty otherwise); both names are matched in case a version counts under
// the canary Ingress's own name.
type ShareOptions struct {
	Namespace string
	// Stable and Canary name the two Ingresses.
	Stable, Canary string
	// Window is the PromQL range the share is counted over, e.g. "2m".
	// Compare only once the weight has been in force a whole window: the
	// window otherwise mixes the old weight with the new.
	Window string
	// Tolerance is the least gap, in percentage points, reported as a
	// mismatch however many requests were counted (default 2).
	Tolerance float64
}

// Share compares the canary's observed share of requests with its weight.
type Share struct {
	Weight int `json:"weight"`
	// Observed is the canary's share of the window's requests, in percent;
	// NaN when none were counted.
	Observed float64 `json:"observed"`
	// Requests is how many requests were counted in the window.
	Requests float64 `json:"requests"`
	// Allowed is the gap, in percentage points, that chance explains: the
	// larger of the tolerance and four standard errors of a share of
	// Requests independent requests each sent to the canary with
	// probability Weight/100.
	Allowed     float64     `json:"allowed"`
	Status      ShareStatus `json:"status"`
	CanaryQuery string      `json:"canary_query"`
	TotalQuery  string      `json:"total_query"`
}

// String is the table's text, e.g. "observed 4.8% of 1200 req vs weight 5% (match)".
func (s Share) String() string {
	if s.Status == ShareNoData {
		return fmt.Sprintf("observed n/a (no requests counted) vs weight %d%%", s.Weight)
	}
	return fmt.Sprintf("observed %.1f%% of %.0f req vs weight %d%% (%s, ±%.1f)", s.Observed, s.Requests, s.Weight, s.Status, s.Allowed)
}

// ShareQueries returns the PromQL for the canary's requests and for all of
// them in the window.
func ShareQueries(o ShareOptions) (canary, total string) {
	w := o.Window
	if w == "" {
		w = "2m"
	}
	sel := fmt.Sprintf(`namespace=%q,ingress=~%q`, o.Namespace, regexpQuote(o.Stable)+"|"+regexpQuote(o.Canary))
	canary = fmt.Sprintf(`sum(increase(nginx_ingress_controller_requests{%s,canary!=""}[%s]))`, sel, w)
	total = fmt.Sprintf(`sum(increase(nginx_ingress_controller_requests{%s}[%s]))`, sel, w)
	return canary, total
}

// regexpQuote escapes the characters of a Kubernetes name (lower-case
// letters, digits, '-' and '.') that mean something in a regexp.
func regexpQuote(name string) string {
	out := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			out = append(out, '\\')
		}
		out = append(out, name[i])
	}
	return string(out)
}

// ObservedShare reads ingress-nginx's request counter through m and
// compares the canary's share in the window ending at at with the weight
// the Ingress carries now. The result goes into the table; an error is a
// failed query or Ingress read, never a mismatch.
func (i *Ingress) ObservedShare(ctx context.Context, m rollout.Metrics, o ShareOptions, at time.Time) (Share, error) {
	weight, err := i.Weight(ctx)
	if err != nil {
		return Share{}, err
	}
	return MeasureShare(ctx, m, o, weight, at)
}

// MeasureShare is ObservedShare for a weight known to the caller.
func MeasureShare(ctx context.Context, m rollout.Metrics, o ShareOptions, weight int, at time.Time) (Share, error) {
	cq, tq := ShareQueries(o)
	total, err := m.Query(ctx, tq, at)
	switch {
	case errors.Is(err, rollout.ErrNoValues):
		total.Value = 0
	case err != nil:
		return Share{}, fmt.Errorf("observed canary share: %s: %w", tq, err)
	}
	canary, err := m.Query(ctx, cq, at)
	switch {
	case errors.Is(err, rollout.ErrNoValues):
		// No series with the canary label: the canary served nothing.
		canary.Value = 0
	case err != nil:
		return Share{}, fmt.Errorf("observed canary share: %s: %w", cq, err)
	}
	s := CompareShare(weight, canary.Value, total.Value, o.Tolerance)
	s.CanaryQuery, s.TotalQuery = cq, tq
	return s, nil
}

// defaultShareTolerance is the least gap, in percentage points, reported
// as a mismatch.
const defaultShareTolerance = 2.0

// CompareShare decides whether canary out of total requests is the share a
// weight should give.
func CompareShare(weight int, canary, total, tolerance float64) Share {
	if tolerance <= 0 {
		tolerance = defaultShareTolerance
	}
	s := Share{Weight: weight, Requests: total, Observed: math.NaN(), Allowed: tolerance}
	if !(total > 0) || math.IsInf(total, 0) || math.IsNaN(canary) {
		s.Status = ShareNoData
		return s
	}
	s.Observed = 100 * canary / total
	p := float64(weight) / 100
	s.Allowed = math.Max(tolerance, 4*100*math.Sqrt(p*(1-p)/total))
	s.Status = ShareMatch
	if math.Abs(s.Observed-float64(weight)) > s.Allowed {
		s.Status = ShareMismatch
	}
	return s
}
