package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/forge"
)

// Keys of the freeze's ConfigMap. The record is gzipped JSON in binaryData,
// as a release's is: a freeze of a thousand PRs, each with its head and
// status commits, is a few hundred KB of JSON. The version and phase are
// copied beside it in plain text, written in the same update, so that
// `kubectl get configmap -o yaml` tells whether a freeze is in force; they
// are never read back. The "freeze." prefix keeps the keys apart from the
// release state's and the Slack state's.
const (
	progressKeyState   = "freeze.state"
	progressKeyVersion = "freeze.version"
	progressKeyPhase   = "freeze.phase"
)

// progressBackoff paces an Update that lost a race. Unlike the release
// state's few writers, a storm of pull_request webhooks (a bot pushing to
// fifty PRs at once) spread over the replicas can all update the freeze at
// the same moment, and each round of a race has one winner: 40 attempts
// over 15-30 s leave room for dozens, still bounded by the caller's context
// (a webhook delivery's is 9 s). The full jitter spreads the losers out.
var progressBackoff = wait.Backoff{Steps: 40, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Cap: 500 * time.Millisecond}

// ConfigMapProgress is the change freeze's record (a forge.Progress) in a
// ConfigMap, so that every replica of `canarybot serve` shares one: a
// pull_request webhook that lands on a follower records the PR it labelled
// where the leader's lift will find it, and a lift on a new leader knows
// which labels the freeze added instead of guessing from the label's
// history.
//
// Update is an update at the resourceVersion read, so two Updates (from two
// pods, or two goroutines) never lose each other's changes: the one that
// lost the race reads the state again and applies its fn again. fn may
// therefore run more than once and must only change the state it is given
// (whatever it sets outside must be set again on every run). Like
// forge.FileProgress, fn's error cancels the save.
//
// Give it a ConfigMap of its own (e.g. canarybot-state-freeze): sharing the
// release state's would make the freeze's writes race the engine's. It
// needs get and update on that ConfigMap, and create to make it at the
// first Update (deploy/kubernetes/rbac.yaml).
type ConfigMapProgress struct {
	cm *ConfigMap
}

var _ forge.Progress = (*ConfigMapProgress)(nil)

// NewConfigMapProgress returns the freeze's record in the ConfigMap
// namespace/name, created at the first Update when missing.
func NewConfigMapProgress(client kubernetes.Interface, namespace, name string) (*ConfigMapProgress, error) {
	cm, err := newConfigMapFor("freeze progress configmap", "canarybot-state-freeze", client, namespace, name)
	if err != nil {
		return nil, err
	}
	return &ConfigMapProgress{cm: cm}, nil
}

// String names the ConfigMap as namespace/name.
func (p *ConfigMapProgress) String() string { return p.cm.String() }

// Load implements forge.Progress: the zero state when nothing was saved
// (no ConfigMap, or one without the freeze's key).
func (p *ConfigMapProgress) Load(ctx context.Context) (forge.FreezeState, error) {
	cm, err := p.cm.get(ctx)
	if err != nil {
		return forge.FreezeState{}, fmt.Errorf("freeze progress: %w", err)
	}
	return p.decode(cm)
}

// Update implements forge.Progress. fn may run more than once (see
// ConfigMapProgress). An fn that changes nothing writes nothing, so a
// redelivered webhook costs one read.
func (p *ConfigMapProgress) Update(ctx context.Context, fn func(*forge.FreezeState) error) (forge.FreezeState, error) {
	var (
		out      forge.FreezeState
		attempts int
		lastRace error
		failed   error // fn's or the store's: returned as it is
	)
	err := wait.ExponentialBackoffWithContext(ctx, progressBackoff, func(ctx context.Context) (bool, error) {
		attempts++
		var raced bool
		out, raced, failed = p.try(ctx, fn)
		if raced {
			lastRace, failed = failed, nil
			return false, nil
		}
		return true, failed
	})
	switch {
	case failed != nil:
		return out, failed
	case err != nil && lastRace != nil:
		// Out of attempts, or out of time while losing races.
		return out, fmt.Errorf("freeze progress: ConfigMap %s kept changing under us (%d attempts, %v); try again: %w", p, attempts, err, lastRace)
	case err != nil:
		return out, fmt.Errorf("freeze progress: ConfigMap %s: %w", p, err)
	}
	return out, nil
}

// try is one attempt of Update: it reads the state, applies fn and writes
// the result at the version read. raced says the write lost to another
// (err is the API server's 409), and Update tries again.
func (p *ConfigMapProgress) try(ctx context.Context, fn func(*forge.FreezeState) error) (s forge.FreezeState, raced bool, err error) {
	cm, err := p.cm.get(ctx)
	if err != nil {
		return s, false, fmt.Errorf("freeze progress: %w", err)
	}
	if s, err = p.decode(cm); err != nil {
		return s, false, err
	}
	before, err := json.Marshal(s)
	if err != nil {
		return s, false, fmt.Errorf("freeze progress: %w", err)
	}
	if err := fn(&s); err != nil {
		return s, false, err
	}
	after, err := json.Marshal(s)
	if err != nil {
		return s, false, fmt.Errorf("freeze progress: %w", err)
	}
	if bytes.Equal(before, after) {
		return s, false, nil
	}
	if cm, err = p.put(cm, s, after); err != nil {
		return s, false, err
	}
	switch err := p.cm.write(ctx, cm); {
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		return s, true, err
	case err != nil:
		return s, false, fmt.Errorf("freeze progress: %w", err)
	}
	return s, false, nil
}

// put returns cm (a new ConfigMap when nil) holding s, whose JSON is raw.
// cm is the caller's copy from get, so it is changed in place.
func (p *ConfigMapProgress) put(cm *corev1.ConfigMap, s forge.FreezeState, raw []byte) (*corev1.ConfigMap, error) {
	if cm == nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: p.cm.name, Namespace: p.cm.namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "canarybot", "app.kubernetes.io/component": "freeze"},
		}}
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	if cm.BinaryData == nil {
		cm.BinaryData = map[string][]byte{}
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("freeze progress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("freeze progress: %w", err)
	}
	cm.BinaryData[progressKeyState] = b.Bytes()
	cm.Data[progressKeyVersion] = s.Version
	cm.Data[progressKeyPhase] = string(s.Phase)
	// Checked here rather than left to ConfigMap.write, whose advice is
	// about release state.
	if n := size(cm); n > maxConfigMapBytes {
		return nil, fmt.Errorf("%w: the freeze's record of %d PRs in ConfigMap %s would hold %d bytes, the limit is %d: "+
			"run this freeze from the command line (`canarybot freeze start`, whose record is a file) rather than from serve, and do not remove the record while the freeze is in force, since it records which labels the freeze added",
			ErrTooLarge, len(s.PRs), p, n, maxConfigMapBytes)
	}
	return cm, nil
}

// decode reads the state in cm; nil (no ConfigMap yet) and a ConfigMap
// without the key read as the zero state.
func (p *ConfigMapProgress) decode(cm *corev1.ConfigMap) (forge.FreezeState, error) {
	var s forge.FreezeState
	if cm == nil {
		return s, nil
	}
	data, ok := cm.BinaryData[progressKeyState]
	if !ok {
		return s, nil
	}
	raw, err := gunzipProgress(data)
	if err == nil {
		err = json.Unmarshal(raw, &s)
	}
	if err != nil {
		return forge.FreezeState{}, fmt.Errorf("freeze progress in ConfigMap %s (key %s) is damaged (%w); "+
			"remove that key (kubectl edit configmap -n %s %s) only if no freeze is in force, since it records which labels the freeze added",
			p, progressKeyState, err, p.cm.namespace, p.cm.name)
	}
	return s, nil
}

func gunzipProgress(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
