package preflight

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/traffic"
)

// deployment creates a Deployment of want replicas and, as no controller
// runs, sets its status: ready replicas ready, observed at generation
// minus lag.
func deployment(t *testing.T, cs kubernetes.Interface, name string, want, ready int32, lag int64) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testenv.KubeNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &want,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/acme/spark:v1.4.0"}}},
			},
		},
	}
	d, err := cs.AppsV1().Deployments(testenv.KubeNamespace).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Deployment %s: %v", name, err)
	}
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation - lag,
		Replicas:           want, UpdatedReplicas: want,
		ReadyReplicas: ready, AvailableReplicas: ready, UnavailableReplicas: want - ready,
	}
	if _, err := cs.AppsV1().Deployments(testenv.KubeNamespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("setting the status of Deployment %s: %v", name, err)
	}
}

// ingress creates an Ingress with annotations, routing to service name.
func ingress(t *testing.T, cs kubernetes.Interface, name string, annotations map[string]string) {
	t.Helper()
	class := "nginx"
	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testenv.KubeNamespace, Annotations: annotations},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: "spark.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: name, Port: networkingv1.ServiceBackendPort{Number: 80},
						}},
					}},
				}},
			}},
		},
	}
	if _, err := cs.NetworkingV1().Ingresses(testenv.KubeNamespace).Create(context.Background(), ing, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Ingress %s: %v", name, err)
	}
}

// grantIngressRead lets the bot's ServiceAccount get Ingresses, and
// nothing else, so that its Deployment reads are forbidden.
func grantIngressRead(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	ns := testenv.KubeNamespace
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "ingress-reader", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"get"}}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ingress-reader", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: testenv.BotServiceAccount, Namespace: ns}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating RoleBinding: %v", err)
	}
}

func kubeconfig(t *testing.T, k *testenv.KubeServer, token string) string {
	t.Helper()
	path, err := k.Kubeconfig(t.TempDir(), token)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKubernetesCheck runs kubernetes checks against a real kube-apiserver,
// through a kubeconfig file as the CLI does, and through a shared client.
func TestKubernetesCheck(t *testing.T) {
	k := testenv.Kube(t)
	admin := k.Clientset(t)
	deployment(t, admin, "spark-canary", 3, 3, 0)
	deployment(t, admin, "spark-half", 3, 1, 0)
	deployment(t, admin, "spark-stale", 2, 2, 1)
	deployment(t, admin, "spark-zero", 0, 0, 0)
	ingress(t, admin, "spark-canary", map[string]string{
		traffic.AnnotationCanary: "true", traffic.AnnotationCanaryWeight: "5",
		"kubectl.kubernetes.io/last-applied-configuration": `{"big":"blob"}`,
	})
	ingress(t, admin, "spark", nil)
	ingress(t, admin, "spark-off", map[string]string{traffic.AnnotationCanary: "false"})
	grantIngressRead(t, admin)

	adminConfig := kubeconfig(t, k, k.AdminToken)
	botConfig := kubeconfig(t, k, k.BotToken)
	shared, err := kubernetes.NewForConfig(k.Config(k.AdminToken))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		check  Check
		opts   Options
		status Status
		detail []string
		// evidence is what the evidence file must hold; nil means no file.
		evidence []string
		// notEvidence must not be in it.
		notEvidence []string
	}{
		{
			name: "ready", check: Check{Deployment: "spark-canary"},
			status: Passed, detail: []string{"Deployment spark/spark-canary: 3/3 replicas ready (spec.replicas)"},
			evidence: []string{"deployment spark/spark-canary", "spec.replicas: 3", "ready 3", "required ready: 3 (spec.replicas)", "container app: ghcr.io/acme/spark:v1.4.0"},
		},
		{
			name: "not ready", check: Check{Deployment: "spark-half"},
			status: Failed, detail: []string{"1/3 replicas ready (status.readyReplicas < spec.replicas 3)"},
			evidence: []string{"ready 1", "unavailable 2"},
		},
		{
			name: "not ready but enough for min_ready", check: Check{Deployment: "spark-half", MinReady: 1},
			status: Passed, detail: []string{"1/1 replicas ready (min_ready)"},
			evidence: []string{"required ready: 1 (min_ready)"},
		},
		{
			name: "min_ready above what is ready", check: Check{Deployment: "spark-canary", MinReady: 4},
			status: Failed, detail: []string{"3/4 replicas ready (status.readyReplicas < min_ready 4)"},
			evidence: []string{"required ready: 4 (min_ready)"},
		},
		{
			name: "status of an older generation", check: Check{Deployment: "spark-stale"},
			status: Failed, detail: []string{"status is of generation 0, spec is at 1", "has not been observed"},
			evidence: []string{"generation: 1 (observed 0)"},
		},
		{
			name: "scaled to zero", check: Check{Deployment: "spark-zero"},
			status: Failed, detail: []string{"scaled to 0 replicas"},
			evidence: []string{"spec.replicas: 0"},
		},
		{
			name: "missing Deployment", check: Check{Deployment: "spark-gone"},
			status: Failed, detail: []string{"Deployment spark/spark-gone not found"},
			evidence: []string{"deployment spark/spark-gone: Deployment spark/spark-gone not found"},
		},
		{
			name: "missing namespace", check: Check{Namespace: "nowhere", Deployment: "spark-canary"},
			status: Failed, detail: []string{"Deployment nowhere/spark-canary not found (or namespace nowhere does not exist)"},
			evidence: []string{"not found"},
		},
		{
			name: "canary Ingress", check: Check{Ingress: "spark-canary"},
			status: Passed, detail: []string{"Ingress spark/spark-canary is a canary Ingress (weight 5%)"},
			evidence: []string{"ingress spark/spark-canary", "class: nginx", `nginx.ingress.kubernetes.io/canary: "true"`, `nginx.ingress.kubernetes.io/canary-weight: "5"`, "route spark.example.com/ -> spark-canary:80"},
			// Only the canary annotations are evidence.
			notEvidence: []string{"last-applied-configuration"},
		},
		{
			name: "missing Ingress", check: Check{Ingress: "spark-gone"},
			status: Failed, detail: []string{"Ingress spark/spark-gone not found"},
			evidence: []string{"ingress spark/spark-gone: Ingress spark/spark-gone not found"},
		},
		{
			name: "Ingress without the canary annotation", check: Check{Ingress: "spark"},
			status: Failed, detail: []string{"Ingress spark/spark is not a canary Ingress: it lacks the annotation nginx.ingress.kubernetes.io/canary"},
			evidence: []string{"ingress spark/spark", "route spark.example.com/ -> spark:80"},
		},
		{
			name: "Ingress with canary false", check: Check{Ingress: "spark-off"},
			status: Failed, detail: []string{`nginx.ingress.kubernetes.io/canary is "false", not "true"`},
			evidence: []string{`nginx.ingress.kubernetes.io/canary: "false"`},
		},
		{
			name: "both ready", check: Check{Deployment: "spark-canary", Ingress: "spark-canary"},
			status: Passed, detail: []string{"3/3 replicas ready", "is a canary Ingress"},
			evidence: []string{"deployment spark/spark-canary", "ingress spark/spark-canary"},
		},
		{
			name: "ready Deployment, missing Ingress", check: Check{Deployment: "spark-canary", Ingress: "spark-gone"},
			status: Failed, detail: []string{"3/3 replicas ready", "Ingress spark/spark-gone not found"},
			evidence: []string{"ready 3", "spark-gone"},
		},
		{
			name: "forbidden", check: Check{Deployment: "spark-canary"}, opts: Options{Kubeconfig: botConfig},
			status: Failed, detail: []string{
				"forbidden: the cluster's RBAC does not let canarybot get deployments in namespace spark",
				"grant get on deployments.apps", "system:serviceaccount:spark:canarybot",
			},
			evidence: []string{"forbidden"},
		},
		{
			name: "unknown token", check: Check{Deployment: "spark-canary"}, opts: Options{Kubeconfig: kubeconfig(t, k, "not-a-token")},
			status: Failed, detail: []string{"reading Deployment spark/spark-canary: the API server at " + k.URL + " rejected canarybot's credentials (401)"},
			evidence: []string{"rejected"},
		},
		{
			name: "allowed part passes, forbidden part fails", check: Check{Deployment: "spark-canary", Ingress: "spark-canary"}, opts: Options{Kubeconfig: botConfig},
			status: Failed, detail: []string{"forbidden", "is a canary Ingress"},
			evidence: []string{"ingress spark/spark-canary"},
		},
		{
			name: "shared client", check: Check{Deployment: "spark-canary", Ingress: "spark-canary"},
			opts:   Options{Kube: shared, KubeNamespace: testenv.KubeNamespace},
			status: Passed, detail: []string{"3/3 replicas ready", "is a canary Ingress"},
			evidence: []string{"ready 3"},
		},
		{
			name: "shared client, namespace of the check", check: Check{Namespace: testenv.KubeNamespace, Deployment: "spark-half"},
			opts:   Options{Kube: shared},
			status: Failed, detail: []string{"Deployment spark/spark-half: 1/3"},
			evidence: []string{"ready 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.check
			c.Name, c.Kind, c.Evidence = "canary_cluster", KindKubernetes, "kubernetes_{version}.txt"
			o := tt.opts
			if o.Kubeconfig == "" && o.Kube == nil {
				o.Kubeconfig = adminConfig
			}
			ev := &memEvidence{}
			o.Version, o.Evidence = "v1.4.0", ev
			res := runSingle(t, c, o)
			for _, want := range tt.detail {
				assertResult(t, res, tt.status, want)
			}
			got, ok := ev.get("kubernetes_v1.4.0.txt")
			if !ok {
				t.Fatalf("no evidence file; result %s %q", res.Status, res.Detail)
			}
			if res.Evidence != "kubernetes_v1.4.0.txt" {
				t.Errorf("result names evidence %q", res.Evidence)
			}
			for _, want := range tt.evidence {
				if !strings.Contains(got, want) {
					t.Errorf("evidence lacks %q:\n%s", want, got)
				}
			}
			for _, bad := range tt.notEvidence {
				if strings.Contains(got, bad) {
					t.Errorf("evidence has %q:\n%s", bad, got)
				}
			}
		})
	}
}

// TestKubernetesCheckCannotRun: without a cluster, or with one that does
// not answer, nothing is proved: cannot_run and no evidence file. The
// cluster is looked up as traffic.ClientConfig does, so the environment is
// set per case and the cases do not run in parallel.
func TestKubernetesCheckCannotRun(t *testing.T) {
	dir := t.TempDir()
	unreachable := filepath.Join(dir, "unreachable.kubeconfig")
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: spark}}]
current-context: c
`, closedAddr(t))
	if err := os.WriteFile(unreachable, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.kubeconfig")
	if err := os.WriteFile(garbage, []byte("clusters: [unclosed"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		kubeconfig string
		env        map[string]string
		detail     string
	}{
		{"no cluster configured", "", nil, "no Kubernetes cluster configured"},
		{"unreachable API server from --kubeconfig", unreachable, nil, "cannot reach the API server at https://127.0.0.1:"},
		{"unreachable API server from $KUBECONFIG", "", map[string]string{"KUBECONFIG": unreachable}, "cannot reach the API server"},
		{"kubeconfig that does not parse", garbage, nil, "no Kubernetes cluster configured: kubeconfig " + garbage},
		{"kubeconfig that does not exist", filepath.Join(dir, "missing"), nil, "no Kubernetes cluster configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No $KUBECONFIG, not in a pod, and a home without ~/.kube.
			t.Setenv("KUBECONFIG", "")
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			t.Setenv("HOME", t.TempDir())
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ev := &memEvidence{}
			c := Check{Name: "canary_cluster", Kind: KindKubernetes, Deployment: "spark-canary", Ingress: "spark-canary", Evidence: "kubernetes_{version}.txt"}
			res := runSingle(t, c, Options{Version: "v1.4.0", Kubeconfig: tt.kubeconfig, Evidence: ev})
			assertResult(t, res, CannotRun, tt.detail)
			if names := ev.names(); len(names) > 0 {
				t.Errorf("evidence written: %v", names)
			}
			rep := &Report{Results: []Result{res}}
			if rep.Passed() {
				t.Error("a report of one check that cannot run passed")
			}
		})
	}
}

func TestKubernetesCheckValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		check Check
		want  string
	}{
		{Check{Namespace: "spark"}, "neither deployment nor ingress"},
		{Check{Ingress: "spark-canary", SQL: "SELECT 1"}, "sql is not a setting of kind kubernetes"},
		{Check{Deployment: "Spark_Canary"}, `deployment "Spark_Canary" is not a Kubernetes object name`},
		{Check{Ingress: "spark canary"}, `ingress "spark canary" is not a Kubernetes object name`},
		{Check{Namespace: "spark.prod", Deployment: "spark"}, `namespace "spark.prod" is not a Kubernetes namespace name`},
		{Check{Deployment: "spark", MinReady: -1}, "min_ready -1 is negative"},
		{Check{Ingress: "spark-canary", MinReady: 2}, "min_ready is set but no deployment is given"},
	}
	for _, tt := range tests {
		c := tt.check
		c.Name, c.Kind = "k", KindKubernetes
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error saying %q", tt.check, err, tt.want)
		}
	}
	for _, c := range []Check{
		KubernetesCheck("canary_cluster", "spark", "spark-canary", "spark-canary"),
		{Name: "k", Kind: KindKubernetes, Deployment: "spark-canary", MinReady: 2},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if got := KubernetesCheck("canary_cluster", "spark", "d", "i").EvidenceName("v1.4.0"); got != "kubernetes_canary_cluster_v1.4.0.txt" {
		t.Errorf("evidence name %q", got)
	}
}

func TestParseKubernetesChecks(t *testing.T) {
	t.Parallel()
	cs, err := LoadChecks("testdata/kubernetes_checks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Check{Name: "canary_cluster", Kind: KindKubernetes, Namespace: "spark", Deployment: "spark-canary",
		Ingress: "spark-canary", MinReady: 2, Evidence: "kubernetes_{version}.txt"}
	if len(cs) != 1 || fmt.Sprintf("%+v", cs[0]) != fmt.Sprintf("%+v", want) {
		t.Errorf("parsed %+v, want %+v", cs, want)
	}
}
