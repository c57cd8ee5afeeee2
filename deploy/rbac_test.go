package deploy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	slackbot "github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/ha"
	"github.com/canarybot/canarybot/internal/testenv"
	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// The names rbac.yaml grants access to; the canary's Deployment and
// Ingress share a name.
const (
	canaryIngressName = "spark-canary"
	leaseName         = "canarybot"
	stateName         = "canarybot-state"
	slackStateName    = "canarybot-state-slack"
	freezeStateName   = "canarybot-state-freeze"
)

// applyManifests creates every object of the files in namespace ns, as
// `kubectl apply -n ns -f` would on a fresh cluster.
func applyManifests(t *testing.T, cs kubernetes.Interface, ns string, files ...string) {
	t.Helper()
	ctx := t.Context()
	for _, f := range files {
		fh, err := os.Open(filepath.Join(kubernetesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		docs := utilyaml.NewYAMLReader(bufio.NewReader(fh))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, o, metav1.CreateOptions{})
			case *rbacv1.Role:
				_, err = cs.RbacV1().Roles(ns).Create(ctx, o, metav1.CreateOptions{})
			case *rbacv1.RoleBinding:
				_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, o, metav1.CreateOptions{})
			default:
				t.Fatalf("%s: no test support for applying %T", f, obj)
			}
			if err != nil {
				t.Fatalf("%s: apply %T: %v", f, obj, err)
			}
		}
	}
}

// TestRBACLetsTheBotDoItsJobAndNothingElse applies the shipped
// ServiceAccount and Role into a real API server and acts as the bot's
// ServiceAccount: the Ingress router, the state store and the leader
// election all work, and every other object is out of reach.
func TestRBACLetsTheBotDoItsJobAndNothingElse(t *testing.T) {
	k := testenv.Kube(t)
	admin := k.Clientset(t)
	ns := testenv.KubeNamespace
	ctx := t.Context()
	applyManifests(t, admin, ns, "serviceaccount.yaml", "rbac.yaml")

	// What the cluster already has: the stable and canary Ingresses,
	// another app's ConfigMap and Lease, and a Secret.
	for _, name := range []string{"spark", canaryIngressName} {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressSpec{
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}
		if _, err := admin.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "spark-config"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "canarybot"}, StringData: map[string]string{"slack-signing-secret": "s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "other-controller"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The stable and canary Deployments, ready (no controller runs here,
	// so the status is set by hand).
	for _, name := range []string{"spark", canaryIngressName} {
		replicas := int32(1)
		labels := map[string]string{"app": name}
		d, err := admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/acme/spark:v1.4.0"}}}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
		if _, err := admin.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	bot, err := kubernetes.NewForConfig(k.Config(k.BotToken))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the bot's own parts work", func(t *testing.T) {
		router, err := traffic.NewIngressForClient(bot, traffic.IngressOptions{Namespace: ns, Name: canaryIngressName})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []int{5, 25, 0} {
			if err := router.SetWeight(ctx, w); err != nil {
				t.Fatalf("SetWeight(%d) as the bot: %v", w, err)
			}
		}
		st, err := store.NewConfigMap(bot, ns, stateName)
		if err != nil {
			t.Fatal(err)
		}
		r := &rollout.Release{ID: "v1.4.0", Version: "v1.4.0"}
		if err := st.Save(ctx, r); err != nil {
			t.Fatalf("first Save (creates the ConfigMap) as the bot: %v", err)
		}
		if err := st.Enqueue(ctx, "", rollout.Command{ID: "c1", Kind: rollout.CmdHold, User: "ic"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Take(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if err := st.Heartbeat(ctx, r.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := st.Save(ctx, r); err != nil {
			t.Fatalf("second Save (updates it): %v", err)
		}
		if _, err := st.Load(ctx, ""); err != nil {
			t.Fatal(err)
		}
		// The Slack state beside the release state: queued, then delivered.
		slack, err := store.NewConfigMapSlack(bot, ns, slackStateName)
		if err != nil {
			t.Fatal(err)
		}
		msg := slackbot.OutboxMessage{Key: "v1.4.0/1", Op: slackbot.OutboxPost, Channel: "#canary-war-room", Text: "v1.4.0: war-room open"}
		if err := slack.QueueMessages(ctx, time.Now(), msg); err != nil {
			t.Fatalf("queueing a Slack message (creates %s) as the bot: %v", slackStateName, err)
		}
		pending, err := slack.Pending(ctx)
		if err != nil || len(pending) != 1 {
			t.Fatalf("the Slack queue as the bot: %+v, %v", pending, err)
		}
		if err := slack.Finish(ctx, pending[0], slackbot.OutboxOutcome{Message: &slackbot.MessageRecord{Ref: msg.Key, Channel: "C1", TS: "1.000001"}}); err != nil {
			t.Fatalf("recording the delivery as the bot: %v", err)
		}
		// The change freeze's record beside them.
		progress, err := store.NewConfigMapProgress(bot, ns, freezeStateName)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := progress.Update(ctx, func(s *forge.FreezeState) error {
			s.Version, s.Phase = "v1.4.0", forge.PhaseFrozen
			return nil
		}); err != nil {
			t.Fatalf("recording the freeze (creates %s) as the bot: %v", freezeStateName, err)
		}
		if s, err := progress.Load(ctx); err != nil || s.Phase != forge.PhaseFrozen {
			t.Fatalf("reading the freeze record as the bot: %+v, %v", s, err)
		}
		// The kubernetes preflight check reads the canary Deployment and
		// its Ingress.
		rep, err := preflight.Run(ctx, []preflight.Check{preflight.KubernetesCheck("canary", "", canaryIngressName, canaryIngressName)},
			preflight.Options{Version: "v1.4.0", Kube: bot, KubeNamespace: ns})
		if err != nil {
			t.Fatalf("kubernetes preflight check as the bot: %v", err)
		}
		if !rep.Passed() {
			t.Fatalf("kubernetes preflight check as the bot:\n%s", rep.Text())
		}
		led := false
		err = ha.Run(ctx, ha.Config{Client: bot, Namespace: ns, LeaseName: leaseName, Identity: "pod-a",
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 250 * time.Millisecond},
			func(context.Context) { led = true })
		if err != nil || !led {
			t.Fatalf("leader election on Lease %s as the bot: led=%v, %v", leaseName, led, err)
		}
	})

	forbidden := []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"get the stable Ingress", func(ctx context.Context) error {
			_, err := bot.NetworkingV1().Ingresses(ns).Get(ctx, "spark", metav1.GetOptions{})
			return err
		}},
		{"patch the stable Ingress", func(ctx context.Context) error {
			_, err := bot.NetworkingV1().Ingresses(ns).Patch(ctx, "spark", types.MergePatchType, []byte(`{"metadata":{"annotations":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}},
		{"update the canary Ingress wholesale", func(ctx context.Context) error {
			ing, err := admin.NetworkingV1().Ingresses(ns).Get(ctx, canaryIngressName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			_, err = bot.NetworkingV1().Ingresses(ns).Update(ctx, ing, metav1.UpdateOptions{})
			return err
		}},
		{"delete the canary Ingress", func(ctx context.Context) error {
			return bot.NetworkingV1().Ingresses(ns).Delete(ctx, canaryIngressName, metav1.DeleteOptions{})
		}},
		{"get another Deployment", func(ctx context.Context) error {
			_, err := bot.AppsV1().Deployments(ns).Get(ctx, "spark", metav1.GetOptions{})
			return err
		}},
		{"list Deployments", func(ctx context.Context) error {
			_, err := bot.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"scale the canary Deployment", func(ctx context.Context) error {
			_, err := bot.AppsV1().Deployments(ns).Patch(ctx, canaryIngressName, types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
			return err
		}},
		{"list Ingresses", func(ctx context.Context) error {
			_, err := bot.NetworkingV1().Ingresses(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"read another ConfigMap", func(ctx context.Context) error {
			_, err := bot.CoreV1().ConfigMaps(ns).Get(ctx, "spark-config", metav1.GetOptions{})
			return err
		}},
		{"change another ConfigMap", func(ctx context.Context) error {
			_, err := bot.CoreV1().ConfigMaps(ns).Patch(ctx, "spark-config", types.MergePatchType, []byte(`{"data":{"k":"evil"}}`), metav1.PatchOptions{})
			return err
		}},
		{"list ConfigMaps", func(ctx context.Context) error {
			_, err := bot.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"delete its own ConfigMap", func(ctx context.Context) error {
			return bot.CoreV1().ConfigMaps(ns).Delete(ctx, stateName, metav1.DeleteOptions{})
		}},
		{"read a Secret", func(ctx context.Context) error {
			_, err := bot.CoreV1().Secrets(ns).Get(ctx, "canarybot", metav1.GetOptions{})
			return err
		}},
		{"list Secrets", func(ctx context.Context) error {
			_, err := bot.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"take another Lease", func(ctx context.Context) error {
			_, err := bot.CoordinationV1().Leases(ns).Get(ctx, "other-controller", metav1.GetOptions{})
			return err
		}},
		{"read its own ConfigMap in another namespace", func(ctx context.Context) error {
			_, err := bot.CoreV1().ConfigMaps("default").Get(ctx, stateName, metav1.GetOptions{})
			return err
		}},
		{"list Pods", func(ctx context.Context) error {
			_, err := bot.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
	}
	for _, tt := range forbidden {
		t.Run("cannot "+tt.name, func(t *testing.T) {
			if err := tt.do(t.Context()); !apierrors.IsForbidden(err) {
				t.Errorf("got %v, want Forbidden", err)
			}
		})
	}

	// create cannot be limited by name, so the bot may create a ConfigMap
	// of any name; it can then neither read nor change it.
	t.Run("creates only blind", func(t *testing.T) {
		_, err := bot.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "squatted"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v (rbac.yaml's create rule is what lets a fresh install start)", err)
		}
		if _, err := bot.CoreV1().ConfigMaps(ns).Get(ctx, "squatted", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("reading a ConfigMap it created under another name: %v, want Forbidden", err)
		}
	})
}
