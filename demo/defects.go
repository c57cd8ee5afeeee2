package demo

import (
	"errors"
	"fmt"
	"strings"
)

// Defects strip a demo instance of the protections the runbook's
// pre-canary checks look for, so that the blast radius and the battery can
// be seen failing, for the right reason, against the real service.
type Defects struct {
	// NoIdempotency accepts every order, a repeated idempotency key too:
	// the battery's burst sees 100×201 instead of 1×201 and 99×409.
	NoIdempotency bool
	// NoRateLimit takes every CSP report: the flood sees no 429.
	NoRateLimit bool
	// DropWebSocket closes each WebSocket session right after the
	// handshake, before any message: the blast's sessions fail to read.
	DropWebSocket bool
}

// Defect names, as ParseDefects reads them.
const (
	DefectIdempotency = "idempotency"
	DefectRateLimit   = "ratelimit"
	DefectWebSocket   = "websocket"
)

// ErrUnknownDefect is returned (wrapped) by ParseDefects.
var ErrUnknownDefect = errors.New("unknown defect")

// ParseDefects reads a comma-separated list of defect names ("" is none;
// "all" is every one).
func ParseDefects(s string) (Defects, error) {
	var d Defects
	for _, name := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "":
		case DefectIdempotency:
			d.NoIdempotency = true
		case DefectRateLimit:
			d.NoRateLimit = true
		case DefectWebSocket:
			d.DropWebSocket = true
		case "all":
			d = Defects{NoIdempotency: true, NoRateLimit: true, DropWebSocket: true}
		default:
			return Defects{}, fmt.Errorf("%w %q: use %s, %s, %s or all, comma-separated", ErrUnknownDefect, name, DefectIdempotency, DefectRateLimit, DefectWebSocket)
		}
	}
	return d, nil
}

// String lists the defects by name, "none" for none.
func (d Defects) String() string {
	var names []string
	if d.NoIdempotency {
		names = append(names, DefectIdempotency)
	}
	if d.NoRateLimit {
		names = append(names, DefectRateLimit)
	}
	if d.DropWebSocket {
		names = append(names, DefectWebSocket)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// SetDefects plants d (the zero Defects removes them). Safe to call
// concurrently with requests.
func (s *Service) SetDefects(d Defects) { s.defects.Store(&d) }

func (s *Service) currentDefects() Defects {
	if d := s.defects.Load(); d != nil {
		return *d
	}
	return Defects{}
}
