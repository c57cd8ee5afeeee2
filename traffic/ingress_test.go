package traffic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/rollout"
)

var _ rollout.Traffic = (*Ingress)(nil)

const otherAnnotation = "example.com/owner"

// canaryIngress creates a canary Ingress with a fresh name and the given
// annotations, as the team that owns it would.
func canaryIngress(t testing.TB, cs kubernetes.Interface, annotations map[string]string) string {
	t.Helper()
	pathType := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "spark-canary-", Namespace: testenv.KubeNamespace, Annotations: annotations},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "spark.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &pathType,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "spark-canary", Port: networkingv1.ServiceBackendPort{Number: 80},
					}},
				}},
			}},
		}}},
	}
	created, err := cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Create(context.Background(), ing, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Ingress: %v", err)
	}
	name := created.Name
	t.Cleanup(func() {
		_ = cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func annotations(t *testing.T, cs kubernetes.Interface, name string) (map[string]string, string) {
	t.Helper()
	ing, err := cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Ingress %s: %v", name, err)
	}
	return ing.Annotations, ing.ResourceVersion
}

// patchCounter counts the PATCH requests a client sends, and can run a
// hook before a PATCH leaves (to stage a concurrent writer).
type patchCounter struct {
	patches atomic.Int32
	mu      sync.Mutex
	before  func(n int32)
}

func (p *patchCounter) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPatch {
				n := p.patches.Add(1)
				p.mu.Lock()
				hook := p.before
				p.mu.Unlock()
				if hook != nil {
					hook(n)
				}
			}
			return rt.RoundTrip(r)
		})
	})
	return cfg
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newRouter(t testing.TB, cfg *rest.Config, name string) *Ingress {
	t.Helper()
	ing, err := NewIngress(cfg, IngressOptions{Namespace: testenv.KubeNamespace, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return ing
}

func TestIngressSetsWeightsAndReadsThemBack(t *testing.T) {
	k := kube.Get(t)
	cs := k.Clientset(t)
	name := canaryIngress(t, cs, map[string]string{
		otherAnnotation: "team-spark",
		"nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
	})
	var pc patchCounter
	router := newRouter(t, pc.wrap(k.Config(k.AdminToken)), name)

	w, err := router.Weight(t.Context())
	if err != nil || w != 0 {
		t.Fatalf("a canary Ingress without the canary annotations: Weight = %d, %v; want 0", w, err)
	}
	for _, weight := range []int{1, 5, 25, 50, 100, 0} {
		t.Run(strconv.Itoa(weight), func(t *testing.T) {
			before := pc.patches.Load()
			if err := router.SetWeight(t.Context(), weight); err != nil {
				t.Fatal(err)
			}
			if n := pc.patches.Load() - before; n != 1 {
				t.Errorf("SetWeight(%d) sent %d patches, want 1", weight, n)
			}
			got, _ := annotations(t, cs, name)
			want := map[string]string{
				AnnotationCanary:       "true",
				AnnotationCanaryWeight: strconv.Itoa(weight),
				otherAnnotation:        "team-spark",
				"nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("annotation %s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			if w, err := router.Weight(t.Context()); err != nil || w != weight {
				t.Errorf("Weight = %d, %v; want %d", w, err, weight)
			}
		})
	}
}

func TestIngressSettingTheCurrentWeightChangesNothing(t *testing.T) {
	k := kube.Get(t)
	cs := k.Clientset(t)
	name := canaryIngress(t, cs, map[string]string{AnnotationCanary: "true", AnnotationCanaryWeight: "25"})
	var pc patchCounter
	router := newRouter(t, pc.wrap(k.Config(k.AdminToken)), name)
	_, rv := annotations(t, cs, name)
	if err := router.SetWeight(t.Context(), 25); err != nil {
		t.Fatal(err)
	}
	if _, after := annotations(t, cs, name); after != rv || pc.patches.Load() != 0 {
		t.Errorf("setting the current weight: resourceVersion %s → %s, %d patches; want no change", rv, after, pc.patches.Load())
	}
}

func TestIngressRollbackIsOnePatchToZero(t *testing.T) {
	k := kube.Get(t)
	cs := k.Clientset(t)
	name := canaryIngress(t, cs, map[string]string{AnnotationCanary: "true", AnnotationCanaryWeight: "50", otherAnnotation: "x"})
	var pc patchCounter
	router := newRouter(t, pc.wrap(k.Config(k.AdminToken)), name)
	if err := router.SetWeight(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	got, _ := annotations(t, cs, name)
	if pc.patches.Load() != 1 || got[AnnotationCanaryWeight] != "0" || got[AnnotationCanary] != "true" || got[otherAnnotation] != "x" {
		t.Errorf("rollback: %d patches, annotations %v; want one patch to weight 0 keeping the rest", pc.patches.Load(), got)
	}
}

// TestIngressKeepsAnotherWritersAnnotation: someone adds an annotation
// between two of the bot's changes; the next change keeps it.
func TestIngressKeepsAnotherWritersAnnotation(t *testing.T) {
	k := kube.Get(t)
	cs := k.Clientset(t)
	name := canaryIngress(t, cs, nil)
	router := newRouter(t, k.Config(k.AdminToken), name)
	if err := router.SetWeight(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"added-later"}}}`, otherAnnotation)
	if _, err := cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := router.SetWeight(t.Context(), 25); err != nil {
		t.Fatal(err)
	}
	got, _ := annotations(t, cs, name)
	if got[otherAnnotation] != "added-later" || got[AnnotationCanaryWeight] != "25" {
		t.Errorf("annotations %v: want %s kept and weight 25", got, otherAnnotation)
	}
}

// TestIngressRetriesAConflictingConcurrentUpdate stages a writer that
// changes the Ingress between the bot's read and its patch: the patch
// fails on the resourceVersion, is decided again on fresh state and
// succeeds, and the other writer's change survives.
func TestIngressRetriesAConflictingConcurrentUpdate(t *testing.T) {
	tests := []struct {
		name string
		// concurrent is what the other writer patches in.
		concurrent string
	}{
		{"another annotation", fmt.Sprintf(`{"metadata":{"annotations":{%q:"concurrent"}}}`, otherAnnotation)},
		{"the weight itself", fmt.Sprintf(`{"metadata":{"annotations":{%q:"concurrent",%q:"50"}}}`, otherAnnotation, AnnotationCanaryWeight)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := kube.Get(t)
			cs := k.Clientset(t)
			name := canaryIngress(t, cs, map[string]string{AnnotationCanary: "true", AnnotationCanaryWeight: "5"})
			pc := &patchCounter{}
			pc.before = func(n int32) {
				if n != 1 {
					return
				}
				_, err := cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Patch(context.Background(), name, types.MergePatchType, []byte(tt.concurrent), metav1.PatchOptions{})
				if err != nil {
					t.Errorf("concurrent writer: %v", err)
				}
			}
			router := newRouter(t, pc.wrap(k.Config(k.AdminToken)), name)
			if err := router.SetWeight(t.Context(), 25); err != nil {
				t.Fatal(err)
			}
			got, _ := annotations(t, cs, name)
			if got[otherAnnotation] != "concurrent" || got[AnnotationCanaryWeight] != "25" {
				t.Errorf("annotations %v: want the concurrent writer's %s and our weight 25", got, otherAnnotation)
			}
			if n := pc.patches.Load(); n != 2 {
				t.Errorf("%d patches, want 2: one refused on the stale resourceVersion, one on fresh state", n)
			}
		})
	}
}

// TestIngressRacesOtherWriters runs the bot's changes while other writers
// keep patching their own annotations: every one of theirs survives and
// the weight ends as the bot's last.
func TestIngressRacesOtherWriters(t *testing.T) {
	k := kube.Get(t)
	cs := k.Clientset(t)
	name := canaryIngress(t, cs, nil)
	router := newRouter(t, k.Config(k.AdminToken), name)
	const writers, writes = 4, 15
	whileOthersWrite(t, router, writers, writes, func(w, i int) error {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"example.com/writer-%d":"%d"}}}`, w, i)
		_, err := cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	})
	got, _ := annotations(t, cs, name)
	for w := range writers {
		if v := got[fmt.Sprintf("example.com/writer-%d", w)]; v != strconv.Itoa(writes-1) {
			t.Errorf("writer %d's annotation = %q, want its last write %d", w, v, writes-1)
		}
	}
	if got[AnnotationCanaryWeight] != "5" || got[AnnotationCanary] != "true" {
		t.Errorf("weight annotations %v, want canary true and weight 5", got)
	}
}

func TestIngressErrors(t *testing.T) {
	k := kube.Get(t)
	cs := k.Clientset(t)
	bad := canaryIngress(t, cs, map[string]string{AnnotationCanary: "true", AnnotationCanaryWeight: "lots"})
	total := canaryIngress(t, cs, map[string]string{AnnotationCanary: "true", AnnotationCanaryWeight: "5", AnnotationCanaryWeightTotal: "1000"})
	ok := canaryIngress(t, cs, map[string]string{AnnotationCanary: "true", AnnotationCanaryWeight: "5"})
	tests := []struct {
		name    string
		token   string
		ingress string
		set     int // -1: read only
		want    error
		says    string
	}{
		{"missing Ingress", k.AdminToken, "nope-canary", 5, ErrIngressNotFound, "spark/nope-canary"},
		{"missing Ingress read", k.AdminToken, "nope-canary", -1, ErrIngressNotFound, "create the canary Ingress"},
		{"unparsable weight", k.AdminToken, bad, -1, ErrBadAnnotation, `"lots"`},
		{"weight total not 100", k.AdminToken, total, 5, ErrBadAnnotation, "canary-weight-total"},
		{"no RBAC", k.BotToken, ok, 5, ErrForbidden, "rbac.yaml"},
		{"weight out of range", k.AdminToken, ok, 101, ErrInvalidWeight, "0 to 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			router := newRouter(t, k.Config(tt.token), tt.ingress)
			var err error
			if tt.set < 0 {
				_, err = router.Weight(t.Context())
			} else {
				err = router.SetWeight(t.Context(), tt.set)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.says) {
				t.Errorf("error %v; want %v saying %q", err, tt.want, tt.says)
			}
		})
	}
	if got, _ := annotations(t, cs, total); got[AnnotationCanaryWeight] != "5" {
		t.Errorf("an Ingress with a bad weight total was changed: %v", got)
	}
}

func TestNewIngressNeedsAName(t *testing.T) {
	if _, err := NewIngressForClient(nil, IngressOptions{Namespace: "spark"}); err == nil || !strings.Contains(err.Error(), "spark/spark-canary") {
		t.Errorf("error %v; want one that shows the form namespace/name", err)
	}
}

func TestClientConfigFromKubeconfig(t *testing.T) {
	k := kube.Get(t)
	path, err := k.Kubeconfig(t.TempDir(), k.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, viaEnv := range []bool{true, false} {
		t.Run(fmt.Sprintf("env=%v", viaEnv), func(t *testing.T) {
			arg := path
			if viaEnv {
				t.Setenv("KUBECONFIG", path)
				arg = ""
			}
			cfg, ns, err := ClientConfig(arg)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != k.URL || ns != testenv.KubeNamespace {
				t.Errorf("host %s namespace %s, want %s %s", cfg.Host, ns, k.URL, testenv.KubeNamespace)
			}
			name := canaryIngress(t, k.Clientset(t), nil)
			router := newRouter(t, cfg, name)
			if err := router.SetWeight(t.Context(), 1); err != nil {
				t.Errorf("a router from the kubeconfig cannot set the weight: %v", err)
			}
		})
	}
}

func TestClientConfigWithoutACluster(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	_, _, err := ClientConfig("")
	if !errors.Is(err, ErrNoCluster) || !strings.Contains(err.Error(), "KUBECONFIG") {
		t.Errorf("error %v; want ErrNoCluster saying to set KUBECONFIG", err)
	}
	missing := filepath.Join(home, "nope.yaml")
	_, _, err = ClientConfig(missing)
	if !errors.Is(err, ErrNoCluster) || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %v; want ErrNoCluster naming %s", err, missing)
	}
	if err := os.WriteFile(filepath.Join(home, "bad.yaml"), []byte("clusters: [oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err = ClientConfig(filepath.Join(home, "bad.yaml")); !errors.Is(err, ErrNoCluster) {
		t.Errorf("a malformed kubeconfig: error %v; want ErrNoCluster", err)
	}
}

// BenchmarkIngressRollback is a rollback's cost on the Ingress: one merge
// patch to weight 0 and the read-back.
func BenchmarkIngressRollback(b *testing.B) {
	k := kube.Get(b)
	name := canaryIngress(b, k.Clientset(b), map[string]string{AnnotationCanary: "true", AnnotationCanaryWeight: "25"})
	benchRollback(b, newRouter(b, k.Config(k.AdminToken), name))
}

// BenchmarkIngressPromote is a stage change: read, patch at the read
// resourceVersion, read back.
func BenchmarkIngressPromote(b *testing.B) {
	k := kube.Get(b)
	name := canaryIngress(b, k.Clientset(b), nil)
	benchPromote(b, newRouter(b, k.Config(k.AdminToken), name))
}

// whileOthersWrite moves router through the stages while writers each
// change the object writes times with write(w, i), as other controllers
// and people do.
func whileOthersWrite(t *testing.T, router weightSetter, writers, writes int, write func(w, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				if err := write(w, i); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	for _, weight := range []int{1, 5, 25, 50, 100, 0, 5} {
		if err := router.SetWeight(t.Context(), weight); err != nil {
			t.Errorf("SetWeight(%d) while others write: %v", weight, err)
		}
	}
	wg.Wait()
}

// weightSetter is the router method the benchmarks and whileOthersWrite use.
type weightSetter interface {
	SetWeight(ctx context.Context, weight int) error
}

// benchRollback times SetWeight(0) from 25, the move back untimed.
func benchRollback(b *testing.B, router weightSetter) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		if err := router.SetWeight(ctx, 25); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := router.SetWeight(ctx, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPromote times the stages' weights in turn.
func benchPromote(b *testing.B, router weightSetter) {
	ctx := context.Background()
	weights := []int{1, 5, 25, 50, 100}
	i := 0
	for b.Loop() {
		if err := router.SetWeight(ctx, weights[i%len(weights)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
