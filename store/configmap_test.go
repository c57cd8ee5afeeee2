package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/rollout"
)

var (
	_ State = (*Bolt)(nil)
	_ State = (*ConfigMap)(nil)
)

// The tests' one package-level variable: the shared server, started lazily
// and stopped by TestMain.
var kube testenv.SharedKube

func TestMain(m *testing.M) {
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}

// configMapStore returns a store on a ConfigMap of its own.
func configMapStore(t *testing.T) (*ConfigMap, kubernetes.Interface) {
	t.Helper()
	k := kube.Get(t)
	cs := k.Clientset(t)
	name := "state-" + strings.ToLower(rand.Text()[:10])
	s, err := NewConfigMap(cs, testenv.KubeNamespace, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().ConfigMaps(testenv.KubeNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return s, cs
}

// stores are the State implementations every contract test runs on: a
// fresh store and a second handle on the same state, as another process
// would open it.
func stores() map[string]func(t *testing.T) (State, State) {
	return map[string]func(t *testing.T) (State, State){
		"bolt": func(t *testing.T) (State, State) {
			path := filepath.Join(t.TempDir(), "state.db")
			a, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			return a, b
		},
		"configmap": func(t *testing.T) (State, State) {
			a, cs := configMapStore(t)
			b, err := NewConfigMap(cs, a.namespace, a.name)
			if err != nil {
				t.Fatal(err)
			}
			return a, b
		},
	}
}

func TestStateSaveLoadAndConflict(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s, other := open(t)
			if _, err := s.Load(ctx, "v1.4.0"); !errors.Is(err, rollout.ErrNotFound) {
				t.Fatalf("load of a missing release: %v, want ErrNotFound", err)
			}
			if _, err := s.Load(ctx, ""); !errors.Is(err, rollout.ErrNotFound) {
				t.Fatalf("load of the current release in an empty store: %v, want ErrNotFound", err)
			}
			r := &rollout.Release{ID: "v1.4.0", Version: "v1.4.0", Phase: rollout.PhaseStage, Stage: 2, Weight: 25,
				Created: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Commands: []string{"c1"}}
			if err := s.Save(ctx, r); err != nil {
				t.Fatal(err)
			}
			if r.Revision != 1 {
				t.Fatalf("revision %d after first save, want 1", r.Revision)
			}
			got, err := other.Load(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != "v1.4.0" || got.Weight != 25 || got.Stage != 2 || !got.Created.Equal(r.Created) || got.Revision != 1 || !slices.Equal(got.Commands, r.Commands) {
				t.Fatalf("loaded %+v", got)
			}
			// Both hold revision 1: the first save wins, the second conflicts.
			got.Weight = 50
			if err := other.Save(ctx, got); err != nil {
				t.Fatal(err)
			}
			r.Weight = 5
			if err := s.Save(ctx, r); !errors.Is(err, rollout.ErrConflict) {
				t.Fatalf("stale save: %v, want ErrConflict", err)
			}
			if r.Revision != 1 {
				t.Errorf("a refused save changed the revision to %d", r.Revision)
			}
			final, _ := s.Load(ctx, "v1.4.0")
			if final.Weight != 50 || final.Revision != 2 {
				t.Fatalf("after conflict: weight %d revision %d, want 50 and 2", final.Weight, final.Revision)
			}
			if err := s.Save(ctx, &rollout.Release{ID: "v2", Revision: 3}); !errors.Is(err, rollout.ErrConflict) {
				t.Fatalf("save of an unknown release at revision 3: %v, want ErrConflict", err)
			}
			// A second release becomes the current one.
			if err := s.Save(ctx, &rollout.Release{ID: "v1.4.1", Version: "v1.4.1"}); err != nil {
				t.Fatal(err)
			}
			if cur, err := other.Load(ctx, ""); err != nil || cur.ID != "v1.4.1" {
				t.Errorf("current release %v, %v; want v1.4.1", cur, err)
			}
		})
	}
}

func TestStateInboxAndHeartbeat(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s, cli := open(t)
			cmd := func(id string) rollout.Command {
				return rollout.Command{ID: id, Kind: rollout.CmdHold, User: "ic", At: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
			}
			if err := cli.Enqueue(ctx, "v1", cmd("a")); !errors.Is(err, rollout.ErrNotFound) {
				t.Fatalf("enqueue for a missing release: %v, want ErrNotFound", err)
			}
			if err := cli.Enqueue(ctx, "v1", rollout.Command{Kind: rollout.CmdHold}); err == nil {
				t.Fatal("a command without an ID was queued")
			}
			if at, err := cli.LastHeartbeat(ctx, "v1"); err != nil || !at.IsZero() {
				t.Fatalf("heartbeat of a release never run: %v, %v; want zero", at, err)
			}
			r := &rollout.Release{ID: "v1", Version: "v1"}
			if err := s.Save(ctx, r); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"a", "b", "c"} {
				if err := cli.Enqueue(ctx, "", cmd(id)); err != nil {
					t.Fatal(err)
				}
			}
			ids := func(cs []rollout.Command) []string {
				var out []string
				for _, c := range cs {
					out = append(out, c.ID)
				}
				return out
			}
			got, err := s.Take(ctx, "v1")
			if err != nil || !slices.Equal(ids(got), []string{"a", "b", "c"}) {
				t.Fatalf("Take = %v, %v; want a b c in order", ids(got), err)
			}
			if got[0].Kind != rollout.CmdHold || got[0].User != "ic" {
				t.Errorf("queued command came back as %+v", got[0])
			}
			// Not applied yet: still there.
			if again, _ := s.Take(ctx, "v1"); len(again) != 3 {
				t.Fatalf("a command left the queue before the release recorded it: %v", ids(again))
			}
			r.Commands = []string{"a", "c"}
			if err := s.Save(ctx, r); err != nil {
				t.Fatal(err)
			}
			if left, err := s.Take(ctx, "v1"); err != nil || !slices.Equal(ids(left), []string{"b"}) {
				t.Fatalf("after a and c applied: Take = %v, %v; want b", ids(left), err)
			}

			at := time.Date(2026, 11, 27, 10, 5, 0, 123, time.UTC)
			if err := s.Heartbeat(ctx, "v1", at); err != nil {
				t.Fatal(err)
			}
			if got, err := cli.LastHeartbeat(ctx, "v1"); err != nil || !got.Equal(at) {
				t.Errorf("LastHeartbeat = %v, %v; want %v", got, err, at)
			}
		})
	}
}

// TestConfigMapTwoWritersRace has two engines load, change and save the
// same release as fast as they can, each reloading after a conflict, while
// a heartbeat and a command line write the same ConfigMap: every change
// lands exactly once and none is lost.
func TestConfigMapTwoWritersRace(t *testing.T) {
	ctx := t.Context()
	s, cs := configMapStore(t)
	if err := s.Save(ctx, &rollout.Release{ID: "v1", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	const writers, changes = 2, 15
	var conflicts sync.Map
	var wg sync.WaitGroup
	for w := range writers {
		store, err := NewConfigMap(cs, s.namespace, s.name)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := 0; i < changes; {
				r, err := store.Load(ctx, "v1")
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				r.Log = append(r.Log, rollout.LogEntry{User: fmt.Sprintf("writer-%d", w), Text: fmt.Sprint(i)})
				switch err := store.Save(ctx, r); {
				case errors.Is(err, rollout.ErrConflict):
					conflicts.Store(w, true)
				case err != nil:
					t.Errorf("writer %d: %v", w, err)
					return
				default:
					i++
				}
			}
		})
	}
	noise, stopNoise := context.WithCancel(ctx)
	var noiseWG sync.WaitGroup
	noiseWG.Go(func() {
		for i := 0; noise.Err() == nil; i++ {
			if err := s.Heartbeat(noise, "v1", time.Now()); err != nil && noise.Err() == nil {
				t.Errorf("heartbeat: %v", err)
			}
			if err := s.Enqueue(noise, "v1", rollout.Command{ID: fmt.Sprint("cmd-", i), Kind: rollout.CmdHold}); err != nil && noise.Err() == nil {
				t.Errorf("enqueue: %v", err)
			}
		}
	})
	wg.Wait()
	stopNoise()
	noiseWG.Wait()

	r, err := s.Load(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Revision != 1+writers*changes {
		t.Errorf("revision %d, want %d: one per successful save", r.Revision, 1+writers*changes)
	}
	seen := map[string]int{}
	for _, e := range r.Log {
		seen[e.User+"/"+e.Text]++
	}
	for w := range writers {
		for i := range changes {
			if n := seen[fmt.Sprintf("writer-%d/%d", w, i)]; n != 1 {
				t.Errorf("writer %d change %d is in the release %d times, want once", w, i, n)
			}
		}
	}
	n := 0
	conflicts.Range(func(any, any) bool { n++; return true })
	if n == 0 {
		t.Error("no writer ever saw ErrConflict: the race was not run")
	}
}

func TestConfigMapErrors(t *testing.T) {
	ctx := t.Context()
	s, cs := configMapStore(t)
	k := kube.Get(t)

	if err := s.Save(ctx, &rollout.Release{ID: "v1/../x"}); !errors.Is(err, ErrBadID) {
		t.Errorf("a release ID with a slash: %v, want ErrBadID", err)
	}
	// A heartbeat alone does not create the state.
	if err := s.Heartbeat(ctx, "v1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{}); err == nil {
		t.Error("a heartbeat created the ConfigMap")
	}

	// Random bytes do not compress: far past the 1 MiB limit once encoded.
	big := &rollout.Release{ID: "big", Log: []rollout.LogEntry{{Text: base64.StdEncoding.EncodeToString(randomBytes(t, 1100<<10))}}}
	if err := s.Save(ctx, big); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), s.String()) {
		t.Errorf("an oversized release: %v, want ErrTooLarge naming the ConfigMap", err)
	}

	bot, err := kubernetes.NewForConfig(k.Config(k.BotToken))
	if err != nil {
		t.Fatal(err)
	}
	denied, err := NewConfigMap(bot, s.namespace, s.name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := denied.Load(ctx, "v1"); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "rbac.yaml") {
		t.Errorf("without RBAC: %v, want ErrForbidden saying what to apply", err)
	}
	if _, err := NewConfigMap(cs, "", "x"); err == nil {
		t.Error("a store without a namespace was accepted")
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAWholeReleaseFitsInAConfigMap encodes a release as long as the
// runbook's plan makes one: every tick of the five stages at the default
// 30 s tick with two 15-minute holds, and the 34 first-night snapshots, each
// row with the eight signals and their queries.
func TestAWholeReleaseFitsInAConfigMap(t *testing.T) {
	r := wholeRelease(t)
	data, err := encodeRelease(r)
	if err != nil {
		t.Fatal(err)
	}
	// A quarter of the limit leaves room for pending evidence, the inbox
	// and a longer release (more holds, a slower tick).
	if len(data) > maxConfigMapBytes/4 {
		t.Errorf("a whole release (%d rows) encodes to %d bytes, over a quarter of the ConfigMap's %d", len(r.Rows), len(data), maxConfigMapBytes)
	}
	t.Logf("%d rows: %d bytes gzipped", len(r.Rows), len(data))
}

// wholeRelease is a release of the default plan that ran every stage and
// the first night: a row and a log line per tick.
func wholeRelease(t *testing.T) *rollout.Release {
	t.Helper()
	plan := config.Default()
	r := &rollout.Release{ID: "v1.4.0", Version: "v1.4.0", Phase: rollout.PhaseComplete}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var stageTime time.Duration
	for _, s := range plan.Stages {
		stageTime += s.Dwell
	}
	ticks := int((stageTime+2*plan.Hold)/plan.Tick) + len(plan.FirstNight.Snapshots())
	for i := range ticks {
		row := rollout.Row{At: at.Add(time.Duration(i) * plan.Tick), Phase: rollout.PhaseStage, Stage: 1 + i%5, Weight: 25,
			Decision: rollout.Decision{Kind: rollout.Continue, Reason: "dwell not over: 12m30s to go"}}
		for j, s := range plan.Signals {
			row.Readings = append(row.Readings, rollout.Measurement{
				Signal: s.Name, At: row.At, Query: plan.ResolveQuery(s.Query),
				Value: 0.1234567 * float64(i+j), Bound: s.Threshold, Slope: 0.000123 * float64(i), Verdict: rollout.Pass,
			})
		}
		r.Rows = append(r.Rows, row)
		r.Log = append(r.Log, rollout.LogEntry{At: row.At, User: "canarybot", Kind: rollout.LogDecision, Text: "stage 3 (25%): Continue — dwell not over"})
	}
	return r
}

// TestConfigMapKeepsTheLatestEndedReleases: release after release, the
// state ConfigMap keeps the current release and the keptEndedReleases that
// ended last, with their inboxes and heartbeats; older ones go, and a
// release that never ended (left mid-stage) is kept. Forty whole releases
// stay far from the 1 MiB limit.
func TestConfigMapKeepsTheLatestEndedReleases(t *testing.T) {
	ctx := t.Context()
	s, cs := configMapStore(t)
	start := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	stuck := &rollout.Release{ID: "v0.9.0", Version: "v0.9.0", Phase: rollout.PhaseStage, Stage: 2, Weight: 5, PhaseStarted: start}
	if err := s.Save(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	whole := wholeRelease(t)
	const releases = 40
	largest := 0
	for i := range releases {
		id := fmt.Sprintf("v1.%d.0", i)
		r := &rollout.Release{ID: id, Version: id, Phase: rollout.PhaseStage, Stage: 1, Weight: 1, PhaseStarted: start.Add(time.Duration(i) * 24 * time.Hour)}
		if err := s.Save(ctx, r); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
		if err := s.Enqueue(ctx, id, rollout.Command{ID: "c-" + id, Kind: rollout.CmdHold, User: "ic"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Heartbeat(ctx, id, r.PhaseStarted); err != nil {
			t.Fatal(err)
		}
		r.Rows, r.Log = whole.Rows, whole.Log
		r.Phase, r.PhaseStarted = rollout.PhaseComplete, r.PhaseStarted.Add(3*time.Hour)
		if err := s.Save(ctx, r); err != nil {
			t.Fatalf("release %d ending: %v", i, err)
		}
		cm, err := cs.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, size(cm))
	}
	if largest > maxConfigMapBytes/2 {
		t.Errorf("after %d releases the ConfigMap reached %d bytes, over half its limit", releases, largest)
	}
	if r, err := s.Load(ctx, stuck.ID); err != nil || r.Phase != rollout.PhaseStage {
		t.Errorf("the release left mid-stage: %v, %v; want it kept", r, err)
	}
	cm, err := cs.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range releases {
		id := fmt.Sprintf("v1.%d.0", i)
		_, err := s.Load(ctx, id)
		kept := i >= releases-1-keptEndedReleases
		switch {
		case kept && err != nil:
			t.Errorf("%s, among the latest, is gone: %v", id, err)
		case !kept && (!errors.Is(err, ErrPruned) || errors.Is(err, rollout.ErrNotFound)):
			// Not "not found": the ID is taken, or a new release would
			// reopen the old one's evidence under it.
			t.Errorf("%s, older than the latest %d: %v, want ErrPruned (and not ErrNotFound)", id, keptEndedReleases, err)
		case !kept:
			for _, prefix := range []string{keyRevisionPrefix, keyInboxPrefix, keyHeartbeatPrefix, keyEndedPrefix} {
				if _, ok := cm.Data[prefix+id]; ok {
					t.Errorf("%s's %s key is left behind", id, prefix)
				}
			}
		}
	}
	if cur, err := s.Load(ctx, ""); err != nil || cur.ID != fmt.Sprintf("v1.%d.0", releases-1) {
		t.Errorf("current release %v, %v; want the last one", cur, err)
	}
	t.Logf("%d whole releases: at most %d bytes", releases, largest)
}
