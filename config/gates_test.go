package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/preflight"
)

func TestGateSectionsValid(t *testing.T) {
	c, err := Load("testdata/gates/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	one := 1.0
	wantPreflight := Preflight{Budget: 45 * time.Second, Checks: []preflight.Check{
		{Name: "canary_health", Kind: preflight.KindHTTP, URL: "/healthz", Status: 204,
			Headers: map[string][]string{"Content-Security-Policy": {"default-src", "script-src"}, "X-Request-Id": nil},
			Body:    "^ok", MaxLatency: 500 * time.Millisecond, Evidence: "health_{version}.txt"},
		{Name: "targets_up", Kind: preflight.KindPromQL, Query: `min(up{job="spark"})`, Op: ">=", Value: &one},
		{Name: "tag", Kind: preflight.KindGit, Dir: "../release"},
		{Name: "smoke", Kind: preflight.KindCommand, Argv: []string{"./scripts/smoke.sh", "--quick"}, Timeout: 20 * time.Second},
		{Name: "pending_migrations", Kind: preflight.KindPostgres, DSNEnv: "ORDERS_DATABASE_URL",
			SQL: "SELECT migration_name\nFROM _prisma_migrations\nWHERE finished_at IS NULL\n"},
		{Name: "canary_ready", Kind: preflight.KindKubernetes, Namespace: "spark", Deployment: "spark-canary", Ingress: "spark-canary"},
	}}
	if !reflect.DeepEqual(c.Preflight, wantPreflight) {
		t.Errorf("preflight = %+v\nwant %+v", c.Preflight, wantPreflight)
	}
	wantBattery := Battery{
		Base: "http://127.0.0.1:4001", PreviousSBOM: "sboms/sbom_v1.3.0.json", DSNEnv: "OUTBOX_DSN",
		// The query was not given: the default stays.
		Outbox:        BatteryOutbox{Query: DefaultOutboxQuery, MaxLag: 5 * time.Second, MaxSkew: 500 * time.Millisecond, Timeout: 3 * time.Second},
		TickVectors:   []TickVector{{"ETHUSDT", "2500.123", "0.01", "2500.12"}},
		BurstRequests: 20, FloodRequests: 30, Parallel: 5, Timeout: 2 * time.Second,
		Headers: map[string]string{"X-Canary": "always"},
	}
	if !reflect.DeepEqual(c.Battery, wantBattery) {
		t.Errorf("battery = %+v\nwant %+v", c.Battery, wantBattery)
	}
	wantGB := GreenButton{ExpectedArtifacts: []string{"canarybot-linux-amd64", "canarybot-linux-arm64"}, ArtifactsDir: "dist",
		PreviousSBOM: "sboms/sbom_v1.3.0.json", Exceptions: "license-exceptions.yaml", LGPL: "fail",
		VulnDB: "/var/lib/grype-db", VulnFailOn: "critical", RequireKey: true, KeyEnv: "RELEASE_SIGNING_KEY"}
	if !reflect.DeepEqual(c.GreenButton, wantGB) {
		t.Errorf("green_button = %+v\nwant %+v", c.GreenButton, wantGB)
	}
	wantGH := GitHub{Repository: "acme/exchange", APIURL: "https://ghe.example.com/api/v3", Freeze: GitHubFreeze{Label: "frozen-for-release", Mode: "statuses"}}
	if !reflect.DeepEqual(c.GitHub, wantGH) {
		t.Errorf("github = %+v\nwant %+v", c.GitHub, wantGH)
	}
	// The rest stays the runbook's.
	d := DefaultConfig()
	c.Preflight, c.Battery, c.GreenButton, c.GitHub = d.Preflight, d.Battery, d.GreenButton, d.GitHub
	if !reflect.DeepEqual(c, d) {
		t.Error("the gate sections changed other settings")
	}
}

func TestGateSectionsDefault(t *testing.T) {
	c, err := Parse([]byte("preflight: {budget: 30s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Leaving checks out is the runbook's 10.
	if got := len(c.Preflight.Checks); got != 10 || !reflect.DeepEqual(c.Preflight.Checks, preflight.DefaultChecks()) {
		t.Errorf("checks = %d, want the runbook's 10", got)
	}
	if c.Preflight.Budget != 30*time.Second {
		t.Errorf("budget = %s", c.Preflight.Budget)
	}
	if c.GitHub.Freeze != (GitHubFreeze{Label: "hold-for-canary", Mode: "auto"}) || c.GreenButton.KeyEnv != "CANARYBOT_SIGNING_KEY" || c.Battery.DSNEnv != "DATABASE_URL" ||
		c.GreenButton.VulnDB != "" || c.GreenButton.VulnFailOn != "high" {
		t.Errorf("defaults: %+v %+v %+v", c.GitHub, c.GreenButton, c.Battery)
	}
}

func TestGateSectionsRoundTrip(t *testing.T) {
	for _, f := range []string{"testdata/gates/valid.yaml", ""} {
		c, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		out := string(roundTrip(t, c))
		for _, s := range []string{"preflight:\n", "battery:\n", "green_button:\n", "github:\n", "name: pgbouncer_pools", "max_skew:"} {
			if f == "" && !strings.Contains(out, s) {
				t.Errorf("Marshal of the defaults lacks %q:\n%s", s, out)
			}
		}
	}
}

func TestGateSectionsInvalid(t *testing.T) {
	data, err := os.ReadFile("testdata/gates/invalid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data)
	checkProblems(t, err, []want{
		{"preflight.budget", 2, "must be greater than 0"},
		{"preflight.checks[0].kind", 4, `got "htttp"; did you mean "http"?`},
		{"preflight.checks[1]", 5, "url is not a setting of kind promql"},
		{"preflight.checks[2].dsn", 6, `unknown key "dsn": secrets (tokens, keys, passwords, DSNs) never go in canary.yaml`},
		{"preflight.checks[3].dsn_env", 7, "this looks like the secret itself"},
		{"preflight.checks[4].name", 8, "missing; each entry needs name and kind"},
		{"battery.dsn_env", 10, `(letters, digits and _), got "my dsn"`},
		{"battery.tick_vectors[0].expected", 11, `expected a decimal like "12345.68"`},
		{"battery.burst_requests", 12, "must be at least 2"},
		{"battery.headers.Authorization", 13, "credentials are secrets"},
		{"battery.outbox.max_lag", 14, "must be greater than 0"},
		{"green_button.expected_artifacts[0]", 16, `got "../etc/passwd"`},
		{"green_button.expected_artifacts[2]", 16, "a is already expected_artifacts[1]"},
		{"green_button.lgpl", 17, `got "sometimes"`},
		{"green_button.key_env", 18, "this looks like the secret itself"},
		{"green_button.signing_key", 19, "put it in an environment variable (the key's PEM text) and name that variable with key_env"},
		{"green_button.vuln_fail_on", 20, `expected one of: negligible, low, medium, high, critical, none, got "severe"`},
		{"github.repository", 22, `expected owner/name like acme/exchange, got "acme"`},
		{"github.api_url", 23, "has a password or token in it"},
		{"github.token", 24, "put it in the environment: GITHUB_TOKEN"},
		{"github.freeze.label", 25, "must not be empty"},
		{"github.freeze.mode", 25, `did you mean "rulesets"?`},
	})
	// A secret given in the wrong place is never repeated back: the
	// message is printed, and logs keep it.
	for _, secret := range []string{"u:p@db", "ghs_abc", "ghp_abcdef", "BEGIN PRIVATE", "Bearer abc"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error repeats the secret %q:\n%v", secret, err)
		}
	}
}

func TestGateSectionsDuplicateChecks(t *testing.T) {
	_, err := Load("testdata/gates/duplicates.yaml")
	checkProblems(t, err, []want{{"preflight.checks", 3, "check name a is used twice"}})
	if !strings.Contains(err.Error(), `both write evidence "same.txt"`) {
		t.Errorf("err = %v, want the shared evidence file named too", err)
	}
}

// TestValidateGateSections checks configs built in code.
func TestValidateGateSections(t *testing.T) {
	nan := 0.0 / func() float64 { return 0 }()
	tests := []struct {
		name   string
		change func(c *Config)
		want   []want
	}{
		{"no checks", func(c *Config) { c.Preflight.Checks = nil }, []want{{"preflight.checks", 0, "leave checks out for the runbook's 10"}}},
		{"NaN bound", func(c *Config) { c.Preflight.Checks[3].Value = &nan }, []want{{"preflight.checks[3].value", 0, "must be a finite number"}}},
		{"credentials in a check's url", func(c *Config) { c.Preflight.Checks[1].URL = "https://bot:hunter2@canary.example.com/healthz" },
			[]want{{"preflight.checks[1].url", 0, "has a password in it"}}},
		{"no tick vectors", func(c *Config) { c.Battery.TickVectors = nil }, []want{{"battery.tick_vectors", 0, "no vectors"}}},
		{"battery base", func(c *Config) { c.Battery.Base = "127.0.0.1:4001" }, []want{{"battery.base", 0, "expected an absolute http(s) URL"}}},
		{"negative skew", func(c *Config) { c.Battery.Outbox.MaxSkew = -time.Second }, []want{{"battery.outbox.max_skew", 0, "must be 0 or more"}}},
		{"token as repository", func(c *Config) { c.GitHub.Repository = "ghp_0123456789abcdef" },
			[]want{{"github.repository", 0, "looks like a token"}}},
		{"empty key_env", func(c *Config) { c.GreenButton.KeyEnv = "" }, []want{{"green_button.key_env", 0, "letters, digits and _"}}},
		{"no vuln threshold", func(c *Config) { c.GreenButton.VulnFailOn = "" }, []want{{"green_button.vuln_fail_on", 0, `expected one of: negligible, low, medium, high, critical, none, got ""`}}},
		{"token as vuln_db", func(c *Config) { c.GreenButton.VulnDB = "ghp_0123456789abcdef" }, []want{{"green_button.vuln_db", 0, "looks like a secret"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			checkProblems(t, Validate(c), tt.want)
		})
	}
}

func TestSecretKeyOnlyForSecrets(t *testing.T) {
	for _, tt := range []struct {
		path, key string
		secret    bool
	}{
		{"github.token", "token", true},
		{"github.app_private_key", "app_private_key", true},
		{"github.webhook_secret", "webhook_secret", true},
		{"battery.dsn", "dsn", true},
		{"battery.database-dsn", "database-dsn", true},
		{"green_button.key", "key", true},
		{"slack.signing_secret", "signing_secret", true},
		{"github.repo", "repo", false},
		{"green_button.keys_dir", "keys_dir", false},
		{"preflight.checks[0].monkey", "monkey", false},
	} {
		if got := secretKey(tt.path, tt.key) != ""; got != tt.secret {
			t.Errorf("secretKey(%q) = %t, want %t", tt.key, got, tt.secret)
		}
	}
}
