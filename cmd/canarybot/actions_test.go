package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// The GitHub Actions of actions/ and the workflows of .github/workflows are
// checked against the CLI they drive: every file parses, every input an
// action declares is used and every input it uses is declared, every
// canarybot command a step runs exists (its --help runs through the
// in-process root) with the flags the step passes, and every step using one
// of these actions passes only inputs it declares, and all it requires.

type ghStep struct {
	ID    string            `yaml:"id"`
	Name  string            `yaml:"name"`
	Uses  string            `yaml:"uses"`
	Run   string            `yaml:"run"`
	Shell string            `yaml:"shell"`
	With  map[string]string `yaml:"with"`
	Env   map[string]string `yaml:"env"`
}

type ghAction struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Inputs      map[string]struct {
		Description string  `yaml:"description"`
		Required    bool    `yaml:"required"`
		Default     *string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Description string `yaml:"description"`
		Value       string `yaml:"value"`
	} `yaml:"outputs"`
	Runs yaml.Node `yaml:"runs"`
}

type ghWorkflow struct {
	Name        string            `yaml:"name"`
	On          yaml.Node         `yaml:"on"`
	Permissions map[string]string `yaml:"permissions"`
	Jobs        map[string]struct {
		RunsOn string   `yaml:"runs-on"`
		Steps  []ghStep `yaml:"steps"`
	} `yaml:"jobs"`
}

var (
	inputRef  = regexp.MustCompile(`inputs\.([A-Za-z0-9_-]+)`)
	stepRef   = regexp.MustCompile(`steps\.([A-Za-z0-9_-]+)\.outputs\.`)
	scriptRef = regexp.MustCompile(`\$GITHUB_ACTION_PATH/([^"'\s]+)`)
	// canarybot in a command's place (or as "$dir/canarybot") followed by
	// its command words (lower-case literals; the first quoted or $-word
	// ends the command).
	invocation = regexp.MustCompile(`(?m)(?:^|[\s;&|(])"?(?:\$[A-Za-z_]+/)?canarybot"?((?:[ \t]+[a-z][a-z-]*)*)`)
	// Lines whose flags are canarybot's: its invocation, and the arrays of
	// arguments the scripts build for it.
	canarybotLine = regexp.MustCompile(`(?:^|[\s;&|(])"?(?:\$[A-Za-z_]+/)?canarybot\b|\b(?:args|globals)\+?=\(`)
	flagToken     = regexp.MustCompile(`(?:^|[\s(])--([a-z][a-z0-9-]*)`)
)

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
}

// commandOf finds the command that words name in the CLI.
func commandOf(t *testing.T, words []string) *cobra.Command {
	t.Helper()
	root := newRoot(&strings.Builder{}, &strings.Builder{})
	c, rest, err := root.Find(words)
	if err != nil || len(rest) > 0 || c == root {
		t.Errorf("`canarybot %s` is not a command of the CLI (%v)", strings.Join(words, " "), err)
		return nil
	}
	out, code := cli(t, append(slices.Clone(words), "--help")...)
	if code != exitComplete || !strings.Contains(out, "Usage:") {
		t.Errorf("`canarybot %s --help`: exit %d\n%s", strings.Join(words, " "), code, out)
	}
	return c
}

func hasFlag(c *cobra.Command, name string) bool {
	for p := c; p != nil; p = p.Parent() {
		if p.PersistentFlags().Lookup(name) != nil {
			return true
		}
	}
	return c.Flags().Lookup(name) != nil
}

// checkScript checks the canarybot commands a shell script runs and the
// flags it writes. A script that runs canarybot's command from a variable
// only is generic: its flags must be global ones.
func checkScript(t *testing.T, where, script string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(script, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	code := strings.Join(lines, "\n")
	var cmds []*cobra.Command
	for _, m := range invocation.FindAllStringSubmatch(code, -1) {
		words := strings.Fields(m[1])
		if len(words) == 0 {
			continue
		}
		if c := commandOf(t, words); c != nil {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) == 0 && !strings.Contains(code, "canarybot") {
		return
	}
	if len(cmds) == 0 {
		cmds = append(cmds, newRoot(&strings.Builder{}, &strings.Builder{}))
	}
	for _, line := range lines {
		if !canarybotLine.MatchString(line) {
			continue
		}
		for _, m := range flagToken.FindAllStringSubmatch(line, -1) {
			if !slices.ContainsFunc(cmds, func(c *cobra.Command) bool { return hasFlag(c, m[1]) }) {
				t.Errorf("%s passes --%s, which none of its commands has", where, m[1])
			}
		}
	}
}

func TestActions(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "..", "actions", "*", "action.yml"))
	if err != nil || len(dirs) < 3 {
		t.Fatalf("actions: %v, %v; want canary, freeze and green-button", dirs, err)
	}
	for _, path := range dirs {
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			var a ghAction
			readYAML(t, path, &a)
			if a.Name == "" || a.Description == "" {
				t.Error("name and description are required")
			}
			var runs struct {
				Using string   `yaml:"using"`
				Steps []ghStep `yaml:"steps"`
			}
			if err := a.Runs.Decode(&runs); err != nil || runs.Using != "composite" || len(runs.Steps) == 0 {
				t.Fatalf("runs: %+v, %v; want composite steps", runs, err)
			}
			rawRuns, err := yaml.Marshal(&a.Runs)
			if err != nil {
				t.Fatal(err)
			}
			used := map[string]bool{}
			for _, m := range inputRef.FindAllStringSubmatch(string(rawRuns), -1) {
				used[m[1]] = true
				if _, ok := a.Inputs[m[1]]; !ok {
					t.Errorf("the steps use inputs.%s, which is not declared", m[1])
				}
			}
			for name, in := range a.Inputs {
				if in.Description == "" {
					t.Errorf("input %s has no description", name)
				}
				if !used[name] {
					t.Errorf("input %s is declared but never used", name)
				}
				if in.Required && in.Default != nil && *in.Default != "" {
					t.Errorf("input %s is required and has a default", name)
				}
			}
			ids := map[string]bool{}
			for i, s := range runs.Steps {
				ids[s.ID] = true
				if s.Run != "" && s.Shell == "" {
					t.Errorf("step %d runs a script without a shell (composite steps need one)", i)
				}
				if strings.Contains(s.Run, "${{") {
					t.Errorf("step %d pastes an expression into its script; pass it through env", i)
				}
				for _, m := range scriptRef.FindAllStringSubmatch(s.Run, -1) {
					script := filepath.Join(filepath.Dir(path), m[1])
					st, err := os.Stat(script)
					if err != nil || st.Mode()&0o111 == 0 {
						t.Errorf("step %d runs %s: %v (it must exist and be executable)", i, script, err)
						continue
					}
					body, _ := os.ReadFile(script)
					checkScript(t, script, string(body))
				}
				checkScript(t, path+" step "+s.ID, s.Run)
			}
			for name, o := range a.Outputs {
				m := stepRef.FindStringSubmatch(o.Value)
				if o.Description == "" || m == nil || !ids[m[1]] {
					t.Errorf("output %s: description %q, value %q; want both, from a step of this action", name, o.Description, o.Value)
				}
			}
		})
	}
}

func TestWorkflows(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", ".github", "workflows", "*.yml"))
	if err != nil || !slices.ContainsFunc(paths, func(p string) bool { return filepath.Base(p) == "release.yml" }) {
		t.Fatalf("workflows %v, %v; want release.yml", paths, err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var w ghWorkflow
			readYAML(t, path, &w)
			if w.Name == "" || w.On.Kind == 0 || len(w.Jobs) == 0 {
				t.Fatalf("%s: name, on and jobs are required", path)
			}
			for job, j := range w.Jobs {
				if j.RunsOn == "" {
					t.Errorf("job %s has no runs-on", job)
				}
				for i, s := range j.Steps {
					where := job + " step " + s.Name
					if s.Run != "" {
						checkScript(t, where, s.Run)
					}
					local, ok := strings.CutPrefix(s.Uses, "./actions/")
					if !ok {
						continue
					}
					var a ghAction
					readYAML(t, filepath.Join("..", "..", "actions", local, "action.yml"), &a)
					for k := range s.With {
						if _, ok := a.Inputs[k]; !ok {
							t.Errorf("%s (#%d) passes %s, which %s does not declare", where, i, k, s.Uses)
						}
					}
					for name, in := range a.Inputs {
						if _, given := s.With[name]; in.Required && !given {
							t.Errorf("%s (#%d) does not pass the required input %s of %s", where, i, name, s.Uses)
						}
					}
					switch local {
					case "canary":
						c := commandOf(t, strings.Fields(s.With["command"]))
						if c == nil {
							continue
						}
						for _, arg := range strings.Split(s.With["args"], "\n") {
							name, isFlag := strings.CutPrefix(strings.TrimSpace(arg), "--")
							name, _, _ = strings.Cut(name, "=")
							if isFlag && !hasFlag(c, name) {
								t.Errorf("%s passes --%s to `canarybot %s`, which has no such flag", where, name, s.With["command"])
							}
						}
					case "freeze":
						commandOf(t, []string{"freeze", s.With["mode"]})
					}
				}
			}
		})
	}
	var w ghWorkflow
	readYAML(t, filepath.Join("..", "..", ".github", "workflows", "release.yml"), &w)
	// The release workflow goes freeze → green button → evidence commit →
	// release, and lifts the freeze at the end.
	var order []string
	for _, job := range []string{"prepare", "publish"} {
		for _, s := range w.Jobs[job].Steps {
			switch {
			case s.Uses == "./actions/freeze":
				order = append(order, "freeze "+s.With["mode"])
			case s.Uses == "./actions/green-button":
				order = append(order, "green-button")
			case s.Uses == "./actions/canary":
				order = append(order, s.With["command"])
			}
		}
	}
	want := []string{"freeze start", "green-button", "evidence commit", "release", "freeze lift", "evidence commit"}
	if !slices.Equal(order, want) {
		t.Errorf("release.yml runs %q, want %q", order, want)
	}
	for _, p := range []string{"contents", "pull-requests", "statuses"} {
		if w.Permissions[p] != "write" {
			t.Errorf("release.yml needs %s: write, has %q", p, w.Permissions[p])
		}
	}
}
