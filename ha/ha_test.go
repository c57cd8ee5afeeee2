package ha

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canarybot/canarybot/internal/testenv"
)

// The tests' one package-level variable: the shared server, started lazily
// and stopped by TestMain.
var kube testenv.SharedKube

func TestMain(m *testing.M) {
	if spec := os.Getenv(replicaEnv); spec != "" {
		// This process is a replica started by TestLeaderKilledMidStage.
		os.Exit(replicaMain(spec))
	}
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}

// Short terms keep the tests quick: a dead leader is replaced within about
// 2.5 s.
const (
	testLease = 2 * time.Second
	testRenew = time.Second
	testRetry = 250 * time.Millisecond
)

func testConfig(t *testing.T, cfg *rest.Config, lease, identity string) Config {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Client: cs, Namespace: testenv.KubeNamespace, LeaseName: lease, Identity: identity,
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
	}
}

func leaseName() string { return "canarybot-" + strings.ToLower(rand.Text()[:8]) }

func getLease(t *testing.T, cs kubernetes.Interface, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(testenv.KubeNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("lease %s: %v", name, err)
	}
	return l
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// events records what the replicas' lead functions did, in order.
type events struct {
	mu  sync.Mutex
	log []string
	ch  chan string
}

func newEvents() *events { return &events{ch: make(chan string, 64)} }

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
	e.ch <- s
}

func (e *events) wait(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case got := <-e.ch:
			if got == want {
				return
			}
		case <-timeout:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("no %q within 20 s; events so far: %v", want, e.log)
		}
	}
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

// blockingLead records start and end, and runs until its context ends.
func blockingLead(ev *events, who string) func(ctx context.Context) {
	return func(ctx context.Context) {
		ev.add(who + " start")
		<-ctx.Done()
		// A lead that takes a moment to wind down: the Lease must not be
		// released before it has.
		time.Sleep(100 * time.Millisecond)
		ev.add(who + " end")
	}
}

// TestOneLeaderAtATimeAndAHandOver: two replicas, one leads; stopping it
// ends its lead before the other's begins, and the other takes over.
func TestOneLeaderAtATimeAndAHandOver(t *testing.T) {
	k := kube.Get(t)
	lease := leaseName()
	ev := newEvents()
	a, err := New(testConfig(t, k.Config(k.AdminToken), lease, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(testConfig(t, k.Config(k.AdminToken), lease, "b"))
	if err != nil {
		t.Fatal(err)
	}
	ctxA, stopA := context.WithCancel(t.Context())
	defer stopA()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.Run(ctxA, blockingLead(ev, "a")); err != nil {
			t.Errorf("a: %v", err)
		}
	})
	ev.wait(t, "a start")
	ctxB, stopB := context.WithCancel(t.Context())
	defer stopB()
	wg.Go(func() {
		if err := b.Run(ctxB, blockingLead(ev, "b")); err != nil {
			t.Errorf("b: %v", err)
		}
	})
	if !a.IsLeader() || b.IsLeader() {
		t.Errorf("a leads: IsLeader a=%v b=%v", a.IsLeader(), b.IsLeader())
	}
	if got := holder(getLease(t, k.Clientset(t), lease)); got != "a" {
		t.Errorf("lease holder %q, want a", got)
	}

	stopA() // a shuts down cleanly: ends its lead, then releases the Lease
	ev.wait(t, "b start")
	if a.IsLeader() || !b.IsLeader() {
		t.Errorf("after the hand-over: IsLeader a=%v b=%v", a.IsLeader(), b.IsLeader())
	}
	if got := b.Leader(); got != "b" {
		t.Errorf("b sees leader %q", got)
	}
	stopB()
	wg.Wait()
	want := []string{"a start", "a end", "b start", "b end"}
	if got := ev.all(); !equal(got, want) {
		t.Errorf("events %v, want %v: two leads overlapped", got, want)
	}
	if got := holder(getLease(t, k.Clientset(t), lease)); got != "" {
		t.Errorf("lease still held by %q after both stopped", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRunEndsWhenLeadIsDone: a lead that returns on its own (the release
// is over) ends Run and frees the Lease for the others at once.
func TestRunEndsWhenLeadIsDone(t *testing.T) {
	k := kube.Get(t)
	lease := leaseName()
	var ran atomic.Int32
	err := Run(t.Context(), testConfig(t, k.Config(k.AdminToken), lease, "a"), func(ctx context.Context) { ran.Add(1) })
	if err != nil || ran.Load() != 1 {
		t.Fatalf("Run = %v after %d leads, want nil after 1", err, ran.Load())
	}
	if got := holder(getLease(t, k.Clientset(t), lease)); got != "" {
		t.Errorf("lease held by %q after the lead returned", got)
	}
}

// TestLeaderCutOffStopsLeading: a leader that can no longer reach the API
// server (a partition, a hung node) stops leading once it cannot renew,
// and a follower takes over once the Lease has expired.
func TestLeaderCutOffStopsLeading(t *testing.T) {
	k := kube.Get(t)
	lease := leaseName()
	ev := newEvents()
	var cut atomic.Bool
	cfgA := rest.CopyConfig(k.Config(k.AdminToken))
	cfgA.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if cut.Load() {
				return nil, errors.New("partitioned")
			}
			return rt.RoundTrip(r)
		})
	})
	a, err := New(testConfig(t, cfgA, lease, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(testConfig(t, k.Config(k.AdminToken), lease, "b"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx, blockingLead(ev, "a")) })
	ev.wait(t, "a start")
	wg.Go(func() { _ = b.Run(ctx, blockingLead(ev, "b")) })
	cut.Store(true)
	ev.wait(t, "a end")
	if a.IsLeader() {
		t.Error("a cut-off leader still says it leads")
	}
	ev.wait(t, "b start")
	if !b.IsLeader() {
		t.Error("b took over but does not say it leads")
	}
	stop()
	wg.Wait()
	t.Logf("events: %v", ev.all())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestConfigErrors(t *testing.T) {
	ok := func() Config {
		return Config{Client: &kubernetes.Clientset{}, Namespace: "spark", LeaseName: "canarybot", Identity: "a"}
	}
	tests := []struct {
		name   string
		change func(*Config)
		says   string
	}{
		{"no client", func(c *Config) { c.Client = nil }, "client"},
		{"no namespace", func(c *Config) { c.Namespace = "" }, "spark/canarybot"},
		{"no identity", func(c *Config) { c.Identity = "" }, "DefaultIdentity"},
		{"renew not under lease", func(c *Config) { c.LeaseDuration, c.RenewDeadline = time.Second, time.Second }, "lease duration"},
		{"retry too slow", func(c *Config) { c.RetryPeriod = 9 * time.Second }, "retry period"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.change(&c)
			_, err := New(c)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %v; want ErrConfig saying %q", err, tt.says)
			}
		})
	}
	e, err := New(ok())
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if e.cfg.LeaseDuration != DefaultLeaseDuration || e.IsLeader() || e.Identity() != "a" {
		t.Errorf("defaults not applied: %+v", e.cfg)
	}
}

func TestDefaultIdentityDiffersPerStart(t *testing.T) {
	t.Setenv("POD_NAME", "canarybot-7d9f-abcde")
	a, b := DefaultIdentity(), DefaultIdentity()
	if a == b || !strings.HasPrefix(a, "canarybot-7d9f-abcde_") {
		t.Errorf("identities %q and %q: want the pod name with a fresh suffix each", a, b)
	}
}
