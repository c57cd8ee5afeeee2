package config

import (
	"strconv"
	"strings"
	"time"
)

// formatDuration writes d the way people write it in canary.yaml ("15m",
// "1h30m", "-30m") rather than time.Duration.String's "15m0s". The result is
// exact: time.ParseDuration gives d back.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	// Converting before negating keeps math.MinInt64 representable.
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u
	}
	units := [...]struct {
		name string
		size uint64
	}{
		{"h", uint64(time.Hour)},
		{"m", uint64(time.Minute)},
		{"s", uint64(time.Second)},
		{"ms", uint64(time.Millisecond)},
		{"us", uint64(time.Microsecond)},
		{"ns", 1},
	}
	for _, unit := range units {
		if q := u / unit.size; q > 0 {
			b.WriteString(strconv.FormatUint(q, 10))
			b.WriteString(unit.name)
			u -= q * unit.size
		}
	}
	return b.String()
}

// isDigits reports whether s is a non-empty run of ASCII digits, optionally
// signed: a number someone forgot to give a unit.
func isDigits(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
