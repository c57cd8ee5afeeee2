package forge

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// What a freeze is doing, as Freeze.OnProgress is told. While listing,
// total is 0 (GitHub does not say how many PRs there are) and done counts
// the PRs listed so far; in the other phases done goes from 0 to total,
// the PRs the phase goes through (including those a resumed run or a
// person's label lets it skip).
const (
	ProgressListing     = "listing"
	ProgressBlocking    = "blocking"
	ProgressLabelling   = "labelling"
	ProgressUnblocking  = "unblocking"
	ProgressUnlabelling = "unlabelling"
)

// DefaultProgressInterval is how often ProgressLine writes a plain line
// when not on a terminal: often enough to show a CI log that a freeze of a
// thousand PRs (over half an hour at GitHub's pace) is moving, rarely
// enough not to drown it.
const DefaultProgressInterval = 30 * time.Second

// progressRedraw is the least time between two redraws of the terminal
// line; more would only make it flicker.
const progressRedraw = 100 * time.Millisecond

// progressBarWidth is the width of the bar, in cells.
const progressBarWidth = 24

func (f *Freeze) progress(done, total int, phase string) {
	if f.OnProgress != nil {
		f.OnProgress(done, total, phase)
	}
}

// openAtLift counts the PRs the lift has listed so far.
func openAtLift(st FreezeState) int {
	n := 0
	for _, p := range st.PRs {
		if p.OpenAtLift {
			n++
		}
	}
	return n
}

// ProgressLine renders a freeze's progress for a person: on a terminal one
// line rewritten in place ("[#####   ] labelling 412/1000 PRs, 3 waits for
// rate limits"); elsewhere, such as a CI log, a plain line every Interval,
// so that a run shorter than Interval writes none. Its Report method is a
// Freeze.OnProgress. Safe for concurrent use.
type ProgressLine struct {
	W io.Writer
	// Terminal: W is a terminal, where a carriage return rewrites the line.
	Terminal bool
	// Metrics, when set, is the Transport's; its rate-limit waits (primary
	// and secondary, not pacing) are shown.
	Metrics *Metrics
	// Interval between plain lines; 0 means DefaultProgressInterval, a
	// negative one writes none.
	Interval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	// last is when a line was last written (or the first report, for
	// plain lines); phase the phase drawn then.
	last  time.Time
	phase string
	// drawn: a terminal line is on screen and has no newline yet.
	drawn bool
}

func (p *ProgressLine) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// Report is a Freeze.OnProgress.
func (p *ProgressLine) Report(done, total int, phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.Terminal {
		// A new phase and the end of one are always drawn: they are what a
		// glance at the screen should find.
		end := total > 0 && done == total
		if p.drawn && phase == p.phase && !end && now.Sub(p.last) < progressRedraw {
			return
		}
		fmt.Fprintf(p.W, "\r%s\x1b[K", p.text(done, total, phase, true))
		p.last, p.phase, p.drawn = now, phase, true
		return
	}
	interval := p.Interval
	if interval == 0 {
		interval = DefaultProgressInterval
	}
	switch {
	case interval < 0:
		return
	case p.last.IsZero():
		p.last = now
		return
	case now.Sub(p.last) < interval:
		return
	}
	fmt.Fprintln(p.W, p.text(done, total, phase, false))
	p.last, p.phase = now, phase
}

// Finish ends the terminal line, so that what is written next starts on a
// line of its own. It writes nothing otherwise.
func (p *ProgressLine) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Terminal && p.drawn {
		fmt.Fprintln(p.W)
		p.drawn = false
	}
}

// text is the line, with a bar in front when bar is set and the total is
// known.
func (p *ProgressLine) text(done, total int, phase string, bar bool) string {
	var b strings.Builder
	switch {
	case phase == ProgressListing:
		fmt.Fprintf(&b, "listing open PRs: %d so far", done)
	case total <= 0:
		fmt.Fprintf(&b, "%s: no PRs", phase)
	default:
		if bar {
			filled := min(max(progressBarWidth*done/total, 0), progressBarWidth)
			fmt.Fprintf(&b, "[%s%s] ", strings.Repeat("#", filled), strings.Repeat(" ", progressBarWidth-filled))
		}
		fmt.Fprintf(&b, "%s %d/%d PRs", phase, done, total)
	}
	if p.Metrics != nil {
		switch n := p.Metrics.Primary.Load() + p.Metrics.Secondary.Load(); n {
		case 0:
		case 1:
			b.WriteString(", 1 wait for rate limits")
		default:
			fmt.Fprintf(&b, ", %d waits for rate limits", n)
		}
	}
	return b.String()
}
