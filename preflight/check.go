// Package preflight runs the runbook's 60-second preflight: a list of
// readiness checks (http, promql, git, command, postgres, kubernetes) run concurrently
// within a time budget. Each check passes, fails,
// or cannot run, and a check that cannot run is never counted as passed.
package preflight

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ErrBadChecks is wrapped by every error about a check list or a checks file
// that cannot be run as written; the CLI answers it as bad input.
var ErrBadChecks = errors.New("bad preflight checks")

// Check kinds.
const (
	KindHTTP    = "http"
	KindPromQL  = "promql"
	KindGit     = "git"
	KindCommand = "command"
	// KindPostgres runs a read-only SQL query on PostgreSQL, or a SHOW
	// command on pgBouncer's admin console, and compares the answer with
	// a bound.
	KindPostgres = "postgres"
	// KindKubernetes reads the cluster: a Deployment's ready replicas and
	// the canary Ingress (see runKubernetes).
	KindKubernetes = "kubernetes"
)

// Comparison operators of a promql check.
const (
	OpLT = "<"
	OpLE = "<="
	OpEQ = "=="
	OpGE = ">="
	OpGT = ">"
)

// VersionPlaceholder in an evidence file name is replaced by the version
// being checked, e.g. "csp_headers_{version}.txt".
const VersionPlaceholder = "{version}"

// SummaryFile is the evidence file of the whole run.
const SummaryFile = "preflight.txt"

// Check is one readiness check. Which fields apply depends on Kind; setting
// a field another kind uses is an error, so a typo'd kind cannot silently
// drop its settings.
type Check struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`

	// http. URL is absolute (http or https), or a path starting with "/"
	// taken relative to the canary's base URL (Options.Canary). An https
	// URL must present a valid certificate.
	URL string `yaml:"url,omitempty"`
	// Status is the expected status code; 0 means 200.
	Status int `yaml:"status,omitempty"`
	// Headers maps a header name to substrings its value must contain;
	// an empty list only requires the header to be present.
	Headers map[string][]string `yaml:"headers,omitempty"`
	// Body is a regular expression the body (first MiB) must match.
	Body string `yaml:"body,omitempty"`
	// MaxLatency bounds the whole request, body included; 0 means none.
	MaxLatency time.Duration `yaml:"max_latency,omitempty"`

	// promql: Query's single value must satisfy `value Op Value`.
	// postgres: with Column, every row's Column must satisfy it; without,
	// the number of rows must, and no op and value means rows == 0 (a
	// query that lists what is wrong).
	Query string   `yaml:"query,omitempty"`
	Op    string   `yaml:"op,omitempty"`
	Value *float64 `yaml:"value,omitempty"`

	// git: Dir is the repository; "" means Options.Repo, else ".".
	Dir string `yaml:"dir,omitempty"`

	// command: Argv is run without a shell and must exit 0 within Timeout
	// (0 means the run's budget). postgres: Timeout bounds the connection
	// and the statement (0 means DefaultPostgresTimeout), and never
	// outlasts the budget.
	Argv    []string      `yaml:"argv,omitempty"`
	Timeout time.Duration `yaml:"timeout,omitempty"`

	// postgres: SQL is the query, run in a read-only transaction (on
	// pgBouncer's console, a SHOW command). The DSN is read from the
	// environment variable DSNEnv (default DATABASE_URL), never from the
	// checks file; a DSN naming the database "pgbouncer" is pgBouncer's
	// admin console. Column names the column Op and Value apply to.
	SQL    string `yaml:"sql,omitempty"`
	DSNEnv string `yaml:"dsn_env,omitempty"`
	Column string `yaml:"column,omitempty"`

	// kubernetes: the Deployment whose replicas must be ready, and the
	// canary Ingress that must exist and carry
	// nginx.ingress.kubernetes.io/canary: "true", in Namespace ("" means
	// the kubeconfig context's, or the pod's own). The Deployment passes
	// when status.readyReplicas >= MinReady, or >= spec.replicas when
	// MinReady is 0.
	Namespace  string `yaml:"namespace,omitempty"`
	Deployment string `yaml:"deployment,omitempty"`
	Ingress    string `yaml:"ingress,omitempty"`
	MinReady   int    `yaml:"min_ready,omitempty"`

	// Evidence names the file the check writes into the release's evidence
	// ({version} is replaced): the response headers of an http check, the
	// describe output of a git check, the stdout of a command, the value of
	// a promql check, the rows of a postgres check, what a kubernetes check
	// read of the Deployment and the Ingress. "" writes nothing.
	Evidence string `yaml:"evidence,omitempty"`
}

// EvidenceName is c.Evidence for version, "" if the check writes none.
func (c Check) EvidenceName(version string) string {
	return strings.ReplaceAll(c.Evidence, VersionPlaceholder, version)
}

// kindFields lists the kind-specific fields a kind accepts, by YAML key;
// false for an unknown kind.
func kindFields(kind string) ([]string, bool) {
	switch kind {
	case KindHTTP:
		return []string{"url", "status", "headers", "body", "max_latency"}, true
	case KindPromQL:
		return []string{"query", "op", "value"}, true
	case KindGit:
		return []string{"dir"}, true
	case KindCommand:
		return []string{"argv", "timeout"}, true
	case KindPostgres:
		return []string{"sql", "dsn_env", "column", "op", "value", "timeout"}, true
	case KindKubernetes:
		return []string{"namespace", "deployment", "ingress", "min_ready"}, true
	}
	return nil, false
}

// setFields lists the kind-specific fields c sets, by YAML key.
func (c Check) setFields() []string {
	var set []string
	add := func(key string, isSet bool) {
		if isSet {
			set = append(set, key)
		}
	}
	add("url", c.URL != "")
	add("status", c.Status != 0)
	add("headers", len(c.Headers) > 0)
	add("body", c.Body != "")
	add("max_latency", c.MaxLatency != 0)
	add("query", c.Query != "")
	add("op", c.Op != "")
	add("value", c.Value != nil)
	add("dir", c.Dir != "")
	add("argv", len(c.Argv) > 0)
	add("timeout", c.Timeout != 0)
	add("sql", c.SQL != "")
	add("dsn_env", c.DSNEnv != "")
	add("column", c.Column != "")
	add("namespace", c.Namespace != "")
	add("deployment", c.Deployment != "")
	add("ingress", c.Ingress != "")
	add("min_ready", c.MinReady != 0)
	return set
}

// Validate says what is wrong with c, in words that name the field. A
// missing target (an empty URL) is not an error: the check reports that it
// cannot run.
func (c Check) Validate() error {
	if c.Name == "" {
		return errors.New("name is empty: give every check a name")
	}
	if strings.ContainsFunc(c.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("name %q has spaces or control characters: use e.g. canary_health", c.Name)
	}
	fields, ok := kindFields(c.Kind)
	if !ok {
		return fmt.Errorf("check %s: kind %q is unknown: use one of http, promql, git, command, postgres, kubernetes", c.Name, c.Kind)
	}
	for _, f := range c.setFields() {
		if !slices.Contains(fields, f) {
			return fmt.Errorf("check %s: %s is not a setting of kind %s (its settings: %s)", c.Name, f, c.Kind, strings.Join(fields, ", "))
		}
	}
	if err := c.validateKind(); err != nil {
		return fmt.Errorf("check %s: %w", c.Name, err)
	}
	if c.Evidence != "" {
		name := c.EvidenceName("v0")
		if strings.ContainsAny(name, `/\`) || name == "." || name == ".." || strings.HasPrefix(name, ".") {
			return fmt.Errorf("check %s: evidence %q must be a plain file name such as csp_headers_{version}.txt", c.Name, c.Evidence)
		}
		if name == SummaryFile {
			return fmt.Errorf("check %s: evidence %q is the run's own summary file: choose another name", c.Name, c.Evidence)
		}
	}
	return nil
}

func (c Check) validateKind() error {
	switch c.Kind {
	case KindHTTP:
		if c.URL != "" && !strings.HasPrefix(c.URL, "/") {
			if _, err := parseHTTPURL(c.URL); err != nil {
				return err
			}
		}
		if c.Status != 0 && (c.Status < 100 || c.Status > 599) {
			return fmt.Errorf("status %d is not an HTTP status: use 100-599, or leave it out for 200", c.Status)
		}
		for name := range c.Headers {
			if name == "" || strings.ContainsAny(name, " :\t\r\n") {
				return fmt.Errorf("header name %q is not valid", name)
			}
		}
		if c.Body != "" {
			if _, err := regexp.Compile(c.Body); err != nil {
				return fmt.Errorf("body is not a valid regular expression: %w", err)
			}
		}
		if c.MaxLatency < 0 {
			return fmt.Errorf("max_latency %s is negative", c.MaxLatency)
		}
	case KindPromQL:
		if strings.TrimSpace(c.Query) == "" {
			return errors.New("query is empty: give the PromQL expression to compare")
		}
		if !slices.Contains([]string{OpLT, OpLE, OpEQ, OpGE, OpGT}, c.Op) {
			return fmt.Errorf("op %q is not one of <, <=, ==, >=, >", c.Op)
		}
		if c.Value == nil {
			return errors.New("value is missing: give the bound the query's value is compared with")
		}
	case KindPostgres:
		return c.validatePostgres()
	case KindKubernetes:
		if c.Deployment == "" && c.Ingress == "" {
			return errors.New("neither deployment nor ingress is given: name the Deployment whose replicas must be ready, or the canary Ingress that must exist")
		}
		return c.validateKubernetes()
	case KindCommand:
		if len(c.Argv) == 0 || c.Argv[0] == "" {
			return errors.New("argv is empty: give the program and its arguments, e.g. [./scripts/check.sh, --quick]")
		}
		if c.Timeout < 0 {
			return fmt.Errorf("timeout %s is negative", c.Timeout)
		}
	}
	return nil
}

// parseHTTPURL accepts an absolute http or https URL with a host.
func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url %q does not parse: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q is not an absolute http(s) URL (e.g. https://canary.example.com/healthz) nor a path starting with /", raw)
	}
	return u, nil
}

// ValidateAll checks every check and that names and evidence files are
// unique, joining all problems.
func ValidateAll(checks []Check) error {
	if len(checks) == 0 {
		return fmt.Errorf("%w: no checks given", ErrBadChecks)
	}
	var errs []error
	names := map[string]bool{}
	files := map[string]string{}
	for _, c := range checks {
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if names[c.Name] {
			errs = append(errs, fmt.Errorf("check name %s is used twice: names must be unique", c.Name))
		}
		names[c.Name] = true
		if f := c.EvidenceName("v0"); f != "" {
			if other, dup := files[f]; dup {
				errs = append(errs, fmt.Errorf("checks %s and %s both write evidence %q", other, c.Name, c.Evidence))
			}
			files[f] = c.Name
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrBadChecks, errors.Join(errs...))
	}
	return nil
}
