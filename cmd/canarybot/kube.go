package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canarybot/canarybot/config"
	"github.com/canarybot/canarybot/ha"
	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/store"
	"github.com/canarybot/canarybot/traffic"
)

// Names the deploy/kubernetes manifests and their RBAC use.
const (
	defaultStateConfigMap = "canarybot-state"
	defaultLeaseName      = "canarybot"
)

// kubeTarget is the cluster every command may reach, from the global flags
// --kubeconfig, --namespace and --state-configmap: `canarybot promote` run
// in the bot's pod (kubectl exec) reaches the state ConfigMap `serve` uses.
type kubeTarget struct {
	kubeconfig, namespace, stateConfigMap string
	// flags are where they were defined, to tell an empty
	// --state-configmap from none.
	flags *pflag.FlagSet
}

func (t *kubeTarget) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&t.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else the pod's service account, else ~/.kube/config)")
	fs.StringVar(&t.namespace, "namespace", "", "namespace of the Ingress, the state ConfigMap, the Lease and kubernetes preflight checks (default: the kubeconfig context's, or the pod's own)")
	fs.StringVar(&t.stateConfigMap, "state-configmap", "", "keep the release state in this ConfigMap instead of the --state file (default in a cluster without --state: "+defaultStateConfigMap+`; "" keeps the file)`)
	t.flags = fs
}

// configMap is the state ConfigMap of the commands that read or queue on
// a release, as run and serve pick it; "" means the --state file.
func (t *kubeTarget) configMap(inCluster, stateFileGiven bool) string {
	set := t.flags != nil && t.flags.Changed("state-configmap")
	return pickStateConfigMap(t.stateConfigMap, set, inCluster, stateFileGiven)
}

// pickStateConfigMap is where the state goes: the ConfigMap given (even
// "", which keeps bbolt), else in a cluster without a --state file the
// shipped one, else the file.
func pickStateConfigMap(given string, set, inCluster, stateFileGiven bool) string {
	if !set && inCluster && !stateFileGiven {
		return defaultStateConfigMap
	}
	return given
}

// preflight fills in the kubernetes preflight checks' cluster: the
// --kubeconfig file, and with --namespace a client for that namespace.
// Nothing is connected unless a check reads the cluster.
func (t *kubeTarget) preflight(o *preflight.Options, checks []preflight.Check) error {
	o.Kubeconfig = t.kubeconfig
	if t.namespace == "" || !slices.ContainsFunc(checks, func(c preflight.Check) bool { return c.Kind == preflight.KindKubernetes }) {
		return nil
	}
	kc, err := dialKube(t.kubeconfig, t.namespace)
	if err != nil {
		return err
	}
	o.Kube, o.KubeNamespace = kc.client, kc.namespace
	return nil
}

// kubeOptions are the flags that put `run` and `serve` on Kubernetes: the
// canary Ingress as the router, the release state in a ConfigMap, and (for
// serve) leader election between replicas. kubeconfig, namespace and
// stateConfigMap are the global flags', copied by resolve.
type kubeOptions struct {
	// flag finds the global flags once the command is on the root.
	flag       func(name string) *pflag.Flag
	kubeconfig string
	namespace  string
	// ingress is the canary Ingress; stableIngress the one it shadows,
	// whose name ingress-nginx counts the requests under.
	ingress, stableIngress string
	// httpRoute is the Gateway API HTTPRoute, moved by the weights of its
	// canaryService and stableService backendRefs.
	httpRoute, canaryService, stableService string
	stateConfigMap                          string
	// configMapSet is set when --state-configmap was given, even empty:
	// `--state-configmap ""` keeps bbolt in a cluster.
	configMapSet bool

	// serve only.
	leaderElect, leaderElectSet bool
	leaseName                   string
	identity                    string
	lease                       leaseTimings
}

// leaseTimings are the election's pace; zero means ha's defaults. Hidden
// flags set them, for tests and for clusters with a slow API server.
type leaseTimings struct {
	duration, renew, retry time.Duration
}

// addFlags adds the router's flags; --kubeconfig, --namespace and
// --state-configmap are global (kubeTarget), as every command that reads
// the state needs them, and a local copy would clash with them.
func (o *kubeOptions) addFlags(c *cobra.Command) {
	o.flag = c.Flag
	fl := c.Flags()
	fl.StringVar(&o.ingress, "ingress", "", "canary Ingress (ingress-nginx canary annotations) to move traffic on, instead of canarybot's weighted router")
	fl.StringVar(&o.stableIngress, "stable-ingress", "", "the stable Ingress the canary one shadows, for the observed share (default: --ingress without its -canary suffix)")
	fl.StringVar(&o.httpRoute, "httproute", "", "Gateway API HTTPRoute to move traffic on, by the weights of its --stable-service and --canary-service backendRefs, instead of --ingress or canarybot's weighted router")
	fl.StringVar(&o.canaryService, "canary-service", "", "with --httproute: the canary's Service, as the route's backendRefs name it")
	fl.StringVar(&o.stableService, "stable-service", "", "with --httproute: the stable Service, as the route's backendRefs name it")
	c.MarkFlagsMutuallyExclusive("ingress", "httproute")
	c.MarkFlagsMutuallyExclusive("stable-ingress", "httproute")
	c.MarkFlagsRequiredTogether("httproute", "canary-service", "stable-service")
}

func (o *kubeOptions) addServeFlags(c *cobra.Command) {
	fl := c.Flags()
	fl.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader among replicas through a Lease; only the leader runs releases (default: on when the state is in a ConfigMap)")
	fl.StringVar(&o.leaseName, "lease-name", defaultLeaseName, "the Lease replicas elect the leader through")
	fl.StringVar(&o.identity, "identity", "", "this replica's name in the Lease (default $POD_NAME or the host name, with a random suffix)")
	fl.DurationVar(&o.lease.duration, "lease-duration", ha.DefaultLeaseDuration, "how long followers wait after the leader's last renewal before taking over")
	fl.DurationVar(&o.lease.renew, "lease-renew-deadline", ha.DefaultRenewDeadline, "how long the leader keeps trying to renew before it stops leading")
	fl.DurationVar(&o.lease.retry, "lease-retry-period", ha.DefaultRetryPeriod, "how often replicas try to acquire or renew the Lease")
	for _, name := range []string{"identity", "lease-duration", "lease-renew-deadline", "lease-retry-period"} {
		_ = fl.MarkHidden(name)
	}
}

// resolve fills in what depends on whether a flag was given and on where
// canarybot runs: in a cluster without --state, the state goes to the
// ConfigMap by default; leader election is on by default when it does.
func (o *kubeOptions) resolve(changed func(name string) bool, inCluster, stateFileGiven bool) {
	if o.flag != nil {
		for name, v := range map[string]*string{"kubeconfig": &o.kubeconfig, "namespace": &o.namespace, "state-configmap": &o.stateConfigMap} {
			if f := o.flag(name); f != nil {
				*v = f.Value.String()
			}
		}
	}
	o.configMapSet = changed("state-configmap")
	o.stateConfigMap = pickStateConfigMap(o.stateConfigMap, o.configMapSet, inCluster, stateFileGiven)
	o.leaderElectSet = changed("leader-elect")
	if !o.leaderElectSet {
		o.leaderElect = o.stateConfigMap != ""
	}
}

// needsCluster reports whether any part runs on Kubernetes.
func (o *kubeOptions) needsCluster() bool {
	return o.ingress != "" || o.httpRoute != "" || o.stateConfigMap != "" || o.leaderElect
}

// inCluster reports whether this process runs in a pod with a service
// account.
func inCluster() bool {
	_, err := rest.InClusterConfig()
	return err == nil
}

// kubeConn is one client for the router, the state store and the election.
type kubeConn struct {
	client kubernetes.Interface
	// config makes the HTTPRoute router's dynamic client.
	config    *rest.Config
	namespace string
}

// connectKube builds the client the options name, or returns nil when no
// part runs on Kubernetes.
func connectKube(o kubeOptions) (*kubeConn, error) {
	if !o.needsCluster() {
		return nil, nil
	}
	return dialKube(o.kubeconfig, o.namespace)
}

// dialKube builds a client from the kubeconfig (see traffic.ClientConfig);
// namespace "" means the kubeconfig context's, or the pod's own. It reads
// files only: the first request is what reaches the API server.
func dialKube(kubeconfig, namespace string) (*kubeConn, error) {
	cfg, ns, err := traffic.ClientConfig(kubeconfig)
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: err}
	}
	if namespace != "" {
		ns = namespace
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)}
	}
	return &kubeConn{client: cs, config: cfg, namespace: ns}, nil
}

// kubeInputErrors are the router's and the store's errors that a person
// fixes in the flags or the cluster's objects, not by retrying.
var kubeInputErrors = []error{traffic.ErrIngressNotFound, traffic.ErrForbidden, traffic.ErrBadAnnotation, traffic.ErrRouteNotFound, traffic.ErrBadRoute, store.ErrForbidden, store.ErrBadID}

func kubeError(err error) error {
	for _, e := range kubeInputErrors {
		if errors.Is(err, e) {
			return &exitError{code: exitBadInput, err: err}
		}
	}
	return err
}

// openState opens the parts of `run` and `serve`: the release state in the
// ConfigMap when one is named, else in the --state file. With outbox set,
// the Slack notifier's state is kept too: in the file, or in the ConfigMap
// slackConfigMap names.
func (g *globals) openState(ctx context.Context, kc *kubeConn, configMap string, outbox bool) (*parts, error) {
	if configMap == "" {
		return g.open()
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	p, err := configMapParts(cfg, kc, configMap)
	if err != nil {
		return nil, err
	}
	if outbox {
		// A ConfigMap of its own beside the release state's: what the leader
		// queued for Slack, the tables' rows and where each message is
		// outlive its pod, and the outbox's writes never race the engine's.
		slack, err := store.NewConfigMapSlack(kc.client, kc.namespace, slackConfigMap(configMap))
		if err != nil {
			return nil, &exitError{code: exitBadInput, err: err}
		}
		slack.Logger = g.logger()
		if _, err := slack.Pending(ctx); err != nil {
			return nil, kubeError(fmt.Errorf("the Slack state %s: %w", slack, err))
		}
		p.outbox = slack
	}
	// Read once now, so that a missing permission or an unreachable API
	// server stops the command before anything moves.
	if _, err := p.store.Load(ctx, ""); err != nil && !errors.Is(err, rollout.ErrNotFound) {
		return nil, kubeError(fmt.Errorf("state %s: %w", p.where, err))
	}
	return p, nil
}

// slackConfigMap names the ConfigMap of the Slack state kept beside the
// release state's ConfigMap.
func slackConfigMap(state string) string { return state + "-slack" }

// freezeConfigMap names the ConfigMap of the change freeze's record beside
// the release state's ConfigMap.
func freezeConfigMap(state string) string { return state + "-freeze" }

// shareFreezeProgress keeps the freeze's record in a ConfigMap when the
// release state is in one, so that every replica shares it: a webhook that
// lands on a follower records its PR there, and a new leader's lift knows
// which labels the freeze added.
func shareFreezeProgress(ctx context.Context, ops *freezeOps, kc *kubeConn, stateConfigMap string) error {
	if ops == nil || kc == nil || stateConfigMap == "" {
		return nil
	}
	p, err := store.NewConfigMapProgress(kc.client, kc.namespace, freezeConfigMap(stateConfigMap))
	if err != nil {
		return &exitError{code: exitBadInput, err: err}
	}
	if _, err := p.Load(ctx); err != nil {
		return kubeError(fmt.Errorf("freeze progress %s: %w", p, err))
	}
	ops.freeze.Progress = p
	return nil
}

// configMapParts are the parts on the state ConfigMap name, without the
// Slack outbox.
func configMapParts(cfg config.Config, kc *kubeConn, name string) (*parts, error) {
	cm, err := store.NewConfigMap(kc.client, kc.namespace, name)
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: err}
	}
	return &parts{plan: &cfg.Plan, store: cm, where: "ConfigMap " + cm.String(), onConfigMap: true}, nil
}

// openHTTPRoute returns the router on the HTTPRoute, having read its weight
// once, so that a wrong name or missing RBAC stops the command before
// anything moves.
func openHTTPRoute(ctx context.Context, kc *kubeConn, o kubeOptions, log *slog.Logger) (*traffic.HTTPRoute, error) {
	rt, err := traffic.NewHTTPRoute(kc.config, traffic.HTTPRouteOptions{Namespace: kc.namespace, Name: o.httpRoute,
		CanaryService: o.canaryService, StableService: o.stableService, Logger: log})
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: err}
	}
	switch _, err := rt.Weight(ctx); {
	case errors.Is(err, traffic.ErrBadRoute):
		// A route reshaped by hand (mid-incident, say) must not keep the
		// bot from starting: it can still roll back, and a promotion
		// refuses with this same error.
		log.Warn("the HTTPRoute's canary share cannot be read; only a rollback can move it until it is fixed", "route", rt.String(), "err", err)
	case err != nil:
		return nil, kubeError(fmt.Errorf("--httproute %s: %w", o.httpRoute, err))
	}
	return rt, nil
}

// openIngress returns the router on the canary Ingress, having read its
// weight once, and the observer of its traffic split (nil when the stable
// Ingress's name is not known).
func openIngress(ctx context.Context, kc *kubeConn, o kubeOptions, plan *rollout.Plan, m rollout.Metrics, log *slog.Logger) (*traffic.Ingress, rollout.TrafficObserver, error) {
	ing, err := traffic.NewIngressForClient(kc.client, traffic.IngressOptions{Namespace: kc.namespace, Name: o.ingress, Logger: log})
	if err != nil {
		return nil, nil, &exitError{code: exitBadInput, err: err}
	}
	if _, err := ing.Weight(ctx); err != nil {
		return nil, nil, kubeError(fmt.Errorf("--ingress %s: %w", o.ingress, err))
	}
	stable := o.stableIngress
	if stable == "" {
		if s, ok := strings.CutSuffix(o.ingress, "-canary"); ok && s != "" {
			stable = s
		}
	}
	if stable == "" {
		log.Warn("the stable Ingress is not known: the table does not compare the observed canary share with the weight; name it with --stable-ingress",
			"ingress", ing.String())
		return ing, nil, nil
	}
	return ing, newShareObserver(ing, m, traffic.ShareOptions{Namespace: kc.namespace, Stable: stable, Canary: o.ingress, Window: plan.Window}), nil
}

// shareObserver compares ingress-nginx's observed canary share with the
// Ingress's weight, for the war-room table.
type shareObserver struct {
	ingress *traffic.Ingress
	metrics rollout.Metrics
	opts    traffic.ShareOptions
	// settle is how long a weight must have been in force before a gap
	// counts: the window's counts otherwise mix the old weight with the new.
	settle time.Duration

	mu     sync.Mutex
	weight int
	since  time.Time
}

func newShareObserver(ing *traffic.Ingress, m rollout.Metrics, o traffic.ShareOptions) *shareObserver {
	settle := 2 * time.Minute
	if d, err := model.ParseDuration(o.Window); err == nil && d > 0 {
		settle = time.Duration(d)
	}
	return &shareObserver{ingress: ing, metrics: m, opts: o, settle: settle}
}

// Observe reads the weight and the counts. A mismatch within a window of a
// weight change (or of this process's first look) is reported as settling.
func (s *shareObserver) Observe(ctx context.Context, at time.Time) (rollout.TrafficObservation, error) {
	sh, err := s.ingress.ObservedShare(ctx, s.metrics, s.opts, at)
	if err != nil {
		return rollout.TrafficObservation{}, err
	}
	s.mu.Lock()
	if s.since.IsZero() || sh.Weight != s.weight {
		s.weight, s.since = sh.Weight, at
	}
	since := s.since
	s.mu.Unlock()
	o := rollout.TrafficObservation{Weight: sh.Weight, Observed: sh.Observed, Status: string(sh.Status), Text: sh.String()}
	if sh.Status == traffic.ShareMismatch && at.Sub(since) < s.settle {
		o.Status = rollout.TrafficSettling
		o.Text = fmt.Sprintf("%s; weight %d%% in force since %s, compared after %s", sh, sh.Weight, since.UTC().Format("15:04:05"), s.settle)
	}
	return o, nil
}

// newElector is this replica's candidacy for the Lease that decides which
// replica of `serve` runs releases.
func newElector(kc *kubeConn, o kubeOptions, log *slog.Logger) (*ha.Elector, error) {
	if kc == nil {
		return nil, badInput("--leader-elect needs a cluster: set KUBECONFIG or --kubeconfig, or run in a pod")
	}
	id := o.identity
	if id == "" {
		id = ha.DefaultIdentity()
	}
	e, err := ha.New(ha.Config{
		Client: kc.client, Namespace: kc.namespace, LeaseName: o.leaseName, Identity: id,
		LeaseDuration: o.lease.duration, RenewDeadline: o.lease.renew, RetryPeriod: o.lease.retry,
		Log: log.With("lease", kc.namespace+"/"+o.leaseName),
	})
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: err}
	}
	return e, nil
}

// lead is what the leader does while it leads: host releases. It returns
// once the engine has stopped, so that the Lease is given up only after.
func (h *slackHandler) lead(ctx context.Context) {
	// The leader's other parts stop with the engine host.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, run := range h.leading {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				h.logger().Error("a leader's part stopped", "err", err)
			}
		})
	}
	if err := h.host.Run(ctx); err != nil {
		h.logger().Error("engine host stopped", "err", err)
	}
	cancel()
	wg.Wait()
}

// notLeader is the polite refusal of a replica that does not lead, "" on
// the leader or without leader election.
func (h *slackHandler) notLeader() string {
	if h.elector == nil || h.elector.IsLeader() {
		return ""
	}
	leader := h.elector.Leader()
	if leader == "" {
		leader = "none elected yet"
	}
	return fmt.Sprintf("Not the leader (leader: %s) — try again in a few seconds.", leader)
}
