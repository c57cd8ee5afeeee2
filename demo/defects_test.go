package demo

import (
	"errors"
	"testing"
)

func TestParseDefects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Defects
		name string
	}{
		{"", Defects{}, "none"},
		{"idempotency", Defects{NoIdempotency: true}, "idempotency"},
		{" RateLimit , websocket", Defects{NoRateLimit: true, DropWebSocket: true}, "ratelimit,websocket"},
		{"all", Defects{NoIdempotency: true, NoRateLimit: true, DropWebSocket: true}, "idempotency,ratelimit,websocket"},
	}
	for _, tt := range tests {
		got, err := ParseDefects(tt.in)
		if err != nil || got != tt.want || got.String() != tt.name {
			t.Errorf("ParseDefects(%q) = %+v (%s), %v; want %+v (%s)", tt.in, got, got, err, tt.want, tt.name)
		}
	}
	if _, err := ParseDefects("idempotency,latency"); !errors.Is(err, ErrUnknownDefect) {
		t.Errorf("unknown defect: err = %v, want ErrUnknownDefect", err)
	}
}
