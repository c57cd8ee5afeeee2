package traffic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/rollout"
)

var _ rollout.Traffic = (*HTTPRoute)(nil)

// The Services of testdata/httproute's routes.
const (
	canaryService = "spark-canary"
	stableService = "spark"
)

const gatewayAPIModule = "sigs.k8s.io/gateway-api"

// gatewayCRDs reads Gateway API's standard CRDs from the module the router
// is built against, so that the tests' schema (its validation, its
// defaults, its pruning) is the one its Go types come from.
func gatewayCRDs(t testing.TB) []*unstructured.Unstructured {
	t.Helper()
	dir, err := testenv.ModuleDir(context.Background(), gatewayAPIModule)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "crd", "standard", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Gateway API CRDs under %s (%v)", dir, err)
	}
	crds, err := testenv.LoadCRDs(files...)
	if err != nil {
		t.Fatal(err)
	}
	return crds
}

// gatewayKube is the package's shared API server with Gateway API's
// standard CRDs installed (by the first test that needs them).
func gatewayKube(t testing.TB) *testenv.KubeServer {
	t.Helper()
	k := kube.Get(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	// A list that succeeds means an earlier test installed them: the
	// CRDs' YAML (over a megabyte) is then not parsed again.
	if _, err := dyn.Resource(httpRouteResource).Namespace(testenv.KubeNamespace).List(context.Background(), metav1.ListOptions{Limit: 1}); err == nil {
		return k
	}
	if err := testenv.InstallCRDs(context.Background(), k.Config(k.AdminToken), gatewayCRDs(t)...); err != nil {
		t.Fatal(err)
	}
	return k
}

func dynamicClient(t testing.TB, cfg *rest.Config) dynamic.Interface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

// readRoute decodes testdata/httproute/<fixture>.yaml.
func readRoute(t testing.TB, fixture string) *unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "httproute", fixture+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&u.Object); err != nil {
		t.Fatalf("%s: %v", fixture, err)
	}
	return u
}

// createRoute creates the fixture's HTTPRoute under a fresh name, as the
// team that owns it would, and returns its name.
func createRoute(t testing.TB, dyn dynamic.Interface, fixture string) string {
	t.Helper()
	u := readRoute(t, fixture)
	u.SetName("")
	u.SetGenerateName("spark-")
	u.SetNamespace(testenv.KubeNamespace)
	created, err := dyn.Resource(httpRouteResource).Namespace(testenv.KubeNamespace).Create(context.Background(), u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create HTTPRoute from %s: %v", fixture, err)
	}
	name := created.GetName()
	t.Cleanup(func() {
		_ = dyn.Resource(httpRouteResource).Namespace(testenv.KubeNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func getRoute(t testing.TB, dyn dynamic.Interface, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := dyn.Resource(httpRouteResource).Namespace(testenv.KubeNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get HTTPRoute %s: %v", name, err)
	}
	return u
}

// backendRefs returns the backendRefs of the route's rules, by rule index.
func backendRefs(t testing.TB, u *unstructured.Unstructured) [][]map[string]any {
	t.Helper()
	rules, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]map[string]any, len(rules))
	for i, r := range rules {
		refs, _, _ := unstructured.NestedSlice(r.(map[string]any), "backendRefs")
		for _, ref := range refs {
			out[i] = append(out[i], ref.(map[string]any))
		}
	}
	return out
}

// weights is what the route's rules give each Service, as "rule/service":
// weight, read straight from the stored object.
func weights(t testing.TB, u *unstructured.Unstructured) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for i, refs := range backendRefs(t, u) {
		for _, ref := range refs {
			w, _, _ := unstructured.NestedInt64(ref, "weight")
			got[fmt.Sprintf("%d/%s", i, ref["name"])] = w
		}
	}
	return got
}

// withWeights is u's spec with the named backendRefs' weights replaced:
// what the route must be after a change, every other field included.
func withWeights(t testing.TB, u *unstructured.Unstructured, set map[string]int64) map[string]any {
	t.Helper()
	s := spec(t, u) // a deep copy
	rules, _ := s["rules"].([]any)
	for i, r := range rules {
		refs, _ := r.(map[string]any)["backendRefs"].([]any)
		for _, ref := range refs {
			m := ref.(map[string]any)
			if w, ok := set[fmt.Sprintf("%d/%s", i, m["name"])]; ok {
				m["weight"] = w
			}
		}
	}
	return s
}

func spec(t testing.TB, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	s, _, err := unstructured.NestedMap(u.Object, "spec")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeCounter counts the requests that change something (anything but
// GET) a client sends, and can run a hook before a PUT leaves, to stage a
// concurrent writer between the router's read and its update, or after
// it, to stage one between the update and the read-back.
type writeCounter struct {
	writes, puts        atomic.Int32
	mu                  sync.Mutex
	beforePut, afterPut func(n int32)
}

func (c *writeCounter) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet {
				c.writes.Add(1)
			}
			if r.Method == http.MethodPut {
				n := c.puts.Add(1)
				c.mu.Lock()
				before, after := c.beforePut, c.afterPut
				c.mu.Unlock()
				if before != nil {
					before(n)
				}
				resp, err := rt.RoundTrip(r)
				if after != nil && err == nil {
					after(n)
				}
				return resp, err
			}
			return rt.RoundTrip(r)
		})
	})
	return cfg
}

func newRouteRouter(t testing.TB, cfg *rest.Config, name string) *HTTPRoute {
	t.Helper()
	r, err := NewHTTPRoute(cfg, HTTPRouteOptions{Namespace: testenv.KubeNamespace, Name: name, CanaryService: canaryService, StableService: stableService})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// jsonPatch applies an RFC 6902 patch as another writer (kubectl, a
// GitOps tool) would.
func jsonPatch(t testing.TB, dyn dynamic.Interface, name, patch string) {
	t.Helper()
	if _, err := dyn.Resource(httpRouteResource).Namespace(testenv.KubeNamespace).Patch(context.Background(), name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Errorf("other writer's patch %s: %v", patch, err)
	}
}

// TestHTTPRouteSetsWeightsAndReadsThemBack promotes through the runbook's
// stages and rolls back: each change is one write that moves the two
// weights of both rules that share the Services, and nothing else of the
// route, the unrelated /docs rule included, changes.
func TestHTTPRouteSetsWeightsAndReadsThemBack(t *testing.T) {
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	name := createRoute(t, dyn, "spark")
	before := getRoute(t, dyn, name)
	var wc writeCounter
	router := newRouteRouter(t, wc.wrap(k.Config(k.AdminToken)), name)

	if w, err := router.Weight(t.Context()); err != nil || w != 0 {
		t.Fatalf("the route as its team wrote it: Weight = %d, %v; want 0", w, err)
	}
	for _, weight := range []int{1, 5, 25, 50, 100, 0} {
		t.Run(strconv.Itoa(weight), func(t *testing.T) {
			n := wc.writes.Load()
			if err := router.SetWeight(t.Context(), weight); err != nil {
				t.Fatal(err)
			}
			if got := wc.writes.Load() - n; got != 1 {
				t.Errorf("SetWeight(%d) sent %d writes, want 1", weight, got)
			}
			after := getRoute(t, dyn, name)
			c, s := int64(weight), int64(100-weight)
			want := withWeights(t, before, map[string]int64{"0/spark": s, "0/spark-canary": c, "1/spark": s, "1/spark-canary": c})
			if got := spec(t, after); !reflect.DeepEqual(got, want) {
				t.Errorf("spec after SetWeight(%d):\n got %v\nwant %v", weight, got, want)
			}
			if !reflect.DeepEqual(after.GetLabels(), before.GetLabels()) || !reflect.DeepEqual(after.GetAnnotations(), before.GetAnnotations()) {
				t.Errorf("metadata changed: labels %v annotations %v; want %v %v", after.GetLabels(), after.GetAnnotations(), before.GetLabels(), before.GetAnnotations())
			}
			if w, err := router.Weight(t.Context()); err != nil || w != weight {
				t.Errorf("Weight = %d, %v; want %d", w, err, weight)
			}
		})
	}
}

func TestHTTPRouteSettingTheCurrentWeightWritesNothing(t *testing.T) {
	tests := []struct {
		fixture string
		weight  int
	}{
		{"spark", 0},
		{"scaled", 25}, // 250 of 1000 is already 25 %: not rewritten as 25/75
		{"foreign-zero", 5},
		{"defaults", 50},
	}
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			name := createRoute(t, dyn, tt.fixture)
			rv := getRoute(t, dyn, name).GetResourceVersion()
			var wc writeCounter
			router := newRouteRouter(t, wc.wrap(k.Config(k.AdminToken)), name)
			if err := router.SetWeight(t.Context(), tt.weight); err != nil {
				t.Fatal(err)
			}
			if after := getRoute(t, dyn, name).GetResourceVersion(); after != rv || wc.writes.Load() != 0 {
				t.Errorf("setting the current weight %d: resourceVersion %s → %s, %d writes; want no change", tt.weight, rv, after, wc.writes.Load())
			}
		})
	}
}

func TestHTTPRouteRollbackIsOneWriteToZero(t *testing.T) {
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	name := createRoute(t, dyn, "spark")
	router := newRouteRouter(t, k.Config(k.AdminToken), name)
	if err := router.SetWeight(t.Context(), 50); err != nil {
		t.Fatal(err)
	}
	var wc writeCounter
	router = newRouteRouter(t, wc.wrap(k.Config(k.AdminToken)), name)
	if err := router.SetWeight(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	got := weights(t, getRoute(t, dyn, name))
	want := map[string]int64{"0/spark": 100, "0/spark-canary": 0, "1/spark": 100, "1/spark-canary": 0, "2/docs": 1}
	if wc.writes.Load() != 1 || !reflect.DeepEqual(got, want) {
		t.Errorf("rollback: %d writes, weights %v; want one write to %v", wc.writes.Load(), got, want)
	}
}

// TestHTTPRouteReadsARolledBackOddRouteAsZero: a route the router cannot
// read a share from (a weighted third backend) is still rolled back, and
// once the canary is at 0 it reads 0, so that the engine's rollback and a
// rolled-back release's reconciling go through.
func TestHTTPRouteReadsARolledBackOddRouteAsZero(t *testing.T) {
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	name := createRoute(t, dyn, "foreign-weighted")
	router := newRouteRouter(t, k.Config(k.AdminToken), name)
	if _, err := router.Weight(t.Context()); !errors.Is(err, ErrBadRoute) {
		t.Fatalf("Weight of a route with a weighted third backend: %v, want ErrBadRoute", err)
	}
	if err := router.SetWeight(t.Context(), 0); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if w, err := router.Weight(t.Context()); err != nil || w != 0 {
		t.Errorf("Weight after the rollback: %d, %v; want 0", w, err)
	}
}

// TestHTTPRouteKeepsAnotherWritersChanges: between two of the bot's
// changes someone adds a filter to a rule the bot moves, a label, and a
// rule of their own; the next change keeps all three.
func TestHTTPRouteKeepsAnotherWritersChanges(t *testing.T) {
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	name := createRoute(t, dyn, "spark")
	router := newRouteRouter(t, k.Config(k.AdminToken), name)
	if err := router.SetWeight(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	jsonPatch(t, dyn, name, `[
		{"op":"add","path":"/metadata/labels/example.com~1tier","value":"gold"},
		{"op":"add","path":"/spec/rules/1/filters","value":[{"type":"RequestHeaderModifier","requestHeaderModifier":{"set":[{"name":"X-WS","value":"1"}]}}]},
		{"op":"add","path":"/spec/rules/-","value":{"name":"status","matches":[{"path":{"type":"PathPrefix","value":"/status"}}],"backendRefs":[{"name":"status","port":80}]}}
	]`)
	before := getRoute(t, dyn, name)
	if err := router.SetWeight(t.Context(), 25); err != nil {
		t.Fatal(err)
	}
	after := getRoute(t, dyn, name)
	want := withWeights(t, before, map[string]int64{"0/spark": 75, "0/spark-canary": 25, "1/spark": 75, "1/spark-canary": 25})
	if got := spec(t, after); !reflect.DeepEqual(got, want) {
		t.Errorf("spec:\n got %v\nwant %v", got, want)
	}
	if after.GetLabels()["example.com/tier"] != "gold" {
		t.Errorf("labels %v: the other writer's example.com/tier is gone", after.GetLabels())
	}
}

// TestHTTPRouteRetriesAConflictingConcurrentUpdate stages a writer that
// changes the route between the bot's Get and its Update: the Update is
// refused on the stale resourceVersion, the change is made again on the
// fresh route, and the other writer's change survives.
func TestHTTPRouteRetriesAConflictingConcurrentUpdate(t *testing.T) {
	tests := []struct {
		name string
		// concurrent is the other writer's JSON patch; check says what of
		// it must survive.
		concurrent string
		check      func(u *unstructured.Unstructured) bool
	}{
		{"a label", `[{"op":"add","path":"/metadata/labels/example.com~1tier","value":"gold"}]`,
			func(u *unstructured.Unstructured) bool { return u.GetLabels()["example.com/tier"] == "gold" }},
		{"a filter on a moved rule", `[{"op":"add","path":"/spec/rules/1/filters","value":[{"type":"RequestHeaderModifier","requestHeaderModifier":{"set":[{"name":"X-WS","value":"1"}]}}]}]`,
			func(u *unstructured.Unstructured) bool {
				f, _, _ := unstructured.NestedSlice(u.Object["spec"].(map[string]any)["rules"].([]any)[1].(map[string]any), "filters")
				return len(f) == 1
			}},
		{"the weights themselves", `[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":50},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":50},{"op":"add","path":"/metadata/labels/example.com~1tier","value":"gold"}]`,
			func(u *unstructured.Unstructured) bool { return u.GetLabels()["example.com/tier"] == "gold" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := gatewayKube(t)
			dyn := dynamicClient(t, k.Config(k.AdminToken))
			name := createRoute(t, dyn, "spark")
			wc := &writeCounter{}
			wc.beforePut = func(n int32) {
				if n == 1 {
					jsonPatch(t, dyn, name, tt.concurrent)
				}
			}
			router := newRouteRouter(t, wc.wrap(k.Config(k.AdminToken)), name)
			if err := router.SetWeight(t.Context(), 25); err != nil {
				t.Fatal(err)
			}
			after := getRoute(t, dyn, name)
			got := weights(t, after)
			want := map[string]int64{"0/spark": 75, "0/spark-canary": 25, "1/spark": 75, "1/spark-canary": 25, "2/docs": 1}
			if !reflect.DeepEqual(got, want) || !tt.check(after) {
				t.Errorf("weights %v, labels %v: want %v and the concurrent writer's change", got, after.GetLabels(), want)
			}
			if n := wc.puts.Load(); n != 2 {
				t.Errorf("%d updates, want 2: one refused on the stale resourceVersion, one on the fresh route", n)
			}
		})
	}
}

// TestHTTPRouteReadBackCatchesARevert stages another writer (a GitOps
// sync, an admission webhook's owner) putting weights back right after the
// router's update: the read-back says the change did not hold.
func TestHTTPRouteReadBackCatchesARevert(t *testing.T) {
	tests := []struct {
		name   string
		from   int
		set    int
		revert string
		says   string
	}{
		{"promotion", 0, 25, `[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":100},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":0},{"op":"replace","path":"/spec/rules/1/backendRefs/0/weight","value":0},{"op":"replace","path":"/spec/rules/1/backendRefs/1/weight","value":100}]`,
			"says 0% right after 25% was set"},
		{"rollback", 50, 0, `[{"op":"replace","path":"/spec/rules/1/backendRefs/0/weight","value":50}]`,
			"still gives the canary Service spark-canary weight"},
	}
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := createRoute(t, dyn, "spark")
			if err := newRouteRouter(t, k.Config(k.AdminToken), name).SetWeight(t.Context(), tt.from); err != nil {
				t.Fatal(err)
			}
			wc := &writeCounter{}
			wc.afterPut = func(n int32) {
				if n == 1 {
					jsonPatch(t, dyn, name, tt.revert)
				}
			}
			err := newRouteRouter(t, wc.wrap(k.Config(k.AdminToken)), name).SetWeight(t.Context(), tt.set)
			if !errors.Is(err, ErrReadBack) || !strings.Contains(fmt.Sprint(err), tt.says) {
				t.Errorf("error %v; want ErrReadBack saying %q", err, tt.says)
			}
		})
	}
}

// TestHTTPRouteRacesOtherWriters runs the bot's changes while other
// writers keep changing labels of their own: every one of theirs survives
// and the weights end as the bot's last.
func TestHTTPRouteRacesOtherWriters(t *testing.T) {
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	name := createRoute(t, dyn, "spark")
	router := newRouteRouter(t, k.Config(k.AdminToken), name)
	const writers, writes = 3, 10
	whileOthersWrite(t, router, writers, writes, func(w, i int) error {
		patch := fmt.Sprintf(`{"metadata":{"labels":{"example.com/writer-%d":"%d"}}}`, w, i)
		_, err := dyn.Resource(httpRouteResource).Namespace(testenv.KubeNamespace).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	})
	after := getRoute(t, dyn, name)
	for w := range writers {
		if v := after.GetLabels()[fmt.Sprintf("example.com/writer-%d", w)]; v != strconv.Itoa(writes-1) {
			t.Errorf("writer %d's label = %q, want its last write %d", w, v, writes-1)
		}
	}
	if got := weights(t, after); got["0/spark-canary"] != 5 || got["1/spark-canary"] != 5 || got["0/spark"] != 95 || got["1/spark"] != 95 {
		t.Errorf("weights %v, want 5/95 in both rules", got)
	}
}

// TestHTTPRouteShapes reads and sets routes of every shape the router
// meets: what it reads, whether it promotes (25 %) and whether it rolls
// back, and that a refused change leaves the route untouched.
func TestHTTPRouteShapes(t *testing.T) {
	tests := []struct {
		fixture string
		weight  int
		// readErr is Weight's and promoteErr SetWeight(25)'s error, with
		// what each must say; rollbackErr SetWeight(0)'s.
		readErr    error
		says       string
		promoteErr error
		// afterRollback are the weights a rollback leaves, when it works.
		rollbackErr   error
		afterRollback map[string]int64
	}{
		{fixture: "foreign-zero", weight: 5,
			afterRollback: map[string]int64{"0/spark": 100, "0/spark-canary": 0, "0/spark-legacy": 0}},
		{fixture: "scaled", weight: 25,
			afterRollback: map[string]int64{"0/spark": 100, "0/spark-canary": 0}},
		{fixture: "defaults", weight: 50,
			afterRollback: map[string]int64{"0/spark": 100, "0/spark-canary": 0}},
		{fixture: "missing-canary", readErr: ErrBackendMissing, says: `rule 1 ("ws", path /ws) sends to the stable Service spark but not to the canary Service spark-canary`, promoteErr: ErrBackendMissing,
			// The rule without the canary sends it nothing already: left alone.
			afterRollback: map[string]int64{"0/spark": 100, "0/spark-canary": 0, "1/spark": 100}},
		{fixture: "canary-only", readErr: ErrBackendMissing, says: "but not to the stable Service spark", promoteErr: ErrBackendMissing,
			rollbackErr: ErrBackendMissing},
		{fixture: "foreign-weighted", readErr: ErrForeignBackend, says: "also sends to Service spark-legacy (weight 10)", promoteErr: ErrForeignBackend,
			// Taking the canary out is right whoever else is in the rule.
			afterRollback: map[string]int64{"0/spark": 100, "0/spark-canary": 0, "0/spark-legacy": 10}},
		{fixture: "other-namespace", readErr: ErrBackendMissing, says: "not to the canary Service spark-canary", promoteErr: ErrBackendMissing,
			afterRollback: map[string]int64{"0/spark": 50, "0/spark-canary": 50}},
		{fixture: "no-split", readErr: ErrBackendMissing, says: "no rule of HTTPRoute spark/", promoteErr: ErrBackendMissing,
			rollbackErr: ErrBackendMissing},
		{fixture: "disagree", readErr: ErrBadSplit, says: `rule 0 ("api", path /api) sends 5% to the canary but rule 1 ("ws", path /ws) sends 25%`,
			afterRollback: map[string]int64{"0/spark": 100, "0/spark-canary": 0, "1/spark": 100, "1/spark-canary": 0}},
		{fixture: "both-zero", readErr: ErrBadSplit, says: "weight 0, which sends them nothing",
			afterRollback: map[string]int64{"0/spark": 100, "0/spark-canary": 0}},
		{fixture: "fraction", readErr: ErrBadSplit, says: "33.33% canary",
			afterRollback: map[string]int64{"0/spark": 100, "0/spark-canary": 0}},
		{fixture: "twice", readErr: ErrBadRoute, says: "sends to the canary Service spark-canary twice", promoteErr: ErrBadRoute,
			rollbackErr: ErrBadRoute},
	}
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			name := createRoute(t, dyn, tt.fixture)
			router := newRouteRouter(t, k.Config(k.AdminToken), name)

			w, err := router.Weight(t.Context())
			if tt.readErr == nil && (err != nil || w != tt.weight) {
				t.Errorf("Weight = %d, %v; want %d", w, err, tt.weight)
			}
			if tt.readErr != nil && (!errors.Is(err, tt.readErr) || !errors.Is(err, ErrBadRoute) || !strings.Contains(fmt.Sprint(err), tt.says) || !strings.Contains(fmt.Sprint(err), name)) {
				t.Errorf("Weight error %v; want %v (an ErrBadRoute) naming the route and saying %q", err, tt.readErr, tt.says)
			}

			// A promotion on a route it cannot read refuses and leaves
			// the route as it was; on an unusable split it replaces it.
			rv := getRoute(t, dyn, name).GetResourceVersion()
			err = router.SetWeight(t.Context(), 25)
			switch {
			case tt.promoteErr != nil:
				if !errors.Is(err, tt.promoteErr) {
					t.Errorf("SetWeight(25) error %v; want %v", err, tt.promoteErr)
				}
				if after := getRoute(t, dyn, name).GetResourceVersion(); after != rv {
					t.Errorf("a refused promotion changed the route: resourceVersion %s → %s", rv, after)
				}
			case err != nil:
				t.Errorf("SetWeight(25): %v", err)
			default:
				if w, err := router.Weight(t.Context()); err != nil || w != 25 {
					t.Errorf("after SetWeight(25): Weight = %d, %v", w, err)
				}
			}

			rv = getRoute(t, dyn, name).GetResourceVersion()
			err = router.SetWeight(t.Context(), 0)
			if tt.rollbackErr != nil {
				if !errors.Is(err, tt.rollbackErr) {
					t.Errorf("SetWeight(0) error %v; want %v", err, tt.rollbackErr)
				}
				if after := getRoute(t, dyn, name).GetResourceVersion(); after != rv {
					t.Errorf("a refused rollback changed the route: resourceVersion %s → %s", rv, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetWeight(0): %v", err)
			}
			got := weights(t, getRoute(t, dyn, name))
			if !reflect.DeepEqual(got, tt.afterRollback) {
				t.Errorf("after the rollback: weights %v; want %v", got, tt.afterRollback)
			}
		})
	}
}

func TestHTTPRouteErrors(t *testing.T) {
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	ok := createRoute(t, dyn, "spark")
	tests := []struct {
		name  string
		token string
		route string
		set   int // -1: read only
		want  error
		says  string
	}{
		{"missing route", k.AdminToken, "nope", 5, ErrRouteNotFound, "spark/nope does not exist"},
		{"missing route read", k.AdminToken, "nope", -1, ErrRouteNotFound, "backendRef to the stable Service spark"},
		{"missing route rollback", k.AdminToken, "nope", 0, ErrRouteNotFound, "spark/nope"},
		{"no RBAC", k.BotToken, ok, 5, ErrForbidden, "rbac.yaml"},
		{"no RBAC read", k.BotToken, ok, -1, ErrForbidden, "get and update on gateway.networking.k8s.io httproutes"},
		{"weight out of range", k.AdminToken, ok, 101, ErrInvalidWeight, "0 to 100"},
		{"negative weight", k.AdminToken, ok, -5, ErrInvalidWeight, "0 to 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			router := newRouteRouter(t, k.Config(tt.token), tt.route)
			var err error
			if tt.set == -1 {
				_, err = router.Weight(t.Context())
			} else {
				err = router.SetWeight(t.Context(), tt.set)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.says) {
				t.Errorf("error %v; want %v saying %q", err, tt.want, tt.says)
			}
		})
	}
	if got := weights(t, getRoute(t, dyn, ok)); got["0/spark-canary"] != 0 {
		t.Errorf("a refused change moved the route: %v", got)
	}
}

func TestNewHTTPRouteNeedsNames(t *testing.T) {
	tests := []struct {
		name string
		o    HTTPRouteOptions
		says string
	}{
		{"no route name", HTTPRouteOptions{Namespace: "spark", CanaryService: "a", StableService: "b"}, "e.g. spark/spark"},
		{"no canary Service", HTTPRouteOptions{Namespace: "spark", Name: "spark", StableService: "spark"}, "name both backend Services"},
		{"no stable Service", HTTPRouteOptions{Namespace: "spark", Name: "spark", CanaryService: "spark-canary"}, "name both backend Services"},
		{"one Service twice", HTTPRouteOptions{Namespace: "spark", Name: "spark", CanaryService: "spark", StableService: "spark"}, "two different Services"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewHTTPRouteForClient(nil, tt.o); err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %v; want one saying %q", err, tt.says)
			}
		})
	}
	if _, err := NewHTTPRoute(nil, HTTPRouteOptions{}); !errors.Is(err, ErrNoCluster) {
		t.Errorf("no configuration: error %v; want ErrNoCluster", err)
	}
}

// botRole grants the bot's ServiceAccount the verbs on the one HTTPRoute
// and waits until the API server's authorizer has seen the grant.
func botRole(t *testing.T, k *testenv.KubeServer, route string, verbs ...string) {
	t.Helper()
	admin := k.Clientset(t)
	ctx := t.Context()
	ns := testenv.KubeNamespace
	role, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "canarybot-httproute-"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{httpRouteResource.Group}, Resources: []string{httpRouteResource.Resource},
			ResourceNames: []string{route}, Verbs: verbs,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: testenv.BotServiceAccount, Namespace: ns}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.RbacV1().RoleBindings(ns).Delete(context.Background(), rb.Name, metav1.DeleteOptions{})
		_ = admin.RbacV1().Roles(ns).Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
	bot, err := kubernetes.NewForConfig(k.Config(k.BotToken))
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err := bot.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verbs[0], Group: httpRouteResource.Group, Resource: httpRouteResource.Resource, Name: route},
		}}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return r.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("the bot was not granted %v on HTTPRoute %s: %v", verbs, route, err)
	}
}

// TestHTTPRouteBotRBAC acts as the bot's ServiceAccount with the Role the
// router documents: get and update on the one HTTPRoute are enough for
// every stage and a rollback; get alone is not, and no other route is
// reachable.
func TestHTTPRouteBotRBAC(t *testing.T) {
	k := gatewayKube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))

	t.Run("get and update on the route", func(t *testing.T) {
		name := createRoute(t, dyn, "spark")
		other := createRoute(t, dyn, "spark")
		botRole(t, k, name, "get", "update")
		router := newRouteRouter(t, k.Config(k.BotToken), name)
		for _, w := range []int{1, 5, 25, 50, 100, 0} {
			if err := router.SetWeight(t.Context(), w); err != nil {
				t.Fatalf("SetWeight(%d) as the bot: %v", w, err)
			}
		}
		if w, err := router.Weight(t.Context()); err != nil || w != 0 {
			t.Errorf("Weight as the bot = %d, %v; want 0", w, err)
		}
		if err := newRouteRouter(t, k.Config(k.BotToken), other).SetWeight(t.Context(), 5); !errors.Is(err, ErrForbidden) {
			t.Errorf("SetWeight on another HTTPRoute as the bot: %v; want ErrForbidden", err)
		}
	})
	t.Run("get only", func(t *testing.T) {
		name := createRoute(t, dyn, "spark")
		botRole(t, k, name, "get")
		router := newRouteRouter(t, k.Config(k.BotToken), name)
		if w, err := router.Weight(t.Context()); err != nil || w != 0 {
			t.Errorf("Weight as the bot = %d, %v; want 0", w, err)
		}
		err := router.SetWeight(t.Context(), 5)
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "update HTTPRoute") {
			t.Errorf("SetWeight without update: %v; want ErrForbidden naming update", err)
		}
	})
}

// TestHTTPRouteOnAClusterOfItsOwn runs on a fresh API server: first with
// no Gateway API at all, then with an HTTPRoute schema newer than the Go
// types canarybot is built with. A field those types do not know survives
// the router's changes, which a typed Get and Update would drop.
func TestHTTPRouteOnAClusterOfItsOwn(t *testing.T) {
	k := testenv.Kube(t)
	dyn := dynamicClient(t, k.Config(k.AdminToken))
	router := newRouteRouter(t, k.Config(k.AdminToken), "spark")
	if _, err := router.Weight(t.Context()); !errors.Is(err, ErrRouteNotFound) || !strings.Contains(err.Error(), "install the Gateway API CRDs") {
		t.Errorf("no Gateway API: error %v; want ErrRouteNotFound saying to install the CRDs", err)
	}

	crds := gatewayCRDs(t)
	for _, c := range crds {
		if c.GetName() == "httproutes."+httpRouteResource.Group {
			addFutureFields(t, c)
		}
	}
	if err := testenv.InstallCRDs(t.Context(), k.Config(k.AdminToken), crds...); err != nil {
		t.Fatal(err)
	}
	u := readRoute(t, "spark")
	u.SetNamespace(testenv.KubeNamespace)
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	rule := rules[0].(map[string]any)
	rule["fromNewerGatewayAPI"] = "rule"
	refs := rule["backendRefs"].([]any)
	refs[1].(map[string]any)["fromNewerGatewayAPI"] = "backendRef"
	if err := unstructured.SetNestedSlice(u.Object, rules, "spec", "rules"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(httpRouteResource).Namespace(testenv.KubeNamespace).Create(t.Context(), u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{25, 0} {
		if err := router.SetWeight(t.Context(), w); err != nil {
			t.Fatalf("SetWeight(%d): %v", w, err)
		}
	}
	got := backendRefs(t, getRoute(t, dyn, "spark"))
	rules, _, _ = unstructured.NestedSlice(getRoute(t, dyn, "spark").Object, "spec", "rules")
	if rules[0].(map[string]any)["fromNewerGatewayAPI"] != "rule" || got[0][1]["fromNewerGatewayAPI"] != "backendRef" {
		t.Errorf("fields the Go types do not know were dropped: rule %v", rules[0])
	}
}

// addFutureFields adds an optional field to HTTPRoute v1's rules and
// backendRefs, as a later Gateway API release might.
func addFutureFields(t testing.TB, crd *unstructured.Unstructured) {
	t.Helper()
	versions, _, err := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if err != nil {
		t.Fatal(err)
	}
	added := false
	for _, v := range versions {
		vm := v.(map[string]any)
		if vm["name"] != "v1" {
			continue
		}
		rule := []string{"schema", "openAPIV3Schema", "properties", "spec", "properties", "rules", "items", "properties"}
		field := map[string]any{"type": "string"}
		if err := unstructured.SetNestedField(vm, field, append(rule, "fromNewerGatewayAPI")...); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(vm, field, append(rule, "backendRefs", "items", "properties", "fromNewerGatewayAPI")...); err != nil {
			t.Fatal(err)
		}
		added = true
	}
	if !added {
		t.Fatal("the HTTPRoute CRD has no v1 version")
	}
	if err := unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkHTTPRouteRollback is a rollback's cost on the HTTPRoute: the
// Get, one Update to weight 0, and the read-back.
func BenchmarkHTTPRouteRollback(b *testing.B) {
	k := gatewayKube(b)
	name := createRoute(b, dynamicClient(b, k.Config(k.AdminToken)), "spark")
	benchRollback(b, newRouteRouter(b, k.Config(k.AdminToken), name))
}

// BenchmarkHTTPRoutePromote is a stage change: Get, Update at the read
// resourceVersion, read back.
func BenchmarkHTTPRoutePromote(b *testing.B) {
	k := gatewayKube(b)
	name := createRoute(b, dynamicClient(b, k.Config(k.AdminToken)), "spark")
	benchPromote(b, newRouteRouter(b, k.Config(k.AdminToken), name))
}
