package clock

import (
	"testing"
	"time"
)

func TestFakeAfterAdvances(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	f := NewFake(start)
	got := <-f.After(15 * time.Minute)
	if want := start.Add(15 * time.Minute); !got.Equal(want) || !f.Now().Equal(want) {
		t.Fatalf("After(15m) fired at %s, now %s; want both %s", got, f.Now(), want)
	}
	<-f.After(-time.Second)
	if !f.Now().Equal(start.Add(15 * time.Minute)) {
		t.Fatalf("a negative wait moved the clock to %s", f.Now())
	}
}

func TestScaled(t *testing.T) {
	origin := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s := NewScaled(origin, 600)
	if got := s.Real(10 * time.Minute); got != time.Second {
		t.Errorf("10 virtual minutes at 600x take %s of wall time, want 1s", got)
	}
	before := s.Now()
	fired := <-s.After(30 * time.Second) // 50 ms of wall time
	if fired.Sub(before) < 30*time.Second {
		t.Errorf("After(30s) fired %s of virtual time after it was set, want at least 30s", fired.Sub(before))
	}
	if s.Now().Before(origin) || NewScaled(origin, 0).Speed() != 1 {
		t.Error("a scaled clock must start at its origin and treat speed 0 as 1")
	}
}
