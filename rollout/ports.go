package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// The ports: everything the engine needs from the world, each as small as the
// engine's use of it. Adapters live in their own packages and are wired by
// cmd/canarybot.

// ErrNoValues is returned (wrapped) by a Metrics adapter when a query matched
// no series. The engine turns it into a NoData verdict, never a Pass.
var ErrNoValues = errors.New("no values found")

// Sample is what one instant query answered.
type Sample struct {
	Value    float64
	Warnings []string
	// Raw is the metrics source's own answer (for Prometheus, the JSON
	// result), kept so the evidence shows what a decision was based on.
	Raw json.RawMessage
}

// Metrics answers an instant PromQL query evaluated at a point in time.
// An empty result is ErrNoValues; more than one series is an error because a
// signal must aggregate to a single number.
type Metrics interface {
	Query(ctx context.Context, query string, at time.Time) (Sample, error)
}

// Alert is a firing alert as reported by Prometheus or Alertmanager.
type Alert struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels,omitempty"`
	Summary string            `json:"summary,omitempty"`
	Since   time.Time         `json:"since"`
}

// Alerts lists the alerts firing at a point in time.
type Alerts interface {
	Firing(ctx context.Context, at time.Time) ([]Alert, error)
}

// Traffic moves the canary's share of requests, in percent (0-100).
// SetWeight must be idempotent: setting the current weight changes nothing.
type Traffic interface {
	SetWeight(ctx context.Context, weight int) error
	Weight(ctx context.Context) (int, error)
}

// Notifier tells people what happened. Key is an idempotency key: a
// notifier that sees a key twice must not announce it twice.
type Notifier interface {
	Notify(ctx context.Context, key string, ev Event) error
}

// Evidence stores a release's evidence files. Writing the same content under
// the same name again must change nothing.
type Evidence interface {
	Write(ctx context.Context, name string, data []byte) error
}

// Store persists releases. Save must fail with ErrConflict when the stored
// revision is not the one the release was loaded at.
type Store interface {
	Load(ctx context.Context, id string) (*Release, error)
	Save(ctx context.Context, r *Release) error
}

// ErrNotFound is returned by Store.Load for an unknown release.
var ErrNotFound = errors.New("release not found")

// ErrConflict is returned by Store.Save when someone else saved first.
var ErrConflict = errors.New("release was changed by someone else")

// Clock is the only source of time for the engine.
type Clock interface {
	Now() time.Time
	// After fires once d has passed on this clock.
	After(d time.Duration) <-chan time.Time
}

// GateResult is the outcome of one pre-canary step (freeze, preflight, ...).
type GateResult struct {
	Status GateStatus `json:"status"`
	Detail string     `json:"detail,omitempty"`
}

// GateStatus says whether a step passed. Skipped is never a pass: it means
// the step is not wired in this deployment, and is recorded as such.
type GateStatus string

const (
	GatePassed  GateStatus = "passed"
	GateFailed  GateStatus = "failed"
	GateSkipped GateStatus = "skipped"
)

// Gate runs one pre-canary step of the T-minus timeline. After a crash the
// step runs again: Run must be idempotent for a release and step (key its
// side effects on r.ID and the step's name).
type Gate interface {
	Run(ctx context.Context, r *Release) (GateResult, error)
}
