package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/forge/forgetest"
)

// The freeze commands read GitHub's settings from the environment, so these
// tests set it and cannot run in parallel.

func clearGitHubEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL", "GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_PRIVATE_KEY_FILE", "GITHUB_INSTALLATION_ID", "GITHUB_RUN_ID", "GITHUB_SERVER_URL", "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH"} {
		t.Setenv(k, "")
	}
}

func TestFreezeCommand(t *testing.T) {
	clearGitHubEnv(t)
	fake := forgetest.New(t, "acme", "exchange", 130)
	fake.LabelPR(2, "hold-for-canary")
	t.Setenv("GITHUB_TOKEN", "ghp_test")
	t.Setenv("GITHUB_REPOSITORY", "acme/exchange")
	t.Setenv("GITHUB_API_URL", fake.URL)
	dir := t.TempDir()
	common := []string{"--evidence-dir", dir, "--state", filepath.Join(dir, "state.db"), "--write-interval", "0s", "--mode", "statuses"}

	out, code := cli(t, append([]string{"freeze", "status"}, common...)...)
	if code != exitComplete || !strings.Contains(out, "no freeze recorded") {
		t.Fatalf("status before: exit %d\n%s", code, out)
	}
	out, code = cli(t, append([]string{"freeze", "start", "v1.4.0"}, common...)...)
	if code != exitComplete {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	for _, want := range []string{"130 open PRs", "129 labelled by the freeze", "1 already labelled", "written: " + filepath.Join(dir, "v1.4.0", "freeze_v1.4.0.txt")} {
		if !strings.Contains(out, want) {
			t.Errorf("start output lacks %q:\n%s", want, out)
		}
	}
	if ev := readEvidence(t, dir, "v1.4.0", "freeze_v1.4.0.txt"); !strings.Contains(ev, "statuses set to failure: 130") || !strings.Contains(ev, "#2 ") {
		t.Errorf("evidence:\n%.500s", ev)
	}
	out, code = cli(t, append([]string{"freeze", "status"}, common...)...)
	if code != exitComplete || !strings.Contains(out, "frozen, mode statuses") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	out, code = cli(t, append([]string{"freeze", "start", "v1.5.0"}, common...)...)
	if code != exitBadInput || !strings.Contains(out, "lift it first") {
		t.Errorf("start of another version: exit %d\n%s", code, out)
	}
	out, code = cli(t, append([]string{"freeze", "lift"}, common...)...)
	if code != exitComplete || !strings.Contains(out, "129 labels removed, 1 kept") {
		t.Fatalf("lift: exit %d\n%s", code, out)
	}
	if l := fake.PRLabels(2); len(l) != 1 {
		t.Errorf("PR #2's own label after lift: %v", l)
	}
	if ev := readEvidence(t, dir, "v1.4.0", "freeze_v1.4.0.txt"); !strings.Contains(ev, "statuses set to success at lift: 130") {
		t.Errorf("evidence after lift:\n%.500s", ev)
	}
	out, code = cli(t, append([]string{"freeze", "lift"}, common...)...)
	if code != exitComplete {
		t.Errorf("second lift: exit %d\n%s", code, out)
	}
}

func TestFreezeCommandBadEnv(t *testing.T) {
	dir := t.TempDir()
	common := []string{"--evidence-dir", dir, "--state", filepath.Join(dir, "state.db")}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no token", map[string]string{"GITHUB_REPOSITORY": "acme/x"}, []string{"freeze", "start", "v1.4.0"}, "GITHUB_TOKEN"},
		{"no repository", map[string]string{"GITHUB_TOKEN": "t"}, []string{"freeze", "lift"}, "GITHUB_REPOSITORY"},
		{"no freeze to lift", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme/x", "GITHUB_API_URL": "http://127.0.0.1:1"}, []string{"freeze", "lift"}, "no freeze is in force"},
		{"bad version", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme/x"}, []string{"freeze", "start", "../x"}, ""},
		{"bad mode", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme/x"}, []string{"freeze", "start", "v1.4.0", "--mode", "labels"}, "--mode"},
		{"sync outside a workflow", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme/x"}, []string{"freeze", "sync"}, "GITHUB_EVENT_PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearGitHubEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, code := cli(t, append(tc.args, common...)...)
			if code != exitBadInput || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, tc.want, out)
			}
		})
	}
}

// TestFreezeSyncCommand: rulesets mode by default where the token may
// administer the repository; `freeze sync` on a runner without the
// progress file labels a newly opened PR from the label's description.
func TestFreezeSyncCommand(t *testing.T) {
	clearGitHubEnv(t)
	fake := forgetest.New(t, "acme", "exchange", 3)
	t.Setenv("GITHUB_TOKEN", "ghp_test")
	t.Setenv("GITHUB_REPOSITORY", "acme/exchange")
	t.Setenv("GITHUB_API_URL", fake.URL)
	dir := t.TempDir()
	common := []string{"--evidence-dir", dir, "--state", filepath.Join(dir, "state.db"), "--write-interval", "0s"}
	out, code := cli(t, append([]string{"freeze", "start", "v1.4.0"}, common...)...)
	if code != exitComplete || !strings.Contains(out, "mode rulesets") {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	out, code = cli(t, append([]string{"freeze", "status"}, common...)...)
	if code != exitComplete || !strings.Contains(out, "labelling 3/3 done") || !strings.Contains(out, "ruleset 1, on") {
		t.Errorf("status: exit %d\n%s", code, out)
	}

	pr := fake.OpenPR()
	event := filepath.Join(t.TempDir(), "event.json")
	payload := fmt.Sprintf(`{"action":"opened","number":%d,"pull_request":{"number":%d,"head":{"sha":%q},"labels":[]},"repository":{"name":"exchange","owner":{"login":"acme"}}}`, pr.Number, pr.Number, pr.SHA)
	if err := os.WriteFile(event, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GITHUB_EVENT_NAME", "pull_request_target")
	t.Setenv("GITHUB_EVENT_PATH", event)
	runner := []string{"--evidence-dir", t.TempDir(), "--state", filepath.Join(t.TempDir(), "state.db"), "--write-interval", "0s"}
	out, code = cli(t, append([]string{"freeze", "sync"}, runner...)...)
	if code != exitComplete || !strings.Contains(out, "freeze v1.4.0 (rulesets): labelled") {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	if l := fake.PRLabels(pr.Number); len(l) != 1 || l[0] != "hold-for-canary" {
		t.Errorf("synced PR labels %v", l)
	}
	t.Setenv("GITHUB_EVENT_NAME", "push")
	if out, code = cli(t, append([]string{"freeze", "sync"}, runner...)...); code != exitComplete || !strings.Contains(out, "nothing to do") {
		t.Errorf("sync on push: exit %d\n%s", code, out)
	}
}

// TestFreezeCommandReadsCanaryYAML: without flags, `canarybot freeze`
// freezes the repository, through the API URL, under the label and in the
// mode of canary.yaml's github section, as the engine does (newFreezeOps):
// the section's repository beats $GITHUB_REPOSITORY there too. --label and
// --mode, when given, replace the section's.
func TestFreezeCommandReadsCanaryYAML(t *testing.T) {
	for _, tc := range []struct {
		name      string
		flags     []string
		wantLabel string
		wantMode  string
	}{
		{"canary.yaml", nil, "frozen-for-canary", "statuses"},
		{"flags over canary.yaml", []string{"--label", "hold-it", "--mode", "rulesets"}, "hold-it", "rulesets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearGitHubEnv(t)
			fake := forgetest.New(t, "acme", "exchange", 3)
			t.Setenv("GITHUB_TOKEN", "ghp_test")
			t.Setenv("GITHUB_REPOSITORY", "acme/not-this-one")
			dir := t.TempDir()
			cfgFile := filepath.Join(dir, "canary.yaml")
			yaml := fmt.Sprintf("github:\n  repository: acme/exchange\n  api_url: %s\n  freeze: {label: frozen-for-canary, mode: statuses}\n", fake.URL)
			if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			common := append([]string{"--config", cfgFile, "--evidence-dir", dir, "--state", filepath.Join(dir, "state.db"), "--write-interval", "0s"}, tc.flags...)
			out, code := cli(t, append([]string{"freeze", "start", "v1.4.0"}, common...)...)
			if code != exitComplete || !strings.Contains(out, "mode "+tc.wantMode) {
				t.Fatalf("start: exit %d, want mode %s\n%s", code, tc.wantMode, out)
			}
			for n := 1; n <= 3; n++ {
				if l := fake.PRLabels(n); len(l) != 1 || l[0] != tc.wantLabel {
					t.Errorf("PR #%d labels %v, want [%s]", n, l, tc.wantLabel)
				}
			}
			out, code = cli(t, append([]string{"freeze", "lift"}, common...)...)
			if code != exitComplete {
				t.Fatalf("lift: exit %d\n%s", code, out)
			}
			for n := 1; n <= 3; n++ {
				if l := fake.PRLabels(n); len(l) != 0 {
					t.Errorf("PR #%d labels after lift %v", n, l)
				}
			}
		})
	}
}
