package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/canarybot/canarybot/clock"
	"github.com/canarybot/canarybot/rollout"
)

// OutboxOp is what an outbox message does in Slack.
type OutboxOp string

const (
	// OutboxPost posts a new message (a thread reply when ThreadRef is
	// set). It is posted once, whatever happens between the post and the
	// record of it.
	OutboxPost OutboxOp = "post"
	// OutboxUpsert sets the content of the message named Ref: the first one
	// posts it, every later one edits it with chat.update.
	OutboxUpsert OutboxOp = "upsert"
)

// OutboxMetadataType is the Slack message-metadata event type on every
// message the outbox posts. Its payload's "ref" names the message, so that
// after a crash between Slack accepting a post and the outbox recording it,
// the outbox finds the message in the channel instead of posting it again.
const OutboxMetadataType = "canarybot_outbox"

// OutboxMessage is one Slack call to make.
type OutboxMessage struct {
	// Key is unique per message; a key already queued is not queued again.
	Key string   `json:"key"`
	Op  OutboxOp `json:"op"`
	// Channel is where a new message goes: a channel ID or #name.
	Channel string `json:"channel"`
	// Ref names the message an upsert sets; a post's ref is its Key.
	Ref string `json:"ref,omitempty"`
	// ThreadRef names the message whose thread a post replies in. If that
	// message could never be posted, the reply goes to the channel.
	ThreadRef string `json:"thread_ref,omitempty"`
	// Broadcast shows a thread reply in the channel too.
	Broadcast bool            `json:"broadcast,omitempty"`
	Text      string          `json:"text"`
	Blocks    json.RawMessage `json:"blocks,omitempty"`
}

// MessageRef returns the name under which the message's ts is recorded.
func (m OutboxMessage) MessageRef() string {
	if m.Op == OutboxUpsert {
		return m.Ref
	}
	return m.Key
}

// OutboxEntry is a queued message with its delivery state.
type OutboxEntry struct {
	OutboxMessage
	// Seq orders the queue; messages go out in this order.
	Seq       uint64    `json:"seq"`
	Queued    time.Time `json:"queued"`
	Attempts  int       `json:"attempts,omitempty"`
	NotBefore time.Time `json:"not_before,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	// TextOnly is set after Slack refused the blocks: the text goes alone.
	TextOnly bool `json:"text_only,omitempty"`
}

// MessageRecord is what the outbox knows of a message it posts.
type MessageRecord struct {
	Ref string `json:"ref"`
	// Channel is the channel ID once Slack has answered (chat.update and
	// conversations.* need the ID); before that, where the post went.
	Channel string `json:"channel,omitempty"`
	// ThreadTS is the parent of a thread reply, where to look for it.
	ThreadTS string `json:"thread_ts,omitempty"`
	// TS is empty until the post is known to have been accepted.
	TS string `json:"ts,omitempty"`
	// PostStarted says a chat.postMessage went out whose outcome was not
	// recorded: Slack may have posted it. The next try looks first.
	PostStarted bool `json:"post_started,omitempty"`
}

// OutboxOutcome ends a queued message's life.
type OutboxOutcome struct {
	// Message, when set, is recorded with the outcome in one transaction:
	// the post's ts is never lost once the entry leaves the queue.
	Message *MessageRecord
	// Dead says why the message can never be delivered; it is kept with
	// the reason instead of being dropped silently.
	Dead string
}

// OutboxStore keeps the outbox durably. Every method is one transaction.
type OutboxStore interface {
	// QueueMessages queues messages whose key is not known yet, in order.
	QueueMessages(ctx context.Context, now time.Time, msgs ...OutboxMessage) error
	// Pending returns the queue, oldest first.
	Pending(ctx context.Context) ([]OutboxEntry, error)
	// Reschedule stores an entry's attempts, next try and last error.
	Reschedule(ctx context.Context, e OutboxEntry) error
	// Finish removes an entry from the queue with its outcome.
	Finish(ctx context.Context, e OutboxEntry, out OutboxOutcome) error
	// Message returns what is known of a posted message.
	Message(ctx context.Context, ref string) (MessageRecord, bool, error)
	PutMessage(ctx context.Context, m MessageRecord) error
	// Dead lists the messages given up on, with why.
	Dead(ctx context.Context) ([]OutboxEntry, error)
}

// OutboxAPI is the part of *slack.Client the outbox uses.
type OutboxAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	GetConversationHistoryContext(ctx context.Context, params *slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, error)
	GetConversationRepliesContext(ctx context.Context, params *slack.GetConversationRepliesParameters) ([]slack.Message, bool, string, error)
	GetConversationsContext(ctx context.Context, params *slack.GetConversationsParameters) ([]slack.Channel, string, error)
}

// DeferredError says the queue's head could not be delivered yet and when
// the next try is due. Err is the last failure.
type DeferredError struct {
	Key   string
	Until time.Time
	Err   error
}

func (e *DeferredError) Error() string {
	return fmt.Sprintf("slack message %s deferred until %s: %v", e.Key, e.Until.UTC().Format(time.RFC3339), e.Err)
}

func (e *DeferredError) Unwrap() error { return e.Err }

// Outbox delivers queued Slack messages in order. A rate limit waits for
// Slack's Retry-After; a 5xx, a timeout or a dropped connection is retried
// with exponential backoff, indefinitely: a message is never lost to an
// outage. A message Slack refuses outright (channel_not_found, ...) is set
// aside as dead with the reason, so it does not block the rest.
//
// Posting is made exactly-once with Slack message metadata: before a
// chat.postMessage the outbox records that the post started; if its
// outcome was not recorded (a crash, a timeout, a 5xx after Slack had
// accepted), the next try reads the channel (or thread) history for a
// message carrying the post's ref and records that one instead of posting
// again. Edits are chat.update of a recorded ts, which are idempotent.
type Outbox struct {
	API   OutboxAPI
	Store OutboxStore
	// Clock times retries; clock.Real when nil.
	Clock rollout.Clock
	// Backoff is the first wait after a 5xx, a timeout or a dropped
	// connection (default 1s); it doubles up to MaxBackoff (default 5m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// CallTimeout bounds each Slack call (default 10s): slack-go's default
	// HTTP client has none.
	CallTimeout time.Duration
	// LookupMessages bounds how far back the history is read for a post
	// that may have gone out (default 600 messages).
	LookupMessages int
	// LookupUnknown treats a message the outbox has no record of like a
	// post whose outcome is unknown: before posting it, the outbox looks
	// for it in the channel (or its thread) by its ref, and edits or
	// threads under what it finds. Turn it on when replicas with their own
	// stores take over from one another (leader election): the new leader
	// has no record of what the old one posted. It costs one history read
	// per message the outbox has never seen, not one per edit: the result
	// is recorded.
	LookupUnknown bool
	Logger        *slog.Logger

	mu sync.Mutex // one delivery at a time: order is the point
	// failures counts the failed calls since the last success: the
	// backoff grows with it, across messages, since a newer version of a
	// failing message replaces it in the queue.
	failures int
	wakeMu   sync.Mutex
	wake     chan struct{}
	running  bool
}

// Enqueue queues messages durably and wakes the delivery loop.
func (o *Outbox) Enqueue(ctx context.Context, msgs ...OutboxMessage) error {
	for _, m := range msgs {
		if err := m.validate(); err != nil {
			return err
		}
	}
	if err := o.Store.QueueMessages(ctx, o.clock().Now(), msgs...); err != nil {
		return fmt.Errorf("slack outbox: queue: %w", err)
	}
	o.Wake()
	return nil
}

func (m OutboxMessage) validate() error {
	switch {
	case m.Key == "":
		return errors.New("slack outbox: a message needs a Key, so that it is sent once")
	case m.Op != OutboxPost && m.Op != OutboxUpsert:
		return fmt.Errorf("slack outbox: message %s: unknown op %q (want %q or %q)", m.Key, m.Op, OutboxPost, OutboxUpsert)
	case m.Op == OutboxUpsert && m.Ref == "":
		return fmt.Errorf("slack outbox: upsert %s needs the Ref of the message it sets", m.Key)
	case m.Channel == "":
		return fmt.Errorf("slack outbox: message %s has no channel", m.Key)
	}
	return nil
}

// Wake makes a running delivery loop look at the queue now.
func (o *Outbox) Wake() {
	o.wakeMu.Lock()
	defer o.wakeMu.Unlock()
	if o.wake == nil {
		o.wake = make(chan struct{}, 1)
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *Outbox) wakeChan() chan struct{} {
	o.wakeMu.Lock()
	defer o.wakeMu.Unlock()
	if o.wake == nil {
		o.wake = make(chan struct{}, 1)
	}
	return o.wake
}

// Running reports whether Run is delivering in the background.
func (o *Outbox) Running() bool {
	o.wakeMu.Lock()
	defer o.wakeMu.Unlock()
	return o.running
}

// Run delivers until ctx ends: whenever a message is queued, and at each
// retry's time.
func (o *Outbox) Run(ctx context.Context) error {
	o.wakeMu.Lock()
	o.running = true
	o.wakeMu.Unlock()
	defer func() {
		o.wakeMu.Lock()
		o.running = false
		o.wakeMu.Unlock()
	}()
	wake := o.wakeChan()
	var storeWait time.Duration
	for {
		var timer <-chan time.Time
		err := o.Flush(ctx)
		d, deferred := errors.AsType[*DeferredError](err)
		switch {
		case deferred:
			storeWait = 0
			timer = o.clock().After(max(d.Until.Sub(o.clock().Now()), 0))
		case err != nil && ctx.Err() == nil:
			wait := o.maxBackoff()
			if errors.Is(err, errStore) {
				// The store may be an API server (a ConfigMap shared by
				// replicas): a blip must not silence the war-room for
				// minutes, so its retries start at a second.
				storeWait = min(max(2*storeWait, time.Second), o.maxBackoff())
				wait = storeWait
			}
			o.logger().Error("slack outbox: delivery stopped; retrying", "err", err, "in", wait)
			timer = o.clock().After(wait)
		default:
			storeWait = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer:
		}
	}
}

// Drain delivers until the queue is empty, waiting out retries on the
// clock. It returns early only when ctx ends or the store fails.
func (o *Outbox) Drain(ctx context.Context) error {
	for {
		err := o.Flush(ctx)
		d, ok := errors.AsType[*DeferredError](err)
		if !ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (while %w)", ctx.Err(), err)
		case <-o.clock().After(max(d.Until.Sub(o.clock().Now()), 0)):
		}
	}
}

// Flush tries every queued message that is due, in order, once. It stops
// at the first that must be retried and returns a *DeferredError saying
// when; the messages behind it wait, so the channel reads in order.
func (o *Outbox) Flush(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	queue, err := o.Store.Pending(ctx)
	if err != nil {
		return fmt.Errorf("slack outbox: read queue: %w", err)
	}
	for i, e := range queue {
		now := o.clock().Now()
		if now.Before(e.NotBefore) {
			return &DeferredError{Key: e.Key, Until: e.NotBefore, Err: errors.New(e.LastError)}
		}
		err := o.deliver(ctx, e, queue[i+1:])
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errStore) {
			return err
		}
		wait, retry := o.retryAfter(err, o.failures)
		o.failures++
		if !retry && blocksRefused(err) && !e.TextOnly && len(e.Blocks) > 0 {
			// The layout is at fault, not the news: send the text alone.
			e.TextOnly, wait, retry = true, 0, true
		}
		e.Attempts++
		e.LastError = err.Error()
		if !retry {
			o.logger().Error("slack outbox: Slack refused a message; set aside as dead", "key", e.Key, "channel", e.Channel, "err", err)
			if ferr := o.Store.Finish(ctx, e, OutboxOutcome{Dead: err.Error()}); ferr != nil {
				return fmt.Errorf("slack outbox: set %s aside: %w", e.Key, ferr)
			}
			continue
		}
		e.NotBefore = now.Add(wait)
		o.logger().Warn("slack outbox: delivery failed; will retry", "key", e.Key, "attempt", e.Attempts, "retry_in", wait, "err", err)
		if rerr := o.Store.Reschedule(ctx, e); rerr != nil {
			return fmt.Errorf("slack outbox: reschedule %s: %w", e.Key, rerr)
		}
		return &DeferredError{Key: e.Key, Until: e.NotBefore, Err: err}
	}
	return nil
}

// errStore marks a failure of the outbox's own store: nothing to retry at
// Slack, and the queue is not trustworthy until it works again.
var errStore = errors.New("slack outbox store")

func storeErr(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", errStore, what, err)
}

func (o *Outbox) deliver(ctx context.Context, e OutboxEntry, later []OutboxEntry) error {
	ref := e.MessageRef()
	rec, found, err := o.Store.Message(ctx, ref)
	if err != nil {
		return storeErr("read message "+ref, err)
	}
	if e.Op == OutboxPost && rec.TS != "" {
		// Posted and recorded already (by a run that was stopped before it
		// took the entry off the queue, or by another replica): only the
		// finishing is left.
		return o.finish(ctx, e, OutboxOutcome{})
	}
	unknown := !found && o.LookupUnknown
	if !found {
		rec = MessageRecord{Ref: ref}
	}
	if unknown {
		// Another replica may have posted it: look where post would put it.
		if rec, err = o.target(ctx, e, rec); err != nil {
			return err
		}
		rec.PostStarted = true
	}
	if e.Op == OutboxUpsert && rec.TS != "" {
		for _, l := range later {
			if l.Op == OutboxUpsert && l.Ref == e.Ref {
				// A newer version of the message is queued: this one
				// would be overwritten at once.
				return o.finish(ctx, e, OutboxOutcome{})
			}
		}
		err := o.update(ctx, e, rec)
		if !isSlackError(err, "message_not_found") {
			if err != nil {
				return err
			}
			return o.finish(ctx, e, OutboxOutcome{})
		}
		// Someone deleted the message: post it again rather than lose it.
		o.logger().Warn("slack outbox: message to edit was deleted; posting it again", "ref", ref, "ts", rec.TS)
		rec = MessageRecord{Ref: ref}
	}
	if rec.PostStarted {
		got, ok, err := o.lookup(ctx, rec)
		if err != nil {
			if _, retry := o.retryAfter(err, 0); retry {
				return fmt.Errorf("look for message %s posted before an interruption or by another replica: %w", ref, err)
			}
			// A lost war-room message is worse than a repeated one.
			o.logger().Warn("slack outbox: cannot check whether the message was posted already; posting it (it may appear twice)",
				"ref", ref, "unrecorded", unknown, "err", err, "fix", "give the app channels:history (groups:history for a private channel) and configure the channel by ID")
		}
		if ok {
			o.logger().Info("slack outbox: message was posted already (before an interruption, or by another replica); not posting it again",
				"ref", ref, "ts", got.TS, "unrecorded", unknown)
			if e.Op == OutboxUpsert {
				// The post found may carry an older version.
				if err := o.Store.PutMessage(ctx, got); err != nil {
					return storeErr("record message "+ref, err)
				}
				if err := o.update(ctx, e, got); err != nil {
					return err
				}
			}
			return o.finish(ctx, e, OutboxOutcome{Message: &got})
		}
	}
	return o.post(ctx, e, rec)
}

func (o *Outbox) finish(ctx context.Context, e OutboxEntry, out OutboxOutcome) error {
	if err := o.Store.Finish(ctx, e, out); err != nil {
		return storeErr("finish "+e.Key, err)
	}
	return nil
}

// target sets where a post of e goes: the channel, or its parent's thread
// when the parent was posted.
func (o *Outbox) target(ctx context.Context, e OutboxEntry, rec MessageRecord) (MessageRecord, error) {
	rec.Channel, rec.ThreadTS = e.Channel, ""
	if e.ThreadRef == "" {
		return rec, nil
	}
	parent, found, err := o.Store.Message(ctx, e.ThreadRef)
	if err != nil {
		return rec, storeErr("read message "+e.ThreadRef, err)
	}
	if !found && o.LookupUnknown {
		if parent, found, err = o.adoptParent(ctx, e); err != nil {
			return rec, err
		}
	}
	if found && parent.TS != "" {
		rec.Channel, rec.ThreadTS = parent.Channel, parent.TS
	}
	return rec, nil
}

// adoptParent looks in the channel for a thread parent the outbox has no
// record of, and records what it finds: a parent posted by another replica
// (with its ts), or one that is not there (without), so that the replies
// after this one do not read the history again.
func (o *Outbox) adoptParent(ctx context.Context, e OutboxEntry) (MessageRecord, bool, error) {
	parent, found, err := o.lookup(ctx, MessageRecord{Ref: e.ThreadRef, Channel: e.Channel})
	if err != nil {
		if _, retry := o.retryAfter(err, 0); retry {
			return MessageRecord{}, false, fmt.Errorf("look for thread parent %s of %s: %w", e.ThreadRef, e.Key, err)
		}
		o.logger().Warn("slack outbox: cannot look for a thread parent posted by another replica; replying in the channel",
			"key", e.Key, "parent", e.ThreadRef, "err", err, "fix", "give the app channels:history (groups:history for a private channel) and configure the channel by ID")
		return MessageRecord{}, false, nil
	}
	if !found {
		// Found absent: when the parent's own message comes, it posts it.
		parent = MessageRecord{Ref: e.ThreadRef, Channel: e.Channel}
	}
	if err := o.Store.PutMessage(ctx, parent); err != nil {
		return MessageRecord{}, false, storeErr("record thread parent "+e.ThreadRef, err)
	}
	return parent, true, nil
}

func (o *Outbox) post(ctx context.Context, e OutboxEntry, rec MessageRecord) error {
	rec, err := o.target(ctx, e, rec)
	if err != nil {
		return err
	}
	channel, threadTS := rec.Channel, rec.ThreadTS
	if e.ThreadRef != "" && threadTS == "" {
		o.logger().Warn("slack outbox: thread parent was never posted; replying in the channel", "key", e.Key, "parent", e.ThreadRef)
	}
	rec.PostStarted = true
	if err := o.Store.PutMessage(ctx, rec); err != nil {
		return storeErr("record post of "+rec.Ref, err)
	}
	opts, err := o.options(e)
	if err != nil {
		return err
	}
	opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{
		EventType: OutboxMetadataType, EventPayload: map[string]any{"ref": rec.Ref},
	}))
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
		if e.Broadcast {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	}
	var ch, ts string
	err = o.call(ctx, func(ctx context.Context) error {
		var err error
		ch, ts, err = o.API.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err != nil {
		if notPosted(err) {
			rec.PostStarted = false
			if perr := o.Store.PutMessage(ctx, rec); perr != nil {
				return storeErr("record refused post of "+rec.Ref, perr)
			}
		}
		return fmt.Errorf("chat.postMessage %s to %s: %w", e.Key, channel, err)
	}
	if name := channelName(e.Channel); name != "" && ch != "" {
		if err := o.Store.PutMessage(ctx, MessageRecord{Ref: channelRef(name), Channel: ch}); err != nil {
			o.logger().Warn("slack outbox: channel ID not cached", "channel", e.Channel, "err", err)
		}
	}
	return o.finish(ctx, e, OutboxOutcome{Message: &MessageRecord{Ref: rec.Ref, Channel: ch, ThreadTS: threadTS, TS: ts}})
}

func (o *Outbox) update(ctx context.Context, e OutboxEntry, rec MessageRecord) error {
	opts, err := o.options(e)
	if err != nil {
		return err
	}
	err = o.call(ctx, func(ctx context.Context) error {
		_, _, _, err := o.API.UpdateMessageContext(ctx, rec.Channel, rec.TS, opts...)
		return err
	})
	if err != nil {
		return fmt.Errorf("chat.update %s (%s in %s): %w", e.Key, rec.TS, rec.Channel, err)
	}
	return nil
}

func (o *Outbox) options(e OutboxEntry) ([]slack.MsgOption, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(e.Text, false)}
	if len(e.Blocks) == 0 || e.TextOnly {
		return opts, nil
	}
	var blocks slack.Blocks
	if err := json.Unmarshal(e.Blocks, &blocks); err != nil {
		return nil, fmt.Errorf("message %s: stored blocks do not decode: %w", e.Key, err)
	}
	return append(opts, slack.MsgOptionBlocks(blocks.BlockSet...)), nil
}

// lookup reads the channel (or the thread) for a message carrying ref in
// its metadata, newest first.
func (o *Outbox) lookup(ctx context.Context, rec MessageRecord) (MessageRecord, bool, error) {
	channel, err := o.channelID(ctx, rec.Channel)
	if err != nil {
		return MessageRecord{}, false, err
	}
	limit := o.LookupMessages
	if limit <= 0 {
		limit = 600
	}
	cursor := ""
	for seen := 0; seen < limit; {
		var msgs []slack.Message
		var next string
		err := o.call(ctx, func(ctx context.Context) error {
			if rec.ThreadTS != "" {
				var err error
				msgs, _, next, err = o.API.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
					ChannelID: channel, Timestamp: rec.ThreadTS, Cursor: cursor, Limit: 200, IncludeAllMetadata: true,
				})
				return err
			}
			res, err := o.API.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
				ChannelID: channel, Cursor: cursor, Limit: 200, IncludeAllMetadata: true,
			})
			if res != nil {
				msgs, next = res.Messages, res.ResponseMetaData.NextCursor
			}
			return err
		})
		if err != nil {
			return MessageRecord{}, false, err
		}
		for _, m := range msgs {
			if m.Metadata.EventType == OutboxMetadataType && fmt.Sprint(m.Metadata.EventPayload["ref"]) == rec.Ref {
				return MessageRecord{Ref: rec.Ref, Channel: channel, ThreadTS: rec.ThreadTS, TS: m.Timestamp}, true, nil
			}
		}
		seen += len(msgs)
		if next == "" || len(msgs) == 0 {
			break
		}
		cursor = next
	}
	return MessageRecord{}, false, nil
}

// channelName returns the name of a channel given as #name or name, or ""
// for an ID (C…, G… or D… followed by capitals and digits).
func channelName(ch string) string {
	isID := len(ch) >= 3 && strings.ContainsRune("CGD", rune(ch[0])) &&
		strings.Trim(ch[1:], "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == ""
	if isID {
		return ""
	}
	return strings.TrimPrefix(ch, "#")
}

func channelRef(name string) string { return "channel:" + name }

// channelID turns a #name into the channel's ID: from the outbox's own
// records, else from conversations.list (needs channels:read, and
// groups:read for a private channel).
func (o *Outbox) channelID(ctx context.Context, ch string) (string, error) {
	name := channelName(ch)
	if name == "" {
		return ch, nil
	}
	if rec, ok, err := o.Store.Message(ctx, channelRef(name)); err != nil {
		return "", storeErr("read channel ID", err)
	} else if ok && rec.Channel != "" {
		return rec.Channel, nil
	}
	cursor := ""
	for {
		var chans []slack.Channel
		err := o.call(ctx, func(ctx context.Context) error {
			var err error
			chans, cursor, err = o.API.GetConversationsContext(ctx, &slack.GetConversationsParameters{
				Cursor: cursor, ExcludeArchived: true, Limit: 1000, Types: []string{"public_channel", "private_channel"},
			})
			return err
		})
		if err != nil {
			return "", fmt.Errorf("find the ID of channel #%s: %w", name, err)
		}
		for _, c := range chans {
			if c.Name == name {
				if err := o.Store.PutMessage(ctx, MessageRecord{Ref: channelRef(name), Channel: c.ID}); err != nil {
					return "", storeErr("record channel ID", err)
				}
				return c.ID, nil
			}
		}
		if cursor == "" {
			return "", fmt.Errorf("channel #%s not found among the channels the bot can see: invite the bot, or configure the channel by ID", name)
		}
	}
}

func (o *Outbox) call(ctx context.Context, do func(ctx context.Context) error) error {
	timeout := o.CallTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := do(cctx)
	if err == nil {
		o.failures = 0 // Slack answers again
	}
	return err
}

// retryAfter says whether a failed call is worth repeating and after how
// long: Slack's Retry-After for a rate limit, else the backoff for this
// attempt.
func (o *Outbox) retryAfter(err error, attempts int) (time.Duration, bool) {
	backoff := o.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	for range attempts {
		if backoff >= o.maxBackoff() {
			break
		}
		backoff *= 2
	}
	backoff = min(backoff, o.maxBackoff())
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		return max(rl.RetryAfter, 0), true
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		return backoff, sc.Code >= 500
	}
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		// Slack's own answers that a later try may not get.
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return backoff, true
		}
		return 0, false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return backoff, true // the call's own timeout
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return backoff, true
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		return backoff, true // a dropped connection
	}
	return 0, false
}

func (o *Outbox) maxBackoff() time.Duration {
	if o.MaxBackoff > 0 {
		return o.MaxBackoff
	}
	return 5 * time.Minute
}

// notPosted says Slack certainly did not post the message: it answered
// with a refusal. A 5xx, a timeout or a dropped connection may come after
// Slack posted.
func notPosted(err error) bool {
	if _, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		return true
	}
	if _, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		return true
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		return sc.Code < 500
	}
	return false
}

func isSlackError(err error, code string) bool {
	se, ok := errors.AsType[slack.SlackErrorResponse](err)
	return ok && se.Err == code
}

func blocksRefused(err error) bool {
	se, ok := errors.AsType[slack.SlackErrorResponse](err)
	return ok && (strings.HasPrefix(se.Err, "invalid_blocks") || se.Err == "msg_too_long" || se.Err == "msg_blocks_too_long")
}

func (o *Outbox) clock() rollout.Clock {
	if o.Clock != nil {
		return o.Clock
	}
	return clock.Real{}
}

func (o *Outbox) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}
