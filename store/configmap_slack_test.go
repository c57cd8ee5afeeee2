package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/bot/slackfake"
	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
)

// configMapSlackStore returns a Slack store on a ConfigMap of its own.
func configMapSlackStore(t *testing.T) (*ConfigMapSlack, kubernetes.Interface) {
	t.Helper()
	cs := kube.Get(t).Clientset(t)
	return configMapSlackOn(t, cs), cs
}

func configMapSlackOn(t *testing.T, cs kubernetes.Interface) *ConfigMapSlack {
	t.Helper()
	name := "slack-" + strings.ToLower(rand.Text()[:10])
	s, err := NewConfigMapSlack(cs, testenv.KubeNamespace, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().ConfigMaps(testenv.KubeNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return s
}

func (s *ConfigMapSlack) configMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	cm, err := s.cm.get(t.Context())
	if err != nil || cm == nil {
		t.Fatalf("ConfigMap %s: %v, %v", s, cm, err)
	}
	return cm
}

// playRelease plays a whole release on the real engine, as the runbook's
// plan makes one, and returns its notifications in order: the timeline,
// the five stages at the plan's tick over their dwells with the IC holding
// twice for the plan's hold, and the first night's snapshots.
func playRelease(t *testing.T, plan rollout.Plan) []rollout.Effect {
	t.Helper()
	plan.AutoPromote = true // the IC's promotes would only add commands
	m := &rollout.Machine{Plan: &plan, Render: report.Renderer{}}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	r := m.New("rel-1", "v1.4.0", "alice", time.Time{}, now)
	var out []rollout.Effect
	take := func() {
		for _, e := range r.Pending {
			if e.Kind == rollout.EffectNotify {
				out = append(out, e)
			}
		}
		r.Pending = nil
	}
	apply := func(c rollout.Command) {
		t.Helper()
		c.ID, c.At = fmt.Sprint("cmd-", len(out)), now
		if err := m.Apply(r, c, now); err != nil {
			t.Fatalf("%s: %v", c.Kind, err)
		}
	}
	take()
	for _, s := range plan.Timeline {
		now = now.Add(time.Minute)
		switch s.Name {
		case rollout.StepRedTeam:
			apply(rollout.Command{Kind: rollout.CmdReview, User: "bob"})
		case rollout.StepGoNoGo:
			apply(rollout.Command{Kind: rollout.CmdGo, User: "alice"})
		}
		m.StepDone(r, s.Name, rollout.GateResult{Status: rollout.GateSkipped, Detail: "not configured"}, now)
		if w := m.Next(r); w.Kind == rollout.WaitCommand && !now.Before(w.At) {
			m.Due(r, w.Step, w.Why, now)
		}
		take()
	}
	// Readings wander below their thresholds, as real ones do: rows that
	// repeat each other would compress better than a real table.
	noise := mrand.New(mrand.NewPCG(1, 2))
	tick := func() {
		var rds []rollout.Reading
		for _, s := range plan.Signals {
			rds = append(rds, rollout.Reading{Signal: s.Name, At: now, Value: s.Threshold * (0.2 + 0.3*noise.Float64()), Baseline: 1})
		}
		m.Tick(r, rds, nil, nil, now)
		take()
	}
	// The IC holds stages 2 and 4 two thirds into their dwells: each hold
	// adds its length to the stage.
	held, stageTicks := map[int]bool{}, 0
	for i := 0; r.Phase == rollout.PhaseStage; i++ {
		if i > 1000 {
			t.Fatalf("still in stage %d after %d ticks", r.Stage+1, i)
		}
		stage := r.Stage
		now = now.Add(plan.Tick)
		tick()
		if stageTicks++; r.Stage != stage {
			stageTicks = 0
		}
		dwell := int(plan.Stages[r.Stage].Dwell / plan.Tick)
		if (r.Stage == 1 || r.Stage == 3) && !held[r.Stage] && stageTicks >= 2*dwell/3 && r.Phase == rollout.PhaseStage {
			held[r.Stage] = true
			apply(rollout.Command{Kind: rollout.CmdHold, User: "alice", Reason: "dashboards"})
			take()
		}
	}
	if len(held) != 2 {
		t.Fatalf("the IC held %d stages, want 2", len(held))
	}
	snaps := plan.FirstNight.Snapshots()
	for r.Phase == rollout.PhaseFirstNight {
		if r.Snapshots >= len(snaps) {
			t.Fatalf("first night still open after its %d snapshots", len(snaps))
		}
		now = now.Add(plan.Tick)
		if due := r.PhaseStarted.Add(snaps[r.Snapshots]); now.Before(due) {
			now = due // the ticks between snapshots change nothing here
		}
		tick()
	}
	if r.Phase != rollout.PhaseComplete {
		t.Fatalf("the release ended in phase %s, want complete", r.Phase)
	}
	return out
}

func countEvents(evs []rollout.Effect, kind rollout.EventKind) int {
	n := 0
	for _, e := range evs {
		if e.Event.Kind == kind {
			n++
		}
	}
	return n
}

// warRoom is one replica's Slack notifier on a store.
func warRoom(fake *slackfake.Server, st bot.SlackStore, plan *rollout.Plan, fc *clock.Fake) *bot.SlackNotifier {
	n := bot.NewSlackNotifier(fake.Client(), st, plan)
	n.Buttons = true
	n.Logger = slog.New(slog.DiscardHandler)
	n.Outbox.Logger, n.Outbox.Clock = n.Logger, fc
	// As serve sets it with --leader-elect.
	n.Outbox.LookupUnknown = true
	return n
}

func notifyAll(t *testing.T, n *bot.SlackNotifier, evs []rollout.Effect) {
	t.Helper()
	for _, e := range evs {
		if err := n.Notify(t.Context(), e.Key, *e.Event); err != nil {
			t.Fatalf("Notify(%s): %v", e.Key, err)
		}
	}
}

// TestConfigMapSlackTakeover: the leader records stage 1's rows and queues
// their messages while Slack is failing, then its pod dies. Another pod's
// store on the same ConfigMap finds the queue and the rows; its notifier,
// handed the leader's last event again and then the rest, delivers every
// message the leader queued once and keeps the rows from before the
// takeover in the table.
func TestConfigMapSlackTakeover(t *testing.T) {
	ctx := t.Context()
	plan := config.Default()
	events := playRelease(t, plan)
	// The leader dies at stage 1's fifth row; the new one runs to stage 2.
	rows, last, end := 0, -1, -1
	for i, e := range events {
		if e.Event.Kind == rollout.EventRow && e.Event.Stage == 1 {
			if rows++; rows == 5 {
				last = i
			}
		}
		if e.Event.Kind == rollout.EventStage && e.Event.Stage == 2 {
			end = i + 1
			break
		}
	}
	if last < 0 || end < 0 {
		t.Fatalf("the release has %d stage 1 rows and no stage 2 (end %d)", rows, end)
	}

	fake := slackfake.New(t)
	fc := clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	a, cs := configMapSlackStore(t)
	// Slack fails the leader's first post; with its clock stopped the
	// retry never comes, so everything it records stays queued.
	fake.Fail("chat.postMessage", slackfake.ServerError())
	notifyAll(t, warRoom(fake, a, &plan, fc), events[:last+1])
	queued, err := a.Pending(ctx)
	if err != nil || len(queued) < 5 {
		t.Fatalf("the leader queued %d messages (%v); want the timeline's and stage 1's", len(queued), err)
	}
	if n := len(fake.Messages()); n != 0 {
		t.Fatalf("the leader delivered %d messages; the test needs them queued", n)
	}

	// Another pod.
	b, err := NewConfigMapSlack(cs, a.cm.namespace, a.cm.name)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := b.Pending(ctx)
	if err != nil || fmt.Sprint(pending) != fmt.Sprint(queued) {
		t.Fatalf("the new leader's store sees %d pending (%v), want the %d the old one queued", len(pending), err, len(queued))
	}
	m, found, err := b.StageMessage(ctx, "rel-1", 1)
	if err != nil || !found || len(m.Rows) != 5 {
		t.Fatalf("the new leader sees stage 1 with %d rows (found %v, %v), want 5", len(m.Rows), found, err)
	}

	fc.Advance(time.Hour) // past the old leader's retry time
	leader := warRoom(fake, b, &plan, fc)
	notifyAll(t, leader, events[last:end])
	if err := leader.Outbox.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	if p, err := b.Pending(ctx); err != nil || len(p) != 0 {
		t.Errorf("after the drain %d messages are pending (%v)", len(p), err)
	}
	if _, ok := b.configMap(t).BinaryData[slackKeyQueue]; ok {
		t.Error("the drained queue still takes room in the ConfigMap")
	}
	m, _, _ = b.StageMessage(ctx, "rel-1", 1)
	if want := countEvents(events[:end], rollout.EventRow); len(m.Rows) != want {
		t.Errorf("stage 1's table has %d rows, want all %d, before and after the takeover", len(m.Rows), want)
	}
	refs := map[string]int{}
	for _, msg := range fake.Messages() {
		refs[outboxRefOf(t, msg)]++
	}
	for _, e := range queued {
		if refs[e.MessageRef()] != 1 {
			t.Errorf("%s (queued by the old leader) is in the channel %d times, want once", e.MessageRef(), refs[e.MessageRef()])
		}
	}
	for ref, n := range refs {
		if n > 1 {
			t.Errorf("%s posted %d times", ref, n)
		}
	}
}

func outboxRefOf(t *testing.T, m slackfake.Message) string {
	t.Helper()
	// The payload is {"event_type":…,"event_payload":{"ref":…}}.
	_, after, ok := strings.Cut(m.Metadata, `"ref":"`)
	ref, _, ok2 := strings.Cut(after, `"`)
	if !ok || !ok2 || !strings.Contains(m.Metadata, bot.OutboxMetadataType) {
		t.Fatalf("message %q without outbox metadata: %s", m.Text, m.Metadata)
	}
	return ref
}

// conflictCounter counts the API server's 409 answers.
type conflictCounter struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *conflictCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusConflict {
		c.n.Add(1)
	}
	return resp, err
}

// TestConfigMapSlackRacingRecords has two pods' stores record events and
// queue messages on one ConfigMap as fast as they can: every event lands
// once, with its rows, and the queue's sequence numbers stay unique and in
// order.
func TestConfigMapSlackRacingRecords(t *testing.T) {
	ctx := t.Context()
	k := kube.Get(t)
	cfg := k.Config(k.AdminToken)
	conflicts := &conflictCounter{}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { conflicts.next = rt; return conflicts }
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := configMapSlackOn(t, cs)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	const writers, events = 2, 15
	var wg sync.WaitGroup
	for w := range writers {
		s, err := NewConfigMapSlack(cs, first.cm.namespace, first.cm.name)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range events {
				key := fmt.Sprintf("rel-%d/%d", w, i)
				c := bot.SlackChange{
					Stages:   []bot.StageMessage{{Release: fmt.Sprint("rel-", w), Stage: 1, Rows: []bot.StageRow{{Key: key, At: now}}}},
					Release:  &bot.ReleaseMessages{Release: fmt.Sprint("rel-", w), LastStage: 1},
					Messages: []bot.OutboxMessage{{Key: key, Op: bot.OutboxPost, Channel: "C1", Text: key}},
				}
				if err := s.Record(ctx, key, now, c); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()

	pending, err := first.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != writers*events {
		t.Errorf("%d messages queued, want %d", len(pending), writers*events)
	}
	seen := map[string]bool{}
	for i, e := range pending {
		if seen[e.Key] {
			t.Errorf("%s queued twice", e.Key)
		}
		seen[e.Key] = true
		if i > 0 && e.Seq <= pending[i-1].Seq {
			t.Errorf("seq %d after %d", e.Seq, pending[i-1].Seq)
		}
	}
	for w := range writers {
		for i := range events {
			key := fmt.Sprintf("rel-%d/%d", w, i)
			if h, err := first.Handled(ctx, key); err != nil || !h {
				t.Errorf("%s not handled: %v", key, err)
			}
			if !seen[key] {
				t.Errorf("%s not queued", key)
			}
		}
		if _, found, err := first.StageMessage(ctx, fmt.Sprint("rel-", w), 1); err != nil || !found {
			t.Errorf("writer %d's stage message: found %v, %v", w, found, err)
		}
	}
	if conflicts.n.Load() == 0 {
		t.Error("the API server never answered a conflict: the race was not run")
	}
}

func TestConfigMapSlackErrors(t *testing.T) {
	ctx := t.Context()
	s, cs := configMapSlackStore(t)
	k := kube.Get(t)

	// Reads do not create the ConfigMap.
	if _, err := s.Pending(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(s.cm.namespace).Get(ctx, s.cm.name, metav1.GetOptions{}); err == nil {
		t.Error("a read created the ConfigMap")
	}

	// Random bytes do not compress: far past the 1 MiB limit once encoded.
	big := bot.StageMessage{Release: "rel-1", Stage: 1, Intro: base64.StdEncoding.EncodeToString(randomBytes(t, 1100<<10))}
	err := s.Record(ctx, "rel-1/1", time.Now(), bot.SlackChange{Stages: []bot.StageMessage{big}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), s.String()) || !strings.Contains(err.Error(), "Slack") {
		t.Errorf("an oversized Slack state: %v, want ErrTooLarge naming the Slack ConfigMap", err)
	}
	if h, _ := s.Handled(ctx, "rel-1/1"); h {
		t.Error("a refused Record marked its key handled")
	}

	// A section that does not decode is an error, not an empty queue.
	if err := s.QueueMessages(ctx, time.Now(), bot.OutboxMessage{Key: "k", Op: bot.OutboxPost, Channel: "C1"}); err != nil {
		t.Fatal(err)
	}
	cm := s.configMap(t)
	cm.BinaryData[slackKeyQueue] = []byte("{not gzip")
	if _, err := cs.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pending(ctx); err == nil || !strings.Contains(err.Error(), slackKeyQueue) {
		t.Errorf("a corrupt queue was read as %v, want an error naming it", err)
	}

	botClient, err := kubernetes.NewForConfig(k.Config(k.BotToken))
	if err != nil {
		t.Fatal(err)
	}
	denied, err := NewConfigMapSlack(botClient, s.cm.namespace, s.cm.name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := denied.Pending(ctx); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "rbac.yaml") {
		t.Errorf("without RBAC: %v, want ErrForbidden saying what to apply", err)
	}

	for _, tt := range []struct{ ns, name string }{{"", "x"}, {"spark", ""}, {"spark", "Canarybot_State"}, {"Spark", "x"}} {
		if _, err := NewConfigMapSlack(cs, tt.ns, tt.name); err == nil {
			t.Errorf("NewConfigMapSlack(%q, %q) was accepted", tt.ns, tt.name)
		}
	}
	if _, err := NewConfigMapSlack(nil, "spark", "x"); err == nil {
		t.Error("a store without a client was accepted")
	}
}

// TestAWholeReleasesSlackStateFitsInAConfigMap plays a whole release (the
// five stages' rows at the plan's tick with two holds, the first night's
// snapshots) through the Slack notifier and its outbox on a ConfigMap, with
// Slack down for two stages of it: the state, that backlog included, stays
// far inside the limit, and delivered messages leave the queue.
func TestAWholeReleasesSlackStateFitsInAConfigMap(t *testing.T) {
	ctx := t.Context()
	plan := config.Default()
	events := playRelease(t, plan)
	fake := slackfake.New(t)
	fc := clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	s, _ := configMapSlackStore(t)
	n := warRoom(fake, s, &plan, fc)
	largest, backlog := 0, 0
	for _, e := range events {
		if e.Event.Kind == rollout.EventStage {
			switch e.Event.Stage {
			case 3:
				// Slack is down through stages 3 and 4: the first post
				// fails and, the clock standing still, its retry never
				// comes, so the stages' messages pile up in the queue.
				fake.Fail("chat.postMessage", slackfake.ServerError())
			case 5:
				p, err := s.Pending(ctx)
				if err != nil {
					t.Fatal(err)
				}
				backlog = len(p)
				fc.Advance(time.Hour)
			}
		}
		notifyAll(t, n, []rollout.Effect{e})
		largest = max(largest, size(s.configMap(t)))
	}
	if want := countEvents(events, rollout.EventRow) / 4; backlog < want {
		t.Fatalf("the outage left %d messages queued, want at least %d: the test no longer fills the queue", backlog, want)
	}
	if err := n.Outbox.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	cm := s.configMap(t)
	if p, err := s.Pending(ctx); err != nil || len(p) != 0 {
		t.Errorf("%d messages still queued (%v)", len(p), err)
	}
	if _, ok := cm.BinaryData[slackKeyQueue]; ok {
		t.Error("delivered messages still take room in the ConfigMap")
	}
	rows := 0
	for stage := range plan.Stages {
		m, _, err := s.StageMessage(ctx, "rel-1", stage+1)
		if err != nil {
			t.Fatal(err)
		}
		rows += len(m.Rows)
	}
	if want := countEvents(events, rollout.EventRow); rows != want {
		t.Errorf("the tables hold %d rows, want the release's %d", rows, want)
	}
	// A quarter of the limit leaves room for a Slack outage's backlog and a
	// longer release, as for the release state.
	if largest > maxConfigMapBytes/4 {
		t.Errorf("the Slack state of a whole release (%d events, %d rows) reached %d bytes, over a quarter of the ConfigMap's %d",
			len(events), rows, largest, maxConfigMapBytes)
	}
	t.Logf("%d events, %d rows, %d Slack messages, %d queued in the outage: at most %d bytes, %d at the end",
		len(events), rows, len(fake.Messages()), backlog, largest, size(cm))
	for k, v := range cm.BinaryData {
		t.Logf("  %s: %d bytes", k, len(v))
	}
}

// TestSlackReleaseOwner: every kind of key and ref the notifier and its outbox
// make is attributed to its release, a release ID that is a prefix of
// another's takes nothing of it, and what belongs to no release is kept.
func TestSlackReleaseOwner(t *testing.T) {
	ids := idSet([]string{"4f2a9c", "rel-1", "rel-10", "team/rel-2"})
	for _, tt := range []struct {
		s, want string
	}{
		{"4f2a9c/17", "4f2a9c"},                       // an engine event key
		{"4f2a9c/17/close", "4f2a9c"},                 // the stage-closing upsert's key
		{"4f2a9c/17/alert/HighErrorRate", "4f2a9c"},   // a trigger alert's thread post
		{"4f2a9c/3/review", "4f2a9c"},                 // the checklist's first upsert
		{"4f2a9c/3/go_nogo", "4f2a9c"},                // the go/no-go message's
		{"4f2a9c/review/ticks/2", "4f2a9c"},           // RecordReviewTicks's key
		{bot.StageRef("4f2a9c", 3), "4f2a9c"},         // a stage message's ref
		{bot.ReviewRef("4f2a9c"), "4f2a9c"},           // the checklist's ref
		{bot.GoNoGoRef("4f2a9c"), "4f2a9c"},           // the go/no-go message's ref
		{bot.ReleaseRef("4f2a9c"), "4f2a9c"},          // the opening message's ref
		{"rel-10/4", "rel-10"},                        // not rel-1's
		{bot.StageRef("rel-10", 1), "rel-10"},         // not rel-1's
		{"team/rel-2/9", "team/rel-2"},                // the longest ID wins
		{bot.StageRef("team/rel-2", 2), "team/rel-2"}, // with '#' too
		{"channel:#spark-warroom", ""},                // the outbox's channel lookup
		{"rel-11/1", ""},                              // an unknown release
		{"third", ""},                                 // queued by hand
		{"4f2a9c", ""},                                // an ID alone is no key
	} {
		got, ok := releaseOwner(tt.s, ids)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("releaseOwner(%q) = %q, %v; want %q", tt.s, got, ok, tt.want)
		}
	}
}

// memSlackDoc is a Slack state on a ConfigMap in memory, for the pruning's
// bookkeeping at a scale the API server would take minutes for.
func memSlackDoc() slackDoc {
	return slackDoc{cm: &corev1.ConfigMap{Data: map[string]string{}, BinaryData: map[string][]byte{}}, where: "memory"}
}

// playOnDoc records events and delivers their messages as every update
// does (change: the write and then the pruning), returning the releases
// each update dropped.
func (d slackDoc) playOn(t *testing.T, now time.Time, rel string, deliver bool, events ...bot.SlackChange) []string {
	t.Helper()
	var dropped []string
	for i, c := range events {
		key := fmt.Sprintf("%s/%d", rel, i+1)
		got, err := d.change(func(d slackDoc) error {
			_, err := d.record(key, now, c)
			return err
		})
		if err != nil && !errors.Is(err, errNoChange) { // a replayed key changes nothing
			t.Fatalf("record %s: %v", key, err)
		}
		dropped = append(dropped, got...)
	}
	if !deliver {
		return dropped
	}
	var queue []bot.OutboxEntry
	if err := d.read(slackKeyQueue, &queue); err != nil {
		t.Fatal(err)
	}
	for _, e := range queue {
		if o, ok := releaseOwner(e.Key, idSet([]string{rel})); !ok || o != rel {
			continue
		}
		got, err := d.change(func(d slackDoc) error {
			return d.finish(e, bot.OutboxOutcome{Message: &bot.MessageRecord{Ref: e.MessageRef(), Channel: "C1", TS: fmt.Sprint(e.Seq, ".000100")}})
		})
		if err != nil {
			t.Fatalf("finish %s: %v", e.Key, err)
		}
		dropped = append(dropped, got...)
	}
	return dropped
}

// smallRelease is the notifier's changes for a release in brief: the
// opening, a stage with a row and an alert, a review tick.
func smallRelease(rel string, now time.Time) []bot.SlackChange {
	relMsgs := bot.ReleaseMessages{Release: rel, Version: "v1.4.0", Opened: true, LastStage: 1}
	stage := bot.StageMessage{Release: rel, Version: "v1.4.0", Stage: 1, Stages: 5, Weight: 1,
		Rows: []bot.StageRow{{Key: rel + "/2", At: now, Decision: rollout.Continue}}}
	return []bot.SlackChange{
		{Release: &relMsgs, Messages: []bot.OutboxMessage{{Key: rel + "/1", Op: bot.OutboxUpsert, Ref: bot.ReleaseRef(rel), Channel: "C1", Text: "opening"}}},
		{Release: &relMsgs, Stages: []bot.StageMessage{stage}, Messages: []bot.OutboxMessage{
			{Key: rel + "/2", Op: bot.OutboxUpsert, Ref: bot.StageRef(rel, 1), Channel: "C1", Text: "table"},
			{Key: rel + "/2/alert/X", Op: bot.OutboxPost, ThreadRef: bot.StageRef(rel, 1), Channel: "C1", Text: "alert"},
		}},
	}
}

// slackSections decodes every section of the Slack state.
type slackSections struct {
	stages   map[string]bot.StageMessage
	releases map[string]bot.ReleaseMessages
	handled  []string
	queue    []bot.OutboxEntry
	keys     []string
	messages map[string]bot.MessageRecord
	dead     []bot.OutboxEntry
	recent   []string
	pruned   []string
}

func (d slackDoc) sections(t *testing.T) slackSections {
	t.Helper()
	var s slackSections
	for k, v := range map[string]any{
		slackKeyStages: &s.stages, slackKeyReleases: &s.releases, slackKeyHandled: &s.handled, slackKeyQueue: &s.queue,
		slackKeyKeys: &s.keys, slackKeyMessages: &s.messages, slackKeyDead: &s.dead, slackKeyRecent: &s.recent, slackKeyPruned: &s.pruned,
	} {
		if err := d.read(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// of lists what each section holds of release rel.
func (s slackSections) of(rel string) map[string]int {
	ids := idSet([]string{rel})
	n := map[string]int{}
	count := func(section, x string) {
		if o, ok := releaseOwner(x, ids); ok && o == rel {
			n[section]++
		}
	}
	for _, m := range s.stages {
		if m.Release == rel {
			n[slackKeyStages]++
		}
	}
	if _, ok := s.releases[rel]; ok {
		n[slackKeyReleases]++
	}
	for _, k := range s.handled {
		count(slackKeyHandled, k)
	}
	for _, k := range s.keys {
		count(slackKeyKeys, k)
	}
	for ref := range s.messages {
		count(slackKeyMessages, ref)
	}
	for _, e := range s.queue {
		count(slackKeyQueue, e.Key)
	}
	return n
}

// TestSlackPruneKeepsTheRecentReleases records releases one after another
// on the pruning's own code path: the latest slackKeptReleases keep every
// row, key and record; the older ones leave no trace but their IDs among
// the pruned; what belongs to no release stays.
func TestSlackPruneKeepsTheRecentReleases(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	d := memSlackDoc()
	if err := d.putMessage(bot.MessageRecord{Ref: "channel:#spark-warroom", Channel: "C1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.enqueue(now, []bot.OutboxMessage{{Key: "by-hand", Op: bot.OutboxPost, Channel: "C1", Text: "x"}}); err != nil {
		t.Fatal(err)
	}
	const releases = slackKeptReleases + 3
	var rels, dropped []string
	for i := range releases {
		rel := fmt.Sprintf("%016x", uint64(i+1)*0x9e3779b97f4a7c15)
		rels = append(rels, rel)
		dropped = append(dropped, d.playOn(t, now, rel, true, smallRelease(rel, now)...)...)
		if i == 0 {
			// The first release's full state, to compare the kept ones to.
			if got := d.sections(t).of(rel); fmt.Sprint(got) != fmt.Sprint(map[string]int{
				slackKeyStages: 1, slackKeyReleases: 1, slackKeyHandled: 2, slackKeyKeys: 3, slackKeyMessages: 3,
			}) {
				t.Fatalf("a release's state = %v; the fixture changed", got)
			}
		}
	}
	full := fmt.Sprint(map[string]int{slackKeyStages: 1, slackKeyReleases: 1, slackKeyHandled: 2, slackKeyKeys: 3, slackKeyMessages: 3})
	s := d.sections(t)
	old, kept := rels[:releases-slackKeptReleases], rels[releases-slackKeptReleases:]
	for _, rel := range old {
		if got := s.of(rel); len(got) != 0 {
			t.Errorf("pruned release %s still has %v", rel, got)
		}
	}
	for _, rel := range kept {
		if got := s.of(rel); fmt.Sprint(got) != full {
			t.Errorf("kept release %s has %v, want all of it: %s", rel, got, full)
		}
	}
	if fmt.Sprint(dropped) != fmt.Sprint(old) || fmt.Sprint(s.pruned) != fmt.Sprint(old) {
		t.Errorf("dropped %v, remembered %v; want %v, oldest first", dropped, s.pruned, old)
	}
	want := slices.Clone(kept)
	slices.Reverse(want)
	if fmt.Sprint(s.recent) != fmt.Sprint(want) {
		t.Errorf("recent = %v, want %v, the most recent first", s.recent, want)
	}
	if _, ok := s.messages["channel:#spark-warroom"]; !ok {
		t.Error("the channel's record, which belongs to no release, was dropped")
	}
	if !slices.Contains(s.keys, "by-hand") || len(s.queue) != 1 || s.queue[0].Key != "by-hand" {
		t.Errorf("the message queued by hand: keys %v, queue %v", s.keys, s.queue)
	}

	// An event of a pruned release is ignored; one of a kept release is not.
	for _, tt := range []struct {
		rel     string
		ignored bool
	}{{old[0], true}, {kept[0], false}} {
		c := smallRelease(tt.rel, now)[1]
		got, err := d.record(tt.rel+"/99", now, c)
		if tt.ignored && (got != tt.rel || !errors.Is(err, errNoChange)) || !tt.ignored && (got != "" || err != nil) {
			t.Errorf("record of release %s: ignored %q, %v; want ignored %v", tt.rel, got, err, tt.ignored)
		}
	}
	if got := d.sections(t).of(old[0]); len(got) != 0 {
		t.Errorf("the ignored event wrote %v", got)
	}
}

// TestSlackPruneKeepsQueuedMessages: a release with a message still
// queued keeps its whole state (the message's thread parent, its key)
// through any number of newer releases, and goes at the write that
// finishes its last message.
func TestSlackPruneKeepsQueuedMessages(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	d := memSlackDoc()
	d.playOn(t, now, "old", true, smallRelease("old", now)...)
	rel := bot.ReleaseMessages{Release: "old", Version: "v1.4.0", Opened: true, LastStage: 1}
	late := bot.OutboxMessage{Key: "old/3", Op: bot.OutboxPost, ThreadRef: bot.StageRef("old", 1), Channel: "C1", Text: "rolled back"}
	d.playOn(t, now, "old", false, smallRelease("old", now)[0], smallRelease("old", now)[1], bot.SlackChange{Release: &rel, Messages: []bot.OutboxMessage{late}})
	before := d.sections(t).of("old")
	for i := range 10 {
		r := fmt.Sprint("new-", i)
		d.playOn(t, now, r, true, smallRelease(r, now)...)
	}
	s := d.sections(t)
	if got := s.of("old"); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("the release with a queued message has %v, want all it had: %v", got, before)
	}
	if len(s.queue) != 1 || s.queue[0].Key != late.Key {
		t.Fatalf("queue = %+v, want only %s", s.queue, late.Key)
	}
	if p, ok := s.messages[late.ThreadRef]; !ok || p.TS == "" {
		t.Errorf("the queued reply's thread parent is not known any more (%+v): it would go to the channel", p)
	}
	if n := len(s.recent); n != slackKeptReleases+1 || s.recent[n-1] != "old" {
		t.Errorf("recent = %v, want the %d latest and old", s.recent, slackKeptReleases)
	}
	// Its message goes out: the same write drops it.
	dropped, err := d.change(func(d slackDoc) error {
		return d.finish(s.queue[0], bot.OutboxOutcome{Message: &bot.MessageRecord{Ref: late.Key, Channel: "C1", TS: "9.9"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dropped) != "[old]" {
		t.Errorf("delivering the last queued message dropped %v, want [old]", dropped)
	}
	if got := d.sections(t).of("old"); len(got) != 0 {
		t.Errorf("old still has %v once delivered", got)
	}
}

// TestSlackPruneBounds: the dead letters and the pruned IDs remembered
// stop at their bounds, dropping the oldest; a release forgotten that way
// is handled as new, as Handled says.
func TestSlackPruneBounds(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	d := memSlackDoc()
	var msgs []bot.OutboxMessage
	for i := range slackKeptDead + 7 {
		msgs = append(msgs, bot.OutboxMessage{Key: fmt.Sprint("m", i), Op: bot.OutboxPost, Channel: "C1", Text: "x"})
	}
	if _, err := d.enqueue(now, msgs); err != nil {
		t.Fatal(err)
	}
	for _, e := range d.sections(t).queue {
		if _, err := d.change(func(d slackDoc) error { return d.finish(e, bot.OutboxOutcome{Dead: "channel_not_found"}) }); err != nil {
			t.Fatal(err)
		}
	}
	dead := d.sections(t).dead
	if len(dead) != slackKeptDead || dead[0].Key != "m7" || dead[len(dead)-1].Key != msgs[len(msgs)-1].Key {
		t.Errorf("%d dead letters from %s to %s, want the latest %d", len(dead), dead[0].Key, dead[len(dead)-1].Key, slackKeptDead)
	}

	// Releases as `canarybot run` names them, years of them: all but the
	// last few were pruned before (written as the pruning leaves them, a
	// thousand updates being too slow a test), the rest are played.
	id := func(i int) string { return fmt.Sprintf("%016x", uint64(i+1)*0x9e3779b97f4a7c15) }
	const n, played = slackKeptPruned + slackKeptReleases + 5, slackKeptReleases + 8
	var before []string
	for i := range n - played {
		before = append(before, id(i))
	}
	if err := d.write(slackKeyPruned, before, false); err != nil {
		t.Fatal(err)
	}
	for i := n - played; i < n; i++ {
		rel := bot.ReleaseMessages{Release: id(i)}
		if _, err := d.change(func(d slackDoc) error {
			_, err := d.record(id(i)+"/1", now, bot.SlackChange{Release: &rel})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	pruned := d.sections(t).pruned
	if len(pruned) != slackKeptPruned || pruned[0] != id(5) || pruned[len(pruned)-1] != id(n-slackKeptReleases-1) {
		t.Fatalf("%d pruned IDs remembered, from %s to %s; want the latest %d", len(pruned), pruned[0], pruned[len(pruned)-1], slackKeptPruned)
	}
	if b := len(d.cm.BinaryData[slackKeyPruned]); b > 20<<10 {
		t.Errorf("%d pruned IDs take %d bytes", len(pruned), b)
	}
	for _, tt := range []struct {
		rel     string
		ignored bool
	}{{id(5), true}, {id(4), false}} {
		got, err := d.record(tt.rel+"/2", now, bot.SlackChange{})
		if (got != "") != tt.ignored || (err != nil) != tt.ignored {
			t.Errorf("an event of release %s: ignored %q, %v; want ignored %v", tt.rel, got, err, tt.ignored)
		}
	}
}

// releaseTables is a real release's Slack state as the notifier keeps it:
// its five stage tables (every row of the plan's ticks, with its readings)
// and its release messages, played on a store in memory with Slack down.
func releaseTables(t *testing.T, plan rollout.Plan, events []rollout.Effect) ([]bot.StageMessage, bot.ReleaseMessages) {
	t.Helper()
	mem := &bot.MemorySlackStore{}
	fake := slackfake.New(t)
	fake.Fail("chat.postMessage", slackfake.ServerError())
	notifyAll(t, warRoom(fake, mem, &plan, clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))), events)
	var stages []bot.StageMessage
	for stage := range plan.Stages {
		m, found, err := mem.StageMessage(t.Context(), "rel-1", stage+1)
		if err != nil || !found || len(m.Rows) == 0 {
			t.Fatalf("stage %d's table: %d rows, found %v, %v", stage+1, len(m.Rows), found, err)
		}
		stages = append(stages, m)
	}
	rel, found, err := mem.ReleaseMessages(t.Context(), "rel-1")
	if err != nil || !found {
		t.Fatalf("release messages: found %v, %v", found, err)
	}
	return stages, rel
}

// asRelease makes the tables another release's, a day later per release,
// each reading wandering as real ones do (so that releases do not compress
// against each other better than real ones would).
func asRelease(stages []bot.StageMessage, rel bot.ReleaseMessages, id string, day int, noise *mrand.Rand) ([]bot.StageMessage, bot.ReleaseMessages) {
	var out []bot.StageMessage
	for _, m := range stages {
		m.Release = id
		rows := make([]bot.StageRow, len(m.Rows))
		for i, r := range m.Rows {
			_, seq, _ := strings.Cut(r.Key, "/")
			r.Key, r.At = id+"/"+seq, r.At.AddDate(0, 0, day)
			rds := make([]bot.RowReading, len(r.Readings))
			for j, x := range r.Readings {
				x.Value *= 0.9 + 0.2*noise.Float64()
				rds[j] = x
			}
			r.Readings, rows[i] = rds, r
		}
		m.Rows = rows
		out = append(out, m)
	}
	rel.Release = id
	return out, rel
}

// TestSlackStateStaysBoundedOverManyReleases puts forty releases' Slack
// state (each with a real release's five tables) through the store on a
// ConfigMap, the first release's last message undelivered all along. The
// ConfigMap stays far below its limit (without pruning it passes it
// around the 35th release); the latest releases keep every row, key and
// record; the older ones leave only their IDs; the first one's message is
// still delivered in its thread, after which its state goes too; and a
// very late event of a pruned release posts nothing.
func TestSlackStateStaysBoundedOverManyReleases(t *testing.T) {
	ctx := t.Context()
	plan := config.Default()
	events := playRelease(t, plan)
	tables, relTemplate := releaseTables(t, plan, events)
	fake := slackfake.New(t)
	fc := clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	s, _ := configMapSlackStore(t)
	var logs strings.Builder
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	n := warRoom(fake, s, &plan, fc)
	channel := "#" + slackfake.ChannelName

	const releases = 40
	noise := mrand.New(mrand.NewPCG(3, 4))
	ids := make([]string, releases)
	recorded := map[string][]bot.StageMessage{}
	var late bot.OutboxMessage
	largest := 0
	for i := range ids {
		ids[i] = fmt.Sprintf("%016x", noise.Uint64())
		rel := ids[i]
		stages, relMsgs := asRelease(tables, relTemplate, rel, i, noise)
		recorded[rel] = stages
		// A release's state in one event standing for its three hundred
		// (the API server's writes being the test's time): its tables, its
		// release messages and its stage message's upsert.
		c := bot.SlackChange{Release: &relMsgs, Stages: stages, Messages: []bot.OutboxMessage{
			{Key: rel + "/1", Op: bot.OutboxUpsert, Ref: bot.StageRef(rel, 1), Channel: channel, Text: "stage 1"},
		}}
		if err := s.Record(ctx, rel+"/1", fc.Now(), c); err != nil {
			t.Fatalf("release %d of %d: %v", i+1, releases, err)
		}
		if i == 0 {
			// The first release's messages go to Slack for real; its last
			// word is queued and stays queued through the releases after.
			if err := n.Outbox.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			late = bot.OutboxMessage{Key: rel + "/2", Op: bot.OutboxPost, ThreadRef: bot.StageRef(rel, 1), Channel: channel, Text: "first night: all clear"}
			if err := s.Record(ctx, rel+"/2", fc.Now(), bot.SlackChange{Release: &relMsgs, Messages: []bot.OutboxMessage{late}}); err != nil {
				t.Fatal(err)
			}
		} else {
			// The others' are delivered as far as the store can tell: the
			// outbox, in order, would keep them behind the first one's.
			p, err := s.Pending(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p {
				if strings.HasPrefix(e.Key, rel+"/") {
					rec := bot.MessageRecord{Ref: e.MessageRef(), Channel: "C1", TS: fmt.Sprintf("%d.%06d", 1764237600+i, e.Seq)}
					if err := s.Finish(ctx, e, bot.OutboxOutcome{Message: &rec}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		largest = max(largest, size(s.configMap(t)))
	}

	// A quarter of the limit, as for one release: forty releases' tables
	// alone would be over the whole of it.
	if largest > maxConfigMapBytes/4 {
		t.Errorf("the Slack state of %d releases reached %d bytes, over a quarter of the ConfigMap's %d", releases, largest, maxConfigMapBytes)
	}
	cm := s.configMap(t)
	t.Logf("%d releases: at most %d bytes, %d at the end", releases, largest, size(cm))
	for k, v := range cm.BinaryData {
		t.Logf("  %s: %d bytes", k, len(v))
	}
	doc := slackDoc{cm: cm, where: s.String()}
	sec := doc.sections(t)
	latest := ids[releases-slackKeptReleases:]
	for _, rel := range ids[1 : releases-slackKeptReleases] {
		if got := sec.of(rel); len(got) != 0 {
			t.Errorf("release %s, pruned, still has %v", rel, got)
		}
		if !slices.Contains(sec.pruned, rel) {
			t.Errorf("release %s is not remembered as pruned", rel)
		}
	}
	// A pruned release's events, those it had and any other, count as
	// handled, though its keys are gone.
	for _, k := range []string{ids[1] + "/1", ids[1] + "/77", ids[releases-slackKeptReleases-1] + "/1"} {
		if h, err := s.Handled(ctx, k); err != nil || !h {
			t.Errorf("Handled(%s) of a pruned release = %v, %v; want true", k, h, err)
		}
	}
	if h, err := s.Handled(ctx, latest[0]+"/77"); err != nil || h {
		t.Errorf("Handled(%s/77) of a kept release = %v, %v; want false", latest[0], h, err)
	}
	for _, rel := range append([]string{ids[0]}, latest...) {
		for st, want := range recorded[rel] {
			got, found, err := s.StageMessage(ctx, rel, st+1)
			if err != nil || !found || !sameSlackJSON(t, got, want) {
				t.Errorf("release %s stage %d: found %v (%v), %d rows; want all %d as recorded", rel, st+1, found, err, len(got.Rows), len(want.Rows))
			}
		}
		if _, found, err := s.ReleaseMessages(ctx, rel); err != nil || !found {
			t.Errorf("release %s's messages: found %v, %v", rel, found, err)
		}
		if _, found := slices.BinarySearch(sec.handled, rel+"/1"); !found {
			t.Errorf("event %s/1 is not among the handled", rel)
		}
		if m, found, err := s.Message(ctx, bot.StageRef(rel, 1)); err != nil || !found || m.TS == "" {
			t.Errorf("the record of %s: %+v, found %v, %v", bot.StageRef(rel, 1), m, found, err)
		}
	}
	if len(sec.queue) != 1 || sec.queue[0].Key != late.Key {
		t.Fatalf("queue = %+v, want the first release's last message only", sec.queue)
	}

	// Slack takes the first release's message, in its stage's thread.
	if err := n.Outbox.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var parent, reply *slackfake.Message
	for _, m := range fake.Messages() {
		switch outboxRefOf(t, m) {
		case bot.StageRef(ids[0], 1):
			parent = &m
		case late.Key:
			reply = &m
		}
	}
	if parent == nil || reply == nil || reply.ThreadTS != parent.TS {
		t.Fatalf("the first release's late message: %+v, its stage message %+v; want it in that message's thread", reply, parent)
	}
	// That delivery's write dropped the first release.
	sec = slackDoc{cm: s.configMap(t), where: s.String()}.sections(t)
	if got := sec.of(ids[0]); len(sec.queue) != 0 || len(got) != 0 || !slices.Contains(sec.pruned, ids[0]) {
		t.Errorf("after its last delivery the first release has %v (queue %d), pruned %v", got, len(sec.queue), slices.Contains(sec.pruned, ids[0]))
	}

	// A very late event of a pruned release posts nothing and is logged;
	// the same event of a kept release is handled.
	var done rollout.Event
	for _, e := range events {
		if e.Event.Kind == rollout.EventDone {
			done = *e.Event
		}
	}
	if done.Kind == "" {
		t.Fatal("the release announced no end")
	}
	for _, tt := range []struct {
		rel     string
		ignored bool
	}{{ids[0], true}, {ids[5], true}, {latest[len(latest)-1], false}} {
		before := len(fake.Messages())
		ev := done
		ev.Release = tt.rel
		if err := n.Notify(ctx, tt.rel+"/4", ev); err != nil {
			t.Fatal(err)
		}
		posted := len(fake.Messages()) - before
		_, known, err := s.ReleaseMessages(ctx, tt.rel)
		if err != nil {
			t.Fatal(err)
		}
		if tt.ignored && (posted != 0 || known || !strings.Contains(logs.String(), "release="+tt.rel)) {
			t.Errorf("a late event of pruned release %s posted %d messages, its state is back: %v; log:\n%s", tt.rel, posted, known, logs.String())
		}
		if !tt.ignored && posted == 0 {
			t.Errorf("an event of kept release %s posted nothing", tt.rel)
		}
	}
	if size(s.configMap(t)) > largest {
		t.Errorf("the late events grew the state past its largest")
	}
}

func sameSlackJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}
