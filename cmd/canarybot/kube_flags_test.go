package main

import (
	"bytes"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func TestKubeOptionsResolve(t *testing.T) {
	cases := []struct {
		name                 string
		args                 []string
		inCluster, stateFile bool
		wantConfigMap        string
		wantLeaderElect      bool
	}{
		{"laptop: bbolt, no election", nil, false, false, "", false},
		{"in a cluster: the ConfigMap and an election", nil, true, false, defaultStateConfigMap, true},
		{"in a cluster with --state: the file", nil, true, true, "", false},
		{"in a cluster, bbolt asked for", []string{"--state-configmap", ""}, true, false, "", false},
		{"a ConfigMap named", []string{"--state-configmap", "other"}, false, false, "other", true},
		{"a ConfigMap without election", []string{"--state-configmap", "other", "--leader-elect=false"}, false, false, "other", false},
		{"election on bbolt", []string{"--leader-elect"}, false, false, "", true},
		{"a cluster named", []string{"--kubeconfig", "/etc/kube/config", "--namespace", "prod", "--state-configmap", "other"}, false, true, "other", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// --state-configmap is global: the root defines it, as
			// newRoot does, and serve inherits it.
			root, cmd := &cobra.Command{Use: "canarybot"}, &cobra.Command{Use: "serve"}
			var kt kubeTarget
			kt.addFlags(root.PersistentFlags())
			root.AddCommand(cmd)
			var o kubeOptions
			o.addFlags(cmd)
			o.addServeFlags(cmd)
			if err := cmd.ParseFlags(c.args); err != nil {
				t.Fatal(err)
			}
			o.resolve(cmd.Flags().Changed, c.inCluster, c.stateFile)
			if o.stateConfigMap != c.wantConfigMap || o.leaderElect != c.wantLeaderElect {
				t.Errorf("configmap %q, leader election %v; want %q, %v", o.stateConfigMap, o.leaderElect, c.wantConfigMap, c.wantLeaderElect)
			}
			if o.kubeconfig != kt.kubeconfig || o.namespace != kt.namespace {
				t.Errorf("kubeconfig %q, namespace %q; want the global flags' %q, %q", o.kubeconfig, o.namespace, kt.kubeconfig, kt.namespace)
			}
			// The other commands pick the same ConfigMap from the root's flags.
			if got := kt.configMap(c.inCluster, c.stateFile); got != c.wantConfigMap {
				t.Errorf("the CLI's state ConfigMap %q, want serve's %q", got, c.wantConfigMap)
			}
		})
	}
}

// TestDeploymentArgsAreServeFlags: the shipped Deployment's arguments are
// flags `canarybot serve` has, and name the Ingress, ConfigMap and Lease
// that the shipped Role lets the bot use.
func TestDeploymentArgsAreServeFlags(t *testing.T) {
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args []string `yaml:"args"`
						Env  []struct {
							Name string `yaml:"name"`
						} `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	raw, err := os.ReadFile("../../deploy/kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("container args %q, want serve first", c.Args)
	}
	root := newRoot(io.Discard, io.Discard)
	serve, _, err := root.Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.ParseFlags(c.Args[1:]); err != nil {
		t.Fatalf("the Deployment's args do not parse as serve's flags: %v", err)
	}
	fl := serve.Flags()
	flag := func(name string) string { return fl.Lookup(name).Value.String() }
	var o kubeOptions
	o.stateConfigMap, o.leaderElect = flag("state-configmap"), flag("leader-elect") == "true"
	// In the pod: a service account, and --state given for the outbox.
	o.resolve(fl.Changed, true, fl.Changed("state"))
	if !o.leaderElect || o.stateConfigMap == "" {
		t.Errorf("the Deployment runs with state ConfigMap %q and leader election %v; want both", o.stateConfigMap, o.leaderElect)
	}

	var role struct {
		Rules []struct {
			Resources     []string `yaml:"resources"`
			ResourceNames []string `yaml:"resourceNames"`
		} `yaml:"rules"`
	}
	raw, err = os.ReadFile("../../deploy/kubernetes/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&role); err != nil {
		t.Fatal(err)
	}
	named := map[string][]string{}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			named[res] = append(named[res], r.ResourceNames...)
		}
	}
	for res, name := range map[string]string{"ingresses": flag("ingress"), "configmaps": o.stateConfigMap, "leases": flag("lease-name")} {
		if name == "" || !slices.Contains(named[res], name) {
			t.Errorf("the Deployment uses %s %q; the Role names %v", res, name, named[res])
		}
	}
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name)
	}
	for _, want := range []string{"POD_NAME", "PROMETHEUS_URL", "SLACK_SIGNING_SECRET", "ALERTMANAGER_WEBHOOK_TOKEN"} {
		if !slices.Contains(env, want) {
			t.Errorf("the Deployment does not set %s (env %v)", want, env)
		}
	}
}
