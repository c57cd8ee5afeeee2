package bot

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// StageMessage is what the Slack notifier remembers of a stage's war-room
// message: everything needed to render it again. Where Slack put it (its
// ts) is the outbox's MessageRecord under StageRef(release, stage), so
// after a restart chat.update keeps editing the same message.
type StageMessage struct {
	Release string     `json:"release"`
	Version string     `json:"version"`
	Stage   int        `json:"stage"` // 1-based
	Stages  int        `json:"stages"`
	Weight  int        `json:"weight"`
	Intro   string     `json:"intro,omitempty"` // the engine's stage announcement
	Rows    []StageRow `json:"rows,omitempty"`
	// Decision is the latest tick's decision line.
	Decision string `json:"decision,omitempty"`
	// Closed says why the stage's buttons are gone (promoted, rolled back).
	Closed string `json:"closed,omitempty"`
	// Alerts are the trigger alerts already announced in the thread.
	Alerts []string `json:"alerts,omitempty"`
}

// StageRow is one tick of the table, with the key of the event that carried
// it so that a repeated event does not add it twice.
type StageRow struct {
	Key      string               `json:"key"`
	At       time.Time            `json:"at"`
	Readings []RowReading         `json:"readings,omitempty"`
	Decision rollout.DecisionKind `json:"decision,omitempty"`
	// Text is the engine's rendering, shown when the event had no readings.
	Text string `json:"text,omitempty"`
}

// RowReading is what the table shows of one signal at one tick.
type RowReading struct {
	Signal  string          `json:"signal"`
	Value   float64         `json:"value"`
	Bound   float64         `json:"bound"`
	Verdict rollout.Verdict `json:"verdict"`
}

func (r StageRow) reading(signal string) (RowReading, bool) {
	for _, x := range r.Readings {
		if x.Signal == signal {
			return x, true
		}
	}
	return RowReading{}, false
}

// StageRef is the outbox ref of a stage's message.
func StageRef(release string, stage int) string { return StageActionValue(release, stage) + "/stage" }

// ReleaseMessages is what the notifier remembers of a release outside its
// stages: the timeline's steps and the review and go/no-go messages.
type ReleaseMessages struct {
	Release string       `json:"release"`
	Version string       `json:"version"`
	Steps   []StepResult `json:"steps,omitempty"`
	// Opened is set once the release's opening message is queued.
	Opened bool `json:"opened,omitempty"`
	// LastStage is the highest stage with a message, where announcements
	// go once the release has left its stages.
	LastStage int `json:"last_stage,omitempty"`
	// Review is the red-team checklist message's state once posted.
	Review *GateState `json:"review,omitempty"`
	// GoNoGo is the go/no-go message's state once posted.
	GoNoGo *GateState `json:"go_nogo,omitempty"`
	// IC is the Incident Commander as of the latest event.
	IC string `json:"ic,omitempty"`
	// Acts are the accepted commands given while the release waited at the
	// red-team review or at go/no-go, handovers left out: who recorded the
	// review, who gave the GO or the NO-GO. The engine's command events say
	// who acted but not which command; at those two steps the only other
	// commands that keep the release going are handovers, whose second
	// announcement names a new IC.
	Acts []Act `json:"acts,omitempty"`
}

// Act is an accepted command given at a person's step.
type Act struct {
	Phase rollout.Phase `json:"phase"`
	User  string        `json:"user"`
	At    time.Time     `json:"at"`
}

// actor is who gave the latest command kept for phase, "" if none.
func (r ReleaseMessages) actor(phase rollout.Phase) string {
	for i := len(r.Acts) - 1; i >= 0; i-- {
		if r.Acts[i].Phase == phase {
			return r.Acts[i].User
		}
	}
	return ""
}

// StepResult is one timeline step's outcome as the engine announced it.
type StepResult struct {
	Name   rollout.StepName   `json:"name"`
	Status rollout.GateStatus `json:"status"`
	Detail string             `json:"detail,omitempty"`
	At     time.Time          `json:"at"`
}

// GateState is a review or go/no-go message: open until Outcome is set.
type GateState struct {
	Posted  time.Time `json:"posted"`
	Outcome string    `json:"outcome,omitempty"`
	// Ticked maps each ticked checklist item to who ticked it. A checkbox
	// in a Slack message is each viewer's own until the message is
	// updated; the notifier keeps the shared state and shows it to all.
	Ticked map[string]string `json:"ticked,omitempty"`
	// Revision counts updates, to key each one's outbox message.
	Revision int `json:"revision,omitempty"`
}

// SlackChange is everything one event changes, stored in one transaction
// so that a crash cannot record a message without queueing it, or queue it
// without marking the event as handled.
type SlackChange struct {
	Stages   []StageMessage
	Release  *ReleaseMessages
	Messages []OutboxMessage
}

// SlackStore keeps the Slack notifier's state and its outbox. A durable
// implementation (store.Bolt) makes restarts safe; MemorySlackStore is for
// tests and single-process runs.
type SlackStore interface {
	OutboxStore
	// StageMessage returns the message of a release's 1-based stage.
	StageMessage(ctx context.Context, release string, stage int) (StageMessage, bool, error)
	// ReleaseMessages returns the release's non-stage messages.
	ReleaseMessages(ctx context.Context, release string) (ReleaseMessages, bool, error)
	// Handled reports whether an event key was recorded.
	Handled(ctx context.Context, key string) (bool, error)
	// Record stores an event's change, queues its messages and marks the
	// key handled, all at once. now stamps the queued messages.
	Record(ctx context.Context, key string, now time.Time, c SlackChange) error
}

// MemorySlackStore is a SlackStore in memory. Its zero value is ready.
type MemorySlackStore struct {
	mu       sync.Mutex
	stages   map[string]StageMessage
	releases map[string]ReleaseMessages
	handled  map[string]bool
	seq      uint64
	queue    []OutboxEntry
	keys     map[string]bool
	messages map[string]MessageRecord
	dead     []OutboxEntry
}

// StageMessage implements SlackStore.
func (s *MemorySlackStore) StageMessage(_ context.Context, release string, stage int) (StageMessage, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.stages[StageRef(release, stage)]
	return cloneStageMessage(m), ok, nil
}

// ReleaseMessages implements SlackStore.
func (s *MemorySlackStore) ReleaseMessages(_ context.Context, release string) (ReleaseMessages, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.releases[release]
	return cloneRelease(r), ok, nil
}

// Handled implements SlackStore.
func (s *MemorySlackStore) Handled(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handled[key], nil
}

// Record implements SlackStore.
func (s *MemorySlackStore) Record(_ context.Context, key string, now time.Time, c SlackChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stages == nil {
		s.stages, s.releases, s.handled = map[string]StageMessage{}, map[string]ReleaseMessages{}, map[string]bool{}
	}
	for _, m := range c.Stages {
		s.stages[StageRef(m.Release, m.Stage)] = cloneStageMessage(m)
	}
	if c.Release != nil {
		s.releases[c.Release.Release] = cloneRelease(*c.Release)
	}
	s.enqueue(now, c.Messages)
	s.handled[key] = true
	return nil
}

// QueueMessages implements OutboxStore.
func (s *MemorySlackStore) QueueMessages(_ context.Context, now time.Time, msgs ...OutboxMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueue(now, msgs)
	return nil
}

func (s *MemorySlackStore) enqueue(now time.Time, msgs []OutboxMessage) {
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	for _, m := range msgs {
		if s.keys[m.Key] {
			continue
		}
		s.keys[m.Key] = true
		s.seq++
		s.queue = append(s.queue, OutboxEntry{OutboxMessage: m, Seq: s.seq, Queued: now})
	}
}

// Pending implements OutboxStore.
func (s *MemorySlackStore) Pending(_ context.Context) ([]OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queue), nil
}

// Reschedule implements OutboxStore.
func (s *MemorySlackStore) Reschedule(_ context.Context, e OutboxEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.queue {
		if s.queue[i].Seq == e.Seq {
			s.queue[i] = e
		}
	}
	return nil
}

// Finish implements OutboxStore.
func (s *MemorySlackStore) Finish(_ context.Context, e OutboxEntry, out OutboxOutcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = slices.DeleteFunc(s.queue, func(q OutboxEntry) bool { return q.Seq == e.Seq })
	if out.Message != nil {
		s.putMessage(*out.Message)
	}
	if out.Dead != "" {
		e.LastError = out.Dead
		s.dead = append(s.dead, e)
	}
	return nil
}

// Message implements OutboxStore.
func (s *MemorySlackStore) Message(_ context.Context, ref string) (MessageRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[ref]
	return m, ok, nil
}

// PutMessage implements OutboxStore.
func (s *MemorySlackStore) PutMessage(_ context.Context, m MessageRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putMessage(m)
	return nil
}

func (s *MemorySlackStore) putMessage(m MessageRecord) {
	if s.messages == nil {
		s.messages = map[string]MessageRecord{}
	}
	s.messages[m.Ref] = m
}

// Dead implements OutboxStore.
func (s *MemorySlackStore) Dead(_ context.Context) ([]OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dead), nil
}

// cloneStageMessage keeps callers from editing the stored rows through a
// shared backing array.
func cloneStageMessage(m StageMessage) StageMessage {
	m.Rows = slices.Clone(m.Rows)
	for i := range m.Rows {
		m.Rows[i].Readings = slices.Clone(m.Rows[i].Readings)
	}
	m.Alerts = slices.Clone(m.Alerts)
	return m
}

func cloneRelease(r ReleaseMessages) ReleaseMessages {
	r.Steps = slices.Clone(r.Steps)
	if r.Review != nil {
		g := *r.Review
		g.Ticked = maps.Clone(g.Ticked)
		r.Review = &g
	}
	if r.GoNoGo != nil {
		g := *r.GoNoGo
		r.GoNoGo = &g
	}
	r.Acts = slices.Clone(r.Acts)
	return r
}
