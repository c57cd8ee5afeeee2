package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// textRenderer is a minimal renderer for the core's tests: deterministic
// text that carries the facts the tests look for.
type textRenderer struct{}

func (textRenderer) TableHeader(p *rollout.Plan) string { return "header" }
func (textRenderer) TableRow(p *rollout.Plan, row rollout.Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s stage=%d w=%d", row.At.UTC().Format("15:04:05"), row.Stage, row.Weight)
	for _, m := range row.Readings {
		fmt.Fprintf(&b, " %s=%g(%s)", m.Signal, m.Value, m.Verdict)
	}
	fmt.Fprintf(&b, " %s", row.Decision.Kind)
	return b.String()
}
func (r textRenderer) StageReport(p *rollout.Plan, rel *rollout.Release, stage int) []byte {
	return []byte(fmt.Sprintf("stage %d rows %d", stage, len(rel.Rows)))
}
func (textRenderer) StageSummary(p *rollout.Plan, rel *rollout.Release, stage int) []byte {
	return []byte(fmt.Sprintf("summary %d", stage))
}
func (textRenderer) RollbackReport(p *rollout.Plan, rel *rollout.Release) []byte {
	return []byte("rollback: " + rel.Rollback.Reason)
}
func (textRenderer) Baseline(p *rollout.Plan, rel *rollout.Release) []byte { return []byte("baseline") }
func (textRenderer) NightSnapshot(p *rollout.Plan, rel *rollout.Release, row rollout.Row) []byte {
	return []byte("night " + row.At.UTC().Format(time.RFC3339))
}
func (textRenderer) OneLiner(p *rollout.Plan, rel *rollout.Release) string {
	return fmt.Sprintf("%s %s rollback=%v", rel.Version, rel.Phase, rel.Rollback != nil)
}
func (textRenderer) RCA(p *rollout.Plan, rel *rollout.Release) []byte { return []byte("rca") }
func (textRenderer) WarRoomLog(rel *rollout.Release) []byte {
	var b strings.Builder
	for _, e := range rel.Log {
		fmt.Fprintf(&b, "%s %s %s %s\n", e.At.UTC().Format(time.RFC3339), e.User, e.Kind, e.Text)
	}
	return []byte(b.String())
}

// errCrash stands for the process dying: the fakes panic with it, and the
// test recovers, as if the process had been killed at that point.
var errCrash = errors.New("crash")

// crasher counts operations that touch the world and fails the one chosen.
type crasher struct {
	mu     sync.Mutex
	ops    int
	at     int  // crash at this op (1-based); 0 never
	before bool // crash before the op takes effect, else after
}

// op panics with errCrash if this op is the one chosen to crash before it
// takes effect, and returns a func to call once it has taken effect.
func (c *crasher) op() (crashBefore, crashAfter bool) {
	if c == nil {
		return false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops++
	if c.ops != c.at {
		return false, false
	}
	return c.before, !c.before
}

// memStore is an in-memory Store that round-trips through JSON, as a real
// store does.
type memStore struct {
	mu    sync.Mutex
	data  map[string][]byte
	crash *crasher
}

func newMemStore() *memStore { return &memStore{data: map[string][]byte{}} }

func (s *memStore) Load(ctx context.Context, id string) (*rollout.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.data[id]
	if !ok {
		return nil, rollout.ErrNotFound
	}
	var r rollout.Release
	return &r, json.Unmarshal(d, &r)
}

func (s *memStore) Save(ctx context.Context, r *rollout.Release) error {
	before, after := s.crash.op()
	if before {
		panic(errCrash)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.data[r.ID]; ok {
		var o rollout.Release
		if err := json.Unmarshal(old, &o); err != nil {
			return err
		}
		if o.Revision != r.Revision {
			return rollout.ErrConflict
		}
	}
	r.Revision++
	d, err := json.Marshal(r)
	if err != nil {
		return err
	}
	s.data[r.ID] = d
	if after {
		panic(errCrash)
	}
	return nil
}

// world is the outside: router, chat and evidence, which survive a crash.
type world struct {
	mu       sync.Mutex
	weight   int
	changes  []int
	sent     map[string]rollout.Event
	order    []string
	repeats  int
	files    map[string][]byte
	crash    *crasher
	setCalls int
	// store, when set, is checked at every side effect: the effect must be
	// pending in the persisted release, or it was not persisted before it
	// was carried out.
	store      *memStore
	unrecorded []string
	// From unreadableAfter on (on clk), Weight fails while the canary has
	// traffic, as a router whose route was edited into a shape it cannot
	// read.
	unreadableAfter time.Time
	clk             rollout.Clock
}

func (w *world) checkPersisted(what string, match func(rollout.Effect) bool) {
	if w.store == nil {
		return
	}
	w.store.mu.Lock()
	defer w.store.mu.Unlock()
	for _, d := range w.store.data {
		var r rollout.Release
		if err := json.Unmarshal(d, &r); err != nil {
			panic(err)
		}
		if slices.ContainsFunc(r.Pending, match) {
			return
		}
	}
	w.unrecorded = append(w.unrecorded, what)
}

func newWorld() *world {
	return &world{sent: map[string]rollout.Event{}, files: map[string][]byte{}}
}

func (w *world) SetWeight(ctx context.Context, weight int) error {
	before, after := w.crash.op()
	if before {
		panic(errCrash)
	}
	w.checkPersisted(fmt.Sprintf("weight %d", weight), func(e rollout.Effect) bool {
		return e.Kind == rollout.EffectWeight && e.Weight == weight
	})
	w.mu.Lock()
	w.setCalls++
	if weight != w.weight {
		w.changes = append(w.changes, weight)
	}
	w.weight = weight
	w.mu.Unlock()
	if after {
		panic(errCrash)
	}
	return nil
}

func (w *world) Weight(ctx context.Context) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.clk != nil && w.clk.Now().After(w.unreadableAfter) && w.weight != 0 {
		return 0, errors.New("route spark: a third backend has weight 10: the canary's share is ambiguous")
	}
	return w.weight, nil
}

// Notify dedupes by key, as the notifier contract asks.
func (w *world) Notify(ctx context.Context, key string, ev rollout.Event) error {
	before, after := w.crash.op()
	if before {
		panic(errCrash)
	}
	w.checkPersisted("message "+key, func(e rollout.Effect) bool { return e.Key == key })
	w.mu.Lock()
	if _, ok := w.sent[key]; ok {
		w.repeats++
	} else {
		w.sent[key] = ev
		w.order = append(w.order, key)
	}
	w.mu.Unlock()
	if after {
		panic(errCrash)
	}
	return nil
}

func (w *world) Write(ctx context.Context, name string, data []byte) error {
	before, after := w.crash.op()
	if before {
		panic(errCrash)
	}
	w.checkPersisted("evidence "+name, func(e rollout.Effect) bool {
		return e.Kind == rollout.EffectEvidence && e.File == name && string(e.Data) == string(data)
	})
	w.mu.Lock()
	w.files[name] = slices.Clone(data)
	w.mu.Unlock()
	if after {
		panic(errCrash)
	}
	return nil
}

func (w *world) fileNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(maps.Keys(w.files))
}

// scriptedMetrics answers each signal's query with value(signal, at).
type scriptedMetrics struct {
	plan  *rollout.Plan
	value func(signal string, baseline bool, at time.Time) (float64, error)
}

func (m scriptedMetrics) Query(ctx context.Context, q string, at time.Time) (rollout.Sample, error) {
	for _, s := range m.plan.Signals {
		switch q {
		case m.plan.ResolveQuery(s.Query):
			v, err := m.value(s.Name, false, at)
			return rollout.Sample{Value: v}, err
		case m.plan.ResolveQuery(s.BaselineQuery):
			v, err := m.value(s.Name, true, at)
			return rollout.Sample{Value: v}, err
		}
	}
	return rollout.Sample{}, fmt.Errorf("unexpected query %q", q)
}

type noAlerts struct{}

func (noAlerts) Firing(ctx context.Context, at time.Time) ([]rollout.Alert, error) { return nil, nil }

// scriptedIC plays the Incident Commander: reviews, says GO and promotes on
// Proceed, reading the stored release like the CLI would. Its command IDs
// are derived from the state so a repeat is recognised.
type scriptedIC struct {
	store *memStore
	user  string
	// waitDue makes it act on a person's step only once the engine has
	// announced the step as due, as a war-room reacting to the bot would.
	waitDue bool
}

func (ic scriptedIC) Take(ctx context.Context, id string) ([]rollout.Command, error) {
	r, err := ic.store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	mk := func(k rollout.CommandKind) []rollout.Command {
		return []rollout.Command{{ID: fmt.Sprintf("%s-%s-%d", k, r.Phase, r.Stage), Kind: k, User: ic.user}}
	}
	if ic.waitDue && (r.Phase == rollout.Phase(rollout.StepRedTeam) || r.Phase == rollout.Phase(rollout.StepGoNoGo)) &&
		!slices.Contains(r.Due, rollout.StepName(r.Phase)) {
		return nil, nil
	}
	switch {
	case r.Phase == rollout.Phase(rollout.StepRedTeam):
		if _, ok := r.StepRecord(rollout.StepRedTeam); !ok {
			return mk(rollout.CmdReview), nil
		}
	case r.Phase == rollout.Phase(rollout.StepGoNoGo):
		if _, ok := r.StepRecord(rollout.StepGoNoGo); !ok {
			return mk(rollout.CmdGo), nil
		}
	case r.Phase == rollout.PhaseStage && r.Last.Kind == rollout.Proceed:
		return mk(rollout.CmdPromote), nil
	}
	return nil, nil
}
