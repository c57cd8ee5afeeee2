package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// TestCLIOnKubernetes runs the commands that are not run or serve against
// a real kube-apiserver, through the global --kubeconfig, --namespace and
// --state-configmap: the state commands read and queue on a release kept
// in a ConfigMap (as `kubectl exec deploy/canarybot -- canarybot promote`
// does), and preflight's kubernetes checks read the cluster those flags
// name.
func TestCLIOnKubernetes(t *testing.T) {
	k := testenv.Kube(t)
	cs := k.Clientset(t)
	admin, err := k.Kubeconfig(t.TempDir(), k.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	noRights, err := k.Kubeconfig(t.TempDir(), k.BotToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("state commands", func(t *testing.T) { testStateCommandsOnConfigMap(t, cs, admin, noRights) })
	t.Run("preflight", func(t *testing.T) { testPreflightOnCluster(t, cs, admin) })
	t.Run("engine's gates", func(t *testing.T) { testWiredKubernetesPreflight(t, cs) })
	t.Run("freeze record", func(t *testing.T) { testFreezeOnConfigMap(t, cs, admin) })
}

// testFreezeOnConfigMap: with the state in a ConfigMap, `canarybot freeze`
// keeps its record in the ConfigMap beside it, so a freeze started in one
// pod is seen and lifted from another (each with its own --state
// directory), and only the labels the freeze added are removed.
func testFreezeOnConfigMap(t *testing.T, cs kubernetes.Interface, admin string) {
	clearGitHubEnv(t)
	fake := forgetest.New(t, "acme", "exchange", 12)
	fake.LabelPR(2, "hold-for-canary")
	t.Setenv("GITHUB_TOKEN", "ghp_test")
	t.Setenv("GITHUB_REPOSITORY", "acme/exchange")
	t.Setenv("GITHUB_API_URL", fake.URL)
	const cm = "canarybot-state-freezecli"
	pod := func() []string {
		dir := t.TempDir()
		return []string{"--evidence-dir", dir, "--state", filepath.Join(dir, "state.db"), "--kubeconfig", admin,
			"--state-configmap", cm, "--write-interval", "0s", "--mode", "statuses"}
	}
	podA, podB := pod(), pod()

	out, code := cli(t, append([]string{"freeze", "start", "v1.4.0"}, podA...)...)
	if code != exitComplete || !strings.Contains(out, "11 labelled by the freeze") {
		t.Fatalf("freeze start in pod A: exit %d\n%s", code, out)
	}
	rec, err := store.NewConfigMapProgress(cs, testenv.KubeNamespace, cm+"-freeze")
	if err != nil {
		t.Fatal(err)
	}
	st, err := rec.Load(t.Context())
	if err != nil || st.Phase != forge.PhaseFrozen || len(st.PRs) != 12 {
		t.Fatalf("the ConfigMap's freeze record: phase %q with %d PRs (%v), want frozen with 12", st.Phase, len(st.PRs), err)
	}
	out, code = cli(t, append([]string{"freeze", "status"}, podB...)...)
	if code != exitComplete || !strings.Contains(out, "frozen, mode statuses") {
		t.Fatalf("freeze status in pod B: exit %d\n%s", code, out)
	}
	out, code = cli(t, append([]string{"freeze", "lift"}, podB...)...)
	if code != exitComplete || !strings.Contains(out, "11 labels removed, 1 kept") {
		t.Fatalf("freeze lift in pod B: exit %d\n%s", code, out)
	}
	if got := fake.PRLabels(2); !slices.Contains(got, "hold-for-canary") {
		t.Errorf("the label a person put on #2 before the freeze was removed: %v", got)
	}
	for _, p := range [][]string{podA, podB} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p[3]), "canarybot-freeze.json")); !os.IsNotExist(err) {
			t.Errorf("a progress file was written beside %s: %v", p[3], err)
		}
	}
}

func testStateCommandsOnConfigMap(t *testing.T, cs kubernetes.Interface, admin, noRights string) {
	ctx := t.Context()
	const cm = "canarybot-state-cli"
	st, err := store.NewConfigMap(cs, testenv.KubeNamespace, cm)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, &rollout.Release{ID: "v3.0.0", Version: "v3.0.0", IC: "alice", Phase: rollout.PhaseStage, Weight: 5}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// --state names a file that must stay untouched: --state-configmap wins.
	unused := filepath.Join(dir, "unused.db")
	common := []string{"--config", "testdata/kube.yaml", "--evidence-dir", dir, "--state", unused, "--as", "alice", "--kubeconfig", admin}
	onCM := append(slices.Clone(common), "--state-configmap", cm)
	run := func(args ...string) (string, int) {
		t.Helper()
		return cli(t, args...)
	}
	queued := func() []rollout.Command {
		t.Helper()
		q, err := st.Take(ctx, "v3.0.0")
		if err != nil {
			t.Fatal(err)
		}
		return q
	}

	out, code := run(append([]string{"status"}, onCM...)...)
	if code != exitComplete || !strings.Contains(out, "release v3.0.0  phase stage") || !strings.Contains(out, "weight 5%  IC alice") {
		t.Fatalf("status on the ConfigMap: exit %d\n%s", code, out)
	}

	// No engine has beaten: nothing is queued, as on a state file.
	out, code = run(append([]string{"promote"}, onCM...)...)
	if code != exitFailure || !strings.Contains(out, "no engine is driving v3.0.0") {
		t.Fatalf("promote without an engine: exit %d\n%s", code, out)
	}
	if q := queued(); len(q) != 0 {
		t.Fatalf("queued without an engine: %+v", q)
	}

	// An engine beating on the ConfigMap (serve's leader, elsewhere)
	// finds the commands in its inbox.
	if err := st.Heartbeat(ctx, "v3.0.0", time.Now()); err != nil {
		t.Fatal(err)
	}
	out, code = run(append([]string{"promote", "--wait", "300ms"}, onCM...)...)
	if code != exitFailure || !strings.Contains(out, "queued `promote` for v3.0.0 as alice") || !strings.Contains(out, "did not apply the command within 300ms") {
		t.Fatalf("promote: exit %d\n%s", code, out)
	}
	out, code = run(append([]string{"hold", "10m", "pgbouncer", "saturated", "--wait", "300ms"}, onCM...)...)
	if code != exitFailure || !strings.Contains(out, "queued `hold") {
		t.Fatalf("hold: exit %d\n%s", code, out)
	}
	q := queued()
	if len(q) != 2 || q[0].Kind != rollout.CmdPromote || q[0].User != "alice" ||
		q[1].Kind != rollout.CmdHold || q[1].Duration != 10*time.Minute || q[1].Reason != "pgbouncer saturated" || q[1].ID == "" {
		t.Fatalf("the ConfigMap's inbox: %+v, want promote then hold 10m by alice", q)
	}
	if _, err := os.Stat(unused); !os.IsNotExist(err) {
		t.Errorf("the --state file was opened beside the ConfigMap: %v", err)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"without --state-configmap, the state file", append([]string{"status"}, common...), exitBadInput, "no release in this state file"},
		{"another namespace", append(append([]string{"status"}, onCM...), "--namespace", "elsewhere"), exitBadInput, "no release in ConfigMap elsewhere/" + cm},
		{"another release", append([]string{"status", "v9"}, onCM...), exitBadInput, "no release v9 in ConfigMap spark/" + cm},
		{"no rights", append(append([]string{"status"}, onCM...), "--kubeconfig", noRights), exitBadInput, "apply deploy/kubernetes/rbac.yaml"},
		{"no cluster", append(append([]string{"promote", "--wait", "1s"}, onCM...), "--kubeconfig", filepath.Join(dir, "missing")), exitBadInput, "no Kubernetes cluster configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, tail(out, 10))
			}
		})
	}
}

// canaryObjects creates, in namespace ns, a canary Deployment whose status
// says ready replicas of 2 are ready (no controller runs here) and its
// canary Ingress.
func canaryObjects(t *testing.T, cs kubernetes.Interface, ns, name string, ready int32) {
	t.Helper()
	ctx := t.Context()
	if ns != testenv.KubeNamespace {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	replicas := int32(2)
	labels := map[string]string{"app": name}
	d, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/acme/spark:v3.0.0"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: ready, AvailableReplicas: ready}
	if _, err := cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{traffic.AnnotationCanary: "true", traffic.AnnotationCanaryWeight: "0"}},
		Spec: networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// testPreflightOnCluster: `preflight` and `ready` read the cluster of
// --kubeconfig, in --namespace for checks that name none. The kubeconfig's
// own namespace (spark) has an unready canary; --namespace prod a ready one.
func testPreflightOnCluster(t *testing.T, cs kubernetes.Interface, admin string) {
	canaryObjects(t, cs, testenv.KubeNamespace, "spark-canary", 0)
	canaryObjects(t, cs, "prod", "spark-canary", 2)
	dir := t.TempDir()
	checks := filepath.Join(dir, "checks.yaml")
	if err := os.WriteFile(checks, []byte("checks:\n  - {name: canary, kind: kubernetes, deployment: spark-canary, ingress: spark-canary, evidence: \"kubernetes_canary_{version}.txt\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// KUBECONFIG points nowhere: only the flag can reach the cluster.
	t.Setenv("KUBECONFIG", filepath.Join(dir, "missing"))
	common := []string{"--checks", checks, "--evidence-dir", dir, "--state", filepath.Join(dir, "s.db")}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"--kubeconfig and --namespace", []string{"preflight", "v3.0.0", "--kubeconfig", admin, "--namespace", "prod"}, exitComplete,
			"Deployment prod/spark-canary: 2/2 replicas ready"},
		{"the kubeconfig's namespace", []string{"preflight", "v3.0.1", "--kubeconfig", admin}, exitFailure,
			"Deployment spark/spark-canary: 0/2 replicas ready"},
		{"no cluster", []string{"preflight", "v3.0.2"}, exitFailure, "1 cannot run"},
		// Not ready (no --canary for the blast radius), but its
		// preflight passed, on prod's canary.
		{"ready", []string{"ready", "v3.0.3", "--kubeconfig", admin, "--namespace", "prod"}, exitFailure,
			"1/1 passed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := cli(t, append(tc.args, common...)...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, tail(out, 15))
			}
		})
	}
	for _, v := range []string{"v3.0.0", "v3.0.3"} {
		if ev := readEvidence(t, dir, v, "kubernetes_canary_"+v+".txt"); !strings.Contains(ev, "deployment prod/spark-canary") {
			t.Errorf("%s's evidence of the check:\n%s", v, ev)
		}
	}
}

// testWiredKubernetesPreflight: the engine's preflight gate reads the
// cluster through the engine's own client and namespace.
func testWiredKubernetesPreflight(t *testing.T, cs kubernetes.Interface) {
	cfg := config.DefaultConfig()
	cfg.Preflight.Checks = []preflight.Check{preflight.KubernetesCheck("canary", "", "spark-canary", "")}
	w, err := newGateWiring(cfg, testGateEnv(t, nil, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := evidence.Open(t.TempDir(), "v3.0.0")
	if err != nil {
		t.Fatal(err)
	}
	gate := w.onCluster(&kubeConn{client: cs, namespace: "prod"}).gates(ev, "", nil, nil)[rollout.StepPreflight]
	res, err := gate.Run(t.Context(), &rollout.Release{ID: "v3.0.0", Version: "v3.0.0"})
	if err != nil || res.Status != rollout.GatePassed {
		t.Fatalf("preflight gate on the engine's client: %+v, %v", res, err)
	}
	// The wiring itself is not changed: the next engine off the cluster
	// reads $KUBECONFIG.
	if pg := w.gates(ev, "", nil, nil)[rollout.StepPreflight].(*preflight.Gate); pg.Options.Kube != nil {
		t.Errorf("onCluster changed the wiring it was called on")
	}
}
