package testenv

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestKube starts the real API server and checks the two identities it
// promises: the admin may do anything; the bot's ServiceAccount token is
// authenticated but has no permission until a Role is bound to it.
func TestKube(t *testing.T) {
	k := Kube(t)
	ctx := context.Background()
	admin := k.Clientset(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Data: map[string]string{"a": "1"}}
	if _, err := admin.CoreV1().ConfigMaps(KubeNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin create ConfigMap: %v", err)
	}
	bot, err := kubernetes.NewForConfig(k.Config(k.BotToken))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bot.CoreV1().ConfigMaps(KubeNamespace).Get(ctx, "probe", metav1.GetOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("bot get ConfigMap without a Role: got %v, want Forbidden", err)
	}
	path, err := k.Kubeconfig(t.TempDir(), k.AdminToken)
	if err != nil || path == "" {
		t.Fatalf("Kubeconfig: %q, %v", path, err)
	}
}
