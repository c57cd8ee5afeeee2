package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/bot/slackfake"
	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/demo"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/report"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/signals"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// kubeLab is what the Kubernetes tests share: a real kube-apiserver, and
// the demo service's two tracks under steady load, scraped by a real
// Prometheus. The tracks are loaded directly: no ingress controller runs,
// so the Ingress's weight moves no request here.
type kubeLab struct {
	k          *testenv.KubeServer
	cs         kubernetes.Interface
	kubeconfig string
	prom       string
	dir        string
}

func startKubeLab(t *testing.T) *kubeLab {
	t.Helper()
	k := testenv.Kube(t)
	stable, canary := demo.NewService(demo.TrackStable, 1), demo.NewService(demo.TrackCanary, 2)
	t.Cleanup(stable.Close)
	t.Cleanup(canary.Close)
	// One random risk block in the 10 s window would read as 6/min.
	canary.SetRiskBlockProbability(0)
	stableSrv, canarySrv := httptest.NewServer(stable), httptest.NewServer(canary)
	t.Cleanup(stableSrv.Close)
	t.Cleanup(canarySrv.Close)
	prom := testenv.Prometheus(t, testenv.PrometheusConfig{Targets: []testenv.ScrapeTarget{
		{Addr: stableSrv.URL, Labels: map[string]string{"track": "stable"}},
		{Addr: canarySrv.URL, Labels: map[string]string{"track": "canary"}},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, target := range []string{stableSrv.URL, canarySrv.URL} {
		load := demo.NewLoad(demo.LoadConfig{Target: target, RPS: 30, WSClients: 3, WSSession: 500 * time.Millisecond, OrderShare: 0.5})
		go load.Run(ctx)
	}
	dir := t.TempDir()
	kubeconfig, err := k.Kubeconfig(dir, k.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	l := &kubeLab{k: k, cs: k.Clientset(t), kubeconfig: kubeconfig, prom: prom.URL, dir: dir}
	l.waitForSignals(t)
	return l
}

// waitForSignals waits until every signal of the test plan reads a value,
// so that the release's first ticks are not NoData holds.
func (l *kubeLab) waitForSignals(t *testing.T) {
	t.Helper()
	cfg, err := config.Load("testdata/kube.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prom, err := signals.NewPrometheus(signals.PrometheusOptions{URL: l.prom})
	if err != nil {
		t.Fatal(err)
	}
	plan := cfg.Plan
	deadline := time.Now().Add(45 * time.Second)
	for {
		var missing []string
		for _, s := range plan.Signals {
			if _, err := prom.Query(t.Context(), plan.ResolveQuery(s.Query), time.Now()); err != nil {
				missing = append(missing, s.Name+": "+err.Error())
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has no value for some signals after 45 s:\n%s", strings.Join(missing, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// canaryIngress creates a canary Ingress at weight 0 with an annotation of
// another owner's, and returns it.
func (l *kubeLab) canaryIngress(t *testing.T) *networkingv1.Ingress {
	t.Helper()
	pathType := networkingv1.PathTypePrefix
	ing, err := l.cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Create(t.Context(), &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "spark-canary-", Annotations: map[string]string{
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
	return ing
}

// watchWeights records every change of the Ingress's canary-weight the API
// server stores, whoever makes it, from the Ingress's creation on.
func (l *kubeLab) watchWeights(t *testing.T, ing *networkingv1.Ingress) (func() []testenv.WeightChange, <-chan string) {
	t.Helper()
	return testenv.WatchCanaryWeight(t, l.cs, ing.Name, ing.ResourceVersion, ing.Annotations[traffic.AnnotationCanaryWeight])
}

func weightsOf(cs []testenv.WeightChange) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Weight)
	}
	return out
}

// waitWeight waits for the Ingress to be set to weight.
func waitWeight(t *testing.T, seen <-chan string, weight string, weights func() []testenv.WeightChange) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case w := <-seen:
			if w == weight {
				return
			}
		case <-deadline:
			t.Fatalf("the canary weight did not reach %s%% within 60 s; changes so far %v", weight, weightsOf(weights()))
		}
	}
}

// waitRelease polls the state ConfigMap until cond holds for the release.
func waitRelease(t *testing.T, st *store.ConfigMap, id, what string, cond func(*rollout.Release) bool) *rollout.Release {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r, err := st.Load(t.Context(), id)
		if err == nil && cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; release %+v, err %v", what, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serveReplica is one `canarybot serve` replica, in this process with a
// context of its own.
type serveReplica struct {
	name   string
	url    string
	out    *testenv.SyncBuffer
	cancel context.CancelFunc
	done   chan error
}

const kubeSecret = "kube-test-signing-secret"

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServeReplica(t *testing.T, l *kubeLab, name string, extra ...string) *serveReplica {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"serve", "--listen", addr, "--config", "testdata/kube.yaml",
		"--state", filepath.Join(l.dir, name+".db"), "--evidence-dir", filepath.Join(l.dir, name+"-evidence"),
		"--kubeconfig", l.kubeconfig, "--prometheus", l.prom, "--release-managers", userRita, "--log-level", "info",
		"--identity", name, "--lease-duration", "2s", "--lease-renew-deadline", "1s", "--lease-retry-period", "250ms",
	}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	r := &serveReplica{name: name, url: "http://" + addr, out: &testenv.SyncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	root := newRoot(r.out, r.out)
	root.SetArgs(args)
	go func() { r.done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("replica %s did not stop within 30 s of its context ending", name)
		}
		if t.Failed() {
			t.Logf("replica %s wrote:\n%s", name, tail(r.out.String(), 80))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-r.done:
			t.Fatalf("replica %s stopped at start: %v\n%s", name, err, r.out.String())
		default:
		}
		if resp, err := http.Get(r.url + "/healthz"); err == nil {
			resp.Body.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s does not answer /healthz:\n%s", name, r.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the replica's context, as SIGTERM does, and waits for serve to
// return.
func (r *serveReplica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("replica %s: serve returned %v", r.name, err)
		}
		r.done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatalf("replica %s did not stop within 30 s", r.name)
	}
}

// slackClock hands out signature timestamps no two requests share: the
// replay cache refuses a repeated signature, and bodies may repeat.
type slackClock struct{ ts atomic.Int64 }

// lateAnswers is the response_url the test's Slack requests carry: on
// loopback, so serve's allow-list (Slack's hooks only) refuses to post
// there and no late answer leaves the machine.
const lateAnswers = "http://127.0.0.1:9/late"

// post sends a form to path signed as Slack signs it.
func (r *serveReplica) post(t *testing.T, clk *slackClock, path string, form url.Values) *http.Response {
	t.Helper()
	ts := strconv.FormatInt(clk.ts.Add(1), 10)
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(bot.HeaderTimestamp, ts)
	req.Header.Set(bot.HeaderSignature, bot.SignatureHeader(kubeSecret, ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// slash types `/canary text` as user against the replica and returns the
// acknowledgement's text.
func (r *serveReplica) slash(t *testing.T, clk *slackClock, user, text string) string {
	t.Helper()
	resp := r.post(t, clk, "/slack/commands", url.Values{"command": {"/canary"}, "user_id": {user}, "user_name": {user},
		"channel_id": {"C1"}, "team_id": {"T1"}, "text": {text}, "response_url": {lateAnswers}})
	defer resp.Body.Close()
	var a slackAnswer
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&a) != nil {
		t.Fatalf("/canary %s to %s: HTTP %d", text, r.name, resp.StatusCode)
	}
	return a.Text
}

// press presses a war-room button as user against the replica; its answer
// would go to response_url.
func (r *serveReplica) press(t *testing.T, clk *slackClock, user, actionID, value string) {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]string{"id": user, "name": user},
		"channel": map[string]string{"id": "C1"}, "team": map[string]string{"id": "T1"}, "response_url": lateAnswers,
		"actions": []map[string]string{{"action_id": actionID, "block_id": "b", "type": "button", "value": value}},
	})
	resp := r.post(t, clk, "/slack/interactions", url.Values{"payload": {string(payload)}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("button %s on %s: HTTP %d", actionID, r.name, resp.StatusCode)
	}
}

func leaseHolder(t *testing.T, cs kubernetes.Interface, name string) (holder string, transitions int32) {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(testenv.KubeNamespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return "", 0
	}
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions
	}
	return holder, transitions
}

func waitLeader(t *testing.T, cs kubernetes.Interface, lease, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if h, _ := leaseHolder(t, cs, lease); h == want {
			return
		}
		if time.Now().After(deadline) {
			h, _ := leaseHolder(t, cs, lease)
			t.Fatalf("lease %s held by %q after 30 s, want %s", lease, h, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKubernetesWiring runs `canarybot run` and two `canarybot serve`
// replicas against a real kube-apiserver: traffic on the canary Ingress,
// state in a ConfigMap, and for serve a leader elected through a Lease.
func TestKubernetesWiring(t *testing.T) {
	t.Setenv("SLACK_SIGNING_SECRET", kubeSecret)
	t.Setenv("SLACK_BOT_TOKEN", "")
	t.Setenv("SLACK_APP_TOKEN", "")
	l := startKubeLab(t)
	t.Run("bad input", func(t *testing.T) { testKubeBadInput(t, l) })
	t.Run("observed share", func(t *testing.T) { testShareObserver(t, l) })
	t.Run("run", func(t *testing.T) { testRunOnKubernetes(t, l) })
	t.Run("run on an HTTPRoute", func(t *testing.T) { testRunOnHTTPRoute(t, l) })
	t.Run("serve takeover", func(t *testing.T) { testServeTakeover(t, l) })
}

// runResult is what a `canarybot run` printed and its exit code.
type runResult struct {
	out  string
	code int
}

// runWithGo runs `canarybot run version` on the state ConfigMap cm with the
// router flags given, and gives the IC's GO from another process, as
// `kubectl exec … canarybot go` sends it: queued on the ConfigMap, applied
// by the running engine. It returns the state and the run's result.
func (l *kubeLab) runWithGo(t *testing.T, version, cm string, router ...string) (*store.ConfigMap, runResult) {
	t.Helper()
	st, err := store.NewConfigMap(l.cs, testenv.KubeNamespace, cm)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan runResult, 1)
	go func() {
		out, code := cli(t, append([]string{"run", version, "--config", "testdata/kube.yaml", "--evidence-dir", l.dir, "--as", "alice",
			"--kubeconfig", l.kubeconfig, "--prometheus", l.prom, "--state-configmap", cm}, router...)...)
		done <- runResult{out, code}
	}()
	waitRelease(t, st, version, "go/no-go", func(r *rollout.Release) bool { return r.Phase == rollout.Phase(rollout.StepGoNoGo) })
	out, code := cli(t, "go", "--release", version, "--config", "testdata/kube.yaml", "--as", "alice",
		"--kubeconfig", l.kubeconfig, "--state-configmap", cm, "--wait", "60s")
	if code != exitComplete || !strings.Contains(out, "queued `go` for "+version+" as alice") || !strings.Contains(out, "applied: "+version+" is now") {
		t.Fatalf("`canarybot go` on the ConfigMap: exit %d, want the engine to apply it:\n%s", code, out)
	}
	select {
	case res := <-done:
		return st, res
	case <-time.After(90 * time.Second):
		t.Fatal("run did not finish within 90 s")
		return nil, runResult{}
	}
}

// testRunOnKubernetes: `canarybot run --ingress --state-configmap` drives a
// whole release, with the IC's GO sent by `canarybot go` on the ConfigMap, moving the
// Ingress's weight once per stage and keeping the other owner's
// annotation; the table carries the observed share (no data: nothing
// counts ingress-nginx's requests here).
func testRunOnKubernetes(t *testing.T, l *kubeLab) {
	ing := l.canaryIngress(t)
	weights, _ := l.watchWeights(t, ing)
	cm := "canarybot-state-" + ing.Name[len(ing.Name)-5:]
	st, res := l.runWithGo(t, "v2.0.0", cm, "--ingress", ing.Name, "--stable-ingress", "spark")
	if res.code != exitComplete {
		t.Fatalf("run exit %d, want 0:\n%s", res.code, tail(res.out, 40))
	}
	for _, want := range []string{"traffic on Ingress spark/" + ing.Name, "state ConfigMap spark/" + cm, "release v2.0.0: complete"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("run output lacks %q:\n%s", want, tail(res.out, 40))
		}
	}
	if got, want := weightsOf(weights()), []string{"5", "25", "100"}; !slices.Equal(got, want) {
		t.Errorf("canary-weight changes %v, want %v once each", got, want)
	}
	final, err := l.cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Get(t.Context(), ing.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if final.Annotations["example.com/owner"] != "team-spark" {
		t.Errorf("another owner's annotation was lost: %v", final.Annotations)
	}
	r, err := st.Load(t.Context(), "v2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != rollout.PhaseComplete || len(r.Rows) == 0 {
		t.Fatalf("release %s with %d rows, want complete with rows", r.Phase, len(r.Rows))
	}
	for _, row := range r.Rows {
		if row.Traffic == nil || row.Traffic.Status != rollout.TrafficNoData {
			t.Fatalf("row at %s has traffic %+v, want an observation with no data", row.At, row.Traffic)
		}
	}
}

// testRunOnHTTPRoute: `canarybot run --httproute` drives a whole release on
// a Gateway API HTTPRoute (Gateway API's standard CRDs installed from the
// module the router is built against): the two Services' weights end at
// canary 100 in every rule that sends to them, the team's other rule and
// filter untouched.
func testRunOnHTTPRoute(t *testing.T, l *kubeLab) {
	ctx := t.Context()
	dir, err := testenv.ModuleDir(ctx, "sigs.k8s.io/gateway-api")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"))
	if err != nil || len(files) != 1 {
		t.Fatalf("the HTTPRoute CRD in %s: %v %v", dir, files, err)
	}
	crds, err := testenv.LoadCRDs(files...)
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.InstallCRDs(ctx, l.k.Config(l.k.AdminToken), crds...); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(l.k.Config(l.k.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	routes := dyn.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}).Namespace(testenv.KubeNamespace)
	f, err := os.Open(filepath.Join("..", "..", "traffic", "testdata", "httproute", "spark.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	route := &unstructured.Unstructured{}
	err = utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&route.Object)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	route.SetName("spark-run")
	route.SetNamespace(testenv.KubeNamespace)
	if _, err := routes.Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, res := l.runWithGo(t, "v2.1.0", "canarybot-state-route",
		"--httproute", "spark-run", "--canary-service", "spark-canary", "--stable-service", "spark")
	if res.code != exitComplete || !strings.Contains(res.out, "traffic on HTTPRoute spark/spark-run") {
		t.Fatalf("run exit %d, want 0 on the HTTPRoute:\n%s", res.code, tail(res.out, 40))
	}
	final, err := routes.Get(ctx, "spark-run", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rules, _, _ := unstructured.NestedSlice(final.Object, "spec", "rules")
	want := map[string]map[string]int64{"api": {"spark": 0, "spark-canary": 100}, "ws": {"spark": 0, "spark-canary": 100}, "docs": {"docs": -1}}
	for _, r := range rules {
		rule := r.(map[string]any)
		name, _ := rule["name"].(string)
		refs, _ := rule["backendRefs"].([]any)
		for _, b := range refs {
			ref := b.(map[string]any)
			svc := ref["name"].(string)
			w, has := ref["weight"].(int64)
			switch exp := want[name][svc]; {
			case exp < 0 && has && w != 1:
				t.Errorf("rule %s: the %s backend's weight was changed to %d", name, svc, w)
			case exp >= 0 && w != exp:
				t.Errorf("rule %s: %s weight %d, want %d", name, svc, w, exp)
			}
		}
	}
	if _, ok, _ := unstructured.NestedSlice(rules[0].(map[string]any), "filters"); !ok {
		t.Error("the api rule's filter was lost")
	}
}

// testServeTakeover: two serve replicas share the state ConfigMap, the
// Ingress and the Lease. The release is started through the leader; the
// follower answers status, refuses /canary start naming the leader, and
// forwards the IC's GO through the shared queue. The leader is stopped
// mid-stage (its context ends, as on SIGTERM); the follower takes over and
// finishes the release, and every weight change reaches the Ingress once.
// The war-room is in Slack: the new leader delivers what the old one
// queued, posts nothing twice (not even with a third replica started while
// Slack fails and messages wait), and each stage's message keeps every row.
func testServeTakeover(t *testing.T, l *kubeLab) {
	ing := l.canaryIngress(t)
	weights, seen := l.watchWeights(t, ing)
	suffix := ing.Name[len(ing.Name)-5:]
	cm, lease := "canarybot-state-"+suffix, "canarybot-"+suffix
	st, err := store.NewConfigMap(l.cs, testenv.KubeNamespace, cm)
	if err != nil {
		t.Fatal(err)
	}
	// The war-room is in Slack: its state lives in the ConfigMap beside the
	// release state's, so the new leader delivers what the old one queued
	// and keeps the tables' rows.
	fake := slackfake.New(t)
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-kube-test")
	cfgFile := filepath.Join(t.TempDir(), "kube-slack.yaml")
	base, err := os.ReadFile("testdata/kube.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, append(base, "slack:\n  channel: "+slackfake.ChannelID+"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	slackState, err := store.NewConfigMapSlack(l.cs, testenv.KubeNamespace, cm+"-slack")
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"--ingress", ing.Name, "--stable-ingress", "spark", "--state-configmap", cm, "--lease-name", lease,
		"--config", cfgFile, "--slack-api-url", fake.APIURL()}
	clk := &slackClock{}
	clk.ts.Store(time.Now().Unix() - 60)

	a := startServeReplica(t, l, "replica-a", common...)
	waitLeader(t, l.cs, lease, "replica-a")
	b := startServeReplica(t, l, "replica-b", common...)

	if got := b.slash(t, clk, userRita, "start v3.0.0"); !strings.Contains(got, "Not the leader (leader: replica-a) — try again in a few seconds") {
		t.Errorf("/canary start on the follower answered %q", got)
	}
	if got := a.slash(t, clk, userRita, "start v3.0.0"); !strings.Contains(got, "Release *v3.0.0* started by") && !strings.Contains(got, "Working on") {
		t.Fatalf("/canary start on the leader answered %q", got)
	}
	// The GO is due once the engine has taken its first step (and so
	// recorded its first heartbeat: a command for a release no engine is
	// heard driving is refused).
	waitRelease(t, st, "v3.0.0", "the GO due", func(r *rollout.Release) bool { return slices.Contains(r.Due, rollout.StepGoNoGo) })
	if got := b.slash(t, clk, userOther, "status"); !strings.Contains(got, "*v3.0.0* phase go_nogo") {
		t.Errorf("/canary status on the follower answered %q", got)
	}
	// The GO button is pressed on the follower, which queues it for the
	// leader.
	b.press(t, clk, userRita, bot.ActionGo, bot.StageActionValue("v3.0.0", 0))
	waitRelease(t, st, "v3.0.0", "the GO applied", func(r *rollout.Release) bool { return r.Phase == rollout.PhaseStage })

	// Stop the leader in the middle of stage 2: traffic moved, two ticks
	// read, the dwell not over.
	waitWeight(t, seen, "25", weights)
	waitRelease(t, st, "v3.0.0", "two ticks of stage 2", func(r *rollout.Release) bool {
		n := 0
		for _, row := range r.Rows {
			if row.Stage == 2 {
				n++
			}
		}
		return n >= 2
	})
	a.stop(t)
	stopped := time.Now()
	waitLeader(t, l.cs, lease, "replica-b")
	// Slack fails for a while, so messages wait in the shared queue, and a
	// third replica starts meanwhile, as in a rolling update: it follows,
	// and must not deliver from the queue beside the leader. It talks to a
	// Slack of its own, so anything it delivers shows there.
	for _, method := range []string{"chat.postMessage", "chat.update"} {
		fake.Fail(method, slackfake.ServerError(), slackfake.ServerError(), slackfake.ServerError(), slackfake.ServerError())
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if p, err := slackState.Pending(t.Context()); err == nil && len(p) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no message waited in the queue while Slack failed")
		}
	}
	other := slackfake.New(t)
	startServeReplica(t, l, "replica-c", append(slices.Clone(common), "--slack-api-url", other.APIURL())...)
	r := waitRelease(t, st, "v3.0.0", "the release complete", func(r *rollout.Release) bool { return r.Phase.Terminal() })
	if r.Phase != rollout.PhaseComplete {
		t.Fatalf("release ended %s: %s", r.Phase, r.Last.Reason)
	}

	changes := weights()
	if got, want := weightsOf(changes), []string{"5", "25", "100"}; !slices.Equal(got, want) {
		t.Errorf("canary-weight changes stored by the API server %v, want %v once each", got, want)
	}
	for _, c := range changes {
		if c.Weight == "100" && c.At.Before(stopped) {
			t.Errorf("weight 100 was set before the leader stopped: the stop was not mid-stage")
		}
	}
	if len(r.StageStarts) != 3 {
		t.Errorf("%d stage starts, want 3", len(r.StageStarts))
	}
	var gos int
	for _, e := range r.Log {
		if e.Kind == rollout.LogCommand && strings.HasPrefix(e.Text, "go") {
			gos++
		}
	}
	if gos != 1 || len(r.Commands) != 1 {
		t.Errorf("GO logged %d times, %d commands recorded (%v); want the forwarded GO applied once", gos, len(r.Commands), r.Commands)
	}
	if _, n := leaseHolder(t, l.cs, lease); n < 1 {
		t.Errorf("lease transitions %d, want a hand-over", n)
	}
	// Slack: the new leader's outbox delivers everything, nothing twice,
	// and every stage's message has all its rows, stage 2's from both
	// leaders.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pending, err := slackState.Pending(t.Context())
		if err == nil && len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Slack outbox still holds %d messages 30 s after the release ended (%v)", len(pending), err)
		}
	}
	posted := map[string]int{}
	for _, m := range fake.Messages() {
		var md struct {
			Payload map[string]any `json:"event_payload"`
		}
		if err := json.Unmarshal([]byte(m.Metadata), &md); err != nil {
			t.Fatalf("message %s has no outbox metadata: %v", m.TS, err)
		}
		posted[fmt.Sprint(md.Payload["ref"])]++
	}
	for ref, n := range posted {
		if n > 1 {
			t.Errorf("Slack message %s was posted %d times", ref, n)
		}
	}
	if len(posted) == 0 {
		t.Error("nothing reached Slack")
	}
	for _, c := range other.Calls() {
		if strings.HasPrefix(c.Method, "chat.") {
			t.Errorf("the follower replica-c delivered from the shared queue: %s %q", c.Method, c.Text)
		}
	}
	for stage := 1; stage <= len(r.StageStarts); stage++ {
		want := 0
		for _, row := range r.Rows {
			if row.Stage == stage {
				want++
			}
		}
		m, ok, err := slackState.StageMessage(t.Context(), r.ID, stage)
		if err != nil || !ok || len(m.Rows) != want {
			t.Errorf("stage %d's Slack message keeps %d rows (found %v, %v), want the release's %d", stage, len(m.Rows), ok, err, want)
		}
	}
}

// testKubeBadInput: what a person must fix stops the command before
// anything moves, with exit 2 and what to do.
func testKubeBadInput(t *testing.T, l *kubeLab) {
	ing := l.canaryIngress(t)
	noRights, err := l.k.Kubeconfig(t.TempDir(), l.k.BotToken)
	if err != nil {
		t.Fatal(err)
	}
	run := []string{"run", "v9.0.0", "--config", "testdata/kube.yaml", "--evidence-dir", l.dir, "--prometheus", l.prom}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no such Ingress", append(slices.Clone(run), "--kubeconfig", l.kubeconfig, "--ingress", "nope", "--state", filepath.Join(t.TempDir(), "s.db")),
			"Ingress spark/nope does not exist"},
		{"no cluster", append(slices.Clone(run), "--kubeconfig", filepath.Join(t.TempDir(), "missing"), "--ingress", ing.Name),
			"no Kubernetes cluster configured"},
		{"Ingress not in the Role", append(slices.Clone(run), "--kubeconfig", noRights, "--ingress", ing.Name, "--state", filepath.Join(t.TempDir(), "s.db")),
			"apply deploy/kubernetes/rbac.yaml"},
		{"ConfigMap not in the Role", append(slices.Clone(run), "--kubeconfig", noRights, "--state-configmap", "canarybot-state", "--stable", "http://127.0.0.1:9", "--canary", "http://127.0.0.1:9", "--listen", "127.0.0.1:0"),
			"apply deploy/kubernetes/rbac.yaml"},
		{"election without an engine", []string{"serve", "--listen", "127.0.0.1:0", "--leader-elect", "--kubeconfig", l.kubeconfig},
			"--leader-elect elects the replica that runs releases"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := cli(t, c.args...)
			if code != exitBadInput || !strings.Contains(out, c.want) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, exitBadInput, c.want, tail(out, 10))
			}
		})
	}
}

// shareCounts answers ingress-nginx's request counts for the share queries.
type shareCounts struct {
	canaryQ, totalQ string
	canary, total   float64
	err             error
}

func (m *shareCounts) Query(_ context.Context, q string, _ time.Time) (rollout.Sample, error) {
	switch {
	case m.err != nil:
		return rollout.Sample{}, m.err
	case q == m.canaryQ:
		return rollout.Sample{Value: m.canary}, nil
	case q == m.totalQ:
		return rollout.Sample{Value: m.total}, nil
	}
	return rollout.Sample{}, fmt.Errorf("unexpected query %s", q)
}

// testShareObserver: the table's traffic observation compares the counted
// canary share with the Ingress's weight; a gap within a window of a
// weight change is settling, after it a mismatch, and the table says so.
func testShareObserver(t *testing.T, l *kubeLab) {
	ing := l.canaryIngress(t)
	kc := &kubeConn{client: l.cs, namespace: testenv.KubeNamespace}
	o := kubeOptions{ingress: ing.Name, stableIngress: "spark"}
	plan := config.Default()
	plan.Window = "2m"
	m := &shareCounts{}
	router, observer, err := openIngress(t.Context(), kc, o, &plan, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m.canaryQ, m.totalQ = traffic.ShareQueries(traffic.ShareOptions{Namespace: testenv.KubeNamespace, Stable: "spark", Canary: ing.Name, Window: "2m"})
	if err := router.SetWeight(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		at            time.Time
		canary, total float64
		err           error
		want          string
	}{
		{t0, 120, 1000, nil, rollout.TrafficSettling},
		{t0.Add(time.Minute), 120, 1000, nil, rollout.TrafficSettling},
		{t0.Add(2 * time.Minute), 120, 1000, nil, rollout.TrafficMismatch},
		{t0.Add(3 * time.Minute), 52, 1000, nil, rollout.TrafficMatch},
		{t0.Add(4 * time.Minute), 0, 0, nil, rollout.TrafficNoData},
		{t0.Add(5 * time.Minute), 0, 0, errors.New("bad_data: parse error"), ""},
	}
	for _, st := range steps {
		m.canary, m.total, m.err = st.canary, st.total, st.err
		got, err := observer.Observe(t.Context(), st.at)
		if st.err != nil {
			if err == nil || !strings.Contains(err.Error(), "parse error") {
				t.Errorf("at %s: err %v, want the query's error", st.at.Format("15:04"), err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("at %s: %v", st.at.Format("15:04"), err)
		}
		if got.Status != st.want || got.Weight != 5 {
			t.Errorf("at %s: %+v, want status %s at weight 5", st.at.Format("15:04"), got, st.want)
		}
		if st.want == rollout.TrafficMismatch {
			row := rollout.Row{At: st.at, Phase: rollout.PhaseStage, Stage: 2, Weight: 5, Decision: rollout.Decision{Kind: rollout.Continue}, Traffic: &got}
			if line := (report.Renderer{}).TableRow(&plan, row); !strings.Contains(line, "⚠ traffic: observed 12.0% vs weight 5% (mismatch)") {
				t.Errorf("table row does not report the mismatch: %s", line)
			}
		}
	}
	// A new weight settles again.
	if err := router.SetWeight(t.Context(), 25); err != nil {
		t.Fatal(err)
	}
	m.canary, m.total, m.err = 120, 1000, nil
	if got, _ := observer.Observe(t.Context(), t0.Add(6*time.Minute)); got.Status != rollout.TrafficSettling || got.Weight != 25 {
		t.Errorf("right after the weight moved to 25%%: %+v, want settling", got)
	}
}
