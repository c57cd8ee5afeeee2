// Package bot tells people what a release is doing: on a terminal now, in a
// Slack war-room later. Each notifier implements rollout.Notifier.
package bot

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/canarybot/canarybot/rollout"
)

// Terminal prints the war-room table live, a header at each stage and a row
// per tick, with announcements between them. It remembers the keys it has
// printed, so an effect repeated after a restart is not printed twice.
type Terminal struct {
	W      io.Writer
	Plan   *rollout.Plan
	Render rollout.Renderer

	mu   sync.Mutex
	seen map[string]bool
	// header is true once the table header was printed since the last
	// announcement, so rows of one stage stay under one header.
	header bool
}

// Notify prints one event.
func (t *Terminal) Notify(ctx context.Context, key string, ev rollout.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen = map[string]bool{}
	}
	if t.seen[key] {
		return nil
	}
	t.seen[key] = true
	var err error
	switch ev.Kind {
	case rollout.EventRow, rollout.EventSnapshot:
		if !t.header {
			_, err = fmt.Fprintln(t.W, t.Render.TableHeader(t.Plan))
			t.header = true
		}
		if err == nil {
			_, err = fmt.Fprintln(t.W, ev.Text)
		}
	default:
		t.header = false
		_, err = fmt.Fprintf(t.W, "%s » %s\n", ev.At.UTC().Format("15:04:05"), ev.Text)
	}
	return err
}
