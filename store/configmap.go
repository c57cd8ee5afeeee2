package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/canarybot/canarybot/rollout"
)

// State is what the engine and the command line use of a state store;
// Bolt and ConfigMap both implement it.
type State interface {
	rollout.Store
	rollout.Inbox
	rollout.Heartbeater
	Enqueue(ctx context.Context, id string, c rollout.Command) error
	LastHeartbeat(ctx context.Context, id string) (time.Time, error)
}

// Errors of the ConfigMap store a caller branches on.
var (
	// ErrTooLarge: the state would not fit in a ConfigMap.
	ErrTooLarge = errors.New("release state is too large for a ConfigMap")
	// ErrForbidden: the cluster's RBAC refused the bot's identity.
	ErrForbidden = errors.New("not allowed by the cluster's RBAC")
	// ErrBadID: a release ID that cannot name a ConfigMap key.
	ErrBadID = errors.New("release ID cannot be stored in a ConfigMap")
	// ErrPruned: the release ended and was dropped to keep the ConfigMap
	// small. Its ID is not free: a new release under it would reopen the
	// old one's evidence and be taken for it by the Slack state.
	ErrPruned = errors.New("release was dropped from the ConfigMap")
)

// Keys of the state ConfigMap. A release's record is gzipped JSON in
// binaryData (a whole release with its table is several hundred KB of
// repetitive JSON; gzipped it stays well inside the ConfigMap's 1 MiB);
// its revision is kept beside it in plain text, so that a write can check
// it without unpacking the record and people can read it with kubectl.
const (
	keyCurrent         = "current"
	keyReleasePrefix   = "release."
	keyRevisionPrefix  = "revision."
	keyInboxPrefix     = "inbox."
	keyHeartbeatPrefix = "heartbeat."
	// keyEndedPrefix marks a release that has ended (complete, rolled back
	// or aborted) with when it did, in plain text: what pruning sorts by
	// without unpacking records.
	keyEndedPrefix = "ended."
	// keyPruned lists the IDs of dropped releases, one per line, oldest
	// first, at most keptPrunedIDs.
	keyPruned = "pruned"
)

// keptPrunedIDs bounds the remembered IDs of dropped releases: years of
// releases, ~20 KB.
const keptPrunedIDs = 1000

// keptEndedReleases is how many ended releases the ConfigMap keeps beside
// the current one. Each is about 30 KB gzipped: without a bound, the
// ConfigMap would reach its 1 MiB limit after some thirty releases and
// every write of the next release would fail. An older release's record
// is in its evidence directory; `status` of it answers "no release".
const keptEndedReleases = 5

// maxConfigMapBytes is the API server's limit on a ConfigMap's data and
// binaryData together (corev1 validation's MaxConfigMapSize).
const maxConfigMapBytes = 1 << 20

// conflictBackoff paces the retries of a write that lost a race with
// another write to the ConfigMap (a heartbeat, a queued command): about
// 2.5 s in all, far longer than any of those writes takes.
var conflictBackoff = wait.Backoff{Steps: 8, Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.2}

// ConfigMap keeps releases, their command queues and the engine's
// heartbeat in one ConfigMap, for several replicas of the bot in a
// cluster. Every write is an update at the resourceVersion it was decided
// on, so two writers can never both succeed on the same state: a Save whose
// release was saved by someone else since it was loaded fails with
// rollout.ErrConflict, and a write that only lost a race with an unrelated
// write (a heartbeat, a queued command) is decided again on fresh state.
//
// It needs get, update (on the named ConfigMap) and create (deploy/kubernetes/rbac.yaml).
type ConfigMap struct {
	client    kubernetes.Interface
	namespace string
	name      string
}

// NewConfigMap returns a store in the ConfigMap namespace/name, created
// at the first Save when missing.
func NewConfigMap(client kubernetes.Interface, namespace, name string) (*ConfigMap, error) {
	if client == nil {
		return nil, errors.New("configmap store: no Kubernetes client")
	}
	if namespace == "" || name == "" {
		return nil, fmt.Errorf("configmap store needs a namespace and a name (got %q/%q), e.g. spark/canarybot-state", namespace, name)
	}
	return &ConfigMap{client: client, namespace: namespace, name: name}, nil
}

// newConfigMapFor checks the names of a ConfigMap kept beside the release
// state's (what says which, example a usual name) and returns it.
func newConfigMapFor(what, example string, client kubernetes.Interface, namespace, name string) (*ConfigMap, error) {
	if client == nil {
		return nil, fmt.Errorf("%s: no Kubernetes client", what)
	}
	if namespace == "" || name == "" {
		return nil, fmt.Errorf("%s needs a namespace and a name (got %q/%q), e.g. spark/%s", what, namespace, name, example)
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return nil, fmt.Errorf("%s: namespace %q: %s", what, namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, fmt.Errorf("%s: ConfigMap name %q: %s", what, name, strings.Join(errs, "; "))
	}
	return &ConfigMap{client: client, namespace: namespace, name: name}, nil
}

// String names the ConfigMap as namespace/name.
func (s *ConfigMap) String() string { return s.namespace + "/" + s.name }

func (s *ConfigMap) get(ctx context.Context) (*corev1.ConfigMap, error) {
	cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.apiError("get", err)
	}
	return cm, nil
}

func (s *ConfigMap) apiError(verb string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%w: %s ConfigMap %s: apply deploy/kubernetes/rbac.yaml (the Role must name this ConfigMap): %v", ErrForbidden, verb, s, err)
	}
	return fmt.Errorf("%s ConfigMap %s: %w", verb, s, err)
}

// write creates or updates the ConfigMap. An update carries the
// resourceVersion cm was read at, so it fails with a conflict when anything
// changed since.
func (s *ConfigMap) write(ctx context.Context, cm *corev1.ConfigMap) error {
	if n := size(cm); n > maxConfigMapBytes {
		return fmt.Errorf("%w: %s would hold %d bytes, the limit is %d: the release is too long for a ConfigMap (a slower tick or fewer first-night snapshots shrink it), or keep the state in bbolt with --state-configmap \"\"",
			ErrTooLarge, s, n, maxConfigMapBytes)
	}
	cms := s.client.CoreV1().ConfigMaps(s.namespace)
	var err error
	verb := "update"
	if cm.ResourceVersion == "" {
		verb = "create"
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: fieldManager})
	} else {
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager})
	}
	switch {
	case err == nil:
		return nil
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return err // raced: retried by modify
	case apierrors.IsRequestEntityTooLargeError(err):
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return s.apiError(verb, err)
}

const fieldManager = "canarybot"

func size(cm *corev1.ConfigMap) int {
	n := 0
	for k, v := range cm.Data {
		n += len(k) + len(v)
	}
	for k, v := range cm.BinaryData {
		n += len(k) + len(v)
	}
	return n
}

// modify reads the ConfigMap (a new one when missing), lets fn change it,
// and writes it at the version read; a write that lost a race is decided
// again on fresh state. fn returning errNoChange writes nothing.
func (s *ConfigMap) modify(ctx context.Context, fn func(cm *corev1.ConfigMap) error) error {
	raced := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(conflictBackoff, raced, func() error {
		cm, err := s.get(ctx)
		if err != nil {
			return err
		}
		if cm == nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: s.name, Namespace: s.namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "canarybot"},
			}}
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		if cm.BinaryData == nil {
			cm.BinaryData = map[string][]byte{}
		}
		if err := fn(cm); err != nil {
			return err
		}
		return s.write(ctx, cm)
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	if raced(err) {
		return fmt.Errorf("ConfigMap %s kept changing under us; try again: %w", s, err)
	}
	return err
}

var errNoChange = errors.New("nothing to write")

func key(prefix, id string) (string, error) {
	k := prefix + id
	if id == "" || len(validation.IsConfigMapKey(k)) > 0 {
		return "", fmt.Errorf("%w: %q: use letters, digits, '-', '_' and '.' only", ErrBadID, id)
	}
	return k, nil
}

// resolve turns "" into the current release's ID.
func resolve(cm *corev1.ConfigMap, id string) string {
	if id == "" && cm != nil {
		return cm.Data[keyCurrent]
	}
	return id
}

func revisionOf(cm *corev1.ConfigMap, id string) (int64, bool, error) {
	v, ok := cm.Data[keyRevisionPrefix+id]
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, true, fmt.Errorf("release %s: corrupt revision %q: %w", id, v, err)
	}
	return n, true, nil
}

func decodeRelease(cm *corev1.ConfigMap, id string) (*rollout.Release, error) {
	data, ok := cm.BinaryData[keyReleasePrefix+id]
	if !ok {
		return nil, rollout.ErrNotFound
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("release %s: corrupt record: %w", id, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("release %s: corrupt record: %w", id, err)
	}
	var r rollout.Release
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("release %s: corrupt record: %w", id, err)
	}
	return &r, nil
}

func encodeRelease(r *rollout.Release) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode release %s: %w", r.ID, err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Load returns the release with the given id; "" means the current one.
func (s *ConfigMap) Load(ctx context.Context, id string) (*rollout.Release, error) {
	cm, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	if cm == nil {
		return nil, rollout.ErrNotFound
	}
	id = resolve(cm, id)
	if id == "" {
		return nil, rollout.ErrNotFound
	}
	r, err := decodeRelease(cm, id)
	if errors.Is(err, rollout.ErrNotFound) && slices.Contains(strings.Split(cm.Data[keyPruned], "\n"), id) {
		return nil, fmt.Errorf("%w: release %s ended and was dropped from ConfigMap %s, which keeps the %d releases that ended last; its record is in its evidence directory",
			ErrPruned, id, s, keptEndedReleases)
	}
	return r, err
}

// Save stores the release if nobody saved it since it was loaded, and makes
// it the current release. On success r.Revision is the stored revision.
func (s *ConfigMap) Save(ctx context.Context, r *rollout.Release) error {
	relKey, err := key(keyReleasePrefix, r.ID)
	if err != nil {
		return err
	}
	next := *r
	next.Revision = r.Revision + 1
	data, err := encodeRelease(&next)
	if err != nil {
		return err
	}
	err = s.modify(ctx, func(cm *corev1.ConfigMap) error {
		stored, ok, err := revisionOf(cm, r.ID)
		if err != nil {
			return err
		}
		switch {
		case ok && stored != r.Revision:
			return fmt.Errorf("release %s at revision %d, stored %d: %w", r.ID, r.Revision, stored, rollout.ErrConflict)
		case !ok && r.Revision != 0:
			return fmt.Errorf("release %s at revision %d is not stored: %w", r.ID, r.Revision, rollout.ErrConflict)
		}
		cm.BinaryData[relKey] = data
		cm.Data[keyRevisionPrefix+r.ID] = strconv.FormatInt(next.Revision, 10)
		cm.Data[keyCurrent] = r.ID
		if next.Phase.Terminal() {
			cm.Data[keyEndedPrefix+r.ID] = next.PhaseStarted.UTC().Format(time.RFC3339Nano)
		}
		pruneEnded(cm, r.ID)
		return nil
	})
	if err != nil {
		return err
	}
	r.Revision = next.Revision
	return nil
}

// pruneEnded drops all but the keptEndedReleases most recently ended
// releases other than current, with their inbox and heartbeat. A release
// that has not ended is never dropped. Releases stored before ended keys
// existed get theirs from their record, once.
func pruneEnded(cm *corev1.ConfigMap, current string) {
	type ended struct {
		id string
		at time.Time
	}
	var es []ended
	for k := range cm.BinaryData {
		id, ok := strings.CutPrefix(k, keyReleasePrefix)
		if !ok || id == current {
			continue
		}
		v, ok := cm.Data[keyEndedPrefix+id]
		if !ok {
			if len(cm.BinaryData) <= keptEndedReleases+1 {
				continue // nothing to prune yet: spare the unpacking
			}
			r, err := decodeRelease(cm, id)
			if err != nil || !r.Phase.Terminal() {
				continue // kept: a damaged record is for a person to look at
			}
			v = r.PhaseStarted.UTC().Format(time.RFC3339Nano)
			cm.Data[keyEndedPrefix+id] = v
		}
		at, _ := time.Parse(time.RFC3339Nano, v) // unreadable: oldest
		es = append(es, ended{id, at})
	}
	if len(es) <= keptEndedReleases {
		return
	}
	slices.SortFunc(es, func(a, b ended) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	var pruned []string
	if v := cm.Data[keyPruned]; v != "" {
		pruned = strings.Split(v, "\n")
	}
	for _, e := range es[keptEndedReleases:] {
		delete(cm.BinaryData, keyReleasePrefix+e.id)
		for _, prefix := range []string{keyRevisionPrefix, keyInboxPrefix, keyHeartbeatPrefix, keyEndedPrefix} {
			delete(cm.Data, prefix+e.id)
		}
		if !slices.Contains(pruned, e.id) {
			pruned = append(pruned, e.id)
		}
	}
	if len(pruned) > keptPrunedIDs {
		pruned = pruned[len(pruned)-keptPrunedIDs:]
	}
	cm.Data[keyPruned] = strings.Join(pruned, "\n")
}

// Enqueue queues a command for the engine running the release; "" means the
// current release.
func (s *ConfigMap) Enqueue(ctx context.Context, id string, c rollout.Command) error {
	if c.ID == "" {
		return errors.New("a queued command needs an ID, so that it is applied once")
	}
	return s.modify(ctx, func(cm *corev1.ConfigMap) error {
		rid := resolve(cm, id)
		if _, ok, _ := revisionOf(cm, rid); !ok || rid == "" {
			return rollout.ErrNotFound
		}
		k, err := key(keyInboxPrefix, rid)
		if err != nil {
			return err
		}
		q, err := inbox(cm, k)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(q, func(x rollout.Command) bool { return x.ID == c.ID }) {
			return errNoChange
		}
		return putInbox(cm, k, append(q, c))
	})
}

func inbox(cm *corev1.ConfigMap, k string) ([]rollout.Command, error) {
	v, ok := cm.Data[k]
	if !ok || strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var q []rollout.Command
	if err := json.Unmarshal([]byte(v), &q); err != nil {
		return nil, fmt.Errorf("queued commands %s: %w", k, err)
	}
	return q, nil
}

func putInbox(cm *corev1.ConfigMap, k string, q []rollout.Command) error {
	if len(q) == 0 {
		delete(cm.Data, k)
		return nil
	}
	data, err := json.Marshal(q)
	if err != nil {
		return err
	}
	cm.Data[k] = string(data)
	return nil
}

// Take returns the queued commands of a release, oldest first. A command
// leaves the queue only once the stored release records it as applied, so a
// crash between Take and Save loses nothing.
func (s *ConfigMap) Take(ctx context.Context, id string) ([]rollout.Command, error) {
	k, err := key(keyInboxPrefix, id)
	if err != nil {
		return nil, err
	}
	var out []rollout.Command
	err = s.modify(ctx, func(cm *corev1.ConfigMap) error {
		out = nil
		q, err := inbox(cm, k)
		if err != nil {
			return err
		}
		if len(q) == 0 {
			return errNoChange
		}
		applied := map[string]bool{}
		if r, err := decodeRelease(cm, id); err == nil {
			for _, c := range r.Commands {
				applied[c] = true
			}
		} else if !errors.Is(err, rollout.ErrNotFound) {
			return err
		}
		left := q[:0:0]
		for _, c := range q {
			if !applied[c.ID] {
				left = append(left, c)
			}
		}
		out = left
		if len(left) == len(q) {
			return errNoChange
		}
		return putInbox(cm, k, left)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Heartbeat records that an engine is driving the release, and when.
func (s *ConfigMap) Heartbeat(ctx context.Context, id string, at time.Time) error {
	k, err := key(keyHeartbeatPrefix, id)
	if err != nil {
		return err
	}
	v := at.UTC().Format(time.RFC3339Nano)
	return s.modify(ctx, func(cm *corev1.ConfigMap) error {
		if cm.ResourceVersion == "" {
			// No state yet: a heartbeat alone does not create it.
			return errNoChange
		}
		cm.Data[k] = v
		return nil
	})
}

// LastHeartbeat is when an engine last said it was driving the release;
// zero if none ever did.
func (s *ConfigMap) LastHeartbeat(ctx context.Context, id string) (time.Time, error) {
	cm, err := s.get(ctx)
	if err != nil || cm == nil {
		return time.Time{}, err
	}
	v, ok := cm.Data[keyHeartbeatPrefix+id]
	if !ok {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("heartbeat of %s: %q: %w", id, v, err)
	}
	return at, nil
}
