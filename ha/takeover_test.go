package ha

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// replicaEnv carries a replica's spec (JSON) to a re-executed test binary.
const replicaEnv = "CANARYBOT_HA_REPLICA"

// replicaSpec is what a replica process needs: where the shared parts are,
// and the shared virtual clock.
type replicaSpec struct {
	Identity  string    `json:"identity"`
	Lease     string    `json:"lease"`
	State     string    `json:"state"`
	Ingress   string    `json:"ingress"`
	Chat      string    `json:"chat"`
	Release   string    `json:"release"`
	Origin    time.Time `json:"origin"`
	WallStart time.Time `json:"wall_start"`
	Speed     float64   `json:"speed"`
}

// The release both replicas drive: the runbook's five stages and signals,
// with seconds for minutes, no T-minus steps, auto-promotion and a short
// first night.
func takeoverPlan() rollout.Plan {
	p := config.Default()
	p.Stages = []rollout.Stage{{Weight: 1, Dwell: 6 * time.Second}, {Weight: 5, Dwell: 6 * time.Second},
		{Weight: 25, Dwell: 6 * time.Second}, {Weight: 50, Dwell: 6 * time.Second}, {Weight: 100, Dwell: 6 * time.Second}}
	p.Tick = 2 * time.Second
	p.Hold = 10 * time.Second
	p.Window = "10s"
	p.Trend = rollout.TrendRule{MinPoints: 4, Horizon: 10 * time.Second, Lookback: 10 * time.Second}
	p.Timeline = nil
	p.AutoPromote = true
	p.FirstNight = rollout.FirstNight{Cadence: []rollout.Cadence{{Until: 4 * time.Second, Every: 2 * time.Second}}}
	return p
}

// sharedClock is virtual time both replica processes agree on: origin plus
// the wall time since a common start, speed times faster, so the release
// keeps its timeline across a takeover.
type sharedClock struct {
	origin, wall time.Time
	speed        float64
}

func (c sharedClock) Now() time.Time {
	return c.origin.Add(time.Duration(float64(time.Since(c.wall)) * c.speed))
}

func (c sharedClock) After(d time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	time.AfterFunc(time.Duration(float64(d)/c.speed), func() { out <- c.Now() })
	return out
}

// passingMetrics answers every signal of the plan well inside its bound.
type passingMetrics map[string]float64

func newPassingMetrics(p *rollout.Plan) passingMetrics {
	m := passingMetrics{}
	for _, s := range p.Signals {
		m[p.ResolveQuery(s.Query)] = s.Threshold / 2
		if s.Relative {
			m[p.ResolveQuery(s.Query)] = 1
			m[p.ResolveQuery(s.BaselineQuery)] = 1
		}
	}
	return m
}

func (m passingMetrics) Query(_ context.Context, q string, _ time.Time) (rollout.Sample, error) {
	v, ok := m[q]
	if !ok {
		return rollout.Sample{}, fmt.Errorf("unexpected query %s", q)
	}
	return rollout.Sample{Value: v}, nil
}

// chatMessage is what the chat stand-in records of an announcement.
type chatMessage struct {
	Key   string            `json:"key"`
	From  string            `json:"from"`
	Kind  rollout.EventKind `json:"kind"`
	Stage int               `json:"stage"`
	At    time.Time         `json:"at"`
	Text  string            `json:"text"`
}

// chatNotifier announces an event once per key, the way the Slack outbox
// does after a crash: it looks in the channel for a message with the key
// before posting, so a replica that resumes an announcement its
// predecessor made (but did not record as made) does not post it again.
type chatNotifier struct {
	base     string
	identity string
	client   *http.Client
}

func (n chatNotifier) Notify(ctx context.Context, key string, ev rollout.Event) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.base+"/messages?key="+url.QueryEscape(key), nil)
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	body, _ := json.Marshal(chatMessage{Key: key, From: n.identity, Kind: ev.Kind, Stage: ev.Stage, At: ev.At, Text: ev.Text})
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, n.base+"/messages", bytes.NewReader(body))
	resp, err = n.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("chat answered %s", resp.Status)
	}
	return nil
}

// replicaLine is what a replica reports on stdout, one JSON object a line.
type replicaLine struct {
	Event string        `json:"event"` // "leading", "result"
	Phase rollout.Phase `json:"phase,omitempty"`
	Err   string        `json:"err,omitempty"`
}

// replicaMain is one replica of the bot, wired as cmd/canarybot wires the
// engine, with the ConfigMap store, the Ingress router and leader
// election; it exits 0 once the release it led is complete.
func replicaMain(raw string) int {
	var spec replicaSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "replica spec:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", spec.Identity)
	out := json.NewEncoder(os.Stdout)
	fail := func(err error) int {
		_ = out.Encode(replicaLine{Event: "result", Err: err.Error()})
		return 1
	}

	cfg, ns, err := traffic.ClientConfig("")
	if err != nil {
		return fail(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	st, err := store.NewConfigMap(cs, ns, spec.State)
	if err != nil {
		return fail(err)
	}
	router, err := traffic.NewIngressForClient(cs, traffic.IngressOptions{Namespace: ns, Name: spec.Ingress, Logger: log})
	if err != nil {
		return fail(err)
	}
	plan := takeoverPlan()
	rn := &rollout.Runner{
		Machine:  &rollout.Machine{Plan: &plan, Render: report.Renderer{}},
		Metrics:  newPassingMetrics(&plan),
		Traffic:  router,
		Notifier: chatNotifier{base: spec.Chat, identity: spec.Identity, client: &http.Client{Timeout: 5 * time.Second}},
		Store:    st,
		Clock:    sharedClock{origin: spec.Origin, wall: spec.WallStart, speed: spec.Speed},
		Inbox:    st,
		Log:      log,
	}
	var final *rollout.Release
	var runErr error
	err = Run(ctx, Config{
		Client: cs, Namespace: ns, LeaseName: spec.Lease, Identity: spec.Identity,
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry, Log: log,
	}, func(ctx context.Context) {
		_ = out.Encode(replicaLine{Event: "leading"})
		if _, err := st.Load(ctx, spec.Release); errors.Is(err, rollout.ErrNotFound) {
			if _, err := rn.Start(ctx, spec.Release, spec.Release, "ic", time.Time{}); err != nil {
				runErr = err
				return
			}
		} else if err != nil {
			runErr = err
			return
		}
		for {
			final, runErr = rn.Run(ctx, spec.Release)
			// A write of the previous leader landed after this one loaded
			// the release: load it again and resume.
			if !errors.Is(runErr, rollout.ErrConflict) || ctx.Err() != nil {
				return
			}
			log.Warn("release changed under us; resuming from the stored state", "err", runErr)
		}
	})
	if err == nil {
		err = runErr
	}
	if err != nil {
		return fail(err)
	}
	if final == nil {
		return fail(errors.New("stopped before leading"))
	}
	_ = out.Encode(replicaLine{Event: "result", Phase: final.Phase})
	if final.Phase != rollout.PhaseComplete {
		return 1
	}
	return 0
}

// replica is a running replica process.
type replica struct {
	name   string
	cmd    *exec.Cmd
	stderr *testenv.SyncBuffer
	lines  chan replicaLine
	done   chan struct{}
}

func startReplica(t *testing.T, spec replicaSpec, kubeconfig string) *replica {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), replicaEnv+"="+string(raw), "KUBECONFIG="+kubeconfig)
	r := &replica{name: spec.Identity, cmd: cmd, stderr: &testenv.SyncBuffer{}, lines: make(chan replicaLine, 16), done: make(chan struct{})}
	cmd.Stderr = r.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l replicaLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				r.lines <- l
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("replica %s logged:\n%s", r.name, r.stderr.String())
		}
	})
	return r
}

// next waits for the replica's next report line.
func (r *replica) next(t *testing.T, timeout time.Duration) replicaLine {
	t.Helper()
	select {
	case l := <-r.lines:
		return l
	case <-r.done:
		select {
		case l := <-r.lines:
			return l
		default:
		}
		t.Fatalf("replica %s exited (%v) without reporting", r.name, r.cmd.ProcessState)
	case <-time.After(timeout):
		t.Fatalf("replica %s reported nothing within %s", r.name, timeout)
	}
	return replicaLine{}
}

// chat is the stand-in for the war-room channel: it records every post.
type chat struct {
	mu    sync.Mutex
	posts []chatMessage
	byKey map[string]int
}

func (c *chat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		if _, ok := c.byKey[r.URL.Query().Get("key")]; ok {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	case http.MethodPost:
		var m chatMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.posts = append(c.posts, m)
		c.byKey[m.Key]++
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (c *chat) all() []chatMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.posts)
}

// TestLeaderKilledMidStage is the high-availability proof: two replicas
// share the state ConfigMap, the canary Ingress and the Lease; the leader
// is SIGKILLed in the middle of stage 3 (no chance to release anything),
// a command is queued while nobody leads, and the follower takes over once
// the Lease expires and finishes the release. Every weight change reaches
// the API server once and in order, every announcement is posted once, and
// the queued command is applied once.
func TestLeaderKilledMidStage(t *testing.T) {
	k := kube.Get(t)
	cs := k.Clientset(t)
	ns := testenv.KubeNamespace

	pathType := networkingv1.PathTypePrefix
	ing, err := cs.NetworkingV1().Ingresses(ns).Create(t.Context(), &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "spark-canary-", Namespace: ns, Annotations: map[string]string{
			traffic.AnnotationCanary: "true", traffic.AnnotationCanaryWeight: "0", "example.com/owner": "team-spark",
		}},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "spark.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &pathType,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "spark-canary", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	weights, seen := testenv.WatchCanaryWeight(t, cs, ing.Name, ing.ResourceVersion, "0")

	room := &chat{byKey: map[string]int{}}
	chatSrv := httptest.NewServer(room)
	t.Cleanup(chatSrv.Close)
	kubeconfig, err := k.Kubeconfig(t.TempDir(), k.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	spec := replicaSpec{
		Lease: leaseName(), State: "canarybot-state-" + strings.ToLower(ing.Name[len(ing.Name)-5:]), Ingress: ing.Name,
		Chat: chatSrv.URL, Release: "v1.4.0",
		Origin: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), WallStart: time.Now(), Speed: 8,
	}
	specA, specB := spec, spec
	specA.Identity, specB.Identity = "replica-a", "replica-b"

	a := startReplica(t, specA, kubeconfig)
	if l := a.next(t, 30*time.Second); l.Event != "leading" {
		t.Fatalf("replica a reported %+v, want leading", l)
	}
	b := startReplica(t, specB, kubeconfig)

	// Kill the leader as soon as stage 3 has moved traffic.
	deadline := time.After(30 * time.Second)
	for w := ""; w != "25"; {
		select {
		case w = <-seen:
		case <-deadline:
			t.Fatalf("stage 3 did not start within 30 s; weights so far %v", weights())
		}
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-a.done
	if ws, ok := a.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("replica a ended with %v, not by SIGKILL", a.cmd.ProcessState)
	}

	// The IC holds the release while no replica leads.
	st, err := store.NewConfigMap(cs, ns, spec.State)
	if err != nil {
		t.Fatal(err)
	}
	// The command line stamps a command with the release's clock.
	virtual := sharedClock{origin: spec.Origin, wall: spec.WallStart, speed: spec.Speed}
	hold := rollout.Command{ID: "hold-during-takeover", Kind: rollout.CmdHold, User: "ic", Duration: 4 * time.Second,
		Reason: "watching the takeover", At: virtual.Now()}
	if err := st.Enqueue(t.Context(), spec.Release, hold); err != nil {
		t.Fatal(err)
	}

	if l := b.next(t, 30*time.Second); l.Event != "leading" {
		t.Fatalf("replica b reported %+v, want leading", l)
	}
	took := time.Now()
	res := b.next(t, 60*time.Second)
	<-b.done
	if res.Event != "result" || res.Phase != rollout.PhaseComplete || res.Err != "" || b.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("replica b ended with %+v (exit %v), want the release complete", res, b.cmd.ProcessState)
	}
	t.Logf("leader killed; follower led %s later", took.Sub(killed).Round(10*time.Millisecond))
	for _, c := range weights() {
		t.Logf("weight %s at +%s", c.Weight, c.At.Sub(spec.WallStart).Round(10*time.Millisecond))
	}
	t.Logf("done at +%s", time.Since(spec.WallStart).Round(10*time.Millisecond))

	// Every weight change reached the API server once, in order; the
	// follower made those after the kill.
	changes := weights()
	var got []string
	for _, c := range changes {
		got = append(got, c.Weight)
	}
	if want := []string{"1", "5", "25", "50", "100"}; !slices.Equal(got, want) {
		t.Errorf("canary-weight changes stored by the API server: %v, want %v once each", got, want)
	}
	for _, c := range changes {
		if (c.Weight == "50" || c.Weight == "100") && c.At.Before(killed) {
			t.Errorf("weight %s was set before the leader was killed: the kill was not mid-stage", c.Weight)
		}
	}
	final, err := cs.NetworkingV1().Ingresses(ns).Get(t.Context(), ing.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if final.Annotations["example.com/owner"] != "team-spark" {
		t.Errorf("another owner's annotation was lost: %v", final.Annotations)
	}

	// Every announcement was posted once, by one replica or the other.
	posts := room.all()
	for key, n := range room.byKey {
		if n != 1 {
			t.Errorf("announcement %s posted %d times", key, n)
		}
	}
	var stages []int
	var rows int
	var lastRow time.Time
	from := map[string]int{}
	for _, p := range posts {
		from[p.From]++
		switch p.Kind {
		case rollout.EventStage:
			stages = append(stages, p.Stage)
		case rollout.EventRow, rollout.EventSnapshot:
			rows++
			if !p.At.After(lastRow) {
				t.Errorf("row at %s announced after one at %s: a tick was replayed", p.At, lastRow)
			}
			lastRow = p.At
		}
	}
	if !slices.Equal(stages, []int{1, 2, 3, 4, 5}) {
		t.Errorf("stage announcements %v, want 1 to 5 once each", stages)
	}
	if from["replica-a"] == 0 || from["replica-b"] == 0 {
		t.Errorf("announcements by replica: %v; want both to have posted", from)
	}

	// The release: complete, every row announced, the hold applied once.
	r, err := st.Load(t.Context(), spec.Release)
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != rollout.PhaseComplete || len(r.StageStarts) != 5 {
		t.Errorf("release %s with %d stage starts, want complete with 5", r.Phase, len(r.StageStarts))
	}
	if rows != len(r.Rows) {
		t.Errorf("%d rows announced, the release has %d: a decision was lost or repeated", rows, len(r.Rows))
	}
	if n := strings.Count(strings.Join(r.Commands, "\n"), hold.ID); n != 1 {
		t.Errorf("the hold queued during the takeover is recorded %d times, want once", n)
	}
	var holds int
	for _, e := range r.Log {
		if e.Kind == rollout.LogCommand && strings.Contains(e.Text, "watching the takeover") {
			holds++
		}
	}
	if holds != 1 {
		t.Errorf("the hold was applied %d times, want once; log:\n%s", holds, report.Renderer{}.WarRoomLog(r))
	}
	lease := getLease(t, cs, spec.Lease)
	if lease.Spec.LeaseTransitions == nil || *lease.Spec.LeaseTransitions < 1 {
		t.Errorf("lease transitions %v, want at least one hand-over", lease.Spec.LeaseTransitions)
	}
	if h := holder(lease); h != "" {
		t.Errorf("lease still held by %q after the release finished", h)
	}
}
