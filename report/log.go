package report

import (
	"bytes"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

// WarRoomLog is warroom_log.txt: one line per log entry, in the order
// recorded, as "2026-11-27T10:00:00Z  alice  command  promote" with the
// user and kind columns aligned. Times are RFC 3339 UTC whatever the
// Renderer's Location, so the minutes merge with other systems' logs.
func (rd Renderer) WarRoomLog(r *rollout.Release) []byte {
	return logLines(releaseOf(r).Log, "")
}

func logLines(log []rollout.LogEntry, indent string) []byte {
	userW, kindW := 0, 0
	for _, e := range log {
		userW = max(userW, len([]rune(userOf(e))))
		kindW = max(kindW, len([]rune(string(e.Kind))))
	}
	var b bytes.Buffer
	for _, e := range log {
		b.WriteString(indent)
		b.WriteString(e.At.UTC().Format(time.RFC3339))
		b.WriteString("  " + pad(userOf(e), userW))
		b.WriteString("  " + pad(string(e.Kind), kindW))
		b.WriteString("  " + oneLine(e.Text) + "\n")
	}
	return b.Bytes()
}

func userOf(e rollout.LogEntry) string {
	if e.User == "" {
		return "-"
	}
	return e.User
}
