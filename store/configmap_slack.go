package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/bot"
)

// Keys of the Slack state ConfigMap. Each section is gzipped JSON in
// binaryData, so that a write re-encodes only the sections it changes and
// a whole release's tables (hundreds of rows of eight readings, all alike)
// stay far inside the ConfigMap's 1 MiB; the sequence counter is plain text
// for kubectl. The "slack." prefix keeps the keys apart from the release
// state's, should both ever be pointed at one ConfigMap.
//
//	slack.stages    StageRef → bot.StageMessage
//	slack.releases  release ID → bot.ReleaseMessages
//	slack.handled   event keys recorded, sorted
//	slack.queue     bot.OutboxEntry pending, by seq
//	slack.keys      message keys ever queued, sorted (a repeat is ignored)
//	slack.messages  message ref → bot.MessageRecord (where Slack put it)
//	slack.dead      bot.OutboxEntry given up on, with why, by seq
//	slack.recent    release IDs, the most recently recorded first
//	slack.pruned    release IDs whose state was dropped, the oldest first
//	slack.seq       the last seq given to a queued message (data)
const (
	slackKeyStages   = "slack.stages"
	slackKeyReleases = "slack.releases"
	slackKeyHandled  = "slack.handled"
	slackKeyQueue    = "slack.queue"
	slackKeyKeys     = "slack.keys"
	slackKeyMessages = "slack.messages"
	slackKeyDead     = "slack.dead"
	slackKeyRecent   = "slack.recent"
	slackKeyPruned   = "slack.pruned"
	slackKeySeq      = "slack.seq"
)

// The Slack state is bounded by release: a release's stage tables alone
// are about 30 KB gzipped, so a ConfigMap that kept every release would
// refuse every write (and the war room would go silent) after about thirty
// releases. Every write therefore keeps only the state of the releases
// that can still get events, and drops the rest in the same update.
const (
	// slackKeptReleases is how many of the most recently recorded releases
	// keep their whole state (stage tables, release messages, handled event
	// keys, queued message keys, posted-message records). `serve` runs one
	// release at a time, so only the current release gets events; the
	// previous one is kept for its late announcements (a rollback's, a
	// resumed process's), and a third as a margin. Three releases are about
	// 90 KB, under a tenth of the limit, leaving the rest for a Slack
	// outage's backlog, which is never dropped.
	slackKeptReleases = 3
	// slackKeptDead is how many dead letters are kept, the most recent:
	// enough to see what a broken token or channel cost, while each one
	// carries a whole message with its blocks.
	slackKeptDead = 50
	// slackKeptPruned is how many dropped release IDs are remembered, so
	// that an event of one of them is ignored rather than handled a second
	// time (see Handled). A thousand 16-digit IDs are about 12 KB gzipped,
	// and years of releases.
	slackKeptPruned = 1000
)

// ConfigMapSlack is the Slack notifier's state and outbox (a bot.SlackStore)
// in a ConfigMap of its own, for replicas that take over from one another:
// what the leader queued but had not delivered, the stage tables' rows and
// the records of posted messages outlive its pod. It is kept apart from the
// release state's ConfigMap so that the outbox's writes (several per tick)
// and the engine's never race each other.
//
// Every method is one read or one update at the resourceVersion read, so
// it is as atomic as the Bolt store's transactions: a write that lost a
// race with another writer is decided again on fresh state, and none is
// lost. It needs get and update on the named ConfigMap, and create to make
// it (deploy/kubernetes/rbac.yaml).
//
// It stays bounded (see slackKeptReleases): every write keeps the whole
// state of the most recently recorded releases and of any release with a
// message still queued, drops the others', keeps the latest dead letters,
// and never drops a queued message.
type ConfigMapSlack struct {
	// Logger says when older releases' state is dropped and when an event
	// of a dropped release is ignored; nil logs nothing.
	Logger *slog.Logger

	cm *ConfigMap
}

var _ bot.SlackStore = (*ConfigMapSlack)(nil)

// NewConfigMapSlack returns a Slack store in the ConfigMap namespace/name,
// created at the first write when missing. Give it a name of its own (e.g.
// canarybot-state-slack), not the release state's.
func NewConfigMapSlack(client kubernetes.Interface, namespace, name string) (*ConfigMapSlack, error) {
	cm, err := newConfigMapFor("slack configmap store", "canarybot-state-slack", client, namespace, name)
	if err != nil {
		return nil, err
	}
	return &ConfigMapSlack{cm: cm}, nil
}

// String names the ConfigMap as namespace/name.
func (s *ConfigMapSlack) String() string { return s.cm.String() }

func (s *ConfigMapSlack) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// slackDoc reads and writes the sections of one version of the ConfigMap.
// A nil cm (no ConfigMap yet) reads as empty.
type slackDoc struct {
	cm    *corev1.ConfigMap
	where string
}

func (d slackDoc) read(section string, v any) error {
	if d.cm == nil {
		return nil
	}
	data, ok := d.cm.BinaryData[section]
	if !ok {
		return nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err == nil {
		var raw []byte
		if raw, err = io.ReadAll(zr); err == nil {
			err = json.Unmarshal(raw, v)
		}
	}
	if err != nil {
		return fmt.Errorf("%s in ConfigMap %s: corrupt record: %w", section, d.where, err)
	}
	return nil
}

// write stores v as the section, or removes the section when empty: a
// drained queue takes no room.
func (d slackDoc) write(section string, v any, empty bool) error {
	if empty {
		delete(d.cm.BinaryData, section)
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", section, err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	d.cm.BinaryData[section] = b.Bytes()
	return nil
}

func (d slackDoc) seq() (uint64, error) {
	if d.cm == nil {
		return 0, nil
	}
	v, ok := d.cm.Data[slackKeySeq]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s in ConfigMap %s: corrupt sequence %q: %w", slackKeySeq, d.where, v, err)
	}
	return n, nil
}

func (d slackDoc) setSeq(n uint64) { d.cm.Data[slackKeySeq] = strconv.FormatUint(n, 10) }

// enqueue queues the messages whose key was never queued, each with the
// next sequence number.
func (d slackDoc) enqueue(now time.Time, msgs []bot.OutboxMessage) (changed bool, err error) {
	if len(msgs) == 0 {
		return false, nil
	}
	var keys []string
	var queue []bot.OutboxEntry
	if err := d.read(slackKeyKeys, &keys); err != nil {
		return false, err
	}
	if err := d.read(slackKeyQueue, &queue); err != nil {
		return false, err
	}
	seq, err := d.seq()
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		i, known := slices.BinarySearch(keys, m.Key)
		if known {
			continue
		}
		keys = slices.Insert(keys, i, m.Key)
		seq++
		queue = append(queue, bot.OutboxEntry{OutboxMessage: m, Seq: seq, Queued: now})
		changed = true
	}
	if !changed {
		return false, nil
	}
	d.setSeq(seq)
	if err := d.write(slackKeyKeys, keys, false); err != nil {
		return false, err
	}
	return true, d.write(slackKeyQueue, queue, false)
}

// view runs fn on the ConfigMap as it is now.
func (s *ConfigMapSlack) view(ctx context.Context, fn func(d slackDoc) error) error {
	cm, err := s.cm.get(ctx)
	if err != nil {
		return err
	}
	return fn(slackDoc{cm: cm, where: s.String()})
}

// update runs fn on the ConfigMap, prunes the state of releases no longer
// kept (in the same update, so a pruned state is never written half-way),
// and writes the result at the version read, deciding again on fresh state
// after a lost race. fn returning errNoChange writes nothing.
func (s *ConfigMapSlack) update(ctx context.Context, fn func(d slackDoc) error) error {
	var dropped []string
	err := s.cm.modify(ctx, func(cm *corev1.ConfigMap) error {
		d := slackDoc{cm: cm, where: s.String()}
		var err error
		if dropped, err = d.change(fn); err != nil {
			return err
		}
		// Checked here rather than left to the release store's write, whose
		// advice is about release state. With older releases pruned, what
		// gets here is a backlog of undelivered messages (never dropped) or
		// releases far longer than the runbook's.
		if n := size(cm); n > maxConfigMapBytes {
			var queue []bot.OutboxEntry
			_ = d.read(slackKeyQueue, &queue)
			return fmt.Errorf("%w: the Slack state in ConfigMap %s would hold %d bytes, the limit is %d, "+
				"with %d messages waiting for Slack and the state of the %d latest releases kept: "+
				"if many messages wait, get the deliveries going again (the bot's log says why they fail; the queue empties as Slack takes them); "+
				"else keep the Slack state in the --state file", ErrTooLarge, s, n, maxConfigMapBytes, len(queue), slackKeptReleases)
		}
		return nil
	})
	if err == nil && len(dropped) > 0 {
		s.logger().Info("slack state: dropped the state of older releases",
			"configmap", s.String(), "releases", dropped, "kept", slackKeptReleases)
	}
	return err
}

// StageMessage implements bot.SlackStore.
func (s *ConfigMapSlack) StageMessage(ctx context.Context, release string, stage int) (bot.StageMessage, bool, error) {
	var stages map[string]bot.StageMessage
	err := s.view(ctx, func(d slackDoc) error { return d.read(slackKeyStages, &stages) })
	m, ok := stages[bot.StageRef(release, stage)]
	return m, ok, err
}

// ReleaseMessages implements bot.SlackStore.
func (s *ConfigMapSlack) ReleaseMessages(ctx context.Context, release string) (bot.ReleaseMessages, bool, error) {
	var releases map[string]bot.ReleaseMessages
	err := s.view(ctx, func(d slackDoc) error { return d.read(slackKeyReleases, &releases) })
	r, ok := releases[release]
	return r, ok, err
}

// Handled implements bot.SlackStore. An event of a release whose state was
// pruned counts as handled: its handled keys are gone, and handling it
// again would post into threads whose messages are no longer known (a
// second opening message, a table of one row). Such an event can only
// come from an engine resuming a release that several newer ones have
// followed; it is logged and ignored. Only the last slackKeptPruned pruned
// releases are remembered: an event older than that would be handled as
// new.
func (s *ConfigMapSlack) Handled(ctx context.Context, key string) (bool, error) {
	var handled, pruned []string
	err := s.view(ctx, func(d slackDoc) error {
		if err := d.read(slackKeyHandled, &handled); err != nil {
			return err
		}
		return d.read(slackKeyPruned, &pruned)
	})
	if err != nil {
		return false, err
	}
	if _, found := slices.BinarySearch(handled, key); found {
		return true, nil
	}
	if release, ok := releaseOwner(key, idSet(pruned)); ok {
		s.logger().Info("slack state: ignoring an event of a release whose Slack state was pruned",
			"configmap", s.String(), "key", key, "release", release)
		return true, nil
	}
	return false, nil
}

// changeRelease is the release a recorded event belongs to: the one the
// notifier names, else the engine's key's "<release id>/<seq>".
func changeRelease(key string, c bot.SlackChange) string {
	if c.Release != nil {
		return c.Release.Release
	}
	if len(c.Stages) > 0 {
		return c.Stages[0].Release
	}
	if i := strings.LastIndexByte(key, '/'); i > 0 {
		return key[:i]
	}
	return ""
}

// Record implements bot.SlackStore: the event's stage and release records,
// its queued messages and its key, in one update. An event of a pruned
// release is ignored (see Handled): another replica may have pruned it
// since the notifier asked.
func (s *ConfigMapSlack) Record(ctx context.Context, key string, now time.Time, c bot.SlackChange) error {
	ignored := ""
	err := s.update(ctx, func(d slackDoc) (err error) {
		ignored, err = d.record(key, now, c)
		return err
	})
	if err == nil && ignored != "" {
		s.logger().Info("slack state: ignoring an event of a release whose Slack state was pruned",
			"configmap", s.String(), "key", key, "release", ignored)
	}
	return err
}

// record is Record on one version of the ConfigMap. It returns the release
// when the event was ignored as one of a pruned release's (with
// errNoChange).
func (d slackDoc) record(key string, now time.Time, c bot.SlackChange) (ignored string, err error) {
	release := changeRelease(key, c)
	var pruned []string
	if err := d.read(slackKeyPruned, &pruned); err != nil {
		return "", err
	}
	if release != "" && slices.Contains(pruned, release) {
		return release, errNoChange
	}
	var handled []string
	if err := d.read(slackKeyHandled, &handled); err != nil {
		return "", err
	}
	if _, found := slices.BinarySearch(handled, key); found {
		// Another notifier (the old leader, in a handover) recorded it
		// since Handled said no: its state is as new as this one's.
		return "", errNoChange
	}
	var touched []string
	for _, m := range c.Stages {
		touched = append(touched, m.Release)
	}
	if c.Release != nil {
		touched = append(touched, c.Release.Release)
	}
	if err := d.touch(touched...); err != nil {
		return "", err
	}
	if len(c.Stages) > 0 {
		var stages map[string]bot.StageMessage
		if err := d.read(slackKeyStages, &stages); err != nil {
			return "", err
		}
		if stages == nil {
			stages = map[string]bot.StageMessage{}
		}
		for _, m := range c.Stages {
			stages[bot.StageRef(m.Release, m.Stage)] = m
		}
		if err := d.write(slackKeyStages, stages, false); err != nil {
			return "", err
		}
	}
	if c.Release != nil {
		var releases map[string]bot.ReleaseMessages
		if err := d.read(slackKeyReleases, &releases); err != nil {
			return "", err
		}
		if releases == nil {
			releases = map[string]bot.ReleaseMessages{}
		}
		releases[c.Release.Release] = *c.Release
		if err := d.write(slackKeyReleases, releases, false); err != nil {
			return "", err
		}
	}
	if _, err := d.enqueue(now, c.Messages); err != nil {
		return "", err
	}
	i, _ := slices.BinarySearch(handled, key)
	return "", d.write(slackKeyHandled, slices.Insert(handled, i, key), false)
}

// QueueMessages implements bot.OutboxStore.
func (s *ConfigMapSlack) QueueMessages(ctx context.Context, now time.Time, msgs ...bot.OutboxMessage) error {
	return s.update(ctx, func(d slackDoc) error {
		changed, err := d.enqueue(now, msgs)
		if err == nil && !changed {
			return errNoChange
		}
		return err
	})
}

// Pending implements bot.OutboxStore.
func (s *ConfigMapSlack) Pending(ctx context.Context) ([]bot.OutboxEntry, error) {
	var queue []bot.OutboxEntry
	if err := s.view(ctx, func(d slackDoc) error { return d.read(slackKeyQueue, &queue) }); err != nil {
		return nil, err
	}
	return queue, nil
}

// Dead implements bot.OutboxStore.
func (s *ConfigMapSlack) Dead(ctx context.Context) ([]bot.OutboxEntry, error) {
	var dead []bot.OutboxEntry
	if err := s.view(ctx, func(d slackDoc) error { return d.read(slackKeyDead, &dead) }); err != nil {
		return nil, err
	}
	return dead, nil
}

func bySeq(a, b bot.OutboxEntry) int {
	switch {
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

// Reschedule implements bot.OutboxStore. An entry no longer queued (another
// process finished it) is left alone.
func (s *ConfigMapSlack) Reschedule(ctx context.Context, e bot.OutboxEntry) error {
	return s.update(ctx, func(d slackDoc) error {
		var queue []bot.OutboxEntry
		if err := d.read(slackKeyQueue, &queue); err != nil {
			return err
		}
		i, found := slices.BinarySearchFunc(queue, e, bySeq)
		if !found {
			return errNoChange
		}
		queue[i] = e
		return d.write(slackKeyQueue, queue, false)
	})
}

// Finish implements bot.OutboxStore: the entry leaves the queue (a
// delivered message takes no room after), with the message's record and,
// for one given up on, its place among the dead, in one update.
func (s *ConfigMapSlack) Finish(ctx context.Context, e bot.OutboxEntry, out bot.OutboxOutcome) error {
	return s.update(ctx, func(d slackDoc) error { return d.finish(e, out) })
}

// finish is Finish on one version of the ConfigMap. Only the latest
// slackKeptDead dead letters are kept.
func (d slackDoc) finish(e bot.OutboxEntry, out bot.OutboxOutcome) error {
	var queue []bot.OutboxEntry
	if err := d.read(slackKeyQueue, &queue); err != nil {
		return err
	}
	i, queued := slices.BinarySearchFunc(queue, e, bySeq)
	if !queued && out.Message == nil && out.Dead == "" {
		return errNoChange // another process finished it
	}
	if queued {
		queue = slices.Delete(queue, i, i+1)
		if err := d.write(slackKeyQueue, queue, len(queue) == 0); err != nil {
			return err
		}
	}
	if out.Message != nil {
		if err := d.putMessage(*out.Message); err != nil {
			return err
		}
	}
	if out.Dead != "" {
		var dead []bot.OutboxEntry
		if err := d.read(slackKeyDead, &dead); err != nil {
			return err
		}
		e.LastError = out.Dead
		if i, found := slices.BinarySearchFunc(dead, e, bySeq); found {
			dead[i] = e
		} else {
			dead = slices.Insert(dead, i, e)
		}
		if n := len(dead) - slackKeptDead; n > 0 {
			dead = slices.Delete(dead, 0, n) // the oldest
		}
		if err := d.write(slackKeyDead, dead, false); err != nil {
			return err
		}
	}
	return nil
}

func (d slackDoc) putMessage(m bot.MessageRecord) error {
	var messages map[string]bot.MessageRecord
	if err := d.read(slackKeyMessages, &messages); err != nil {
		return err
	}
	if messages == nil {
		messages = map[string]bot.MessageRecord{}
	}
	messages[m.Ref] = m
	return d.write(slackKeyMessages, messages, false)
}

// Message implements bot.OutboxStore.
func (s *ConfigMapSlack) Message(ctx context.Context, ref string) (bot.MessageRecord, bool, error) {
	var messages map[string]bot.MessageRecord
	err := s.view(ctx, func(d slackDoc) error { return d.read(slackKeyMessages, &messages) })
	m, ok := messages[ref]
	return m, ok, err
}

// PutMessage implements bot.OutboxStore.
func (s *ConfigMapSlack) PutMessage(ctx context.Context, m bot.MessageRecord) error {
	return s.update(ctx, func(d slackDoc) error { return d.putMessage(m) })
}

// change runs fn and then prune: what every update does to the ConfigMap
// before writing it.
func (d slackDoc) change(fn func(d slackDoc) error) (dropped []string, err error) {
	if err := fn(d); err != nil {
		return nil, err
	}
	return d.prune()
}

// touch makes releases the most recently recorded, the last one first.
func (d slackDoc) touch(releases ...string) error {
	var recent []string
	if err := d.read(slackKeyRecent, &recent); err != nil {
		return err
	}
	before := slices.Clone(recent)
	for _, r := range releases {
		if r == "" {
			continue
		}
		recent = slices.DeleteFunc(recent, func(x string) bool { return x == r })
		recent = slices.Insert(recent, 0, r)
	}
	if slices.Equal(before, recent) {
		return nil
	}
	return d.write(slackKeyRecent, recent, false)
}

// releaseOwner is the release among ids that a key or a ref belongs to: the
// longest ID it starts with, followed by '/' or '#'. Every key and ref the
// notifier makes starts so: event keys "<release>/<seq>" (and the
// checklist's "<release>/review/ticks/<n>"), message keys built on them
// ("…/close", "…/alert/<name>", "…/review", "…/go_nogo"), and the refs of
// bot.StageRef ("<release>#<stage>/stage"), ReviewRef, GoNoGoRef and
// ReleaseRef ("<release>/…"). The channel records ("channel:<name>") and
// anything queued by other callers belong to no release and are kept.
func releaseOwner(s string, ids map[string]bool) (string, bool) {
	for i := len(s) - 1; i > 0; i-- {
		if (s[i] == '/' || s[i] == '#') && ids[s[:i]] {
			return s[:i], true
		}
	}
	return "", false
}

// prune keeps the whole state of the slackKeptReleases most recently
// recorded releases and of every release a queued message belongs to
// (its message, its thread's parent and its key must outlive any number
// of newer releases, so that it is still delivered, once, in its thread),
// and drops the other releases' stage tables, release messages, handled
// event keys, message keys and posted-message records. Queued messages are
// never dropped. It returns the releases dropped, least recent first.
func (d slackDoc) prune() ([]string, error) {
	var recent []string
	var releases map[string]bot.ReleaseMessages
	if err := d.read(slackKeyRecent, &recent); err != nil {
		return nil, err
	}
	if err := d.read(slackKeyReleases, &releases); err != nil {
		return nil, err
	}
	// Releases recorded without a place in the list (by a store that kept
	// none) count as the least recent, in a fixed order.
	order, listed := slices.Clone(recent), idSet(recent)
	var unlisted []string
	for id := range releases {
		if !listed[id] {
			unlisted = append(unlisted, id)
		}
	}
	slices.Sort(unlisted)
	order = append(order, unlisted...)
	if len(order) <= slackKeptReleases {
		return nil, nil
	}

	var queue []bot.OutboxEntry
	if err := d.read(slackKeyQueue, &queue); err != nil {
		return nil, err
	}
	known := idSet(order)
	pinned, queued := map[string]bool{}, map[string]bool{}
	for _, e := range queue {
		for _, s := range []string{e.Key, e.Ref, e.ThreadRef} {
			if s == "" {
				continue
			}
			queued[s] = true
			if r, ok := releaseOwner(s, known); ok {
				pinned[r] = true
			}
		}
	}
	var kept, drop []string
	for i, id := range order {
		if i < slackKeptReleases || pinned[id] {
			kept = append(kept, id)
		} else {
			drop = append(drop, id)
		}
	}
	if len(drop) == 0 {
		return nil, nil
	}
	slices.Reverse(drop) // least recent first, as the pruned list goes

	var pruned []string
	if err := d.read(slackKeyPruned, &pruned); err != nil {
		return nil, err
	}
	// Entries of releases pruned earlier are looked for too: a record put
	// by a delivery that raced the pruning goes with the next one.
	gone := idSet(drop)
	for _, id := range pruned {
		gone[id] = true
		known[id] = true
	}
	dropped := func(s string) bool {
		if queued[s] {
			return false
		}
		r, ok := releaseOwner(s, known)
		return ok && gone[r]
	}

	var stages map[string]bot.StageMessage
	if err := d.read(slackKeyStages, &stages); err != nil {
		return nil, err
	}
	// A section is written again only when something left it: each write
	// is a gzip of the whole section.
	n := len(stages)
	maps.DeleteFunc(stages, func(ref string, m bot.StageMessage) bool { return gone[m.Release] || dropped(ref) })
	if len(stages) != n {
		if err := d.write(slackKeyStages, stages, len(stages) == 0); err != nil {
			return nil, err
		}
	}
	n = len(releases)
	maps.DeleteFunc(releases, func(id string, _ bot.ReleaseMessages) bool { return gone[id] })
	if len(releases) != n {
		if err := d.write(slackKeyReleases, releases, len(releases) == 0); err != nil {
			return nil, err
		}
	}
	for _, section := range []string{slackKeyHandled, slackKeyKeys} {
		var keys []string
		if err := d.read(section, &keys); err != nil {
			return nil, err
		}
		n = len(keys)
		if keys = slices.DeleteFunc(keys, dropped); len(keys) != n {
			if err := d.write(section, keys, len(keys) == 0); err != nil {
				return nil, err
			}
		}
	}
	var messages map[string]bot.MessageRecord
	if err := d.read(slackKeyMessages, &messages); err != nil {
		return nil, err
	}
	n = len(messages)
	maps.DeleteFunc(messages, func(ref string, _ bot.MessageRecord) bool { return dropped(ref) })
	if len(messages) != n {
		if err := d.write(slackKeyMessages, messages, len(messages) == 0); err != nil {
			return nil, err
		}
	}

	if err := d.write(slackKeyRecent, kept, len(kept) == 0); err != nil {
		return nil, err
	}
	for _, id := range drop {
		if !slices.Contains(pruned, id) {
			pruned = append(pruned, id)
		}
	}
	if n := len(pruned) - slackKeptPruned; n > 0 {
		pruned = slices.Delete(pruned, 0, n) // the oldest
	}
	return drop, d.write(slackKeyPruned, pruned, false)
}

func idSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
