package testenv

import (
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// canaryWeightAnnotation is ingress-nginx's; traffic.AnnotationCanaryWeight
// names it too, but traffic's own tests use this package.
const canaryWeightAnnotation = "nginx.ingress.kubernetes.io/canary-weight"

// WeightChange is one change of an Ingress's canary weight as the API
// server stored it.
type WeightChange struct {
	Weight string
	At     time.Time
}

// WatchCanaryWeight records every change of Ingress name's canary-weight
// annotation in KubeNamespace that the API server stores, whoever makes it,
// from resourceVersion fromRV on, where the weight was from. It returns the
// changes so far and a channel that receives each new weight.
func WatchCanaryWeight(t testing.TB, cs kubernetes.Interface, name, fromRV, from string) (func() []WeightChange, <-chan string) {
	t.Helper()
	w, err := cs.NetworkingV1().Ingresses(KubeNamespace).Watch(t.Context(), metav1.ListOptions{
		FieldSelector: "metadata.name=" + name, ResourceVersion: fromRV,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	var changes []WeightChange
	seen := make(chan string, 64)
	last := from
	go func() {
		for e := range w.ResultChan() {
			ing, ok := e.Object.(*networkingv1.Ingress)
			if e.Type != watch.Modified || !ok {
				continue
			}
			v := ing.Annotations[canaryWeightAnnotation]
			if v == last {
				continue
			}
			last = v
			mu.Lock()
			changes = append(changes, WeightChange{Weight: v, At: time.Now()})
			mu.Unlock()
			seen <- v
		}
	}()
	return func() []WeightChange {
		mu.Lock()
		defer mu.Unlock()
		return append([]WeightChange(nil), changes...)
	}, seen
}
