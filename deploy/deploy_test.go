package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/canarybot/canarybot/config"
)

// Debian's packages (prometheus, prometheus-alertmanager) install these;
// scripts/deps.sh installs them when missing.
const (
	promtoolPath = "/usr/bin/promtool"
	amtoolPath   = "/usr/bin/amtool"

	alertmanagerConfig = "alertmanager/alertmanager.yml"
	dashboardPath      = "grafana/dashboards/risk-idempotency-pitr.json"
	kubernetesDir      = "kubernetes"
)

// tool runs one of the Debian tools and fails the test with its output when
// it exits non-zero. A missing tool is a failure, not a skip: these checks
// are the point of the test.
func tool(t *testing.T, path string, args ...string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v): run `make deps` (scripts/deps.sh) to install it", path, err)
	}
	cmd := exec.CommandContext(t.Context(), path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(path), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestPromtoolChecksCanaryRules(t *testing.T) {
	out := tool(t, promtoolPath, "check", "rules", filepath.Join("prometheus", "canary-rules.yml"))
	if !strings.Contains(out, "SUCCESS: 20 rules found") {
		t.Errorf("promtool did not report the runbook's 20 rules:\n%s", out)
	}
}

func TestAmtoolChecksAlertmanagerConfig(t *testing.T) {
	// amtool 0.25 does not open credentials_file at check time, so the real
	// file is checked even though /etc/alertmanager/canarybot-token does not
	// exist here.
	out := tool(t, amtoolPath, "check-config", alertmanagerConfig)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("amtool check-config did not report SUCCESS:\n%s", out)
	}
}

// TestAlertmanagerRoutesOnlyAutoRollbackToCanarybot asks amtool's own router
// where alerts go, so the test follows Alertmanager's matching rules rather
// than re-implementing them.
func TestAlertmanagerRoutesOnlyAutoRollbackToCanarybot(t *testing.T) {
	tests := []struct {
		name   string
		labels []string
		want   string
	}{
		{"runbook trigger", []string{"alertname=Canary5xxSpike", "auto_rollback=true", "service=spark", "severity=critical"}, "canarybot"},
		{"trigger of another service", []string{"alertname=X", "auto_rollback=true", "service=other"}, "canarybot"},
		{"auto_rollback false", []string{"alertname=CanaryP95LatencyWarning", "auto_rollback=false", "service=spark"}, "null"},
		{"no auto_rollback label", []string{"alertname=Watchdog"}, "null"},
		{"auto_rollback not exactly true", []string{"alertname=X", "auto_rollback=True"}, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerConfig, "--verify.receivers=" + tt.want}, tt.labels...)
			out := tool(t, amtoolPath, args...)
			if got := strings.TrimSpace(out); got != tt.want {
				t.Errorf("routed to %q, want %q", got, tt.want)
			}
		})
	}
}

type alertmanagerFile struct {
	Route struct {
		Routes []struct {
			Receiver  string `yaml:"receiver"`
			GroupWait string `yaml:"group_wait"`
		} `yaml:"routes"`
	} `yaml:"route"`
	Receivers []struct {
		Name           string `yaml:"name"`
		WebhookConfigs []struct {
			URL          string `yaml:"url"`
			SendResolved *bool  `yaml:"send_resolved"`
			HTTPConfig   struct {
				Authorization struct {
					Type            string `yaml:"type"`
					Credentials     string `yaml:"credentials"`
					CredentialsFile string `yaml:"credentials_file"`
				} `yaml:"authorization"`
			} `yaml:"http_config"`
		} `yaml:"webhook_configs"`
	} `yaml:"receivers"`
}

// TestAlertmanagerWebhookReachesCanarybot pins what amtool does not check:
// the URL is the bot's webhook behind the Service of deploy/kubernetes/,
// resolved alerts are not sent (they must not undo a rollback), the first
// alert is not batched, and the token comes from a file, never inline.
func TestAlertmanagerWebhookReachesCanarybot(t *testing.T) {
	raw, err := os.ReadFile(alertmanagerConfig)
	if err != nil {
		t.Fatal(err)
	}
	var am alertmanagerFile
	if err := yaml.Unmarshal(raw, &am); err != nil {
		t.Fatalf("%s: %v", alertmanagerConfig, err)
	}
	for _, r := range am.Route.Routes {
		if r.Receiver == "canarybot" && r.GroupWait != "0s" && r.GroupWait != "5s" {
			t.Errorf("canarybot route group_wait = %q, want 0s or 5s: the runbook's rollback must not wait for batching", r.GroupWait)
		}
	}
	var hooks int
	for _, rc := range am.Receivers {
		if rc.Name != "canarybot" {
			if len(rc.WebhookConfigs) > 0 {
				t.Errorf("receiver %s has webhook configs; only canarybot should", rc.Name)
			}
			continue
		}
		for _, w := range rc.WebhookConfigs {
			hooks++
			u, err := url.Parse(w.URL)
			if err != nil {
				t.Fatalf("webhook url %q: %v", w.URL, err)
			}
			svc := kubeService(t)
			if u.Hostname() != svc.Metadata.Name || u.Port() != "8080" || u.Path != "/alertmanager/webhook" {
				t.Errorf("webhook url %s does not reach Service %s port 8080 at /alertmanager/webhook", w.URL, svc.Metadata.Name)
			}
			if !slices.ContainsFunc(svc.Spec.Ports, func(p servicePort) bool { return p.Port == 8080 }) {
				t.Errorf("Service %s has no port 8080 for the webhook", svc.Metadata.Name)
			}
			if w.SendResolved == nil || *w.SendResolved {
				t.Error("send_resolved must be set to false: a resolved trigger must not look like a new one")
			}
			a := w.HTTPConfig.Authorization
			if a.Type != "Bearer" || a.CredentialsFile == "" || a.Credentials != "" {
				t.Errorf("authorization = %+v, want type Bearer with credentials_file and no inline credentials", a)
			}
		}
	}
	if hooks != 1 {
		t.Errorf("want exactly one canarybot webhook, got %d", hooks)
	}
}

type dashboard struct {
	SchemaVersion int    `json:"schemaVersion"`
	UID           string `json:"uid"`
	Refresh       string `json:"refresh"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Custom struct {
				ThresholdsStyle struct {
					Mode string `json:"mode"`
				} `json:"thresholdsStyle"`
			} `json:"custom"`
			Thresholds struct {
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []target `json:"targets"`
}

type target struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
}

type templateVar struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query string `json:"query"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, err)
	}
	return d
}

// grafanaToPromQL replaces the Grafana macros a query may use with what
// Prometheus would receive.
func grafanaToPromQL(expr string) string {
	return strings.NewReplacer("$__rate_interval", "2m", "${__rate_interval}", "2m").Replace(expr)
}

func TestDashboardIsTheRunbooks10Panels(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want a current Grafana schema (38)", d.SchemaVersion)
	}
	if d.Refresh != "30s" || d.Time.From != "now-15m" || d.Time.To != "now" {
		t.Errorf("refresh %q, time %s..%s; the runbook says auto-refresh 30s and the last 15 minutes", d.Refresh, d.Time.From, d.Time.To)
	}
	if d.UID != "risk-idempotency-pitr" {
		t.Errorf("uid = %q, want risk-idempotency-pitr (the runbook's dashboard name)", d.UID)
	}
	if len(d.Panels) != 10 {
		t.Fatalf("want the cheat sheet's 10 panels, got %d", len(d.Panels))
	}
	hasDSVar := slices.ContainsFunc(d.Templating.List, func(v templateVar) bool {
		return v.Type == "datasource" && v.Query == "prometheus" && v.Name == "datasource"
	})
	if !hasDSVar {
		t.Error("no `datasource` template variable of type prometheus")
	}

	p := parser.NewParser(parser.Options{})
	ids := map[int]bool{}
	var all strings.Builder
	for _, pn := range d.Panels {
		if ids[pn.ID] {
			t.Errorf("panel id %d is used twice", pn.ID)
		}
		ids[pn.ID] = true
		if pn.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource uid %q, want ${datasource}", pn.Title, pn.Datasource.UID)
		}
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		for _, tg := range pn.Targets {
			all.WriteString(tg.Expr + "\n")
			if _, err := p.ParseExpr(grafanaToPromQL(tg.Expr)); err != nil {
				t.Errorf("panel %q, query %s: %v\n%s", pn.Title, tg.RefID, err, tg.Expr)
			}
		}
	}
	for _, metric := range []string{
		"http_request_duration_seconds_bucket", "http_requests_total", "ws_message_staleness_seconds_bucket",
		"risk_blocks_total", "idempotency_conflicts_total", "idempotency_requests_total", "csp_violations_total",
		"nodejs_eventloop_lag_seconds", "nodejs_gc_duration_seconds_sum", "nodejs_gc_duration_seconds_count",
		"nginx_ingress_controller_requests", "ALERTS",
	} {
		if !strings.Contains(all.String(), metric) {
			t.Errorf("no panel queries %s", metric)
		}
	}
	var weight, alerts bool
	for _, pn := range d.Panels {
		for _, tg := range pn.Targets {
			if strings.Contains(tg.Expr, "nginx_ingress_controller_requests") && pn.Description != "" {
				weight = true
			}
			if strings.Contains(tg.Expr, `ALERTS{auto_rollback="true",alertstate="firing"}`) {
				alerts = true
			}
		}
	}
	if !weight || !alerts {
		t.Errorf("canary weight panel with a note: %v; firing auto-rollback alerts panel: %v", weight, alerts)
	}
}

// TestDashboardShowsWhatTheBotMeasures compares each signal panel with
// config.DefaultSignals: the canary line is the bot's own query, the stable
// line is the same query on track="stable", and the red line is the bot's
// threshold, so the dashboard and the verdicts cannot drift apart.
func TestDashboardShowsWhatTheBotMeasures(t *testing.T) {
	d := loadDashboard(t)
	p := parser.NewParser(parser.Options{})
	norm := func(t *testing.T, expr string) string {
		t.Helper()
		e, err := p.ParseExpr(grafanaToPromQL(expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return e.String()
	}
	plan := config.Default()
	for _, s := range plan.Signals {
		t.Run(s.Name, func(t *testing.T) {
			canary := norm(t, strings.ReplaceAll(s.Query, "{{window}}", plan.Window))
			stableQuery := s.BaselineQuery
			if stableQuery == "" {
				stableQuery = strings.ReplaceAll(s.Query, `track="canary"`, `track="stable"`)
			}
			stable := norm(t, strings.ReplaceAll(stableQuery, "{{window}}", plan.Window))

			var found *panel
			for i := range d.Panels {
				for _, tg := range d.Panels[i].Targets {
					if tg.LegendFormat == "canary" && norm(t, tg.Expr) == canary {
						found = &d.Panels[i]
					}
				}
			}
			if found == nil {
				t.Fatalf("no panel has a `canary` query equal to the bot's:\n%s", canary)
			}
			if !slices.ContainsFunc(found.Targets, func(tg target) bool {
				return tg.LegendFormat == "stable" && norm(t, tg.Expr) == stable
			}) {
				t.Errorf("panel %q has no `stable` query equal to\n%s", found.Title, stable)
			}

			steps := found.FieldConfig.Defaults.Thresholds.Steps
			if s.Relative {
				// The threshold moves with the baseline, so it is a series,
				// not a fixed line.
				if !strings.Contains(strings.ToLower(found.Description), "stable") {
					t.Errorf("panel %q: relative signal without a note on its baseline", found.Title)
				}
				want := norm(t, "("+strings.ReplaceAll(stableQuery, "{{window}}", plan.Window)+") * 1.10")
				if !slices.ContainsFunc(found.Targets, func(tg target) bool {
					return strings.HasPrefix(tg.LegendFormat, "threshold") && norm(t, tg.Expr) == want
				}) {
					t.Errorf("panel %q has no threshold series equal to\n%s", found.Title, want)
				}
				return
			}
			if found.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode != "line" {
				t.Errorf("panel %q: thresholdsStyle.mode = %q, want line", found.Title, found.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode)
			}
			last := len(steps) - 1
			if last < 1 || steps[last].Color != "red" || steps[last].Value == nil || *steps[last].Value != s.Threshold {
				t.Errorf("panel %q: threshold steps %+v, want a red step at %v", found.Title, steps, s.Threshold)
			}
		})
	}
}

// Kubernetes objects, decoded only as far as the checks need.

type objectMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type object struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	node       yaml.Node
	file       string
}

type policyRule struct {
	APIGroups       []string `yaml:"apiGroups"`
	Resources       []string `yaml:"resources"`
	ResourceNames   []string `yaml:"resourceNames"`
	Verbs           []string `yaml:"verbs"`
	NonResourceURLs []string `yaml:"nonResourceURLs"`
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type service struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []servicePort     `yaml:"ports"`
	} `yaml:"spec"`
}

type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool `yaml:"privileged"`
	Capabilities             struct {
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type deployment struct {
	Spec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				ServiceAccountName string          `yaml:"serviceAccountName"`
				HostNetwork        bool            `yaml:"hostNetwork"`
				SecurityContext    securityContext `yaml:"securityContext"`
				Containers         []struct {
					Name  string `yaml:"name"`
					Image string `yaml:"image"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					LivenessProbe  *probe                       `yaml:"livenessProbe"`
					ReadinessProbe *probe                       `yaml:"readinessProbe"`
					SecurityCtx    securityContext              `yaml:"securityContext"`
					Resources      map[string]map[string]string `yaml:"resources"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func loadKubernetes(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no YAML files in %s", kubernetesDir)
	}
	var objs []object
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for i := 0; ; i++ {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			o := object{node: n, file: f}
			if err := n.Decode(&o); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
				t.Fatalf("%s document %d: missing kind, apiVersion or metadata.name", f, i)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func only(t *testing.T, objs []object, kind string, into any) {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, got %d", kind, len(found))
	}
	if err := found[0].node.Decode(into); err != nil {
		t.Fatalf("%s %s (%s): %v", kind, found[0].Metadata.Name, found[0].file, err)
	}
}

func kubeService(t *testing.T) service {
	t.Helper()
	var s service
	only(t, loadKubernetes(t), "Service", &s)
	return s
}

func TestKubernetesObjectsAreTheExpectedSet(t *testing.T) {
	objs := loadKubernetes(t)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.APIVersion+" "+o.Kind+"/"+o.Metadata.Name)
		if o.Metadata.Namespace != "" {
			t.Errorf("%s %s sets namespace %q; leave it to `kubectl apply -n`", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
	slices.Sort(kinds)
	want := []string{
		"apps/v1 Deployment/canarybot",
		"rbac.authorization.k8s.io/v1 Role/canarybot",
		"rbac.authorization.k8s.io/v1 RoleBinding/canarybot",
		"v1 Service/canarybot",
		"v1 ServiceAccount/canarybot",
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("objects\n got %q\nwant %q", kinds, want)
	}
}

// allowedRule is what canarybot may do to one kind of object: the verbs it
// may use on the named object, and whether it may create one (create cannot
// be limited by name, so it stands alone in its own rule).
type allowedRule struct {
	names  []string
	verbs  []string
	create bool
}

func TestRoleIsLeastPrivilege(t *testing.T) {
	var role struct {
		Rules []policyRule `yaml:"rules"`
	}
	only(t, loadKubernetes(t), "Role", &role)
	allowed := map[string]allowedRule{
		"networking.k8s.io/ingresses": {names: []string{"spark-canary"}, verbs: []string{"get", "patch"}},
		"apps/deployments":            {names: []string{"spark-canary"}, verbs: []string{"get"}},
		"coordination.k8s.io/leases":  {names: []string{"canarybot"}, verbs: []string{"get", "update"}, create: true},
		// The release state and, beside it, the Slack state and the freeze's record.
		"/configmaps": {names: []string{"canarybot-state", "canarybot-state-slack", "canarybot-state-freeze"}, verbs: []string{"get", "update"}, create: true},
	}
	granted := map[string]bool{}
	for i, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %d grants nonResourceURLs %v", i, r.NonResourceURLs)
		}
		for _, list := range [][]string{r.APIGroups, r.Resources, r.ResourceNames, r.Verbs} {
			for _, v := range list {
				if strings.Contains(v, "*") {
					t.Errorf("rule %d has a wildcard %q: %+v", i, v, r)
				}
			}
		}
		if len(r.APIGroups) == 0 || len(r.Resources) == 0 || len(r.Verbs) == 0 {
			t.Errorf("rule %d is incomplete: %+v", i, r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				key := g + "/" + res
				a, ok := allowed[key]
				if !ok {
					t.Errorf("rule %d grants %s, which canarybot does not need", i, key)
					continue
				}
				if slices.Equal(r.Verbs, []string{"create"}) {
					if !a.create {
						t.Errorf("rule %d lets canarybot create %s", i, key)
					}
					if len(r.ResourceNames) > 0 {
						t.Errorf("rule %d: create with resourceNames %v never matches (the name is unknown at authorization)", i, r.ResourceNames)
					}
					granted[key+" create"] = true
					continue
				}
				if !slices.Equal(r.ResourceNames, a.names) {
					t.Errorf("rule %d on %s: resourceNames %v, want %v", i, key, r.ResourceNames, a.names)
				}
				for _, v := range r.Verbs {
					if !slices.Contains(a.verbs, v) {
						t.Errorf("rule %d on %s %v: verb %q not in %v", i, key, a.names, v, a.verbs)
					}
					granted[key+" "+v] = true
				}
			}
		}
	}
	// The bot must also be able to do its job: every allowed verb is granted.
	for key, a := range allowed {
		need := slices.Clone(a.verbs)
		if a.create {
			need = append(need, "create")
		}
		for _, v := range need {
			if !granted[key+" "+v] {
				t.Errorf("%s: verb %s is not granted; canarybot needs it", key, v)
			}
		}
	}
}

func TestRoleBindingBindsTheBotsServiceAccount(t *testing.T) {
	var rb struct {
		RoleRef struct {
			APIGroup string `yaml:"apiGroup"`
			Kind     string `yaml:"kind"`
			Name     string `yaml:"name"`
		} `yaml:"roleRef"`
		Subjects []struct {
			Kind      string `yaml:"kind"`
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"subjects"`
	}
	only(t, loadKubernetes(t), "RoleBinding", &rb)
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != "canarybot" || rb.RoleRef.APIGroup != "rbac.authorization.k8s.io" {
		t.Errorf("roleRef = %+v, want the Role canarybot", rb.RoleRef)
	}
	if len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != "canarybot" {
		t.Errorf("subjects = %+v, want only the ServiceAccount canarybot", rb.Subjects)
	}
}

func TestDeploymentRunsLockedDown(t *testing.T) {
	objs := loadKubernetes(t)
	var d deployment
	only(t, objs, "Deployment", &d)
	var svc service
	only(t, objs, "Service", &svc)

	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "canarybot" {
		t.Errorf("serviceAccountName = %q, want canarybot", pod.ServiceAccountName)
	}
	if pod.HostNetwork {
		t.Error("hostNetwork is on")
	}
	if d.Spec.Replicas < 2 {
		t.Errorf("replicas = %d; leader election needs at least 2 to survive a pod loss", d.Spec.Replicas)
	}
	if ps := pod.SecurityContext; ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot must be true")
	}
	if ps := pod.SecurityContext; ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Error("pod securityContext.runAsUser must be set and non-zero (the image's nonroot user is 65532)")
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template's labels", k, v)
		}
	}
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pods", k, v)
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image == "" {
		t.Error("container has no image")
	}
	sc := c.SecurityCtx
	for name, v := range map[string]*bool{"readOnlyRootFilesystem": sc.ReadOnlyRootFilesystem, "runAsNonRoot": sc.RunAsNonRoot} {
		if v == nil || !*v {
			t.Errorf("container securityContext.%s must be true", name)
		}
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container securityContext.allowPrivilegeEscalation must be false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("container is privileged")
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("capabilities.drop = %v, want ALL", sc.Capabilities.Drop)
	}
	for _, kind := range []string{"requests", "limits"} {
		if len(c.Resources[kind]) == 0 || c.Resources[kind]["memory"] == "" {
			t.Errorf("resources.%s has no memory: %v", kind, c.Resources)
		}
	}
	if c.Resources["requests"]["cpu"] == "" {
		t.Errorf("resources.requests has no cpu: %v", c.Resources)
	}

	portName := ""
	for _, p := range c.Ports {
		if p.ContainerPort == 8080 {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Fatal("container does not expose 8080")
	}
	for _, tt := range []struct {
		kind string
		p    *probe
		path string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
	} {
		if tt.p == nil {
			t.Errorf("no %s probe", tt.kind)
			continue
		}
		if tt.p.HTTPGet.Path != tt.path || (tt.p.HTTPGet.Port != portName && tt.p.HTTPGet.Port != "8080") {
			t.Errorf("%s probe = %+v, want GET %s on 8080", tt.kind, tt.p.HTTPGet, tt.path)
		}
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p servicePort) bool {
		return p.Port == 8080 && (p.TargetPort == portName || p.TargetPort == "8080")
	}) {
		t.Errorf("Service ports %+v do not reach the container's 8080", svc.Spec.Ports)
	}
}
