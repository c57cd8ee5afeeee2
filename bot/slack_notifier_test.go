package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/canarybot/canarybot/bot/slackfake"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// waitClock is a fake clock that records the waits asked of it.
type waitClock struct {
	*clock.Fake
	mu    sync.Mutex
	waits []time.Duration
}

func (c *waitClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return c.Fake.After(d)
}

func (c *waitClock) all() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

type fixture struct {
	t     *testing.T
	slack *slackfake.Server
	store *MemorySlackStore
	clock *waitClock
	plan  *rollout.Plan
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	plan := config.Default()
	return &fixture{t: t, slack: slackfake.New(t), store: &MemorySlackStore{}, clock: &waitClock{Fake: clock.NewFake(t0)}, plan: &plan}
}

func (f *fixture) notifier() *SlackNotifier {
	n := NewSlackNotifier(f.slack.Client(), f.store, f.plan)
	n.Logger = slog.New(slog.DiscardHandler)
	n.Outbox.Logger = n.Logger
	n.Outbox.Clock = f.clock
	return n
}

// engine drives the real rollout.Machine and hands its notifications to a
// notifier, so the texts the notifier reads are the engine's own.
type engine struct {
	t   *testing.T
	m   *rollout.Machine
	r   *rollout.Release
	n   rollout.Notifier
	now time.Time
	// notified are the events handed over, by key.
	notified []keyedEvent
}

type keyedEvent struct {
	key string
	ev  rollout.Event
}

func newEngine(t *testing.T, f *fixture, n *SlackNotifier) *engine {
	e := &engine{t: t, m: &rollout.Machine{Plan: f.plan, Render: report.Renderer{}}, n: n, now: t0}
	e.r = e.m.New("rel-1", "v1.4.0", "alice", time.Time{}, e.now)
	e.flush()
	return e
}

func (e *engine) flush() {
	e.t.Helper()
	for _, ef := range e.r.Pending {
		if ef.Kind != rollout.EffectNotify {
			continue
		}
		e.notified = append(e.notified, keyedEvent{ef.Key, *ef.Event})
		if err := e.n.Notify(context.Background(), ef.Key, *ef.Event); err != nil {
			e.t.Fatalf("Notify(%s %s): %v", ef.Key, ef.Event.Kind, err)
		}
	}
	e.r.Pending = nil
}

func (e *engine) step(name rollout.StepName, res rollout.GateResult) {
	e.now = e.now.Add(time.Minute)
	e.m.StepDone(e.r, name, res, e.now)
	e.due()
	e.flush()
}

// due announces a person's step once its time has come, as rollout.Runner
// does; without a T-0 that is as soon as the release reaches it.
func (e *engine) due() {
	if w := e.m.Next(e.r); w.Kind == rollout.WaitCommand && !e.now.Before(w.At) {
		e.m.Due(e.r, w.Step, w.Why, e.now)
	}
}

func (e *engine) apply(c rollout.Command) {
	e.t.Helper()
	e.now = e.now.Add(10 * time.Second)
	c.At = e.now
	if err := e.m.Apply(e.r, c, e.now); err != nil {
		e.t.Fatalf("Apply(%s): %v", c.Kind, err)
	}
	e.flush()
}

// toStages runs the timeline to stage 1: review, green button, GO.
func (e *engine) toStages() {
	for _, s := range []rollout.StepName{rollout.StepFreeze, rollout.StepWarRoom, rollout.StepPreflight, rollout.StepBlast} {
		e.step(s, rollout.GateResult{Status: rollout.GateSkipped, Detail: "not configured"})
	}
	e.apply(rollout.Command{Kind: rollout.CmdReview, User: "bob", Reason: "15/15 review items ticked"})
	e.step(rollout.StepRedTeam, rollout.GateResult{Status: rollout.GatePassed})
	e.step(rollout.StepGreenButton, rollout.GateResult{Status: rollout.GatePassed, Detail: "7/7 evidence files"})
	e.apply(rollout.Command{Kind: rollout.CmdGo, User: "alice"})
	e.step(rollout.StepGoNoGo, rollout.GateResult{Status: rollout.GatePassed})
}

// tick reads every signal at half its bound, except those in over, which
// read twice their bound.
func (e *engine) tick(scale map[string]float64) rollout.Decision {
	e.now = e.now.Add(e.m.Plan.Tick)
	var rds []rollout.Reading
	for _, s := range e.m.Plan.Signals {
		rd := rollout.Reading{Signal: s.Name, At: e.now, Value: s.Threshold / 2}
		if s.Relative {
			rd.Value, rd.Baseline = 0.01, 0.01
		}
		if k, ok := scale[s.Name]; ok {
			rd.Value = s.Threshold * k
		}
		rds = append(rds, rd)
	}
	d := e.m.Tick(e.r, rds, nil, nil, e.now)
	e.flush()
	return d
}

func (e *engine) trigger(name string) {
	e.now = e.now.Add(e.m.Plan.Tick)
	var rds []rollout.Reading
	for _, s := range e.m.Plan.Signals {
		rds = append(rds, rollout.Reading{Signal: s.Name, At: e.now, Value: s.Threshold / 2, Baseline: 1})
	}
	alerts := []rollout.Alert{{Name: name, Labels: map[string]string{"auto_rollback": "true"}, Summary: "WS feed down", Since: e.now.Add(-time.Minute)}}
	e.m.Tick(e.r, rds, alerts, nil, e.now)
	e.flush()
}

// channel groups what the fake Slack shows: top-level messages and each
// one's thread.
type channel struct {
	top     []slackfake.Message
	threads map[string][]slackfake.Message
}

func showChannel(s *slackfake.Server) channel {
	c := channel{threads: map[string][]slackfake.Message{}}
	for _, m := range s.Messages() {
		if m.ThreadTS == "" {
			c.top = append(c.top, m)
		} else {
			c.threads[m.ThreadTS] = append(c.threads[m.ThreadTS], m)
		}
	}
	return c
}

func (c channel) withHeader(t *testing.T, prefix string) []slackfake.Message {
	t.Helper()
	var out []slackfake.Message
	for _, m := range c.top {
		if texts := blockTexts(t, m.Blocks); len(texts) > 0 && strings.HasPrefix(texts[0], prefix) {
			out = append(out, m)
		}
	}
	return out
}

// blockTexts returns the text of every block of a message, in order.
func blockTexts(t *testing.T, raw string) []string {
	t.Helper()
	if raw == "" {
		return nil
	}
	var blocks []struct {
		Text     *struct{ Text string } `json:"text"`
		Elements []struct {
			Text    json.RawMessage `json:"text"`
			Options []struct {
				Text struct{ Text string } `json:"text"`
			} `json:"options"`
		} `json:"elements"`
	}
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		t.Fatalf("blocks are not JSON: %v\n%s", err, raw)
	}
	var out []string
	for _, b := range blocks {
		if b.Text != nil {
			out = append(out, b.Text.Text)
		}
		for _, e := range b.Elements {
			var s string
			var obj struct{ Text string }
			if json.Unmarshal(e.Text, &s) == nil && s != "" {
				out = append(out, s)
			} else if json.Unmarshal(e.Text, &obj) == nil && obj.Text != "" {
				out = append(out, obj.Text)
			}
			for _, o := range e.Options {
				out = append(out, o.Text.Text)
			}
		}
	}
	return out
}

type blockElem struct {
	InitialOptions []struct {
		Value string `json:"value"`
	} `json:"initial_options"`
	Type     string          `json:"type"`
	ActionID string          `json:"action_id"`
	Value    string          `json:"value"`
	Confirm  json.RawMessage `json:"confirm"`
	Options  []struct {
		Value       string `json:"value"`
		Text        struct{ Text string }
		Description *struct{ Text string }
	} `json:"options"`
}

type block struct {
	Type     string      `json:"type"`
	BlockID  string      `json:"block_id"`
	Elements []blockElem `json:"elements"`
	Text     *struct {
		Text string `json:"text"`
	} `json:"text"`
}

func parseBlocks(t *testing.T, raw string) []block {
	t.Helper()
	var bs []block
	if err := json.Unmarshal([]byte(raw), &bs); err != nil {
		t.Fatalf("blocks: %v\n%s", err, raw)
	}
	return bs
}

func actionIDs(t *testing.T, raw string) []string {
	var ids []string
	for _, b := range parseBlocks(t, raw) {
		for _, e := range b.Elements {
			if e.ActionID != "" {
				ids = append(ids, e.ActionID)
			}
		}
	}
	return ids
}

func TestSlackNotifierRelease(t *testing.T) {
	f := newFixture(t)
	n := f.notifier()
	n.Buttons = true
	e := newEngine(t, f, n)
	e.toStages()
	for range 3 {
		e.tick(nil)
	}
	e.apply(rollout.Command{Kind: rollout.CmdHold, User: "alice", Reason: "waiting for pgbouncer"})
	e.apply(rollout.Command{Kind: rollout.CmdResume, User: "alice"})
	for e.tick(nil).Kind != rollout.Proceed {
	}
	e.apply(rollout.Command{Kind: rollout.CmdPromote, User: "alice"})
	e.tick(nil)
	e.tick(map[string]float64{"api_p95": 0.9})
	e.tick(map[string]float64{"api_p95": 2}) // breach: automatic rollback
	if e.r.Phase != rollout.PhaseRolledBack {
		t.Fatalf("phase %s, want rolled back", e.r.Phase)
	}

	c := showChannel(f.slack)
	stage1 := c.withHeader(t, "v1.4.0 · stage 1/5")
	stage2 := c.withHeader(t, "v1.4.0 · stage 2/5")
	if len(stage1) != 1 || len(stage2) != 1 {
		t.Fatalf("stage messages: %d for stage 1, %d for stage 2; want one each", len(stage1), len(stage2))
	}
	rows1, rows2 := 0, 0
	for _, r := range e.r.Rows {
		if r.Stage == 1 {
			rows1++
		} else {
			rows2++
		}
	}
	// Every tick edits its stage's message in place; so do the stage's
	// close (promoted / rolled back).
	if got, want := stage1[0].Edits, rows1+1; got != want {
		t.Errorf("stage 1 message edited %d times, want %d (%d ticks + close)", got, want, rows1)
	}
	if got, want := stage2[0].Edits, rows2+1; got != want {
		t.Errorf("stage 2 message edited %d times, want %d (%d ticks + close)", got, want, rows2)
	}
	last1 := strings.Join(blockTexts(t, stage1[0].Blocks), "\n")
	// A dwell's worth of ticks does not fit Slack's section: the earliest
	// are counted in a note, the rest shown.
	var dropped int
	if _, after, ok := strings.Cut(last1, "… "); ok {
		fmt.Sscan(after, &dropped)
	}
	if shown := strings.Count(last1, "Continue") + strings.Count(last1, "Proceed") + strings.Count(last1, "Hold"); dropped == 0 || shown+dropped < rows1 {
		t.Errorf("stage 1 table shows %d ticks and notes %d dropped; the stage had %d", shown, dropped, rows1)
	}
	if latest := e.r.Rows[rows1-1].At.Format("15:04"); !strings.Contains(last1, latest) {
		t.Errorf("stage 1 table lacks the latest tick %s", latest)
	}
	for _, want := range []string{"p95", "ws_stale", "risk", "gc", "100ms✓", "Promoted to stage 2"} {
		if !strings.Contains(last1, want) {
			t.Errorf("stage 1 message lacks %q:\n%s", want, last1)
		}
	}
	if ids := actionIDs(t, stage1[0].Blocks); len(ids) != 0 {
		t.Errorf("closed stage 1 still has buttons %v", ids)
	}
	last2 := strings.Join(blockTexts(t, stage2[0].Blocks), "\n")
	for _, want := range []string{"400ms✗", "Rollback", "breach"} {
		if !strings.Contains(last2, want) {
			t.Errorf("stage 2 message lacks %q:\n%s", want, last2)
		}
	}

	thread1, thread2 := c.threads[stage1[0].TS], c.threads[stage2[0].TS]
	want := []struct {
		thread    []slackfake.Message
		prefix    string
		broadcast bool
	}{
		{thread1, ":speech_balloon: alice: `hold", false},
		{thread1, ":double_vertical_bar: HOLD: held by alice", true},
		{thread1, ":pager: Proceed ✅ stage 1", false},
		{thread2, ":rotating_light: ROLLBACK by canarybot (auto)", true},
		{thread2, ":checkered_flag: ", true},
	}
	for _, w := range want {
		var found []slackfake.Message
		for _, m := range w.thread {
			if strings.HasPrefix(m.Text, w.prefix) {
				found = append(found, m)
			}
		}
		if len(found) != 1 {
			t.Errorf("thread posts starting %q: %d, want 1", w.prefix, len(found))
			continue
		}
		if found[0].Broadcast != w.broadcast {
			t.Errorf("%q broadcast = %v, want %v", w.prefix, found[0].Broadcast, w.broadcast)
		}
	}

	// The same events again, as after a restart before the engine saved:
	// nothing is sent.
	before := len(f.slack.Calls())
	for _, ke := range e.notified {
		if err := f.notifier().Notify(context.Background(), ke.key, ke.ev); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(f.slack.Calls()); got != before {
		t.Errorf("repeated keys sent %d more calls, want none", got-before)
	}
}

func TestSlackNotifierGoNoGo(t *testing.T) {
	f := newFixture(t)
	n := f.notifier()
	n.Buttons = true
	e := newEngine(t, f, n)
	c := showChannel(f.slack)
	if len(c.top) != 1 || !strings.Contains(c.top[0].Text, "scheduled") {
		t.Fatalf("opening: %+v, want one message announcing the release", c.top)
	}
	opening := c.top[0].TS
	for _, s := range []rollout.StepName{rollout.StepFreeze, rollout.StepWarRoom, rollout.StepPreflight} {
		e.step(s, rollout.GateResult{Status: rollout.GateSkipped, Detail: "not configured"})
	}
	if got := showChannel(f.slack).withHeader(t, "v1.4.0 · red-team review"); len(got) != 0 {
		t.Fatalf("checklist posted before the release reached the review")
	}
	e.step(rollout.StepBlast, rollout.GateResult{Status: rollout.GatePassed, Detail: "30/30 HTTP, 30/30 WS"})

	c = showChannel(f.slack)
	if got := len(c.threads[opening]); got != 4 {
		t.Errorf("timeline announcements in the opening's thread: %d, want 4", got)
	}
	review := c.withHeader(t, "v1.4.0 · red-team review")
	if len(review) != 1 {
		t.Fatalf("red-team checklists: %d, want 1", len(review))
	}
	var ticked []string
	groups := 0
	for _, b := range parseBlocks(t, review[0].Blocks) {
		for _, el := range b.Elements {
			if el.ActionID != ActionReviewItems {
				continue
			}
			groups++
			if el.Type != "checkboxes" || len(el.Options) > maxCheckboxOptions {
				t.Errorf("checklist group %s: type %s with %d options, want checkboxes with at most %d", b.BlockID, el.Type, len(el.Options), maxCheckboxOptions)
			}
			for _, o := range el.Options {
				ticked = append(ticked, o.Value)
				if len([]rune(o.Text.Text)) > maxOptionChars || o.Description == nil || len([]rune(o.Description.Text)) > maxOptionChars {
					t.Errorf("option %s: text or description missing or over %d characters", o.Value, maxOptionChars)
				}
			}
		}
	}
	if len(ticked) != 15 || groups != 2 {
		t.Errorf("checklist: %d items in %d groups, want 15 in 2", len(ticked), groups)
	}
	if ids := actionIDs(t, review[0].Blocks); !strings.Contains(fmt.Sprint(ids), ActionReviewDone) {
		t.Errorf("checklist actions %v lack %s", ids, ActionReviewDone)
	}
	if got := showChannel(f.slack).withHeader(t, "v1.4.0 · GO / NO-GO"); len(got) != 0 {
		t.Fatalf("go/no-go posted before the green button")
	}

	// Checkboxes are each viewer's own in Slack: the notifier shares them.
	ctx := context.Background()
	if _, err := n.RecordReviewTicks(ctx, "rel-1", "bob", []string{"RT01", "RT02"}); err != nil {
		t.Fatal(err)
	}
	note, err := n.RecordReviewTicks(ctx, "rel-1", "carol", []string{"RT01", "RT02", "RT12", "nonsense"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(note, "3/15 review items ticked; not ticked: RT03 ") {
		t.Errorf("note = %q", note)
	}
	review = showChannel(f.slack).withHeader(t, "v1.4.0 · red-team review")
	var initial []string
	for _, b := range parseBlocks(t, review[0].Blocks) {
		for _, el := range b.Elements {
			for _, o := range el.InitialOptions {
				initial = append(initial, o.Value)
			}
		}
	}
	if fmt.Sprint(initial) != "[RT01 RT02 RT12]" {
		t.Errorf("checklist shows %v ticked to everyone, want [RT01 RT02 RT12]", initial)
	}
	if text := strings.Join(blockTexts(t, review[0].Blocks), "\n"); !strings.Contains(text, "3/15 ticked, by bob, carol") {
		t.Errorf("checklist does not say who ticked:\n%s", text)
	}
	if _, err := n.RecordReviewTicks(ctx, "rel-2", "bob", nil); !errors.Is(err, ErrNoReview) {
		t.Errorf("ticks for a release without a checklist: %v, want ErrNoReview", err)
	}

	e.apply(rollout.Command{Kind: rollout.CmdReview, User: "bob", Reason: ReviewNote(DefaultRedTeamReview(), ticked[:14])})
	e.step(rollout.StepRedTeam, rollout.GateResult{Status: rollout.GatePassed})
	e.step(rollout.StepGreenButton, rollout.GateResult{Status: rollout.GateSkipped, Detail: "not configured"})

	c = showChannel(f.slack)
	review = c.withHeader(t, "v1.4.0 · red-team review")
	rtext := strings.Join(blockTexts(t, review[0].Blocks), "\n")
	if !strings.Contains(rtext, "Review recorded") || !strings.Contains(rtext, "by bob") || !strings.Contains(rtext, "14/15 review items ticked; not ticked: RT15") {
		t.Errorf("recorded checklist:\n%s", rtext)
	}
	if ids := actionIDs(t, review[0].Blocks); len(ids) != 0 {
		t.Errorf("recorded checklist still has actions %v", ids)
	}
	gng := c.withHeader(t, "v1.4.0 · GO / NO-GO")
	if len(gng) != 1 {
		t.Fatalf("go/no-go messages: %d, want 1", len(gng))
	}
	gtext := strings.Join(blockTexts(t, gng[0].Blocks), "\n")
	for _, want := range []string{"Green button (T-2):* ⏭️ skipped — not configured", "Skipped is not passed", "*blast*: passed — 30/30 HTTP, 30/30 WS", "(alice)"} {
		if !strings.Contains(gtext, want) {
			t.Errorf("go/no-go message lacks %q:\n%s", want, gtext)
		}
	}
	if ids := fmt.Sprint(actionIDs(t, gng[0].Blocks)); ids != fmt.Sprint([]string{ActionGo, ActionNoGo}) {
		t.Errorf("go/no-go buttons %s", ids)
	}
	for _, b := range parseBlocks(t, gng[0].Blocks) {
		for _, el := range b.Elements {
			if el.ActionID == "" {
				continue
			}
			if rel, stage, err := ParseActionValue(el.Value); err != nil || rel != "rel-1" || stage != 0 || len(el.Confirm) == 0 {
				t.Errorf("%s: value %q (%v), confirm %s", el.ActionID, el.Value, err, el.Confirm)
			}
		}
	}

	t.Run("GO", func(t *testing.T) {
		e.apply(rollout.Command{Kind: rollout.CmdGo, User: "alice"})
		e.step(rollout.StepGoNoGo, rollout.GateResult{Status: rollout.GatePassed})
		gng := showChannel(f.slack).withHeader(t, "v1.4.0 · GO / NO-GO")
		text := strings.Join(blockTexts(t, gng[0].Blocks), "\n")
		if !strings.Contains(text, "GO ✅ at 10:") || !strings.Contains(text, "by alice") {
			t.Errorf("after GO:\n%s", text)
		}
		if ids := actionIDs(t, gng[0].Blocks); len(ids) != 0 {
			t.Errorf("decided go/no-go still has buttons %v", ids)
		}
		if len(showChannel(f.slack).withHeader(t, "v1.4.0 · stage 1/5")) != 1 {
			t.Errorf("stage 1 message missing after GO")
		}
	})
}

func TestSlackNotifierNoGo(t *testing.T) {
	f := newFixture(t)
	n := f.notifier()
	n.Buttons = true
	e := newEngine(t, f, n)
	for _, s := range []rollout.StepName{rollout.StepFreeze, rollout.StepWarRoom, rollout.StepPreflight, rollout.StepBlast} {
		e.step(s, rollout.GateResult{Status: rollout.GateSkipped})
	}
	e.apply(rollout.Command{Kind: rollout.CmdReview, User: "bob"})
	e.step(rollout.StepRedTeam, rollout.GateResult{Status: rollout.GatePassed})
	e.step(rollout.StepGreenButton, rollout.GateResult{Status: rollout.GateFailed, Detail: "SBOM drift: GPL-3.0 introduced"})
	if e.r.Phase != rollout.PhaseAborted {
		t.Fatalf("phase %s, want aborted", e.r.Phase)
	}
	c := showChannel(f.slack)
	if got := c.withHeader(t, "v1.4.0 · GO / NO-GO"); len(got) != 0 {
		t.Errorf("go/no-go posted for a failed green button: the engine aborted")
	}
	var broadcast []string
	for _, th := range c.threads {
		for _, m := range th {
			if m.Broadcast {
				broadcast = append(broadcast, m.Text)
			}
		}
	}
	if !strings.Contains(strings.Join(broadcast, "\n"), "Release aborted: NO-GO: green_button failed") {
		t.Errorf("the abort is not announced in the channel: %q", broadcast)
	}

	// NO-GO by the IC at go/no-go closes the message with the reason.
	f = newFixture(t)
	n = f.notifier()
	n.Buttons = true
	e = newEngine(t, f, n)
	for _, s := range []rollout.StepName{rollout.StepFreeze, rollout.StepWarRoom, rollout.StepPreflight, rollout.StepBlast} {
		e.step(s, rollout.GateResult{Status: rollout.GateSkipped})
	}
	e.apply(rollout.Command{Kind: rollout.CmdReview, User: "bob"})
	e.step(rollout.StepRedTeam, rollout.GateResult{Status: rollout.GatePassed})
	e.step(rollout.StepGreenButton, rollout.GateResult{Status: rollout.GatePassed})
	e.apply(rollout.Command{Kind: rollout.CmdAbort, User: "alice", Reason: "pgbouncer not ready"})
	gng := showChannel(f.slack).withHeader(t, "v1.4.0 · GO / NO-GO")
	if len(gng) != 1 {
		t.Fatalf("go/no-go messages: %d", len(gng))
	}
	text := strings.Join(blockTexts(t, gng[0].Blocks), "\n")
	if !strings.Contains(text, "NO-GO ⛔") || !strings.Contains(text, "by alice") || !strings.Contains(text, "pgbouncer not ready") {
		t.Errorf("after NO-GO:\n%s", text)
	}
}

// TestSlackNotifierGateActors: the checklist and the go/no-go message say
// who recorded the review and who decided, from the engine's command
// events, whatever handovers and refused commands come in between; and a
// release that ends before the stages closes what is still open.
func TestSlackNotifierGateActors(t *testing.T) {
	cmd := func(kind rollout.CommandKind, user string) rollout.Command {
		return rollout.Command{Kind: kind, User: user}
	}
	handover := func(from, to string) rollout.Command {
		return rollout.Command{Kind: rollout.CmdHandover, User: from, Target: to}
	}
	withReason := func(c rollout.Command, why string) rollout.Command { c.Reason = why; return c }
	review := cmd(rollout.CmdReview, "bob")
	tests := []struct {
		name           string
		atReview, atGo []rollout.Command
		// wantReview and wantGoNoGo are in the closed messages; no
		// wantGoNoGo means no go/no-go message at all.
		wantReview, wantGoNoGo []string
	}{
		{name: "handover before the review", atReview: []rollout.Command{handover("alice", "carol"), review}, atGo: []rollout.Command{cmd(rollout.CmdGo, "carol")},
			wantReview: []string{"Review recorded", "by bob"}, wantGoNoGo: []string{"GO ✅", "by carol"}},
		{name: "handover after the review", atReview: []rollout.Command{review, handover("alice", "carol")}, atGo: []rollout.Command{handover("carol", "dave"), cmd(rollout.CmdGo, "dave")},
			wantReview: []string{"by bob"}, wantGoNoGo: []string{"GO ✅", "by dave"}},
		{name: "refused commands do not count", atReview: []rollout.Command{review, cmd(rollout.CmdPromote, "mallory"), cmd(rollout.CmdReview, "mallory")},
			atGo:       []rollout.Command{cmd(rollout.CmdGo, "mallory"), cmd(rollout.CmdGo, "alice"), cmd(rollout.CmdHold, "mallory")},
			wantReview: []string{"by bob"}, wantGoNoGo: []string{"GO ✅", "by alice"}},
		{name: "NO-GO after GO", atReview: []rollout.Command{review}, atGo: []rollout.Command{cmd(rollout.CmdGo, "alice"), withReason(cmd(rollout.CmdAbort, "alice"), "pgbouncer not ready")},
			wantReview: []string{"by bob"}, wantGoNoGo: []string{"NO-GO ⛔", "by alice", "pgbouncer not ready"}},
		{name: "rollback at go/no-go", atReview: []rollout.Command{review}, atGo: []rollout.Command{withReason(cmd(rollout.CmdRollback, "alice"), "wrong image tag")},
			wantReview: []string{"by bob"}, wantGoNoGo: []string{"Closed at", "rolled_back", "wrong image tag"}},
		{name: "aborted at the review", atReview: []rollout.Command{withReason(cmd(rollout.CmdAbort, "alice"), "not ready")},
			wantReview: []string{"Closed unrecorded", "aborted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			n := f.notifier()
			n.Buttons = true
			e := newEngine(t, f, n)
			give := func(cmds []rollout.Command) {
				for _, c := range cmds {
					e.now = e.now.Add(10 * time.Second)
					// Refusals are part of the story: they change nothing.
					if err := e.m.Apply(e.r, c, e.now); err != nil && !errors.As(err, new(*rollout.RefusedError)) {
						t.Fatalf("Apply(%s): %v", c.Kind, err)
					}
					e.flush()
				}
			}
			for _, s := range []rollout.StepName{rollout.StepFreeze, rollout.StepWarRoom, rollout.StepPreflight, rollout.StepBlast} {
				e.step(s, rollout.GateResult{Status: rollout.GateSkipped})
			}
			give(tt.atReview)
			e.step(rollout.StepRedTeam, rollout.GateResult{Status: rollout.GatePassed})
			e.step(rollout.StepGreenButton, rollout.GateResult{Status: rollout.GatePassed})
			give(tt.atGo)
			e.step(rollout.StepGoNoGo, rollout.GateResult{Status: rollout.GatePassed})

			c := showChannel(f.slack)
			for header, want := range map[string][]string{"v1.4.0 · red-team review": tt.wantReview, "v1.4.0 · GO / NO-GO": tt.wantGoNoGo} {
				msgs := c.withHeader(t, header)
				if len(want) == 0 {
					if len(msgs) != 0 {
						t.Errorf("%s posted; the release never got there", header)
					}
					continue
				}
				if len(msgs) != 1 {
					t.Fatalf("%s messages: %d, want 1", header, len(msgs))
				}
				text := strings.Join(blockTexts(t, msgs[0].Blocks), "\n")
				for _, w := range want {
					if !strings.Contains(text, w) {
						t.Errorf("%s lacks %q:\n%s", header, w, text)
					}
				}
				if ids := actionIDs(t, msgs[0].Blocks); len(ids) != 0 {
					t.Errorf("%s still has buttons %v", header, ids)
				}
			}
		})
	}
}

func TestSlackNotifierTriggerAlert(t *testing.T) {
	f := newFixture(t)
	e := newEngine(t, f, f.notifier())
	e.toStages()
	e.tick(nil)
	e.trigger("WSFeedDown")
	c := showChannel(f.slack)
	stage1 := c.withHeader(t, "v1.4.0 · stage 1/5")
	if len(stage1) != 1 {
		t.Fatalf("stage 1 messages: %d", len(stage1))
	}
	var alert, rollback *slackfake.Message
	for _, m := range c.threads[stage1[0].TS] {
		switch {
		case strings.HasPrefix(m.Text, ":rotating_light: Trigger firing: *WSFeedDown* — WS feed down"):
			alert = &m
		case strings.HasPrefix(m.Text, ":rotating_light: ROLLBACK"):
			rollback = &m
		}
	}
	if alert == nil || !alert.Broadcast {
		t.Errorf("trigger alert not announced in the thread and the channel: %+v", alert)
	}
	if rollback == nil || !rollback.Broadcast || !strings.Contains(rollback.Text, "trigger firing: WSFeedDown") {
		t.Errorf("rollback announcement: %+v", rollback)
	}
}

type nopNotifier struct{}

func (nopNotifier) Notify(context.Context, string, rollout.Event) error { return nil }

func TestSlackNotifierRowBeforeItsStage(t *testing.T) {
	// The engine set the stage announcement aside while the notifier
	// failed, and delivers it after the first row.
	f := newFixture(t)
	n := f.notifier()
	e := newEngine(t, f, n)
	e.n = nopNotifier{} // replayed below in another order
	e.toStages()
	e.tick(nil)
	e.tick(nil)
	var stage, rows []keyedEvent
	for _, ke := range e.notified {
		switch ke.ev.Kind {
		case rollout.EventStage:
			stage = append(stage, ke)
		case rollout.EventRow:
			rows = append(rows, ke)
		}
	}
	for _, ke := range []keyedEvent{rows[0], stage[0], rows[1]} {
		if err := n.Notify(context.Background(), ke.key, ke.ev); err != nil {
			t.Fatal(err)
		}
	}
	msgs := showChannel(f.slack).withHeader(t, "v1.4.0 · stage 1/5")
	if len(msgs) != 1 || msgs[0].Edits != 2 {
		t.Fatalf("stage 1: %d messages, want 1 posted once and edited twice: %+v", len(msgs), msgs)
	}
	text := strings.Join(blockTexts(t, msgs[0].Blocks), "\n")
	if !strings.Contains(text, "Stage 1/5: canary weight 1%") || !strings.Contains(text, "\n"+rows[0].ev.At.Format("15:04")+" ") || !strings.Contains(text, "\n"+rows[1].ev.At.Format("15:04")+" ") {
		t.Errorf("stage 1 message lacks its intro or a row:\n%s", text)
	}
}

// TestSlackNotifierFaultsMidStage makes Slack fail in the middle of a
// stage in every way the outbox must survive, then checks the channel:
// each message exactly once, the table complete, and the waits Slack asked
// for honoured.
func TestSlackNotifierFaultsMidStage(t *testing.T) {
	tests := []struct {
		name   string
		method string
		faults []slackfake.Fault
		// wantWaits are the retry waits, in order.
		wantWaits []time.Duration
		timeout   time.Duration
	}{
		{name: "429 on update", method: "chat.update", faults: []slackfake.Fault{slackfake.RateLimited("7")}, wantWaits: []time.Duration{7 * time.Second}},
		{name: "429 twice on post", method: "chat.postMessage", faults: []slackfake.Fault{slackfake.RateLimited("3"), slackfake.RateLimited("5")}, wantWaits: []time.Duration{3 * time.Second, 5 * time.Second}},
		{name: "500 on update backs off", method: "chat.update", faults: []slackfake.Fault{slackfake.ServerError(), slackfake.ServerError(), slackfake.ServerError()},
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
		{name: "500 after Slack posted", method: "chat.postMessage", faults: []slackfake.Fault{slackfake.AcceptedThen500()}, wantWaits: []time.Duration{time.Second}},
		{name: "connection dropped after Slack posted", method: "chat.postMessage", faults: []slackfake.Fault{slackfake.AcceptedThenDropped()}, wantWaits: []time.Duration{time.Second}},
		{name: "timeout after Slack posted", method: "chat.postMessage", faults: []slackfake.Fault{slackfake.AcceptedThenTimeout()}, wantWaits: []time.Duration{time.Second}, timeout: 100 * time.Millisecond},
		{name: "timeout on update", method: "chat.update", faults: []slackfake.Fault{slackfake.AcceptedThenTimeout()}, wantWaits: []time.Duration{time.Second}, timeout: 100 * time.Millisecond},
		{name: "internal_error", method: "chat.postMessage", faults: []slackfake.Fault{slackfake.SlackError("internal_error")}, wantWaits: []time.Duration{time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			n := f.notifier()
			if tt.timeout > 0 {
				n.Outbox.CallTimeout = tt.timeout
			}
			e := newEngine(t, f, n)
			e.toStages()
			e.tick(nil)
			e.tick(nil)
			f.slack.Fail(tt.method, tt.faults...)
			// The fault hits the next call of its kind: a thread post
			// for the hold (chat.postMessage) or a tick (chat.update).
			e.apply(rollout.Command{Kind: rollout.CmdHold, User: "alice", Reason: "look at the dashboards"})
			for range 4 {
				e.tick(nil)
			}
			if err := n.Outbox.Drain(context.Background()); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			if got := f.clock.all(); fmt.Sprint(got) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tt.wantWaits)
			}
			refs := map[string]int{}
			for _, m := range f.slack.Messages() {
				var md struct {
					EventPayload struct{ Ref string } `json:"event_payload"`
				}
				if err := json.Unmarshal([]byte(m.Metadata), &md); err != nil || md.EventPayload.Ref == "" {
					t.Errorf("message %s %q has no outbox ref in its metadata", m.TS, m.Text)
				}
				refs[md.EventPayload.Ref]++
			}
			for ref, count := range refs {
				if count != 1 {
					t.Errorf("message %s posted %d times", ref, count)
				}
			}
			// Everything the engine said is in the channel. The review's
			// due announcement is the checklist itself.
			posts := 0
			for _, ke := range e.notified {
				due := ke.ev.Kind == rollout.EventDue && ke.ev.Step == rollout.StepRedTeam
				if ke.ev.Kind != rollout.EventRow && ke.ev.Kind != rollout.EventStage && !due {
					posts++
				}
			}
			posts += 3 // the checklist, the go/no-go message, the stage message
			if len(refs) != posts {
				t.Errorf("messages in the channel: %d, want %d", len(refs), posts)
			}
			stage1 := showChannel(f.slack).withHeader(t, "v1.4.0 · stage 1/5")
			if len(stage1) != 1 {
				t.Fatalf("stage 1 messages: %d", len(stage1))
			}
			text := strings.Join(blockTexts(t, stage1[0].Blocks), "\n")
			for _, r := range e.r.Rows {
				if !strings.Contains(text, r.At.Format("15:04")) {
					t.Errorf("stage table lacks the %s tick:\n%s", r.At.Format("15:04:05"), text)
				}
			}
			if pending, _ := f.store.Pending(context.Background()); len(pending) != 0 {
				t.Errorf("%d messages left in the outbox", len(pending))
			}
		})
	}
}

func TestOutboxDeadAndTextOnly(t *testing.T) {
	f := newFixture(t)
	n := f.notifier()
	ctx := context.Background()
	f.slack.Fail("chat.postMessage", slackfake.SlackError("invalid_blocks"))
	msgs := []OutboxMessage{
		{Key: "k1", Op: OutboxUpsert, Ref: "r1", Channel: "#spark-warroom", Text: "table", Blocks: json.RawMessage(`[{"type":"divider"}]`)},
		{Key: "k2", Op: OutboxPost, Channel: "#nowhere", Text: "lost?"},
		{Key: "k3", Op: OutboxPost, Channel: "#spark-warroom", Text: "after the dead one"},
		{Key: "k3", Op: OutboxPost, Channel: "#spark-warroom", Text: "same key again"},
	}
	if err := n.Outbox.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := n.Outbox.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range f.slack.Messages() {
		texts = append(texts, m.Text)
		if m.Text == "table" && m.Blocks != "" {
			t.Errorf("blocks Slack refused were sent again")
		}
	}
	if fmt.Sprint(texts) != fmt.Sprint([]string{"table", "after the dead one"}) {
		t.Errorf("channel shows %q", texts)
	}
	dead, _ := f.store.Dead(ctx)
	if len(dead) != 1 || dead[0].Key != "k2" || !strings.Contains(dead[0].LastError, "channel_not_found") {
		t.Errorf("dead = %+v, want k2 with channel_not_found", dead)
	}

	bad := []OutboxMessage{{Op: OutboxPost, Channel: "C1"}, {Key: "x", Op: "send", Channel: "C1"}, {Key: "x", Op: OutboxUpsert, Channel: "C1"}, {Key: "x", Op: OutboxPost}}
	for _, m := range bad {
		if err := n.Outbox.Enqueue(ctx, m); err == nil {
			t.Errorf("Enqueue(%+v) accepted", m)
		}
	}
}

func TestOutboxMessageDeletedIsPostedAgain(t *testing.T) {
	f := newFixture(t)
	n := f.notifier()
	ctx := context.Background()
	up := func(key, text string) {
		if err := n.Outbox.Enqueue(ctx, OutboxMessage{Key: key, Op: OutboxUpsert, Ref: "r", Channel: slackfake.ChannelID, Text: text}); err != nil {
			t.Fatal(err)
		}
		if err := n.Outbox.Drain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	up("1", "v1")
	f.slack.Fail("chat.update", slackfake.SlackError("message_not_found"))
	up("2", "v2")
	up("3", "v3")
	msgs := f.slack.Messages()
	if len(msgs) != 2 || msgs[1].Text != "v3" || msgs[1].Edits != 1 {
		t.Errorf("messages %+v: want the deleted one posted again and then edited", msgs)
	}
}

func TestNotifierNeedsStore(t *testing.T) {
	if err := (&SlackNotifier{}).Notify(context.Background(), "rel-1/1", rollout.Event{}); !errors.Is(err, ErrSlackStoreMissing) {
		t.Errorf("err = %v, want ErrSlackStoreMissing", err)
	}
}

func TestStageMessageLimits(t *testing.T) {
	plan := config.Default()
	tests := []struct {
		name        string
		rows        int
		buttons     bool
		wantDropped bool
	}{
		{"no rows", 0, true, false},
		{"a few ticks", 5, true, false},
		{"a day-long hold", 3000, true, true},
		{"no buttons", 40, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := StageMessage{Release: "rel-1", Version: "v1.4.0", Stage: 3, Stages: 5, Weight: 25, Intro: strings.Repeat("intro ", 1000), Decision: strings.Repeat("why ", 1000)}
			for i := range tt.rows {
				row := StageRow{Key: fmt.Sprint(i), At: t0.Add(time.Duration(i) * 30 * time.Second), Decision: rollout.Continue}
				for _, s := range plan.Signals {
					row.Readings = append(row.Readings, RowReading{Signal: s.Name, Value: s.Threshold * float64(i%7) / 10, Bound: s.Threshold, Verdict: rollout.Pass})
				}
				m.Rows = append(m.Rows, row)
			}
			blocks, fallback := stageBlocks(&plan, m, tt.buttons)
			if len(blocks) > MaxBlocks {
				t.Errorf("%d blocks, Slack allows %d", len(blocks), MaxBlocks)
			}
			if len(fallback) > maxFallbackChars {
				t.Errorf("fallback text %d chars", len(fallback))
			}
			raw, err := json.Marshal(blocks)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(blockTexts(t, string(raw)), "\n")
			for _, b := range parseBlocks(t, string(raw)) {
				if b.Text != nil && len(b.Text.Text) > MaxSectionChars {
					t.Errorf("%s block text %d chars, Slack allows %d", b.Type, len(b.Text.Text), MaxSectionChars)
				}
			}
			table := stageTable(&plan, m)
			if !strings.HasPrefix(table, "```") || !strings.HasSuffix(table, "```") {
				t.Errorf("table is not one code block")
			}
			if tt.rows > 0 && !strings.Contains(all, m.Rows[tt.rows-1].At.Format("15:04")) {
				t.Errorf("table lacks the latest tick")
			}
			if dropped := strings.Contains(table, "earlier ticks in the stage's evidence file"); dropped != tt.wantDropped && tt.buttons {
				t.Errorf("dropped = %v, want %v", dropped, tt.wantDropped)
			}
			if got := len(actionIDs(t, string(raw))); (got == 3) != tt.buttons {
				t.Errorf("%d buttons with buttons=%v", got, tt.buttons)
			}
		})
	}
}

func TestGateMessageLimits(t *testing.T) {
	long := strings.Repeat("detail ", 2000)
	rel := ReleaseMessages{Release: "rel-1", Version: "v1.4.0", IC: "alice"}
	for _, s := range config.Default().Timeline {
		rel.Steps = append(rel.Steps, StepResult{Name: s.Name, Status: rollout.GatePassed, Detail: long})
	}
	items := DefaultRedTeamReview()
	for _, it := range items {
		if len([]rune(it.Text)) > maxOptionChars || len([]rune(it.Guards)) > maxOptionChars || it.Guards == "" {
			t.Errorf("review item %s: text or guards empty or over %d characters", it.ID, maxOptionChars)
		}
	}
	for _, interactive := range []bool{false, true} {
		for _, outcome := range []string{"", long} {
			for name, blocks := range map[string][]any{
				"review":   toAny(reviewBlocks(rel.Version, rel.Release, items, GateState{Outcome: outcome}, interactive)),
				"go/no-go": toAny(goNoGoBlocks(rel, GateState{Outcome: outcome}, interactive)),
			} {
				raw, _ := json.Marshal(blocks)
				if len(blocks) > MaxBlocks {
					t.Errorf("%s: %d blocks", name, len(blocks))
				}
				for _, b := range parseBlocks(t, string(raw)) {
					if b.Text != nil && len(b.Text.Text) > MaxSectionChars {
						t.Errorf("%s interactive=%v: %s text %d chars", name, interactive, b.Type, len(b.Text.Text))
					}
				}
			}
		}
	}
}

func toAny[T any](blocks []T, _ string) []any {
	out := make([]any, len(blocks))
	for i, b := range blocks {
		out[i] = b
	}
	return out
}

func TestTrendArrow(t *testing.T) {
	rule := rollout.TrendRule{Lookback: 15 * time.Minute, Horizon: 15 * time.Minute}
	hist := func(vals ...float64) []timedReading {
		var out []timedReading
		for i, v := range vals {
			out = append(out, timedReading{RowReading{Value: v, Bound: 0.2, Verdict: rollout.Pass}, t0.Add(time.Duration(i) * time.Minute)})
		}
		return out
	}
	cur := func(v float64, verdict rollout.Verdict) RowReading {
		return RowReading{Value: v, Bound: 0.2, Verdict: verdict}
	}
	at := t0.Add(3 * time.Minute)
	tests := []struct {
		name    string
		history []timedReading
		cur     RowReading
		at      time.Time
		want    string
	}{
		{"first reading", nil, cur(0.15, rollout.Pass), at, ArrowUnknown},
		{"flat", hist(0.150, 0.151, 0.150), cur(0.150, rollout.Pass), at, ArrowFlat},
		{"tiny wobble up is flat", hist(0.150, 0.1502, 0.1504), cur(0.1506, rollout.Pass), at, ArrowFlat},
		{"climbing", hist(0.120, 0.130, 0.140), cur(0.150, rollout.Pass), at, ArrowRising},
		{"falling", hist(0.180, 0.170, 0.160), cur(0.150, rollout.Pass), at, ArrowFalling},
		{"engine says Rising", hist(0.150, 0.150, 0.150), cur(0.150, rollout.Rising), at, ArrowRising},
		{"no data", hist(0.1, 0.2), cur(0, rollout.NoData), at, ArrowUnknown},
		{"old readings outside the lookback", hist(0.01, 0.02), cur(0.150, rollout.Pass), t0.Add(time.Hour), ArrowUnknown},
		{"query errors are skipped", []timedReading{{RowReading{Verdict: rollout.Error}, t0}}, cur(0.15, rollout.Pass), at, ArrowUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trendArrow(rule, tt.cur, tt.at, tt.history); got != tt.want {
				t.Errorf("trendArrow = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseActionValue(t *testing.T) {
	tests := []struct {
		in      string
		release string
		stage   int
		wantErr bool
	}{
		{StageActionValue("rel-1", 3), "rel-1", 3, false},
		{StageActionValue("v1.4.0#2026", 0), "v1.4.0#2026", 0, false},
		{"rel-1", "", 0, true},
		{"#3", "", 0, true},
		{"rel-1#x", "", 0, true},
		{"rel-1#-1", "", 0, true},
	}
	for _, tt := range tests {
		rel, stage, err := ParseActionValue(tt.in)
		if (err != nil) != tt.wantErr || rel != tt.release || stage != tt.stage {
			t.Errorf("ParseActionValue(%q) = %q, %d, %v", tt.in, rel, stage, err)
		}
		if err != nil && !errors.Is(err, ErrBadActionValue) {
			t.Errorf("ParseActionValue(%q): %v is not ErrBadActionValue", tt.in, err)
		}
	}
}

func TestReviewTicked(t *testing.T) {
	state := &slack.BlockActionStates{Values: map[string]map[string]slack.BlockAction{
		ReviewBlockID(1): {ActionReviewItems: {SelectedOptions: []slack.OptionBlockObject{{Value: "RT12"}}}},
		ReviewBlockID(0): {ActionReviewItems: {SelectedOptions: []slack.OptionBlockObject{{Value: "RT01"}, {Value: "RT03"}}}},
		"other":          {"something": {SelectedOptions: []slack.OptionBlockObject{{Value: "nope"}}}},
	}}
	if got := ReviewTicked(state); fmt.Sprint(got) != "[RT01 RT03 RT12]" {
		t.Errorf("ReviewTicked = %v", got)
	}
	if got := ReviewTicked(nil); got != nil {
		t.Errorf("ReviewTicked(nil) = %v", got)
	}
}

func TestReviewNote(t *testing.T) {
	items := DefaultRedTeamReview()
	var all []string
	for _, it := range items {
		all = append(all, it.ID)
	}
	if got := ReviewNote(items, all); got != "15/15 review items ticked" {
		t.Errorf("all ticked: %q", got)
	}
	if got := ReviewNote(items, []string{"RT01", "RT99"}); !strings.HasPrefix(got, "1/15 review items ticked; not ticked: RT02 ") {
		t.Errorf("one ticked: %q", got)
	}
}

func TestOutboxRunDeliversInTheBackground(t *testing.T) {
	f := newFixture(t)
	n := f.notifier()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Outbox.Run(ctx) }()
	f.slack.Fail("chat.postMessage", slackfake.RateLimited("2"))
	e := newEngine(t, f, n)
	e.toStages()
	e.tick(nil)
	// Notify only queued and woke the loop; wait for the loop to empty
	// the queue.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, err := f.store.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still queued: %+v", len(pending), pending[0])
		}
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if got := len(showChannel(f.slack).withHeader(t, "v1.4.0 · stage 1/5")); got != 1 {
		t.Errorf("stage 1 messages: %d", got)
	}
	if waits := f.clock.all(); len(waits) == 0 || waits[0] != 2*time.Second {
		t.Errorf("waits %v: the loop did not wait out Retry-After", waits)
	}
}
