package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/traffic"
)

// KubernetesCheck is a kubernetes check of the canary's Deployment and its
// canary Ingress, writing kubernetes_<name>_{version}.txt. It is not among
// DefaultChecks: the runbook's 10 have no cluster check, and the names
// are the team's; list it in canary.yaml's preflight.checks to add it.
func KubernetesCheck(name, namespace, deployment, ingress string) Check {
	return Check{Name: name, Kind: KindKubernetes, Namespace: namespace, Deployment: deployment, Ingress: ingress,
		Evidence: "kubernetes_" + name + "_" + VersionPlaceholder + ".txt"}
}

func (c Check) validateKubernetes() error {
	if c.Namespace != "" {
		if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
			return fmt.Errorf("namespace %q is not a Kubernetes namespace name: %s", c.Namespace, strings.Join(errs, "; "))
		}
	}
	for _, f := range []struct{ key, v string }{{"deployment", c.Deployment}, {"ingress", c.Ingress}} {
		if f.v == "" {
			continue
		}
		if errs := validation.IsDNS1123Subdomain(f.v); len(errs) > 0 {
			return fmt.Errorf("%s %q is not a Kubernetes object name: %s", f.key, f.v, strings.Join(errs, "; "))
		}
	}
	switch {
	case c.MinReady < 0:
		return fmt.Errorf("min_ready %d is negative: give the least number of ready replicas, or leave it out to require spec.replicas", c.MinReady)
	case c.MinReady > 0 && c.Deployment == "":
		return errors.New("min_ready is set but no deployment is given: name the Deployment it applies to")
	}
	return nil
}

// kubeTarget is where a kubernetes check reads: a client and the namespace
// of checks that name none.
type kubeTarget struct {
	client    kubernetes.Interface
	namespace string
	// where names the cluster in details: " at " and the API server's
	// URL, "" for a client given in Options.
	where string
}

// cluster resolves the cluster per check rather than per run: it is a
// file read and no request, and it keeps Run free of kind-specific state.
func (o Options) cluster() (kubeTarget, error) {
	if o.Kube != nil {
		ns := o.KubeNamespace
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		return kubeTarget{client: o.Kube, namespace: ns}, nil
	}
	cfg, ns, err := traffic.ClientConfig(o.Kubeconfig)
	if err != nil {
		return kubeTarget{}, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return kubeTarget{}, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return kubeTarget{client: cs, namespace: ns, where: " at " + cfg.Host}, nil
}

// part is one object's verdict within a kubernetes check.
type part struct {
	status Status
	detail string
}

// runKubernetes checks the Deployment and the Ingress the check names. A
// check with both passes only when both do; when the API server cannot be
// reached (or no cluster is configured) nothing was proved and it cannot
// run. The evidence says what was read of each object, and is written for
// a failure too: it shows why.
func runKubernetes(ctx context.Context, c Check, o Options) (Result, []byte) {
	kt, err := o.cluster()
	if err != nil {
		return cannotRun("%v", err), nil
	}
	ns := c.Namespace
	if ns == "" {
		ns = kt.namespace
	}
	var ev bytes.Buffer
	var parts []part
	if c.Deployment != "" {
		parts = append(parts, checkDeployment(ctx, kt, ns, c, &ev))
	}
	if c.Ingress != "" {
		parts = append(parts, checkCanaryIngress(ctx, kt, ns, c.Ingress, &ev))
	}

	details := make([]string, 0, len(parts))
	status := Passed
	for _, p := range parts {
		details = append(details, p.detail)
		switch {
		case p.status == Failed:
			status = Failed
		case p.status == CannotRun && status == Passed:
			status = CannotRun
		}
	}
	res := Result{Status: status, Detail: strings.Join(details, "; ")}
	if status == CannotRun {
		// Nothing was read: no evidence file, as for every kind.
		return res, nil
	}
	return res, ev.Bytes()
}

func checkDeployment(ctx context.Context, kt kubeTarget, ns string, c Check, ev *bytes.Buffer) part {
	ref := "Deployment " + ns + "/" + c.Deployment
	d, err := kt.client.AppsV1().Deployments(ns).Get(ctx, c.Deployment, metav1.GetOptions{})
	if err != nil {
		p := apiProblem(ctx, kt, err, ref, "get", "deployments", "apps", ns)
		fmt.Fprintf(ev, "deployment %s/%s: %s\n", ns, c.Deployment, p.detail)
		return p
	}
	// A Deployment without spec.replicas runs one: the API server's
	// default, which a typed Get normally has already filled in.
	spec := int32(1)
	if d.Spec.Replicas != nil {
		spec = *d.Spec.Replicas
	}
	want, field := spec, "spec.replicas"
	if c.MinReady > 0 {
		want, field = int32(c.MinReady), "min_ready"
	}
	st := d.Status
	writeDeploymentEvidence(ev, d, spec, want, field)

	switch {
	case st.ObservedGeneration < d.Generation:
		// The counts describe an older spec: a rollout the controller has
		// not picked up yet, so they prove nothing about this one.
		return part{Failed, fmt.Sprintf("%s: status is of generation %d, spec is at %d: the rollout has not been observed yet (kubectl rollout status deployment/%s -n %s)",
			ref, st.ObservedGeneration, d.Generation, c.Deployment, ns)}
	case want == 0:
		return part{Failed, fmt.Sprintf("%s is scaled to 0 replicas: nothing serves the canary; scale it up or set min_ready", ref)}
	case st.ReadyReplicas < want:
		return part{Failed, fmt.Sprintf("%s: %d/%d replicas ready (status.readyReplicas < %s %d)", ref, st.ReadyReplicas, want, field, want)}
	}
	return part{Passed, fmt.Sprintf("%s: %d/%d replicas ready (%s)", ref, st.ReadyReplicas, want, field)}
}

func writeDeploymentEvidence(ev *bytes.Buffer, d *appsv1.Deployment, spec, want int32, field string) {
	st := d.Status
	fmt.Fprintf(ev, "deployment %s/%s\n", d.Namespace, d.Name)
	fmt.Fprintf(ev, "  generation: %d (observed %d)\n", d.Generation, st.ObservedGeneration)
	fmt.Fprintf(ev, "  spec.replicas: %d\n", spec)
	fmt.Fprintf(ev, "  status: replicas %d, updated %d, ready %d, available %d, unavailable %d\n",
		st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.UnavailableReplicas)
	fmt.Fprintf(ev, "  required ready: %d (%s)\n", want, field)
	for _, cond := range d.Status.Conditions {
		fmt.Fprintf(ev, "  condition %s=%s", cond.Type, cond.Status)
		if cond.Reason != "" {
			fmt.Fprintf(ev, " (%s)", cond.Reason)
		}
		ev.WriteByte('\n')
	}
	for _, ctr := range d.Spec.Template.Spec.Containers {
		fmt.Fprintf(ev, "  container %s: %s\n", ctr.Name, ctr.Image)
	}
}

func checkCanaryIngress(ctx context.Context, kt kubeTarget, ns, name string, ev *bytes.Buffer) part {
	ref := "Ingress " + ns + "/" + name
	ing, err := kt.client.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		p := apiProblem(ctx, kt, err, ref, "get", "ingresses", "networking.k8s.io", ns)
		fmt.Fprintf(ev, "ingress %s/%s: %s\n", ns, name, p.detail)
		return p
	}
	writeIngressEvidence(ev, ing)
	if v, ok := ing.Annotations[traffic.AnnotationCanary]; !ok {
		return part{Failed, fmt.Sprintf("%s is not a canary Ingress: it lacks the annotation %s: \"true\"", ref, traffic.AnnotationCanary)}
	} else if v != "true" {
		return part{Failed, fmt.Sprintf("%s is not a canary Ingress: %s is %q, not \"true\"", ref, traffic.AnnotationCanary, v)}
	}
	weight := "unset"
	if w, ok := ing.Annotations[traffic.AnnotationCanaryWeight]; ok {
		weight = w + "%"
	}
	return part{Passed, fmt.Sprintf("%s is a canary Ingress (weight %s)", ref, weight)}
}

// writeIngressEvidence records the canary annotations and the routes, not
// every annotation: others (last-applied-configuration, auth settings)
// are large or not the evidence's business.
func writeIngressEvidence(ev *bytes.Buffer, ing *networkingv1.Ingress) {
	fmt.Fprintf(ev, "ingress %s/%s\n", ing.Namespace, ing.Name)
	if ing.Spec.IngressClassName != nil {
		fmt.Fprintf(ev, "  class: %s\n", *ing.Spec.IngressClassName)
	}
	keys := make([]string, 0, len(ing.Annotations))
	for k := range ing.Annotations {
		if strings.HasPrefix(k, traffic.AnnotationCanary) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(ev, "  %s: %q\n", k, ing.Annotations[k])
	}
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			backend := "(no service)"
			if s := p.Backend.Service; s != nil {
				backend = s.Name
				if s.Port.Name != "" {
					backend += ":" + s.Port.Name
				} else {
					backend += fmt.Sprintf(":%d", s.Port.Number)
				}
			}
			fmt.Fprintf(ev, "  route %s%s -> %s\n", r.Host, p.Path, backend)
		}
	}
}

// apiProblem turns a failed request into a verdict. An answer from the API
// server (not found, forbidden, unauthorized) is the check failing; no
// answer at all is the check unable to run.
func apiProblem(ctx context.Context, kt kubeTarget, err error, ref, verb, resource, group, ns string) part {
	var status apierrors.APIStatus
	switch {
	case apierrors.IsNotFound(err):
		return part{Failed, fmt.Sprintf("%s not found (or namespace %s does not exist)", ref, ns)}
	case apierrors.IsForbidden(err):
		return part{Failed, fmt.Sprintf("forbidden: the cluster's RBAC does not let canarybot %s %s in namespace %s; grant %s on %s.%s there (see deploy/kubernetes/rbac.yaml). The API server said: %s",
			verb, resource, ns, verb, resource, group, apiMessage(err))}
	case apierrors.IsUnauthorized(err):
		return part{Failed, fmt.Sprintf("reading %s: the API server%s rejected canarybot's credentials (401): renew the token in the kubeconfig or the pod's service account", ref, kt.where)}
	case ctx.Err() != nil:
		return part{Failed, fmt.Sprintf("reading %s: %v", ref, context.Cause(ctx))}
	case errors.As(err, &status):
		return part{Failed, fmt.Sprintf("reading %s: %v", ref, err)}
	}
	return part{CannotRun, fmt.Sprintf("cannot reach the API server%s to read %s: %v", kt.where, ref, err)}
}

// apiMessage is the API server's own message, which names the identity and
// the missing permission.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if m := status.Status().Message; m != "" {
			return m
		}
	}
	return err.Error()
}
