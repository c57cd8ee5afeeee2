package forge_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
)

// event is one Freeze.OnProgress call.
type event struct {
	done, total int
	phase       string
}

// recorder collects the calls; Start and Lift call from their own
// goroutine, so it needs no lock.
type recorder struct{ events []event }

func (r *recorder) report(done, total int, phase string) {
	r.events = append(r.events, event{done, total, phase})
}

// phases splits the events into runs of one phase, in order.
func (r *recorder) phases() ([]string, map[string][]event) {
	var order []string
	by := map[string][]event{}
	for _, e := range r.events {
		if len(order) == 0 || order[len(order)-1] != e.phase {
			order = append(order, e.phase)
		}
		by[e.phase] = append(by[e.phase], e)
	}
	return order, by
}

// counting checks that a phase went 0, 1, …, total, each step once.
func counting(t *testing.T, phase string, evs []event, total int) {
	t.Helper()
	if len(evs) != total+1 {
		t.Errorf("%s: %d events, want %d (0 to %d)", phase, len(evs), total+1, total)
		return
	}
	for i, e := range evs {
		if e.done != i || e.total != total {
			t.Errorf("%s: event %d is %d/%d, want %d/%d", phase, i, e.done, e.total, i, total)
			return
		}
	}
}

func TestFreezeReportsProgress(t *testing.T) {
	const n = 150 // two pages of 100
	listing := []event{{100, 0, forge.ProgressListing}, {n, 0, forge.ProgressListing}}
	for _, tc := range []struct {
		mode            string
		startPhases     []string
		liftPhases      []string
		statusesAtStart bool
		statusesAtLift  bool
		wantRemoved     int
	}{
		{forge.ModeStatuses,
			[]string{forge.ProgressListing, forge.ProgressBlocking, forge.ProgressLabelling},
			[]string{forge.ProgressListing, forge.ProgressUnblocking, forge.ProgressUnlabelling}, true, true, n - 1},
		// One ruleset blocks every PR: there is no per-PR blocking to count.
		{forge.ModeRulesets,
			[]string{forge.ProgressListing, forge.ProgressLabelling},
			[]string{forge.ProgressListing, forge.ProgressUnlabelling}, false, false, n - 1},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			fake := forgetest.New(t, "acme", "exchange", n)
			fake.LabelPR(7, forge.DefaultFreezeLabel)
			var s sleeps
			f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json"))
			f.Mode = tc.mode
			var rec recorder
			f.OnProgress = rec.report

			sum, err := f.Start(context.Background(), "v1.4.0")
			if err != nil {
				t.Fatal(err)
			}
			order, by := rec.phases()
			if fmt.Sprint(order) != fmt.Sprint(tc.startPhases) {
				t.Fatalf("start phases %v, want %v", order, tc.startPhases)
			}
			if fmt.Sprint(by[forge.ProgressListing]) != fmt.Sprint(listing) {
				t.Errorf("listing %v, want %v", by[forge.ProgressListing], listing)
			}
			if tc.statusesAtStart {
				counting(t, forge.ProgressBlocking, by[forge.ProgressBlocking], n)
			}
			counting(t, forge.ProgressLabelling, by[forge.ProgressLabelling], n)
			// The last report is the summary's count: a bar at 100% means done.
			if sum.PRs != n || sum.LabelsAdded+sum.AlreadyLabelled != n {
				t.Errorf("summary: %d PRs, %d+%d labelled", sum.PRs, sum.LabelsAdded, sum.AlreadyLabelled)
			}

			// A second start has nothing left to do: no listing, and
			// each phase goes from 0 to done at once, with no call.
			rec = recorder{}
			calls := fake.TotalCalls()
			if _, err := f.Start(context.Background(), "v1.4.0"); err != nil {
				t.Fatal(err)
			}
			order, by = rec.phases()
			if order[0] == forge.ProgressListing {
				t.Errorf("second start listed again: %v", order)
			}
			counting(t, forge.ProgressLabelling, by[forge.ProgressLabelling], n)
			if got := fake.TotalCalls(); got != calls {
				t.Errorf("second start made %d calls", got-calls)
			}

			rec = recorder{}
			lifted, err := f.Lift(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			order, by = rec.phases()
			if fmt.Sprint(order) != fmt.Sprint(tc.liftPhases) {
				t.Fatalf("lift phases %v, want %v", order, tc.liftPhases)
			}
			if fmt.Sprint(by[forge.ProgressListing]) != fmt.Sprint(listing) {
				t.Errorf("lift listing %v, want %v", by[forge.ProgressListing], listing)
			}
			if tc.statusesAtLift {
				counting(t, forge.ProgressUnblocking, by[forge.ProgressUnblocking], n)
			}
			counting(t, forge.ProgressUnlabelling, by[forge.ProgressUnlabelling], n)
			if lifted.LabelsRemoved != tc.wantRemoved {
				t.Errorf("lift removed %d labels, want %d", lifted.LabelsRemoved, tc.wantRemoved)
			}
		})
	}
}

// TestProgressLineOnAFreeze renders a real freeze, with a secondary limit
// and a 429 on the way, as a terminal would show it.
func TestProgressLineOnAFreeze(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 120)
	fake.Reply(
		forgetest.Reply{Status: 429, Header: map[string]string{"Retry-After": "3"}},
		forgetest.Reply{Status: 403, Header: map[string]string{"Retry-After": "5"}, Body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`},
	)
	var s sleeps
	m := &forge.Metrics{}
	f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, m)), filepath.Join(t.TempDir(), "f.json"))
	var out bytes.Buffer
	clock := steps(time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), time.Second)
	pl := &forge.ProgressLine{W: &out, Terminal: true, Metrics: m, Now: clock}
	f.OnProgress = pl.Report
	if _, err := f.Start(context.Background(), "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	pl.Finish()
	if m.Secondary.Load() != 2 {
		t.Fatalf("%d secondary waits, want 2", m.Secondary.Load())
	}
	screen := out.String()
	if !strings.HasSuffix(screen, "\n") || strings.Count(screen, "\n") != 1 {
		t.Errorf("want one line rewritten in place and ended once, got %q", tail(screen))
	}
	last := screen[strings.LastIndex(screen, "\r")+1:]
	if want := "[" + strings.Repeat("#", 24) + "] labelling 120/120 PRs, 2 waits for rate limits\x1b[K\n"; last != want {
		t.Errorf("final line %q, want %q", last, want)
	}
	for _, want := range []string{"listing open PRs: 100 so far", "listing open PRs: 120 so far", "blocking 60/120 PRs", "labelling 1/120 PRs"} {
		if !strings.Contains(screen, "\r"+want) && !strings.Contains(screen, "] "+want) {
			t.Errorf("screen never showed %q", want)
		}
	}
}

// steps is a clock that moves by d at each reading.
func steps(start time.Time, d time.Duration) func() time.Time {
	now := start
	return func() time.Time {
		now = now.Add(d)
		return now
	}
}

func tail(s string) string {
	if len(s) > 300 {
		return "…" + s[len(s)-300:]
	}
	return s
}

func TestProgressLineRendering(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	type call struct {
		at          time.Duration // since t0
		done, total int
		phase       string
	}
	bar := func(filled int) string {
		return "[" + strings.Repeat("#", filled) + strings.Repeat(" ", 24-filled) + "] "
	}
	for _, tc := range []struct {
		name     string
		terminal bool
		interval time.Duration
		waits    int64 // rate-limit waits counted before the calls
		calls    []call
		finish   bool
		want     string
	}{
		{
			name: "terminal: rewritten in place, throttled within a phase", terminal: true,
			calls: []call{
				{0, 0, 1000, forge.ProgressLabelling},
				{10 * time.Millisecond, 1, 1000, forge.ProgressLabelling}, // too soon: not drawn
				{200 * time.Millisecond, 412, 1000, forge.ProgressLabelling},
			},
			want: "\r" + bar(0) + "labelling 0/1000 PRs\x1b[K" +
				"\r" + bar(9) + "labelling 412/1000 PRs\x1b[K",
		},
		{
			name: "terminal: a new phase and the end are drawn at once", terminal: true, waits: 3,
			calls: []call{
				{0, 100, 0, forge.ProgressListing},
				{time.Millisecond, 0, 2, forge.ProgressBlocking},
				{2 * time.Millisecond, 1, 2, forge.ProgressBlocking},
				{3 * time.Millisecond, 2, 2, forge.ProgressBlocking},
			},
			finish: true,
			want: "\rlisting open PRs: 100 so far, 3 waits for rate limits\x1b[K" +
				"\r" + bar(0) + "blocking 0/2 PRs, 3 waits for rate limits\x1b[K" +
				"\r" + bar(24) + "blocking 2/2 PRs, 3 waits for rate limits\x1b[K\n",
		},
		{
			name: "terminal: one wait, and a phase with no PRs", terminal: true, waits: 1,
			calls: []call{{0, 0, 0, forge.ProgressUnblocking}},
			want:  "\runblocking: no PRs, 1 wait for rate limits\x1b[K",
		},
		{
			name: "terminal: finish with nothing drawn writes nothing", terminal: true, finish: true,
		},
		{
			name: "plain: nothing before the first interval", interval: time.Minute,
			calls: []call{
				{0, 0, 1000, forge.ProgressLabelling},
				{59 * time.Second, 500, 1000, forge.ProgressLabelling},
			},
			finish: true,
		},
		{
			name: "plain: a line per interval, no bar, no escapes", interval: time.Minute, waits: 2,
			calls: []call{
				{0, 0, 1000, forge.ProgressLabelling},
				{61 * time.Second, 60, 1000, forge.ProgressLabelling},
				{62 * time.Second, 61, 1000, forge.ProgressLabelling},
				{122 * time.Second, 120, 1000, forge.ProgressLabelling},
			},
			finish: true,
			want:   "labelling 60/1000 PRs, 2 waits for rate limits\nlabelling 120/1000 PRs, 2 waits for rate limits\n",
		},
		{
			name: "plain: the default interval is 30s",
			calls: []call{
				{0, 0, 10, forge.ProgressUnlabelling},
				{29 * time.Second, 5, 10, forge.ProgressUnlabelling},
				{30 * time.Second, 6, 10, forge.ProgressUnlabelling},
			},
			want: "unlabelling 6/10 PRs\n",
		},
		{
			name: "plain: a negative interval is silent", interval: -1,
			calls: []call{{0, 0, 10, forge.ProgressLabelling}, {time.Hour, 10, 10, forge.ProgressLabelling}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			m := &forge.Metrics{}
			m.Secondary.Add(tc.waits)
			m.Pacing.Add(50) // pacing is not a rate-limit wait
			var now time.Time
			pl := &forge.ProgressLine{W: &out, Terminal: tc.terminal, Metrics: m, Interval: tc.interval, Now: func() time.Time { return now }}
			for _, c := range tc.calls {
				now = t0.Add(c.at)
				pl.Report(c.done, c.total, c.phase)
			}
			if tc.finish {
				pl.Finish()
			}
			if got := out.String(); got != tc.want {
				t.Errorf("wrote\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
