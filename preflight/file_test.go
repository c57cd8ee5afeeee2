package preflight

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadChecks(t *testing.T) {
	t.Parallel()
	checks, err := LoadChecks(filepath.Join("testdata", "checks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range checks {
		kinds = append(kinds, c.Kind)
	}
	if !slices.Equal(kinds, []string{KindHTTP, KindPromQL, KindGit, KindCommand, KindPostgres}) {
		t.Fatalf("kinds %v", kinds)
	}
	h := checks[0]
	if h.MaxLatency != 2*time.Second || !slices.Equal(h.Headers["Content-Security-Policy"], []string{"default-src", "frame-ancestors"}) ||
		h.EvidenceName("v1.4.0") != "health_v1.4.0.txt" {
		t.Errorf("http check: %+v", h)
	}
	if p := checks[1]; p.Op != OpGE || p.Value == nil || *p.Value != 1 {
		t.Errorf("promql check: %+v", p)
	}
	if c := checks[3]; !slices.Equal(c.Argv, []string{"echo", "smoke ok"}) || c.Timeout != 5*time.Second {
		t.Errorf("command check: %+v", c)
	}
}

func TestLoadChecksErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []string
	}{
		{"unknown_key.yaml", []string{"testdata/unknown_key.yaml: line 5: unknown key \"max_latncy\""}},
		{"invalid_check.yaml", []string{"testdata/invalid_check.yaml: line 5: check no_bound: value is missing"}},
		{"no_such_file.yaml", []string{"reading the checks file", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			_, err := LoadChecks(filepath.Join("testdata", tt.file))
			if !errors.Is(err, ErrBadChecks) {
				t.Fatalf("err %v, want ErrBadChecks", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseChecksErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", "f.yaml is empty"},
		{"no checks", "checks: []\n", "lists no checks"},
		{"unknown top-level key", "check:\n  - name: a\n", `line 1: unknown key "check"`},
		{"bad duration", "checks:\n  - name: a\n    kind: command\n    argv: [true]\n    timeout: soon\n", "line 5"},
		{"unknown kind", "checks:\n  - name: a\n    kind: ftp\n", `line 2: check a: kind "ftp" is unknown`},
		{"no name", "checks:\n  - kind: git\n", "line 2: name is empty"},
		{"name with space", "checks:\n  - name: a b\n    kind: git\n", "has spaces"},
		{"field of another kind", "checks:\n  - name: a\n    kind: git\n    url: http://x\n", "check a: url is not a setting of kind git (its settings: dir)"},
		{"bad op", "checks:\n  - name: a\n    kind: promql\n    query: up\n    op: '!='\n    value: 1\n", `op "!=" is not one of`},
		{"no query", "checks:\n  - name: a\n    kind: promql\n    op: '<'\n    value: 1\n", "query is empty"},
		{"bad url", "checks:\n  - name: a\n    kind: http\n    url: ftp://x/y\n", "is not an absolute http(s) URL"},
		{"bad status", "checks:\n  - name: a\n    kind: http\n    status: 42\n", "status 42 is not an HTTP status"},
		{"bad body regexp", "checks:\n  - name: a\n    kind: http\n    body: '(['\n", "body is not a valid regular expression"},
		{"no argv", "checks:\n  - name: a\n    kind: command\n", "argv is empty"},
		{"evidence path", "checks:\n  - name: a\n    kind: git\n    evidence: ../x.txt\n", "must be a plain file name"},
		{"evidence is preflight.txt", "checks:\n  - name: a\n    kind: git\n    evidence: preflight.txt\n", "the run's own summary file"},
		{"duplicate name", "checks:\n  - name: a\n    kind: git\n  - name: a\n    kind: git\n", "check name a is used twice"},
		{"duplicate evidence", "checks:\n  - name: a\n    kind: git\n    evidence: t.txt\n  - name: b\n    kind: git\n    evidence: t.txt\n", `checks a and b both write evidence "t.txt"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseChecks([]byte(tt.yaml), "f.yaml")
			if !errors.Is(err, ErrBadChecks) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrBadChecks containing %q", err, tt.want)
			}
		})
	}
}

func TestDefaultChecksAreValid(t *testing.T) {
	t.Parallel()
	if err := ValidateAll(DefaultChecks()); err != nil {
		t.Fatal(err)
	}
}
