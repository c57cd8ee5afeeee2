// Package clock provides the engine's sources of time: the wall clock, a
// scaled clock for the demo (virtual time running N times faster), and a
// fake clock for tests that jumps straight to the next timer.
package clock

import (
	"sync"
	"time"
)

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Scaled runs virtual time Speed times faster than the wall clock, starting
// at Origin. It is monotonic, so it can stamp samples in a TSDB.
type Scaled struct {
	origin time.Time
	start  time.Time // wall time at origin
	speed  float64
}

// NewScaled returns a clock whose virtual time starts at origin and runs
// speed times faster than the wall clock.
func NewScaled(origin time.Time, speed float64) *Scaled {
	if speed <= 0 {
		speed = 1
	}
	return &Scaled{origin: origin, start: time.Now(), speed: speed}
}

// Speed is how many virtual seconds pass per wall second.
func (s *Scaled) Speed() float64 { return s.speed }

// Now returns the virtual time.
func (s *Scaled) Now() time.Time {
	return s.origin.Add(time.Duration(float64(time.Since(s.start)) * s.speed))
}

// Real converts a virtual duration to the wall-clock time it takes.
func (s *Scaled) Real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.speed)
}

// After fires once d of virtual time has passed.
func (s *Scaled) After(d time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	time.AfterFunc(s.Real(d), func() { out <- s.Now() })
	return out
}

// Fake is a test clock. After advances the clock by d at once and fires,
// so a 26-hour release runs in milliseconds and deterministically.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a fake clock set to now.
func NewFake(now time.Time) *Fake { return &Fake{now: now} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// After advances the clock by d and returns a channel that has already fired.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	if d < 0 {
		d = 0
	}
	f.Advance(d)
	out := make(chan time.Time, 1)
	out <- f.Now()
	return out
}
