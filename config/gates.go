package config

import (
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/canarybot/canarybot/preflight"
)

// Preflight is the `preflight:` section: the runbook's T-10 readiness
// checks, for `canarybot preflight`, `ready` and the engine's preflight step.
type Preflight struct {
	// Budget bounds the whole run (default 60s).
	Budget time.Duration
	// Checks replace the runbook's 10 (preflight.DefaultChecks) as a whole
	// when given. DSNs come from the variables their dsn_env names.
	Checks []preflight.Check
}

// DefaultPreflight is the preflight section of an empty canary.yaml.
func DefaultPreflight() Preflight {
	return Preflight{Budget: preflight.DefaultBudget, Checks: preflight.DefaultChecks()}
}

// Battery is the `battery:` section: the runbook's corner-case battery
// (`canarybot battery`). Its defaults are the checks package's; they are
// spelled out here, not imported, so that config does not link syft.
type Battery struct {
	// Base is the service's base URL; --base overrides it.
	Base string
	// PreviousSBOM is the previous release's SBOM for the drift test.
	PreviousSBOM string
	// DSNEnv names the environment variable holding the outbox's
	// PostgreSQL DSN (default DATABASE_URL). The DSN never goes in the file.
	DSNEnv string
	Outbox BatteryOutbox
	// TickVectors are checked against the service's tick alignment.
	TickVectors []TickVector
	// BurstRequests (idempotency burst), FloodRequests (CSP flood) and
	// Parallel (requests in flight) default to the runbook's 100, 50, 10.
	BurstRequests, FloodRequests, Parallel int
	// Timeout bounds each request.
	Timeout time.Duration
	// Headers are sent with every request (e.g. X-Canary: always through
	// the router). Credentials are refused: they are secrets.
	Headers map[string]string
}

// BatteryOutbox is battery.outbox: the outbox lag test.
type BatteryOutbox struct {
	// Query returns the pending events' lags in seconds, first column.
	Query string
	// MaxLag bounds every lag; MaxSkew is the largest negative lag (clock
	// skew) allowed; Timeout bounds the connection and the query.
	MaxLag, MaxSkew, Timeout time.Duration
}

// TickVector is one decimal tick alignment case, as text so that no float
// rounding creeps in.
type TickVector struct {
	Symbol, Price, Tick, Expected string
}

// Defaults of the battery section; the checks package's, which a test in
// cmd/canarybot holds these to.
const (
	DefaultBatteryDSNEnv   = "DATABASE_URL"
	DefaultBurstRequests   = 100
	DefaultFloodRequests   = 50
	DefaultBatteryParallel = 10
	DefaultBatteryTimeout  = 10 * time.Second
	DefaultOutboxMaxLag    = 10 * time.Second
	DefaultOutboxMaxSkew   = time.Second
	DefaultOutboxTimeout   = 10 * time.Second
	// DefaultOutboxQuery is the runbook's: the age in seconds of up to ten
	// pending outbox events, oldest first.
	DefaultOutboxQuery = `SELECT extract(epoch FROM now() - created_at) AS lag
FROM "Outbox"
WHERE status = 'pending'
ORDER BY created_at
LIMIT 10`
)

// DefaultBattery is the battery section of an empty canary.yaml.
func DefaultBattery() Battery {
	return Battery{
		DSNEnv: DefaultBatteryDSNEnv,
		Outbox: BatteryOutbox{Query: DefaultOutboxQuery, MaxLag: DefaultOutboxMaxLag, MaxSkew: DefaultOutboxMaxSkew, Timeout: DefaultOutboxTimeout},
		TickVectors: []TickVector{
			{"BTCUSDT", "12345.6789", "0.01", "12345.68"},
			{"BTCTRY", "12345.6789", "0.1", "12345.7"},
		},
		BurstRequests: DefaultBurstRequests, FloodRequests: DefaultFloodRequests, Parallel: DefaultBatteryParallel,
		Timeout: DefaultBatteryTimeout,
	}
}

// GreenButton is the `green_button:` section: the T-2 ritual, for
// `canarybot green-button`, `ready` and the engine's green-button step.
type GreenButton struct {
	// ExpectedArtifacts are the release's files in ArtifactsDir; the
	// engine's step is configured only when they are given, since a count
	// against nothing would pass having checked nothing.
	ExpectedArtifacts []string
	// ArtifactsDir holds them ("" means <source>/dist).
	ArtifactsDir string
	// PreviousSBOM is the previous release's SBOM for the drift gate.
	PreviousSBOM string
	// Exceptions is a license exceptions file ({package, license, reason}).
	Exceptions string
	// LGPL is what a new LGPL package does: fail, warn or allow.
	LGPL string
	// VulnDB is a grype vulnerability database directory for the
	// vulnerability gate; "" skips that gate (recorded as skipped).
	VulnDB string
	// VulnFailOn is the severity that fails the vulnerability gate:
	// negligible, low, medium, high, critical, or none (report only).
	VulnFailOn string
	// RequireKey fails the provenance gate rather than sign with an
	// ephemeral key.
	RequireKey bool
	// KeyEnv names the environment variable holding the signing key's PEM
	// text (default CANARYBOT_SIGNING_KEY). The key never goes in the file.
	KeyEnv string
}

// Defaults of the green_button section.
const (
	DefaultSigningKeyEnv = "CANARYBOT_SIGNING_KEY"
	DefaultLGPLPolicy    = "warn"
	DefaultVulnFailOn    = "high"
)

// DefaultGreenButton is the green_button section of an empty canary.yaml.
func DefaultGreenButton() GreenButton {
	return GreenButton{LGPL: DefaultLGPLPolicy, VulnFailOn: DefaultVulnFailOn, KeyEnv: DefaultSigningKeyEnv}
}

// GitHub is the `github:` section: where the change freeze runs. The token
// or the GitHub App's key come from the environment only (GITHUB_TOKEN,
// GITHUB_APP_*), never from this file.
type GitHub struct {
	// Repository is owner/name; "" means $GITHUB_REPOSITORY.
	Repository string
	// APIURL is the REST API's base; "" means $GITHUB_API_URL, else
	// https://api.github.com.
	APIURL string
	Freeze GitHubFreeze
}

// GitHubFreeze is github.freeze.
type GitHubFreeze struct {
	// Label is put on every open PR while frozen.
	Label string
	// Mode is auto (a ruleset where the token may administer the
	// repository, else statuses), rulesets or statuses.
	Mode string
}

// Freeze modes, as the forge package names them.
const (
	FreezeModeAuto     = "auto"
	FreezeModeRulesets = "rulesets"
	FreezeModeStatuses = "statuses"
	DefaultFreezeLabel = "hold-for-canary"
)

// DefaultGitHub is the github section of an empty canary.yaml.
func DefaultGitHub() GitHub {
	return GitHub{Freeze: GitHubFreeze{Label: DefaultFreezeLabel, Mode: FreezeModeAuto}}
}

func freezeModes() []string {
	return []string{FreezeModeAuto, FreezeModeRulesets, FreezeModeStatuses}
}

func lgplPolicies() []string { return []string{"fail", "warn", "allow"} }

// VulnSeverities are the values green_button.vuln_fail_on accepts: the
// thresholds sbom/vuln.ParseSeverity reads, spelled out so that config
// does not link grype; a test in cmd/canarybot holds them to it.
func VulnSeverities() []string {
	return []string{"negligible", "low", "medium", "high", "critical", "none"}
}

func checkKinds() []string {
	return []string{preflight.KindHTTP, preflight.KindPromQL, preflight.KindGit, preflight.KindCommand,
		preflight.KindPostgres, preflight.KindKubernetes}
}

func checkOps() []string {
	return []string{preflight.OpLT, preflight.OpLE, preflight.OpEQ, preflight.OpGE, preflight.OpGT}
}

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	decimal    = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	repository = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	// secretValue matches what tokens and keys look like: GitHub's and
	// Slack's token prefixes, and PEM blocks.
	secretValue = regexp.MustCompile(`^(gh[pousr]_|github_pat_|xox[abposr]-|xapp-)|-----BEGIN`)
)

// looksSecret reports whether s looks like a token, a key or a URL with a
// password in it.
func looksSecret(s string) bool {
	s = strings.TrimSpace(s)
	if secretValue.MatchString(s) {
		return true
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return false
}

// secretEnv says, for the section a key is in, where its secrets go.
var secretEnv = map[string]string{
	"slack":        "the environment: SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN or SLACK_APP_TOKEN",
	"github":       "the environment: GITHUB_TOKEN, or GITHUB_APP_ID with GITHUB_APP_PRIVATE_KEY[_FILE] and GITHUB_INSTALLATION_ID",
	"green_button": "an environment variable (the key's PEM text) and name that variable with key_env (default CANARYBOT_SIGNING_KEY)",
	"battery":      "an environment variable and name that variable with dsn_env (default DATABASE_URL)",
	"preflight":    "an environment variable and name that variable with the check's dsn_env (default DATABASE_URL)",
}

// secretKey is the message for an unknown key that would hold a secret,
// "" for any other key. canary.yaml is committed and printed by `config
// print`: a secret in it is a leaked secret.
func secretKey(path, key string) string {
	k := strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(key))
	secret := k == "key" || k == "dsn" || strings.HasSuffix(k, "dsn") || strings.HasSuffix(k, "privatekey") ||
		strings.HasSuffix(k, "apikey") || strings.HasSuffix(k, "signingkey") || strings.HasSuffix(k, "appkey")
	for _, s := range []string{"token", "secret", "password", "passwd", "credential"} {
		secret = secret || strings.Contains(k, s)
	}
	if !secret {
		return ""
	}
	section, _, _ := strings.Cut(path, ".")
	section, _, _ = strings.Cut(section, "[")
	where, ok := secretEnv[section]
	if !ok {
		where = "an environment variable"
	}
	return fmt.Sprintf("unknown key %s: secrets (tokens, keys, passwords, DSNs) never go in canary.yaml, which is committed and printed; put it in %s",
		strconv.Quote(key), where)
}

func (d *decoder) preflight(out *Preflight) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.mapping(n, path, "a mapping like {budget: 60s, checks: [...]}", []field{
			{"budget", d.duration(&out.Budget)},
			{"checks", d.checks(&out.Checks)},
		})
	}
}

// checks replaces the default checks: the list is the whole preflight.
func (d *decoder) checks(out *[]preflight.Check) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		items, ok := d.list(n, path, "a list of checks like [{name: canary_health, kind: http, url: /healthz}]")
		if !ok {
			return
		}
		if len(items) == 0 {
			d.errorf(n, path, "an empty list would check nothing; list at least one check, or leave checks out for the runbook's 10")
			return
		}
		cs := make([]preflight.Check, 0, len(items))
		for i, it := range items {
			ip := fmt.Sprintf("%s[%d]", path, i)
			before := len(d.errs)
			var c preflight.Check
			var value float64
			given, ok := d.mapping(it, ip, "a check like {name: canary_health, kind: http, url: /healthz}", []field{
				{"name", d.str(&c.Name)},
				{"kind", enum(d, &c.Kind, checkKinds(), nil)},
				{"url", d.str(&c.URL)},
				{"status", d.integer(&c.Status, "an HTTP status like 200")},
				{"headers", d.headerExpectations(&c.Headers)},
				{"body", d.str(&c.Body)},
				{"max_latency", d.duration(&c.MaxLatency)},
				{"query", d.str(&c.Query)},
				{"op", enum(d, &c.Op, checkOps(), nil)},
				{"value", d.number(&value)},
				{"dir", d.str(&c.Dir)},
				{"argv", d.strings(&c.Argv, "a list like [./scripts/check.sh, --quick]")},
				{"timeout", d.duration(&c.Timeout)},
				{"sql", d.str(&c.SQL)},
				{"dsn_env", d.str(&c.DSNEnv)},
				{"column", d.str(&c.Column)},
				{"namespace", d.str(&c.Namespace)},
				{"deployment", d.str(&c.Deployment)},
				{"ingress", d.str(&c.Ingress)},
				{"min_ready", d.integer(&c.MinReady, "a number of ready replicas like 2")},
				{"evidence", d.str(&c.Evidence)},
			})
			if ok {
				d.require(it, ip, given, "name", "kind")
			}
			if given["value"] {
				c.Value = &value
			}
			if len(d.errs) > before {
				// The check's own validation would only repeat the problem.
				d.bad = append(d.bad, ip)
			}
			cs = append(cs, c)
		}
		*out = cs
	}
}

// headerExpectations decodes {Content-Security-Policy: [default-src]}: each
// header's required substrings; an empty list (or nothing) only requires
// the header to be present.
func (d *decoder) headerExpectations(out *map[string][]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		keys := textKeys{
			want:  "a mapping of header name to required substrings like {Content-Security-Policy: [default-src]}",
			key:   "a header name like Content-Security-Policy",
			valid: utf8.ValidString,
		}
		textMap(d, n, path, out, keys, func(_, val *yaml.Node, _, kp string) ([]string, bool) {
			var subs []string
			if !isNull(val) {
				d.strings(&subs, "a list of substrings the header must contain, like [default-src]")(val, kp)
			}
			return subs, true
		})
	}
}

// strings decodes a list of text; an empty list is nil.
func (d *decoder) strings(out *[]string, expected string) func(*yaml.Node, string) {
	return listOf(d, out, expected, func(it *yaml.Node, path string) (string, bool) {
		return d.text(it, path, "text")
	})
}

func (d *decoder) battery(out *Battery) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.mapping(n, path, "a mapping like {base: http://127.0.0.1:4001, dsn_env: DATABASE_URL}", []field{
			{"base", d.str(&out.Base)},
			{"previous_sbom", d.str(&out.PreviousSBOM)},
			{"dsn_env", d.str(&out.DSNEnv)},
			{"outbox", func(n *yaml.Node, p string) {
				d.mapping(n, p, "a mapping like {max_lag: 10s, max_skew: 1s, timeout: 10s}", []field{
					{"query", d.str(&out.Outbox.Query)},
					{"max_lag", d.duration(&out.Outbox.MaxLag)},
					{"max_skew", d.duration(&out.Outbox.MaxSkew)},
					{"timeout", d.duration(&out.Outbox.Timeout)},
				})
			}},
			{"tick_vectors", d.tickVectors(&out.TickVectors)},
			{"burst_requests", d.integer(&out.BurstRequests, "a whole number like 100")},
			{"flood_requests", d.integer(&out.FloodRequests, "a whole number like 50")},
			{"parallel", d.integer(&out.Parallel, "a whole number like 10")},
			{"timeout", d.duration(&out.Timeout)},
			{"headers", d.sentHeaders(&out.Headers)},
		})
	}
}

func (d *decoder) tickVectors(out *[]TickVector) func(*yaml.Node, string) {
	const example = "{symbol: BTCUSDT, price: \"12345.6789\", tick: \"0.01\", expected: \"12345.68\"}"
	return mappingList(d, out, "a list of vectors like ["+example+"]", "a vector like "+example,
		func(v *TickVector) []field {
			return []field{
				{"symbol", d.str(&v.Symbol)},
				{"price", d.str(&v.Price)},
				{"tick", d.str(&v.Tick)},
				{"expected", d.str(&v.Expected)},
			}
		}, "symbol", "price", "tick", "expected")
}

// sentHeaders decodes headers the battery sends; like triggers' labels,
// the file's mapping replaces the default (none).
func (d *decoder) sentHeaders(out *map[string]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		keys := textKeys{
			want:  "a mapping of header name to value like {X-Canary: always}",
			key:   "a header name like X-Canary",
			valid: utf8.ValidString,
		}
		textMap(d, n, path, out, keys, func(_, val *yaml.Node, _, kp string) (string, bool) {
			if isNull(val) {
				d.errorf(val, kp, "expected the header's value, got nothing")
				return "", false
			}
			return d.text(val, kp, "a header value like always")
		})
	}
}

func (d *decoder) greenButton(out *GreenButton) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.mapping(n, path, "a mapping like {expected_artifacts: [canarybot-linux-amd64], artifacts_dir: dist}", []field{
			{"expected_artifacts", d.strings(&out.ExpectedArtifacts, "a list of file names like [canarybot-linux-amd64]")},
			{"artifacts_dir", d.str(&out.ArtifactsDir)},
			{"previous_sbom", d.str(&out.PreviousSBOM)},
			{"exceptions", d.str(&out.Exceptions)},
			{"lgpl", enum(d, &out.LGPL, lgplPolicies(), nil)},
			{"vuln_db", d.str(&out.VulnDB)},
			{"vuln_fail_on", enum(d, &out.VulnFailOn, VulnSeverities(), nil)},
			{"require_key", d.boolean(&out.RequireKey)},
			{"key_env", d.str(&out.KeyEnv)},
		})
	}
}

func (d *decoder) github(out *GitHub) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.mapping(n, path, "a mapping like {repository: acme/exchange, freeze: {mode: auto}}", []field{
			{"repository", d.str(&out.Repository)},
			{"api_url", d.str(&out.APIURL)},
			{"freeze", func(n *yaml.Node, p string) {
				d.mapping(n, p, "a mapping like {label: hold-for-canary, mode: auto}", []field{
					{"label", d.str(&out.Freeze.Label)},
					{"mode", enum(d, &out.Freeze.Mode, freezeModes(), nil)},
				})
			}},
		})
	}
}

// gates checks the preflight, battery, green_button and github sections.
func (k *checker) gates(c Config) {
	k.preflight(c.Preflight)
	k.battery(c.Battery)
	k.greenButton(c.GreenButton)
	k.github(c.GitHub)
}

func (k *checker) preflight(p Preflight) {
	if p.Budget <= 0 {
		k.addf("preflight.budget", "must be greater than 0, got %s: it bounds the whole preflight (the runbook's is 60s)", formatDuration(p.Budget))
	}
	if len(p.Checks) == 0 {
		k.addf("preflight.checks", "no checks: list at least one, or leave checks out for the runbook's 10")
		return
	}
	valid := true
	for i, c := range p.Checks {
		cp := fmt.Sprintf("preflight.checks[%d]", i)
		// Checked before Validate, whose message would quote a DSN given
		// in place of the variable's name.
		if c.DSNEnv != "" && !k.envName(cp+".dsn_env", c.DSNEnv, "the environment variable holding the DSN, like DATABASE_URL") {
			valid = false
			continue
		}
		if err := c.Validate(); err != nil {
			k.addf(cp, "%v", err)
			valid = false
			continue
		}
		if c.Value != nil && (math.IsNaN(*c.Value) || math.IsInf(*c.Value, 0)) {
			k.addf(cp+".value", "must be a finite number, got %v", *c.Value)
			valid = false
		}
		if looksSecret(c.URL) {
			k.addf(cp+".url", "has a password in it: secrets never go in canary.yaml; use a URL without credentials")
		}
	}
	if valid {
		if err := preflight.ValidateAll(p.Checks); err != nil {
			k.addf("preflight.checks", "%s", strings.TrimPrefix(err.Error(), preflight.ErrBadChecks.Error()+": "))
		}
	}
}

// envName checks that s names an environment variable, without ever
// echoing a value that looks like the secret itself.
func (k *checker) envName(path, s, what string) bool {
	switch {
	case looksSecret(s) || strings.Contains(s, "://"):
		k.addf(path, "expected the name of %s; this looks like the secret itself, which never goes in canary.yaml: put it in the environment and name the variable here", what)
	case !envName.MatchString(s):
		k.addf(path, "expected the name of %s (letters, digits and _), got %s", what, strconv.Quote(s))
	default:
		return true
	}
	return false
}

// httpBase checks an optional absolute http(s) URL without credentials.
func (k *checker) httpBase(path, s, example string) {
	if s == "" {
		return
	}
	if looksSecret(s) {
		k.addf(path, "has a password or token in it: secrets never go in canary.yaml; give the URL without credentials")
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		k.addf(path, "expected an absolute http(s) URL like %s, got %s", example, strconv.Quote(s))
	}
}

func (k *checker) battery(b Battery) {
	k.httpBase("battery.base", b.Base, "http://127.0.0.1:4001")
	k.envName("battery.dsn_env", b.DSNEnv, "the environment variable holding the outbox's DSN, like DATABASE_URL")
	if strings.TrimSpace(b.Outbox.Query) == "" {
		k.addf("battery.outbox.query", "must not be empty; it is the SQL returning the outbox's lags in seconds")
	}
	for _, f := range []struct {
		path string
		d    time.Duration
		min  time.Duration
	}{
		{"battery.outbox.max_lag", b.Outbox.MaxLag, 1},
		{"battery.outbox.max_skew", b.Outbox.MaxSkew, 0},
		{"battery.outbox.timeout", b.Outbox.Timeout, 1},
		{"battery.timeout", b.Timeout, 1},
	} {
		if f.d < f.min {
			cmp := "greater than 0"
			if f.min == 0 {
				cmp = "0 or more"
			}
			k.addf(f.path, "must be %s, got %s", cmp, formatDuration(f.d))
		}
	}
	if len(b.TickVectors) == 0 {
		k.addf("battery.tick_vectors", "no vectors: list at least one, or leave tick_vectors out for the runbook's two")
	}
	for i, v := range b.TickVectors {
		vp := fmt.Sprintf("battery.tick_vectors[%d]", i)
		if strings.TrimSpace(v.Symbol) == "" {
			k.addf(vp+".symbol", "must not be empty; it is the symbol sent to the service, like BTCUSDT")
		}
		for _, f := range []struct{ key, v string }{{"price", v.Price}, {"tick", v.Tick}, {"expected", v.Expected}} {
			if !decimal.MatchString(f.v) {
				k.addf(vp+"."+f.key, "expected a decimal like \"12345.68\" (quote it to keep every digit), got %s", strconv.Quote(f.v))
			}
		}
	}
	if b.BurstRequests < 2 {
		k.addf("battery.burst_requests", "must be at least 2 (one request to succeed, the rest to conflict), got %d", b.BurstRequests)
	}
	if b.FloodRequests < 1 {
		k.addf("battery.flood_requests", "must be at least 1, got %d", b.FloodRequests)
	}
	if b.Parallel < 1 {
		k.addf("battery.parallel", "must be at least 1, got %d", b.Parallel)
	}
	for _, name := range sortedKeys(b.Headers) {
		hp := "battery.headers." + name
		switch strings.ToLower(name) {
		case "authorization", "proxy-authorization", "cookie", "x-api-key":
			k.addf(hp, "credentials are secrets and never go in canary.yaml; send the battery to an endpoint that needs none")
			continue
		}
		if name == "" || strings.ContainsAny(name, " :\t\r\n") {
			k.addf(hp, "%s is not a header name", strconv.Quote(name))
		}
		if looksSecret(b.Headers[name]) {
			k.addf(hp, "looks like a token: secrets never go in canary.yaml")
		}
	}
}

func (k *checker) greenButton(g GreenButton) {
	seen := map[string]int{}
	for i, name := range g.ExpectedArtifacts {
		ap := fmt.Sprintf("green_button.expected_artifacts[%d]", i)
		switch j, dup := seen[name]; {
		case name == "" || !filepath.IsLocal(name):
			k.addf(ap, "expected a file name inside artifacts_dir like canarybot-linux-amd64, got %s", strconv.Quote(name))
		case dup:
			k.addf(ap, "%s is already expected_artifacts[%d]; list each artifact once", name, j)
		default:
			seen[name] = i
		}
	}
	if !slices.Contains(lgplPolicies(), g.LGPL) {
		k.addf("green_button.lgpl", "expected one of: %s, got %s", strings.Join(lgplPolicies(), ", "), strconv.Quote(g.LGPL))
	}
	if !slices.Contains(VulnSeverities(), g.VulnFailOn) {
		k.addf("green_button.vuln_fail_on", "expected one of: %s, got %s", strings.Join(VulnSeverities(), ", "), strconv.Quote(g.VulnFailOn))
	}
	k.envName("green_button.key_env", g.KeyEnv, "the environment variable holding the signing key's PEM text, like CANARYBOT_SIGNING_KEY")
	for _, f := range []struct{ path, v string }{
		{"green_button.artifacts_dir", g.ArtifactsDir},
		{"green_button.previous_sbom", g.PreviousSBOM},
		{"green_button.exceptions", g.Exceptions},
		{"green_button.vuln_db", g.VulnDB},
	} {
		if looksSecret(f.v) {
			k.addf(f.path, "looks like a secret, which never goes in canary.yaml; give a file path")
		}
	}
}

func (k *checker) github(g GitHub) {
	switch {
	case g.Repository == "":
	case looksSecret(g.Repository):
		k.addf("github.repository", "looks like a token: secrets never go in canary.yaml; set GITHUB_TOKEN in the environment and the repository here as owner/name")
	case !repository.MatchString(g.Repository):
		k.addf("github.repository", "expected owner/name like acme/exchange, got %s", strconv.Quote(g.Repository))
	}
	k.httpBase("github.api_url", g.APIURL, "https://api.github.com or https://ghe.example.com/api/v3")
	switch {
	case strings.TrimSpace(g.Freeze.Label) == "":
		k.addf("github.freeze.label", "must not be empty; it is the label put on frozen PRs, like %s", DefaultFreezeLabel)
	case looksSecret(g.Freeze.Label):
		k.addf("github.freeze.label", "looks like a token: secrets never go in canary.yaml")
	case len(g.Freeze.Label) > 50:
		k.addf("github.freeze.label", "is %d characters; GitHub allows 50", len(g.Freeze.Label))
	}
	if !slices.Contains(freezeModes(), g.Freeze.Mode) {
		k.addf("github.freeze.mode", "expected one of: %s, got %s", strings.Join(freezeModes(), ", "), strconv.Quote(g.Freeze.Mode))
	}
}

func (e *encoder) preflight(p Preflight) *yaml.Node {
	checks := seq()
	for i, c := range p.Checks {
		checks.Content = append(checks.Content, e.check(fmt.Sprintf("preflight.checks[%d]", i), c))
	}
	return pairs("budget", durationNode(p.Budget), "checks", checks)
}

// check writes the fields a check sets: what it reads before the bound.
func (e *encoder) check(path string, c preflight.Check) *yaml.Node {
	kv := []any{"name", e.str(path+".name", c.Name), "kind", e.str(path+".kind", c.Kind)}
	str := func(key, v string) {
		if v != "" {
			kv = append(kv, key, e.str(path+"."+key, v))
		}
	}
	dur := func(key string, d time.Duration) {
		if d != 0 {
			kv = append(kv, key, durationNode(d))
		}
	}
	str("url", c.URL)
	if c.Status != 0 {
		kv = append(kv, "status", intNode(c.Status))
	}
	if len(c.Headers) > 0 {
		h := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		names := make([]string, 0, len(c.Headers))
		for name := range c.Headers {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			hp := path + ".headers." + name
			h.Content = append(h.Content, e.str(hp, name), e.strSeq(hp, c.Headers[name]))
		}
		kv = append(kv, "headers", h)
	}
	str("body", c.Body)
	dur("max_latency", c.MaxLatency)
	str("query", c.Query)
	str("sql", c.SQL)
	str("dsn_env", c.DSNEnv)
	str("column", c.Column)
	str("op", c.Op)
	if c.Value != nil {
		kv = append(kv, "value", floatNode(*c.Value))
	}
	str("dir", c.Dir)
	if len(c.Argv) > 0 {
		kv = append(kv, "argv", e.strSeq(path+".argv", c.Argv))
	}
	dur("timeout", c.Timeout)
	str("namespace", c.Namespace)
	str("deployment", c.Deployment)
	str("ingress", c.Ingress)
	if c.MinReady != 0 {
		kv = append(kv, "min_ready", intNode(c.MinReady))
	}
	str("evidence", c.Evidence)
	return pairs(kv...)
}

func (e *encoder) strSeq(path string, ss []string) *yaml.Node {
	n := flow(seq())
	for i, s := range ss {
		n.Content = append(n.Content, e.str(fmt.Sprintf("%s[%d]", path, i), s))
	}
	return n
}

func (e *encoder) battery(b Battery) *yaml.Node {
	vectors := seq()
	for i, v := range b.TickVectors {
		vp := fmt.Sprintf("battery.tick_vectors[%d]", i)
		vectors.Content = append(vectors.Content, flow(pairs(
			"symbol", e.str(vp+".symbol", v.Symbol), "price", e.str(vp+".price", v.Price),
			"tick", e.str(vp+".tick", v.Tick), "expected", e.str(vp+".expected", v.Expected))))
	}
	headers := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, name := range sortedKeys(b.Headers) {
		headers.Content = append(headers.Content, e.str("battery.headers", name), e.str("battery.headers."+name, b.Headers[name]))
	}
	return pairs(
		"base", e.str("battery.base", b.Base),
		"previous_sbom", e.str("battery.previous_sbom", b.PreviousSBOM),
		"dsn_env", e.str("battery.dsn_env", b.DSNEnv),
		"outbox", pairs(
			"query", e.str("battery.outbox.query", b.Outbox.Query),
			"max_lag", durationNode(b.Outbox.MaxLag),
			"max_skew", durationNode(b.Outbox.MaxSkew),
			"timeout", durationNode(b.Outbox.Timeout)),
		"tick_vectors", vectors,
		"burst_requests", intNode(b.BurstRequests),
		"flood_requests", intNode(b.FloodRequests),
		"parallel", intNode(b.Parallel),
		"timeout", durationNode(b.Timeout),
		"headers", headers,
	)
}

func (e *encoder) greenButton(g GreenButton) *yaml.Node {
	return pairs(
		"expected_artifacts", e.strSeq("green_button.expected_artifacts", g.ExpectedArtifacts),
		"artifacts_dir", e.str("green_button.artifacts_dir", g.ArtifactsDir),
		"previous_sbom", e.str("green_button.previous_sbom", g.PreviousSBOM),
		"exceptions", e.str("green_button.exceptions", g.Exceptions),
		"lgpl", e.str("green_button.lgpl", g.LGPL),
		"vuln_db", e.str("green_button.vuln_db", g.VulnDB),
		"vuln_fail_on", e.str("green_button.vuln_fail_on", g.VulnFailOn),
		"require_key", boolNode(g.RequireKey),
		"key_env", e.str("green_button.key_env", g.KeyEnv),
	)
}

func (e *encoder) github(g GitHub) *yaml.Node {
	return pairs(
		"repository", e.str("github.repository", g.Repository),
		"api_url", e.str("github.api_url", g.APIURL),
		"freeze", pairs(
			"label", e.str("github.freeze.label", g.Freeze.Label),
			"mode", e.str("github.freeze.mode", g.Freeze.Mode)),
	)
}
