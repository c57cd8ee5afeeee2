package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
	"github.com/canarybot/canarybot/internal/testenv"
)

// progressName is a ConfigMap name of a test's own, deleted at cleanup.
func progressName(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	name := "freeze-" + strings.ToLower(rand.Text()[:10])
	t.Cleanup(func() {
		_ = cs.CoreV1().ConfigMaps(testenv.KubeNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// podClient is a client of its own, as another replica's process has, that
// counts the API server's 409 answers (a lost race) by method.
func podClient(t *testing.T) (kubernetes.Interface, *raceCounter) {
	t.Helper()
	k := kube.Get(t)
	cfg := k.Config(k.AdminToken)
	races := &raceCounter{}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { races.next = rt; return races }
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, races
}

// raceCounter counts 409s: a create that lost (AlreadyExists, POST) and an
// update at a stale resourceVersion (Conflict, PUT).
type raceCounter struct {
	next          http.RoundTripper
	posts, puts   atomic.Int64
	reads, writes atomic.Int64
}

func (c *raceCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if req.Method == http.MethodGet {
		c.reads.Add(1)
	} else {
		c.writes.Add(1)
	}
	if err == nil && resp.StatusCode == http.StatusConflict {
		switch req.Method {
		case http.MethodPost:
			c.posts.Add(1)
		case http.MethodPut:
			c.puts.Add(1)
		}
	}
	return resp, err
}

// progressPods returns two ConfigMapProgress on one fresh ConfigMap, each
// with its own client, as two replicas have.
func progressPods(t *testing.T) (a, b *ConfigMapProgress, admin kubernetes.Interface) {
	t.Helper()
	csA, _ := podClient(t)
	csB, _ := podClient(t)
	name := progressName(t, csA)
	var err error
	if a, err = NewConfigMapProgress(csA, testenv.KubeNamespace, name); err != nil {
		t.Fatal(err)
	}
	if b, err = NewConfigMapProgress(csB, testenv.KubeNamespace, name); err != nil {
		t.Fatal(err)
	}
	return a, b, csA
}

// progresses are the forge.Progress implementations the contract tests run
// on: ConfigMapProgress must behave as FileProgress does. Each gives two
// handles on one record, as two processes (or pods) have.
func progresses() map[string]func(t *testing.T) (forge.Progress, forge.Progress) {
	return map[string]func(t *testing.T) (forge.Progress, forge.Progress){
		"file": func(t *testing.T) (forge.Progress, forge.Progress) {
			path := filepath.Join(t.TempDir(), "canarybot-freeze.json")
			return forge.FileProgress{Path: path}, forge.FileProgress{Path: path}
		},
		"configmap": func(t *testing.T) (forge.Progress, forge.Progress) {
			a, b, _ := progressPods(t)
			return a, b
		},
	}
}

func sampleFreeze() forge.FreezeState {
	return forge.FreezeState{
		Version: "v1.4.0", Owner: "spark-org", Repo: "spark", Label: forge.DefaultFreezeLabel,
		Mode: forge.ModeStatuses, Phase: forge.PhaseFrozen, ModeReason: "configured",
		Started:    time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC),
		LabelReady: true, Listed: true,
		PRs: []forge.PRState{
			{Number: 7, HeadSHA: forgetest.SHA(7), Via: "start", LabelAdded: true, FailedSHA: forgetest.SHA(7)},
			{Number: 9, HeadSHA: forgetest.SHA(9), Via: "start", HadLabel: true, FailedSHA: forgetest.SHA(9)},
		},
	}
}

func TestProgressContract(t *testing.T) {
	for name, open := range progresses() {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			p, other := open(t)
			got, err := p.Load(ctx)
			if err != nil || !reflect.DeepEqual(got, forge.FreezeState{}) {
				t.Fatalf("Load of a never-saved record: %+v, %v; want the zero state and no error", got, err)
			}

			want := sampleFreeze()
			saved, err := p.Update(ctx, func(s *forge.FreezeState) error {
				if !reflect.DeepEqual(*s, forge.FreezeState{}) {
					return fmt.Errorf("first Update was given %+v, want the zero state", *s)
				}
				*s = want
				return nil
			})
			if err != nil || !reflect.DeepEqual(saved, want) {
				t.Fatalf("Update = %+v, %v; want %+v", saved, err, want)
			}
			if got, err := other.Load(ctx); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("the other instance loads %+v, %v; want %+v", got, err, want)
			}

			// The other instance's Update starts from what the first saved.
			if _, err := other.Update(ctx, func(s *forge.FreezeState) error {
				s.PRs = append(s.PRs, forge.PRState{Number: 12, HeadSHA: forgetest.SHA(12), Via: "webhook", LabelAdded: true})
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			want.PRs = append(want.PRs, forge.PRState{Number: 12, HeadSHA: forgetest.SHA(12), Via: "webhook", LabelAdded: true})
			if got, _ := p.Load(ctx); !reflect.DeepEqual(got, want) {
				t.Fatalf("after the other instance's Update: %+v, want %+v", got, want)
			}

			// fn's error cancels the save and comes back as it is, with the
			// state as fn left it.
			refused := errors.New("refused")
			got, err = p.Update(ctx, func(s *forge.FreezeState) error {
				s.Phase, s.PRs = forge.PhaseLifted, nil
				return refused
			})
			if err != refused {
				t.Fatalf("Update whose fn failed: %v, want fn's error itself", err)
			}
			if got.Phase != forge.PhaseLifted {
				t.Errorf("Update whose fn failed returned %+v, want the state as fn left it", got)
			}
			if got, _ := other.Load(ctx); !reflect.DeepEqual(got, want) {
				t.Fatalf("a cancelled Update saved %+v", got)
			}
		})
	}
}

func TestConfigMapProgressStoredForKubectl(t *testing.T) {
	ctx := t.Context()
	p, _, cs := progressPods(t)
	cms := cs.CoreV1().ConfigMaps(testenv.KubeNamespace)

	// Neither a Load nor an Update that fails or changes nothing creates
	// the ConfigMap.
	if _, err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Update(ctx, func(*forge.FreezeState) error { return errors.New("no") }); err == nil {
		t.Fatal("fn's error was lost")
	}
	if _, err := p.Update(ctx, func(*forge.FreezeState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, p.cm.name, metav1.GetOptions{}); err == nil {
		t.Fatal("the ConfigMap was created with nothing to save")
	}

	if _, err := p.Update(ctx, func(s *forge.FreezeState) error { *s = sampleFreeze(); return nil }); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, p.cm.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data[progressKeyVersion] != "v1.4.0" || cm.Data[progressKeyPhase] != string(forge.PhaseFrozen) || len(cm.BinaryData[progressKeyState]) == 0 {
		t.Errorf("ConfigMap holds data %v and binary keys %v; want the version and phase readable beside the record", cm.Data, slices.Collect(maps.Keys(cm.BinaryData)))
	}
	if cm.Labels["app.kubernetes.io/name"] != "canarybot" {
		t.Errorf("labels %v", cm.Labels)
	}

	// An Update that changes nothing writes nothing: a redelivered webhook
	// costs one read and cannot race anyone.
	if _, err := p.Update(ctx, func(s *forge.FreezeState) error { s.Listed = true; return nil }); err != nil {
		t.Fatal(err)
	}
	again, err := cms.Get(ctx, p.cm.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != cm.ResourceVersion {
		t.Errorf("an Update that changed nothing wrote the ConfigMap (resourceVersion %s → %s)", cm.ResourceVersion, again.ResourceVersion)
	}
}

// TestConfigMapProgressEmptyConfigMap: rbac.yaml lets an operator create
// the ConfigMap beforehand instead of granting create; an empty one is a
// never-saved record.
func TestConfigMapProgressEmptyConfigMap(t *testing.T) {
	ctx := t.Context()
	p, other, cs := progressPods(t)
	if _, err := cs.CoreV1().ConfigMaps(testenv.KubeNamespace).Create(ctx,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: p.cm.name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Load(ctx); err != nil || !reflect.DeepEqual(got, forge.FreezeState{}) {
		t.Fatalf("Load of an empty ConfigMap: %+v, %v; want the zero state", got, err)
	}
	if _, err := p.Update(ctx, func(s *forge.FreezeState) error { *s = sampleFreeze(); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := other.Load(ctx); err != nil || !reflect.DeepEqual(got, sampleFreeze()) {
		t.Fatalf("after Update on a pre-created ConfigMap: %+v, %v", got, err)
	}
}

// TestConfigMapProgressRacingPods has two pods update one freeze record at
// once, twenty Updates each, every one adding its own PR, as webhooks
// spread over replicas and a running freeze do. Every Update's first run
// waits until all have read the record, so that all decide on the same
// version and all but one must lose the race: first a race to create the
// ConfigMap, then one to update it. No change is lost or made twice.
func TestConfigMapProgressRacingPods(t *testing.T) {
	ctx := t.Context()
	csA, racesA := podClient(t)
	csB, racesB := podClient(t)
	name := progressName(t, csA)
	var pods []*ConfigMapProgress
	for _, cs := range []kubernetes.Interface{csA, csB} {
		p, err := NewConfigMapProgress(cs, testenv.KubeNamespace, name)
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}

	var runs atomic.Int64
	// wave runs perPod concurrent Updates on each pod, adding PRs from
	// first on.
	wave := func(first, perPod int) {
		n := len(pods) * perPod
		var arrived atomic.Int64
		all := make(chan struct{})
		arrive := func() {
			if arrived.Add(1) == int64(n) {
				close(all)
			}
		}
		var wg sync.WaitGroup
		for i := range n {
			pod := pods[i%len(pods)]
			number := first + i
			wg.Go(func() {
				// Arrives once, from fn's first run or, should the Update
				// fail before it, on return: no goroutine waits forever.
				once := sync.OnceFunc(arrive)
				defer once()
				_, err := pod.Update(ctx, func(s *forge.FreezeState) error {
					runs.Add(1)
					once()
					select {
					case <-all:
					case <-ctx.Done():
						return ctx.Err()
					}
					s.Phase = forge.PhaseFrozen
					s.PRs = append(s.PRs, forge.PRState{Number: number, HeadSHA: forgetest.SHA(number), Via: "webhook", LabelAdded: true})
					return nil
				})
				if err != nil {
					t.Errorf("Update adding #%d on %s: %v", number, pod, err)
				}
			})
		}
		wg.Wait()
	}

	// The first webhook of a fresh install meets the freeze's start: both
	// create the ConfigMap, one create fails.
	wave(1, 1)
	if got := racesA.posts.Load() + racesB.posts.Load(); got != 1 {
		t.Errorf("%d creates lost the race, want 1 of 2", got)
	}
	const perPod = 20
	wave(3, perPod)
	if got, want := racesA.puts.Load()+racesB.puts.Load(), int64(2*perPod-1); got < want {
		t.Errorf("%d updates lost a race, want at least %d of %d: the race was not run", got, want, 2*perPod)
	}
	if racesA.puts.Load() == 0 || racesB.puts.Load() == 0 {
		t.Errorf("lost races per pod: %d and %d; want both pods to have lost one", racesA.puts.Load(), racesB.puts.Load())
	}
	total := 2 + 2*perPod
	if r := runs.Load(); r <= int64(total) {
		t.Errorf("fn ran %d times for %d Updates: no Update ever re-ran it", r, total)
	}
	t.Logf("%d Updates: fn ran %d times; 409s: %d creates, %d updates; requests: %d reads, %d writes",
		total, runs.Load(), racesA.posts.Load()+racesB.posts.Load(), racesA.puts.Load()+racesB.puts.Load(),
		racesA.reads.Load()+racesB.reads.Load(), racesA.writes.Load()+racesB.writes.Load())

	st, err := pods[0].Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, p := range st.PRs {
		seen[p.Number]++
	}
	for n := 1; n <= total; n++ {
		if seen[n] != 1 {
			t.Errorf("PR #%d is in the record %d times, want once", n, seen[n])
		}
	}
	if len(st.PRs) != total {
		t.Errorf("record holds %d PRs, want %d", len(st.PRs), total)
	}
}

// TestConfigMapProgressThousandPRsFit saves the record of a freeze and
// lift of 1,000 open PRs in statuses mode, each with every field set and
// its own random head (real commit IDs do not compress), and reads it back.
func TestConfigMapProgressThousandPRsFit(t *testing.T) {
	ctx := t.Context()
	p, other, cs := progressPods(t)
	const n = 1000
	st := sampleFreeze()
	st.Phase, st.Lifted = forge.PhaseLifted, st.Started.Add(26*time.Hour)
	st.ModeReason = "rulesets: 403 Resource not accessible by integration (the token may not administer the repository)"
	st.LabelCleared, st.LiftListed = true, true
	st.PRs = nil
	for i := 1; i <= n; i++ {
		head, pushed := randomSHA(t), randomSHA(t)
		st.PRs = append(st.PRs, forge.PRState{
			Number: 10000 + i, HeadSHA: pushed, Via: []string{"start", "webhook", "lift"}[i%3],
			LabelAdded: true, LabelRemoved: true, OriginChecked: i%3 == 2,
			FailedSHA: head, ClearedSHA: pushed, OpenAtLift: true,
		})
	}
	if _, err := p.Update(ctx, func(s *forge.FreezeState) error { *s = st; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := other.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatal("the record of 1,000 PRs did not come back as saved")
	}
	cm, err := cs.CoreV1().ConfigMaps(testenv.KubeNamespace).Get(ctx, p.cm.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A quarter of the limit leaves room for four times as many PRs.
	if s := size(cm); s > maxConfigMapBytes/4 {
		t.Errorf("a freeze of %d PRs takes %d bytes of the ConfigMap's %d, over a quarter", n, s, maxConfigMapBytes)
	} else {
		t.Logf("a freeze of %d PRs: %d bytes (%.1f%% of the limit)", n, s, 100*float64(s)/maxConfigMapBytes)
	}
}

func randomSHA(t *testing.T) string { return hex.EncodeToString(randomBytes(t, 20)) }

func TestConfigMapProgressErrors(t *testing.T) {
	ctx := t.Context()
	p, other, cs := progressPods(t)
	k := kube.Get(t)

	t.Run("forbidden", func(t *testing.T) {
		bot, err := kubernetes.NewForConfig(k.Config(k.BotToken))
		if err != nil {
			t.Fatal(err)
		}
		denied, err := NewConfigMapProgress(bot, testenv.KubeNamespace, p.cm.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := denied.Load(ctx); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "rbac.yaml") {
			t.Errorf("Load without RBAC: %v, want ErrForbidden saying what to apply", err)
		}
		ran := false
		if _, err := denied.Update(ctx, func(*forge.FreezeState) error { ran = true; return nil }); !errors.Is(err, ErrForbidden) {
			t.Errorf("Update without RBAC: %v, want ErrForbidden", err)
		}
		if ran {
			t.Error("Update ran fn on a record it could not read")
		}
	})

	t.Run("too large", func(t *testing.T) {
		// Random bytes do not compress: past the 1 MiB limit once encoded.
		huge := sampleFreeze()
		huge.ModeReason = base64.StdEncoding.EncodeToString(randomBytes(t, 1100<<10))
		_, err := p.Update(ctx, func(s *forge.FreezeState) error { *s = huge; return nil })
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p.String()) || !strings.Contains(err.Error(), "canarybot freeze start") {
			t.Errorf("an oversized record: %v, want ErrTooLarge naming the ConfigMap and what to do", err)
		}
		if got, err := other.Load(ctx); err != nil || !reflect.DeepEqual(got, forge.FreezeState{}) {
			t.Errorf("after a refused save: %+v, %v; want nothing saved", got, err)
		}
	})

	t.Run("damaged", func(t *testing.T) {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: p.cm.name},
			BinaryData: map[string][]byte{progressKeyState: []byte(`{"version":"v1.4.0"}`)}, // not gzipped
		}
		if _, err := cs.CoreV1().ConfigMaps(testenv.KubeNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := other.Load(ctx)
		for _, want := range []string{"damaged", progressKeyState, "kubectl edit configmap -n " + testenv.KubeNamespace + " " + p.cm.name, "only if no freeze is in force"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Load of a damaged record: %v; want an error saying %q", err, want)
			}
		}
		ran := false
		if _, err := p.Update(ctx, func(*forge.FreezeState) error { ran = true; return nil }); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("Update of a damaged record: %v, want the damage reported", err)
		}
		if ran {
			t.Error("Update ran fn on a damaged record: its save would have replaced the record of the labels")
		}
	})

	t.Run("constructor", func(t *testing.T) {
		for _, c := range []struct {
			name      string
			client    kubernetes.Interface
			namespace string
			cmName    string
			want      string
		}{
			{"no client", nil, "spark", "canarybot-state-freeze", "no Kubernetes client"},
			{"no namespace", cs, "", "canarybot-state-freeze", "e.g. spark/canarybot-state-freeze"},
			{"no name", cs, "spark", "", "e.g. spark/canarybot-state-freeze"},
			{"bad namespace", cs, "Spark_NS", "canarybot-state-freeze", `namespace "Spark_NS"`},
			{"bad name", cs, "spark", "freeze/state", `ConfigMap name "freeze/state"`},
		} {
			t.Run(c.name, func(t *testing.T) {
				if _, err := NewConfigMapProgress(c.client, c.namespace, c.cmName); err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("NewConfigMapProgress: %v, want an error saying %q", err, c.want)
				}
			})
		}
		ok, err := NewConfigMapProgress(cs, "spark", "canarybot-state-freeze")
		if err != nil || ok.String() != "spark/canarybot-state-freeze" {
			t.Errorf("NewConfigMapProgress = %v, %v", ok, err)
		}
	})
}

// TestFreezeLiftedByAnotherPod is the point of ConfigMapProgress: a freeze
// started by one replica, a PR opened during it labelled by a webhook that
// landed on a second, and the lift run by a third (a new leader). The lift
// takes off exactly the labels the freeze put on, keeps the one a person
// put on before the freeze, and never has to guess from a label's history
// who put it on. With a progress file per pod, the new leader finds no
// freeze at all.
func TestFreezeLiftedByAnotherPod(t *testing.T) {
	ctx := t.Context()
	fake := forgetest.New(t, "spark-org", "spark", 3)
	label := forge.DefaultFreezeLabel
	fake.LabelAsPerson(2, label)
	csA, _ := podClient(t)
	name := progressName(t, csA)
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	pod := func(p forge.Progress) *forge.Freeze {
		o := forge.DefaultTransportOptions()
		o.WriteInterval = 0
		c, err := forge.NewClient(forge.Config{APIURL: fake.Server.URL, Owner: fake.Owner, Repo: fake.Repo, Token: "ghp_test"}, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		return &forge.Freeze{Client: c, Owner: fake.Owner, Repo: fake.Repo, Mode: forge.ModeStatuses, Progress: p,
			Now: func() time.Time { return now }}
	}
	onConfigMap := func() *forge.Freeze {
		cs, _ := podClient(t)
		p, err := NewConfigMapProgress(cs, testenv.KubeNamespace, name)
		if err != nil {
			t.Fatal(err)
		}
		return pod(p)
	}
	leader, follower, newLeader := onConfigMap(), onConfigMap(), onConfigMap()

	sum, err := leader.Start(ctx, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if sum.PRs != 3 || sum.LabelsAdded != 2 || sum.Phase != forge.PhaseFrozen {
		t.Fatalf("start: %+v; want 3 PRs, 2 labelled (#2 had the label)", sum)
	}
	opened := fake.OpenPR()
	res, err := follower.OnPullRequest(ctx, forge.PREvent{Action: "opened", Number: opened.Number, HeadSHA: opened.SHA, Owner: fake.Owner, Repo: fake.Repo})
	if err != nil || !res.Labelled || !res.Frozen {
		t.Fatalf("webhook on the follower: %v, %v; want the new PR labelled", res, err)
	}
	// A person labels a PR during the freeze too; its label stays.
	fake.LabelAsPerson(1, "needs-review")

	// What the new leader had before: its own, empty progress file.
	if _, err := pod(forge.FileProgress{Path: filepath.Join(t.TempDir(), "canarybot-freeze.json")}).Lift(ctx); !errors.Is(err, forge.ErrNotFrozen) {
		t.Fatalf("lift from a pod's own file: %v; want ErrNotFrozen (the problem this store solves)", err)
	}

	sum, err = newLeader.Lift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Phase != forge.PhaseLifted || sum.LabelsRemoved != 3 {
		t.Errorf("lift: %+v; want lifted with the freeze's 3 labels removed", sum)
	}
	for n := 1; n <= opened.Number; n++ {
		has := slices.Contains(fake.PRLabels(n), label)
		if want := n == 2; has != want {
			t.Errorf("PR #%d after the lift: labels %v; want %s only on #2, which a person labelled before the freeze", n, fake.PRLabels(n), label)
		}
		sts := fake.Statuses(fake.PRHead(n))
		if len(sts) == 0 || sts[len(sts)-1].State != "success" {
			t.Errorf("PR #%d's head has statuses %+v; want the lift's success last", n, sts)
		}
	}
	if !slices.Contains(fake.PRLabels(1), "needs-review") {
		t.Errorf("PR #1 lost a person's other label: %v", fake.PRLabels(1))
	}
	if got := fake.Calls()["GET /repos/{o}/{r}/issues/{n}/events"]; got != 0 {
		t.Errorf("the lift read %d label histories: it should have known from the shared record", got)
	}
	if st, err := leader.Status(ctx); err != nil || st.Phase != forge.PhaseLifted {
		t.Errorf("the old leader sees %+v, %v; want the freeze lifted", st, err)
	}
}
