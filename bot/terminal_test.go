package bot

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
)

func TestTerminal(t *testing.T) {
	plan := config.Default()
	var out bytes.Buffer
	term := &Terminal{W: &out, Plan: &plan, Render: report.Renderer{}}
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	events := []struct {
		key string
		ev  rollout.Event
	}{
		{"r/1", rollout.Event{Kind: rollout.EventStage, At: at, Text: "Stage 1/5: canary weight 1% for 15m0s"}},
		{"r/2", rollout.Event{Kind: rollout.EventRow, At: at, Text: "row one"}},
		{"r/3", rollout.Event{Kind: rollout.EventRow, At: at, Text: "row two"}},
		{"r/3", rollout.Event{Kind: rollout.EventRow, At: at, Text: "row two"}}, // repeated after a restart
		{"r/4", rollout.Event{Kind: rollout.EventHold, At: at, Text: "HOLD: no data"}},
		{"r/5", rollout.Event{Kind: rollout.EventRow, At: at, Text: "row three"}},
	}
	for _, e := range events {
		if err := term.Notify(context.Background(), e.key, e.ev); err != nil {
			t.Fatal(err)
		}
	}
	header := report.Renderer{}.TableHeader(&plan)
	want := strings.Join([]string{
		"10:00:00 » Stage 1/5: canary weight 1% for 15m0s",
		header, "row one", "row two",
		"10:00:00 » HOLD: no data",
		header, "row three", "",
	}, "\n")
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
}
