package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// httpRouteResource is the Gateway API resource the HTTPRoute router reads
// and updates.
var httpRouteResource = schema.GroupVersionResource{Group: gatewayv1.GroupVersion.Group, Version: gatewayv1.GroupVersion.Version, Resource: "httproutes"}

// Errors of the HTTPRoute router a caller branches on, beside ErrForbidden,
// ErrReadBack, ErrInvalidWeight and ErrNoCluster, which it shares with the
// Ingress router.
var (
	// ErrRouteNotFound: the HTTPRoute does not exist, or the cluster does
	// not serve HTTPRoutes (the Gateway API CRDs are not installed).
	ErrRouteNotFound = errors.New("HTTPRoute not found")
	// ErrBadRoute: the route's rules do not say one canary share the
	// router can read or set. Each of the errors below is also an
	// ErrBadRoute.
	ErrBadRoute = errors.New("HTTPRoute cannot carry the canary split")
	// ErrBackendMissing: a rule sends to one of the two Services but not
	// the other, or no rule sends to both.
	ErrBackendMissing = fmt.Errorf("%w: stable or canary backendRef missing", ErrBadRoute)
	// ErrForeignBackend: a rule that sends to the two Services also sends
	// a weighted share to a third backend, so the canary's weight is not
	// its share.
	ErrForeignBackend = fmt.Errorf("%w: a third backend has weight", ErrBadRoute)
	// ErrBadSplit: the two weights do not make one whole percentage: both
	// 0, a fraction of a percent, or rules that disagree.
	ErrBadSplit = fmt.Errorf("%w: weights do not make one canary percentage", ErrBadRoute)
)

// HTTPRoute moves the canary's share on a Gateway API HTTPRoute, as
// Flagger's Gateway API provider does: the weights of two backendRefs, the
// stable and the canary Service, in every rule that sends to them. Weight w
// is canary weight w and stable weight 100-w.
//
// Every rule that references either Service moves: a route usually has a
// rule per path, and a canary that took 25 % of /api but none of /ws would
// not be the release the weight describes. Each such rule must reference
// both Services, once each, and may reference other backends only with
// weight 0; a rule that references neither is left alone.
//
// A change is a Get, the two weights changed in place, and an Update at the
// resourceVersion read: an edit made meanwhile by anyone else makes the
// Update fail with a conflict, and the change is made again on the fresh
// route instead of writing over it. The route is handled as unstructured
// data, not through Gateway API's Go types, so that a field those types do
// not know (a newer Gateway API, an implementation's extension) is written
// back as it was read. After each change the route is read back and must
// say what was set.
//
// It implements rollout.Traffic and needs only get and update on the one
// HTTPRoute.
type HTTPRoute struct {
	client         dynamic.Interface
	namespace      string
	name           string
	canary, stable string
	log            *slog.Logger
}

// HTTPRouteOptions names the route and the two Services it splits between.
type HTTPRouteOptions struct {
	// Namespace and Name of the HTTPRoute; both required. The Services are
	// the ones in the route's namespace.
	Namespace string
	Name      string
	// CanaryService and StableService are the backendRefs' names; both
	// required, and different.
	CanaryService string
	StableService string
	Logger        *slog.Logger
}

// NewHTTPRoute returns a router for the HTTPRoute through the cluster that
// cfg reaches (see ClientConfig).
func NewHTTPRoute(cfg *rest.Config, o HTTPRouteOptions) (*HTTPRoute, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: no client configuration given", ErrNoCluster)
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	return NewHTTPRouteForClient(client, o)
}

// NewHTTPRouteForClient is NewHTTPRoute with a client built elsewhere.
func NewHTTPRouteForClient(client dynamic.Interface, o HTTPRouteOptions) (*HTTPRoute, error) {
	if o.Namespace == "" || o.Name == "" {
		return nil, fmt.Errorf("the HTTPRoute needs a namespace and a name (got %q/%q), e.g. spark/spark", o.Namespace, o.Name)
	}
	if o.CanaryService == "" || o.StableService == "" {
		return nil, fmt.Errorf("HTTPRoute %s/%s: name both backend Services, the canary's and the stable one's (got canary %q, stable %q), e.g. spark-canary and spark",
			o.Namespace, o.Name, o.CanaryService, o.StableService)
	}
	if o.CanaryService == o.StableService {
		return nil, fmt.Errorf("HTTPRoute %s/%s: the canary and the stable Service are both %q: name two different Services", o.Namespace, o.Name, o.CanaryService)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HTTPRoute{client: client, namespace: o.Namespace, name: o.Name, canary: o.CanaryService, stable: o.StableService, log: log}, nil
}

// String names the route as namespace/name.
func (h *HTTPRoute) String() string { return h.namespace + "/" + h.name }

// Weight returns the canary's percentage, canary/(canary+stable)*100, which
// every rule that sends to the two Services must agree on.
func (h *HTTPRoute) Weight(ctx context.Context) (int, error) {
	_, splits, err := h.read(ctx)
	if err != nil {
		return 0, err
	}
	if rolledBack(splits) {
		// Rolled back, whatever else the rules hold (a third backend,
		// stable weights that differ): reading 0 lets a rolled-back
		// release resume on a route a person then reshaped.
		return 0, nil
	}
	if err := h.check(splits); err != nil {
		return 0, err
	}
	return h.percent(splits)
}

// SetWeight sets the canary's share in percent and reads it back. Setting
// the current weight writes nothing. Unlike the Ingress's, a rollback reads
// before it writes, as every change here does: the weights sit in lists,
// found by the Services' names, and an Update must carry the whole route as
// read. It is still one write (a Get, one Update, the read-back), repeated
// on fresh state only if the route changed in between.
//
// A rollback (0) is refused for less than a promotion: a third backend with
// weight, or weights that made no whole percentage, do not stop it from
// taking the canary out; only a rule that would be left with no backend
// does.
func (h *HTTPRoute) SetWeight(ctx context.Context, weight int) error {
	if weight < 0 || weight > 100 {
		return fmt.Errorf("%w %d: use a percentage from 0 to 100", ErrInvalidWeight, weight)
	}
	err := retry.RetryOnConflict(conflictBackoff, func() error { return h.set(ctx, weight) })
	if apierrors.IsConflict(err) {
		return fmt.Errorf("set canary weight %d%% on HTTPRoute %s: it kept changing under us: %w", weight, h, err)
	}
	if err != nil {
		return err
	}
	return h.readBack(ctx, weight)
}

// set is one try: read, decide on what was read, update at its
// resourceVersion. A conflict is returned as the API server's error so that
// RetryOnConflict tries again on fresh state.
func (h *HTTPRoute) set(ctx context.Context, weight int) error {
	u, splits, err := h.read(ctx)
	if err != nil {
		return err
	}
	if weight == 0 {
		err = h.checkRollback(splits)
	} else {
		err = h.check(splits)
	}
	if err != nil {
		return err
	}
	current, perr := h.percent(splits)
	if (weight == 0 && canaryOff(splits)) || (weight > 0 && perr == nil && current == weight) {
		return nil
	}
	from := any(current)
	if perr != nil {
		from = "unusable"
		h.log.Warn("replacing weights that made no canary percentage", "httproute", h.String(), "err", perr)
	}
	for _, s := range splits {
		if s.canary < 0 {
			// Only a rollback gets here with such a rule (check refuses it
			// otherwise): it sends the canary nothing already.
			continue
		}
		if err := setRefWeight(u, s.rule, s.canary, int64(weight)); err != nil {
			return fmt.Errorf("HTTPRoute %s: %w", h, err)
		}
		if s.stable >= 0 {
			if err := setRefWeight(u, s.rule, s.stable, int64(100-weight)); err != nil {
				return fmt.Errorf("HTTPRoute %s: %w", h, err)
			}
		}
	}
	if _, err := h.client.Resource(httpRouteResource).Namespace(h.namespace).Update(ctx, u, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
		if apierrors.IsConflict(err) {
			h.log.Info("HTTPRoute changed under us; reading it again", "httproute", h.String())
			return err
		}
		return h.apiError("update", err)
	}
	h.log.Info("canary weight set", "httproute", h.String(), "from", from, "to", weight, "rules", len(splits))
	return nil
}

// readBack requires the route to say, right after the change, what was set:
// for a rollback, that no rule sends the canary anything.
func (h *HTTPRoute) readBack(ctx context.Context, weight int) error {
	_, splits, err := h.read(ctx)
	if err != nil {
		return fmt.Errorf("read back canary weight on HTTPRoute %s: %w", h, err)
	}
	if weight == 0 {
		if !canaryOff(splits) {
			return fmt.Errorf("%w: HTTPRoute %s still gives the canary Service %s weight right after 0%% was set; something else writes its backendRefs (an admission webhook, a GitOps sync?)",
				ErrReadBack, h, h.canary)
		}
		return nil
	}
	got, err := h.percent(splits)
	if err == nil {
		err = h.check(splits)
	}
	if err != nil {
		return fmt.Errorf("%w: HTTPRoute %s right after %d%% was set: %w", ErrReadBack, h, weight, err)
	}
	if got != weight {
		return fmt.Errorf("%w: HTTPRoute %s says %d%% right after %d%% was set; something else writes its backendRefs (an admission webhook, a GitOps sync?)", ErrReadBack, h, got, weight)
	}
	return nil
}

// split is one rule that sends to the canary or the stable Service.
type split struct {
	rule int
	// what names the rule in errors: its index, name and first path.
	what string
	// canary and stable index the rule's backendRefs; -1 when absent.
	canary, stable             int
	canaryWeight, stableWeight int64
	// weighted are the rule's other backends with a weight above 0.
	weighted []string
}

// read gets the route and finds the rules that send to either Service.
func (h *HTTPRoute) read(ctx context.Context) (*unstructured.Unstructured, []split, error) {
	u, err := h.client.Resource(httpRouteResource).Namespace(h.namespace).Get(ctx, h.name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, h.apiError("get", err)
	}
	// The Go types read the rules (defaults, optional fields); the writes
	// go to u itself, so that what the types drop is never written back.
	var route gatewayv1.HTTPRoute
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &route); err != nil {
		return nil, nil, fmt.Errorf("%w: HTTPRoute %s cannot be read as gateway.networking.k8s.io/v1: %v", ErrBadRoute, h, err)
	}
	splits, err := h.splits(&route)
	if err != nil {
		return nil, nil, err
	}
	return u, splits, nil
}

func (h *HTTPRoute) splits(route *gatewayv1.HTTPRoute) ([]split, error) {
	var out []split
	for i, rule := range route.Spec.Rules {
		s := split{rule: i, what: describeRule(i, rule), canary: -1, stable: -1}
		for j, ref := range rule.BackendRefs {
			w := int64(1) // the API's default for an unset weight
			if ref.Weight != nil {
				w = int64(*ref.Weight)
			}
			switch {
			case h.isService(ref.BackendObjectReference, h.canary):
				if s.canary >= 0 {
					return nil, fmt.Errorf("%w: HTTPRoute %s %s sends to the canary Service %s twice: keep one backendRef to it per rule", ErrBadRoute, h, s.what, h.canary)
				}
				s.canary, s.canaryWeight = j, w
			case h.isService(ref.BackendObjectReference, h.stable):
				if s.stable >= 0 {
					return nil, fmt.Errorf("%w: HTTPRoute %s %s sends to the stable Service %s twice: keep one backendRef to it per rule", ErrBadRoute, h, s.what, h.stable)
				}
				s.stable, s.stableWeight = j, w
			case w > 0:
				s.weighted = append(s.weighted, fmt.Sprintf("%s (weight %d)", describeRef(ref.BackendObjectReference), w))
			}
		}
		if s.canary >= 0 || s.stable >= 0 {
			out = append(out, s)
		}
	}
	return out, nil
}

// check is what a promotion and Weight require: at least one rule sending
// to both Services, every rule that sends to one sends to the other, and
// no third backend takes a share.
func (h *HTTPRoute) check(splits []split) error {
	if len(splits) == 0 {
		return fmt.Errorf("%w: no rule of HTTPRoute %s sends to the canary Service %s and the stable Service %s: add a backendRef to each to the rules the canary shares, or name the right route and Services",
			ErrBackendMissing, h, h.canary, h.stable)
	}
	for _, s := range splits {
		if s.canary < 0 {
			return fmt.Errorf("%w: HTTPRoute %s %s sends to the stable Service %s but not to the canary Service %s: add a backendRef to %s with weight 0, so that the rule's traffic moves with the others",
				ErrBackendMissing, h, s.what, h.stable, h.canary, h.canary)
		}
		if s.stable < 0 {
			return fmt.Errorf("%w: HTTPRoute %s %s sends to the canary Service %s but not to the stable Service %s: add a backendRef to %s",
				ErrBackendMissing, h, s.what, h.canary, h.stable, h.stable)
		}
		if len(s.weighted) > 0 {
			return fmt.Errorf("%w: HTTPRoute %s %s also sends to %s, so the canary's weight is not its share: set those backendRefs' weight to 0 or move them to a rule of their own",
				ErrForeignBackend, h, s.what, strings.Join(s.weighted, ", "))
		}
	}
	return nil
}

// checkRollback refuses a rollback only where taking the canary's weight
// away would leave a rule with no backend to send to.
func (h *HTTPRoute) checkRollback(splits []split) error {
	if len(splits) == 0 {
		return fmt.Errorf("%w: no rule of HTTPRoute %s sends to the canary Service %s or the stable Service %s: name the right route and Services",
			ErrBackendMissing, h, h.canary, h.stable)
	}
	for _, s := range splits {
		if s.canary >= 0 && s.stable < 0 && len(s.weighted) == 0 {
			return fmt.Errorf("%w: HTTPRoute %s %s sends only to the canary Service %s; weight 0 would leave it no backend: add a backendRef to the stable Service %s",
				ErrBackendMissing, h, s.what, h.canary, h.stable)
		}
	}
	return nil
}

// percent is the canary's share that every rule agrees on, in whole
// percent, as the router sets it.
func (h *HTTPRoute) percent(splits []split) (int, error) {
	if len(splits) == 0 {
		return 0, fmt.Errorf("%w: no rule of HTTPRoute %s sends to the canary Service %s and the stable Service %s", ErrBackendMissing, h, h.canary, h.stable)
	}
	pct, first := -1, ""
	for _, s := range splits {
		sum := s.canaryWeight + s.stableWeight
		if sum == 0 {
			return 0, fmt.Errorf("%w: HTTPRoute %s %s gives both the canary Service %s and the stable Service %s weight 0, which sends them nothing: set the stable one's to 100",
				ErrBadSplit, h, s.what, h.canary, h.stable)
		}
		if s.canaryWeight*100%sum != 0 {
			return 0, fmt.Errorf("%w: HTTPRoute %s %s has canary weight %d and stable weight %d, %.2f%% canary; canarybot sets whole percentages: make the two weights add up to 100",
				ErrBadSplit, h, s.what, s.canaryWeight, s.stableWeight, float64(s.canaryWeight)*100/float64(sum))
		}
		p := int(s.canaryWeight * 100 / sum)
		if pct < 0 {
			pct, first = p, s.what
		} else if p != pct {
			return 0, fmt.Errorf("%w: HTTPRoute %s %s sends %d%% to the canary but %s sends %d%%: give every rule that sends to %s and %s the same weights",
				ErrBadSplit, h, first, pct, s.what, p, h.canary, h.stable)
		}
	}
	return pct, nil
}

// canaryOff reports whether no rule gives the canary Service any weight.
// rolledBack reports whether every rule that sends to the Services has the
// canary at weight 0 and the stable Service taking traffic.
func rolledBack(splits []split) bool {
	if len(splits) == 0 {
		return false
	}
	for _, s := range splits {
		if s.canary < 0 || s.stable < 0 || s.canaryWeight != 0 || s.stableWeight <= 0 {
			return false
		}
	}
	return true
}

func canaryOff(splits []split) bool {
	for _, s := range splits {
		if s.canary >= 0 && s.canaryWeight != 0 {
			return false
		}
	}
	return true
}

// isService reports whether ref is the Service name in the route's
// namespace; unset group, kind and namespace are the API's defaults.
func (h *HTTPRoute) isService(ref gatewayv1.BackendObjectReference, name string) bool {
	if ref.Group != nil && *ref.Group != "" {
		return false
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return false
	}
	if ref.Namespace != nil && string(*ref.Namespace) != "" && string(*ref.Namespace) != h.namespace {
		return false
	}
	return string(ref.Name) == name
}

func describeRef(ref gatewayv1.BackendObjectReference) string {
	kind := "Service"
	if ref.Kind != nil && *ref.Kind != "" {
		kind = string(*ref.Kind)
	}
	if ref.Group != nil && *ref.Group != "" {
		kind += "." + string(*ref.Group)
	}
	name := string(ref.Name)
	if ref.Namespace != nil && *ref.Namespace != "" {
		name = string(*ref.Namespace) + "/" + name
	}
	return kind + " " + name
}

// describeRule names a rule as a person finds it in the YAML: its index,
// its name if it has one, its first path match.
func describeRule(i int, rule gatewayv1.HTTPRouteRule) string {
	var extra []string
	if rule.Name != nil && *rule.Name != "" {
		extra = append(extra, fmt.Sprintf("%q", string(*rule.Name)))
	}
	if len(rule.Matches) > 0 && rule.Matches[0].Path != nil && rule.Matches[0].Path.Value != nil {
		extra = append(extra, "path "+*rule.Matches[0].Path.Value)
	}
	if len(extra) == 0 {
		return fmt.Sprintf("rule %d", i)
	}
	return fmt.Sprintf("rule %d (%s)", i, strings.Join(extra, ", "))
}

// setRefWeight sets spec.rules[rule].backendRefs[ref].weight in place,
// leaving every other field of u as it was read.
func setRefWeight(u *unstructured.Unstructured, rule, ref int, weight int64) error {
	spec, _ := u.Object["spec"].(map[string]any)
	rules, _ := spec["rules"].([]any)
	if rule >= len(rules) {
		return fmt.Errorf("spec.rules[%d] is missing", rule)
	}
	r, _ := rules[rule].(map[string]any)
	refs, _ := r["backendRefs"].([]any)
	if ref >= len(refs) {
		return fmt.Errorf("spec.rules[%d].backendRefs[%d] is missing", rule, ref)
	}
	b, ok := refs[ref].(map[string]any)
	if !ok {
		return fmt.Errorf("spec.rules[%d].backendRefs[%d] is not an object", rule, ref)
	}
	b["weight"] = weight
	return nil
}

func (h *HTTPRoute) apiError(verb string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		if se, ok := errors.AsType[*apierrors.StatusError](err); ok && (se.ErrStatus.Details == nil || se.ErrStatus.Details.Name == "") {
			return fmt.Errorf("%w: the cluster serves no HTTPRoutes (%s %s): install the Gateway API CRDs, or use --ingress: %v", ErrRouteNotFound, verb, h, err)
		}
		return fmt.Errorf("%w: HTTPRoute %s does not exist: create it with a backendRef to the stable Service %s and one to the canary Service %s (weight 0) in each rule they share, or name the right one: %v",
			ErrRouteNotFound, h, h.stable, h.canary, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: %s HTTPRoute %s: the bot's Role needs get and update on gateway.networking.k8s.io httproutes with this route's name in resourceNames (deploy/kubernetes/rbac.yaml): %v",
			ErrForbidden, verb, h, err)
	}
	return fmt.Errorf("%s HTTPRoute %s: %w", verb, h, err)
}
