package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/homedir"
	"k8s.io/client-go/util/retry"
)

// The ingress-nginx annotations the Ingress router owns. It never touches
// any other annotation of the canary Ingress.
const (
	AnnotationCanary       = "nginx.ingress.kubernetes.io/canary"
	AnnotationCanaryWeight = "nginx.ingress.kubernetes.io/canary-weight"
	// AnnotationCanaryWeightTotal changes what a weight means; the router
	// only accepts its default, 100, so that a weight is a percentage.
	AnnotationCanaryWeightTotal = "nginx.ingress.kubernetes.io/canary-weight-total"
)

// Errors a caller branches on.
var (
	// ErrIngressNotFound: the canary Ingress does not exist.
	ErrIngressNotFound = errors.New("canary Ingress not found")
	// ErrForbidden: the API server refused the bot's identity.
	ErrForbidden = errors.New("not allowed by the cluster's RBAC")
	// ErrReadBack: the Ingress did not say, right after a change, what the
	// change set.
	ErrReadBack = errors.New("canary weight did not read back as set")
	// ErrBadAnnotation: an annotation the router reads has a value it
	// cannot use.
	ErrBadAnnotation = errors.New("bad canary annotation")
	// ErrNoCluster: neither KUBECONFIG nor an in-cluster service account
	// is available.
	ErrNoCluster = errors.New("no Kubernetes cluster configured")
)

// Ingress moves the canary's share on an ingress-nginx canary Ingress: the
// Ingress beside the stable one that carries
// nginx.ingress.kubernetes.io/canary: "true" and a canary-weight.
//
// Each change is a JSON merge patch of those two annotations only, so an
// annotation anyone else sets on the Ingress survives; it carries the
// resourceVersion the change was decided on, so that a concurrent edit
// makes the patch fail with a conflict and it is decided again on fresh
// state rather than blindly. After each change the Ingress is read back
// and must say what was set.
//
// It implements rollout.Traffic and needs only get and patch on the one
// Ingress (deploy/kubernetes/rbac.yaml).
type Ingress struct {
	client    kubernetes.Interface
	namespace string
	name      string
	log       *slog.Logger
}

// IngressOptions names the canary Ingress.
type IngressOptions struct {
	// Namespace and Name of the canary Ingress; both required.
	Namespace string
	Name      string
	Logger    *slog.Logger
}

// NewIngress returns a router for the canary Ingress through the cluster
// that cfg reaches (see ClientConfig).
func NewIngress(cfg *rest.Config, o IngressOptions) (*Ingress, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: no client configuration given", ErrNoCluster)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	return NewIngressForClient(cs, o)
}

// NewIngressForClient is NewIngress with a client built elsewhere, so
// that the router, the state store and the leader election share one.
func NewIngressForClient(client kubernetes.Interface, o IngressOptions) (*Ingress, error) {
	if o.Namespace == "" || o.Name == "" {
		return nil, fmt.Errorf("the canary Ingress needs a namespace and a name (got %q/%q), e.g. spark/spark-canary", o.Namespace, o.Name)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ingress{client: client, namespace: o.Namespace, name: o.Name, log: log}, nil
}

// String names the Ingress as namespace/name.
func (i *Ingress) String() string { return i.namespace + "/" + i.name }

// Weight returns the canary weight the Ingress carries. An Ingress without
// a canary-weight annotation, or not (yet) marked as a canary, sends the
// canary nothing: 0.
func (i *Ingress) Weight(ctx context.Context) (int, error) {
	ing, err := i.get(ctx)
	if err != nil {
		return 0, err
	}
	return i.weightOf(ing)
}

// SetWeight sets the canary's share in percent and reads it back. Setting
// the current weight sends no patch, except 0: a rollback is always one
// patch, sent before anything is read.
func (i *Ingress) SetWeight(ctx context.Context, weight int) error {
	if weight < 0 || weight > 100 {
		return fmt.Errorf("%w %d: use a percentage from 0 to 100", ErrInvalidWeight, weight)
	}
	if weight == 0 {
		// Back to stable is never a decision to take again on fresh state:
		// one merge patch without a precondition, which cannot conflict and
		// touches only the two annotations.
		if err := i.patch(ctx, "", weight); err != nil {
			return err
		}
		i.log.Info("canary weight set", "ingress", i.String(), "to", 0)
	} else if err := i.setDecided(ctx, weight); err != nil {
		return err
	}
	got, err := i.Weight(ctx)
	if err != nil {
		return fmt.Errorf("read back canary weight on Ingress %s: %w", i, err)
	}
	if got != weight {
		return fmt.Errorf("%w: Ingress %s says %d%% right after %d%% was set; something else writes its canary-weight (an admission webhook, a GitOps sync?)", ErrReadBack, i, got, weight)
	}
	return nil
}

// setDecided patches a non-zero weight at the resourceVersion it was
// decided on. A conflict means someone changed the Ingress between our read
// and our patch (another annotation, a hand edit of the weight, the
// controller's status): read it again and decide again, rather than patch
// over what we did not see.
func (i *Ingress) setDecided(ctx context.Context, weight int) error {
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		ing, err := i.get(ctx)
		if err != nil {
			return err
		}
		if err := checkTotal(ing); err != nil {
			return err
		}
		current, werr := i.weightOf(ing)
		if werr == nil && current == weight && ing.Annotations[AnnotationCanary] == "true" && ing.Annotations[AnnotationCanaryWeight] != "" {
			return nil
		}
		if werr != nil {
			i.log.Warn("replacing an unusable canary-weight", "ingress", i.String(), "err", werr)
		}
		if err := i.patch(ctx, ing.ResourceVersion, weight); err != nil {
			if apierrors.IsConflict(err) {
				i.log.Info("canary Ingress changed under us; reading it again", "ingress", i.String())
			}
			return err
		}
		i.log.Info("canary weight set", "ingress", i.String(), "from", current, "to", weight)
		return nil
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("set canary weight %d%% on Ingress %s: it kept changing under us: %w", weight, i, err)
	}
	return err
}

// conflictBackoff paces the retries of a patch refused on a stale
// resourceVersion: about 3 s in all, far longer than a write to an Ingress
// takes, so only an Ingress rewritten without pause exhausts it.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 10 * time.Millisecond, Factor: 1.6, Jitter: 0.5}

// patch sends the merge patch; with a resourceVersion it is refused with a
// conflict if the Ingress changed since.
func (i *Ingress) patch(ctx context.Context, resourceVersion string, weight int) error {
	p, err := weightPatch(resourceVersion, weight)
	if err != nil {
		return err
	}
	_, err = i.client.NetworkingV1().Ingresses(i.namespace).Patch(ctx, i.name, types.MergePatchType, p, metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil && !apierrors.IsConflict(err) {
		return i.apiError("patch", err)
	}
	return err
}

// fieldManager names canarybot in the Ingress's managedFields, so that
// `kubectl get -o yaml --show-managed-fields` says who set the weight.
const fieldManager = "canarybot"

// weightPatch is the JSON merge patch of the two annotations, with the
// resourceVersion, when given, as a precondition.
func weightPatch(resourceVersion string, weight int) ([]byte, error) {
	meta := map[string]any{
		"annotations": map[string]string{
			AnnotationCanary:       "true",
			AnnotationCanaryWeight: strconv.Itoa(weight),
		},
	}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	return json.Marshal(map[string]any{"metadata": meta})
}

func (i *Ingress) get(ctx context.Context) (*networkingv1.Ingress, error) {
	ing, err := i.client.NetworkingV1().Ingresses(i.namespace).Get(ctx, i.name, metav1.GetOptions{})
	if err != nil {
		return nil, i.apiError("get", err)
	}
	return ing, nil
}

func (i *Ingress) apiError(verb string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: Ingress %s does not exist: create the canary Ingress (a copy of the stable one for the canary Service, annotated %s: \"true\") or name the right one: %v",
			ErrIngressNotFound, i, AnnotationCanary, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: %s Ingress %s: apply deploy/kubernetes/rbac.yaml with this Ingress's name in the Role's resourceNames: %v", ErrForbidden, verb, i, err)
	}
	return fmt.Errorf("%s Ingress %s: %w", verb, i, err)
}

func (i *Ingress) weightOf(ing *networkingv1.Ingress) (int, error) {
	if err := checkTotal(ing); err != nil {
		return 0, err
	}
	if ing.Annotations[AnnotationCanary] != "true" {
		return 0, nil
	}
	v, ok := ing.Annotations[AnnotationCanaryWeight]
	if !ok || v == "" {
		return 0, nil
	}
	w, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || w < 0 || w > 100 {
		return 0, fmt.Errorf("%w: Ingress %s has %s: %q; want an integer from 0 to 100", ErrBadAnnotation, i, AnnotationCanaryWeight, v)
	}
	return w, nil
}

func checkTotal(ing *networkingv1.Ingress) error {
	if v, ok := ing.Annotations[AnnotationCanaryWeightTotal]; ok && strings.TrimSpace(v) != "100" {
		return fmt.Errorf("%w: Ingress %s/%s has %s: %q; canarybot sets weights in percent: remove it or set it to \"100\"",
			ErrBadAnnotation, ing.Namespace, ing.Name, AnnotationCanaryWeightTotal, v)
	}
	return nil
}

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ClientConfig picks the cluster the way kubectl does, in this order: the
// kubeconfig file named by path (when not empty), then $KUBECONFIG, then
// the pod's service account when running in a cluster, then
// ~/.kube/config. It returns the configuration and the namespace that
// configuration points at (the kubeconfig context's, or the pod's own),
// "default" when it names none.
func ClientConfig(path string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	where := path
	switch {
	case path != "":
		rules.ExplicitPath = path
	case os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "":
		where = os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
	default:
		if cfg, err := rest.InClusterConfig(); err == nil {
			ns := "default"
			if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
				ns = strings.TrimSpace(string(b))
			}
			return withRateLimit(cfg), ns, nil
		}
		// Looked up now, not at start-up, so that $HOME is the current one.
		where = filepath.Join(homedir.HomeDir(), clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)
		if _, err := os.Stat(where); err != nil {
			return nil, "", fmt.Errorf("%w: set KUBECONFIG to a kubeconfig file, or run canarybot in a pod with a service account (not in a pod, and no %s)",
				ErrNoCluster, where)
		}
		rules.ExplicitPath = where
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("%w: kubeconfig %s: %v", ErrNoCluster, where, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: namespace: %w", where, err)
	}
	return withRateLimit(cfg), ns, nil
}

// withRateLimit raises client-go's default client-side limit (5 requests a
// second, bursts of 10) when the configuration sets none: one engine step
// (heartbeat, queued commands, save, effects) is about ten requests, and the
// leader election shares the client.
func withRateLimit(cfg *rest.Config) *rest.Config {
	if cfg.QPS == 0 && cfg.Burst == 0 && cfg.RateLimiter == nil {
		cfg.QPS, cfg.Burst = 20, 50
	}
	return cfg
}
