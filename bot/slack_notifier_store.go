package bot

import (
	"context"
	"slices"
	"sync"
	"time"
)

// StageMessage is what the Slack notifier remembers of a stage's war-room
// message, so that after a restart it keeps editing the same message instead
// of posting a new one.
type StageMessage struct {
	Release string `json:"release"`
	Version string `json:"version"`
	Stage   int    `json:"stage"` // 1-based
	Stages  int    `json:"stages"`
	Weight  int    `json:"weight"`
	// Channel is the channel ID Slack answered with; chat.update needs the
	// ID, not the #name the message was posted to.
	Channel string `json:"channel,omitempty"`
	// TS is empty until Slack accepted the post.
	TS       string     `json:"ts,omitempty"`
	Intro    string     `json:"intro,omitempty"` // the engine's stage announcement
	Rows     []StageRow `json:"rows,omitempty"`
	Decision string     `json:"decision,omitempty"`
}

// StageRow is one rendered table row, with the key of the event that
// carried it so a repeated event does not add it twice.
type StageRow struct {
	Key  string    `json:"key"`
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// SlackStore keeps the Slack notifier's state: each stage's message and the
// keys already delivered. A durable implementation makes restarts safe; the
// in-memory one is for tests and single-process runs.
type SlackStore interface {
	// StageMessage returns the message of a release's 1-based stage.
	StageMessage(ctx context.Context, release string, stage int) (StageMessage, bool, error)
	// LastStageMessage returns the message of the release's highest stage,
	// where announcements go once the release has left its stages.
	LastStageMessage(ctx context.Context, release string) (StageMessage, bool, error)
	PutStageMessage(ctx context.Context, m StageMessage) error
	Sent(ctx context.Context, key string) (bool, error)
	MarkSent(ctx context.Context, key string) error
}

// MemorySlackStore is a SlackStore in memory. Its zero value is ready.
type MemorySlackStore struct {
	mu     sync.Mutex
	stages map[stageRef]StageMessage
	sent   map[string]bool
}

type stageRef struct {
	release string
	stage   int
}

// StageMessage implements SlackStore.
func (s *MemorySlackStore) StageMessage(_ context.Context, release string, stage int) (StageMessage, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.stages[stageRef{release, stage}]
	return cloneStageMessage(m), ok, nil
}

// LastStageMessage implements SlackStore.
func (s *MemorySlackStore) LastStageMessage(_ context.Context, release string) (StageMessage, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last StageMessage
	found := false
	for ref, m := range s.stages {
		if ref.release == release && (!found || m.Stage > last.Stage) {
			last, found = m, true
		}
	}
	return cloneStageMessage(last), found, nil
}

// PutStageMessage implements SlackStore.
func (s *MemorySlackStore) PutStageMessage(_ context.Context, m StageMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stages == nil {
		s.stages = map[stageRef]StageMessage{}
	}
	s.stages[stageRef{m.Release, m.Stage}] = cloneStageMessage(m)
	return nil
}

// Sent implements SlackStore.
func (s *MemorySlackStore) Sent(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[key], nil
}

// MarkSent implements SlackStore.
func (s *MemorySlackStore) MarkSent(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string]bool{}
	}
	s.sent[key] = true
	return nil
}

// cloneStageMessage keeps callers from editing the stored rows through a
// shared backing array.
func cloneStageMessage(m StageMessage) StageMessage {
	m.Rows = slices.Clone(m.Rows)
	return m
}
