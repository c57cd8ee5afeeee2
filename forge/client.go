// Package forge talks to GitHub for canarybot: a client built from the
// environment the way Actions sets it, a transport that waits out GitHub's
// rate limits instead of failing, and the merge freeze of the runbook.
//
// It is not named github so that it does not shadow go-github.
package forge

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"
)

// DefaultAPIURL is github.com's API; any other GITHUB_API_URL is treated as
// GitHub Enterprise (or a local test server).
const DefaultAPIURL = "https://api.github.com"

// The environment variables read by ConfigFromEnv, named as Actions sets them.
const (
	EnvToken          = "GITHUB_TOKEN"
	EnvAppID          = "GITHUB_APP_ID"
	EnvAppKey         = "GITHUB_APP_PRIVATE_KEY"
	EnvAppKeyFile     = "GITHUB_APP_PRIVATE_KEY_FILE"
	EnvInstallationID = "GITHUB_INSTALLATION_ID"
	EnvAPIURL         = "GITHUB_API_URL"
	EnvRepository     = "GITHUB_REPOSITORY"
)

var (
	// ErrMissingSetting means a setting the client needs is not set; the
	// message names the variable.
	ErrMissingSetting = errors.New("missing GitHub setting")
	// ErrInvalidSetting means a setting is set but unusable; the message
	// names the variable and what was wrong.
	ErrInvalidSetting = errors.New("invalid GitHub setting")
)

// Config is how to reach one repository.
type Config struct {
	// APIURL is the REST API's base, e.g. https://api.github.com or
	// https://ghe.example.com/api/v3.
	APIURL      string
	Owner, Repo string

	// Either Token, or the App triple.
	Token          string
	AppID          int64
	InstallationID int64
	AppKey         []byte // PEM
}

// App reports whether the config authenticates as a GitHub App installation.
func (c Config) App() bool { return c.AppID != 0 }

// ConfigFromEnv reads the config from the environment through lookup
// (os.LookupEnv in production). Any App variable makes it an App config,
// even beside GITHUB_TOKEN: in Actions that token is always present, so the
// App variables are the explicit choice, and a partial App config is an
// error rather than a silent fall-back to the token.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	cfg := Config{APIURL: get(EnvAPIURL), Token: get(EnvToken)}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if u, err := url.Parse(cfg.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("%w: %s=%q is not an http(s) URL; use e.g. %s or https://ghe.example.com/api/v3", ErrInvalidSetting, EnvAPIURL, cfg.APIURL, DefaultAPIURL)
	}

	repo := get(EnvRepository)
	if repo == "" {
		return cfg, fmt.Errorf("%w: %s is not set; set it to owner/name", ErrMissingSetting, EnvRepository)
	}
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return cfg, fmt.Errorf("%w: %s=%q is not owner/name", ErrInvalidSetting, EnvRepository, repo)
	}
	cfg.Owner, cfg.Repo = owner, name

	appID, instID := get(EnvAppID), get(EnvInstallationID)
	key, keyFile := get(EnvAppKey), get(EnvAppKeyFile)
	anyApp := appID != "" || instID != "" || key != "" || keyFile != ""
	if cfg.Token != "" && !anyApp {
		return cfg, nil
	}
	if !anyApp {
		return cfg, fmt.Errorf("%w: neither %s nor a GitHub App (%s, %s or %s, %s) is set", ErrMissingSetting, EnvToken, EnvAppID, EnvAppKey, EnvAppKeyFile, EnvInstallationID)
	}
	var err error
	if cfg.AppID, err = positiveID(EnvAppID, appID); err != nil {
		return cfg, err
	}
	if cfg.InstallationID, err = positiveID(EnvInstallationID, instID); err != nil {
		return cfg, err
	}
	switch {
	case key != "" && keyFile != "":
		return cfg, fmt.Errorf("%w: both %s and %s are set; set one", ErrInvalidSetting, EnvAppKey, EnvAppKeyFile)
	case key != "":
		// Secrets stored through some UIs arrive with literal \n.
		cfg.AppKey = []byte(strings.ReplaceAll(key, `\n`, "\n"))
	case keyFile != "":
		if cfg.AppKey, err = os.ReadFile(keyFile); err != nil {
			return cfg, fmt.Errorf("%w: %s: %w", ErrInvalidSetting, EnvAppKeyFile, err)
		}
	default:
		return cfg, fmt.Errorf("%w: %s or %s is not set (the App's private key, PEM)", ErrMissingSetting, EnvAppKey, EnvAppKeyFile)
	}
	if !strings.Contains(string(cfg.AppKey), "-----BEGIN") {
		return cfg, fmt.Errorf("%w: the App private key is not PEM text (expected -----BEGIN … PRIVATE KEY-----)", ErrInvalidSetting)
	}
	if cfg.Token != "" {
		// Both: the App is explicit, the token may be Actions' default one.
		cfg.Token = ""
	}
	return cfg, nil
}

func positiveID(name, v string) (int64, error) {
	if v == "" {
		return 0, fmt.Errorf("%w: %s is not set", ErrMissingSetting, name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: %s=%q is not a positive number", ErrInvalidSetting, name, v)
	}
	return n, nil
}

// NewClient builds a go-github client for cfg whose requests go through a
// Transport with opts over base (http.DefaultTransport when nil).
func NewClient(cfg Config, base http.RoundTripper, opts TransportOptions) (*github.Client, error) {
	if base == nil {
		base = defaultBase()
	}
	rt, err := NewTransport(base, opts)
	if err != nil {
		return nil, err
	}
	// The rate-limit transport sits under the auth so that the App's token
	// requests are paced and retried like every other call.
	build := func(tr http.RoundTripper) (*github.Client, error) {
		gh := github.NewClient(&http.Client{Transport: tr})
		if strings.TrimRight(cfg.APIURL, "/") == DefaultAPIURL {
			return gh, nil
		}
		gh, err := gh.WithEnterpriseURLs(cfg.APIURL, cfg.APIURL)
		if err != nil {
			return nil, fmt.Errorf("%w: %s=%q: %w", ErrInvalidSetting, EnvAPIURL, cfg.APIURL, err)
		}
		// WithEnterpriseURLs would put uploads under /api/v3/api/uploads/,
		// where no server answers.
		if err := SetUploadURL(gh, cfg.APIURL); err != nil {
			return nil, err
		}
		return gh, nil
	}
	switch {
	case cfg.App():
		itr, err := ghinstallation.New(rt, cfg.AppID, cfg.InstallationID, cfg.AppKey)
		if err != nil {
			return nil, fmt.Errorf("%w: GitHub App key: %w", ErrInvalidSetting, err)
		}
		gh, err := build(itr)
		if err != nil {
			return nil, err
		}
		// The client's base, not cfg.APIURL: WithEnterpriseURLs may have
		// added /api/v3/, and the token endpoint lives under the same root.
		itr.BaseURL = strings.TrimRight(gh.BaseURL.String(), "/")
		// Options, even empty, so that the token request's body is an
		// object: without them ghinstallation sends `null`, which GitHub's
		// OpenAPI description does not allow (the fake caught it). Scoped
		// to the one repository, so a leaked token reaches no other.
		itr.InstallationTokenOptions = &github.InstallationTokenOptions{Repositories: []string{cfg.Repo}}
		return gh, nil
	case cfg.Token != "":
		gh, err := build(rt)
		if err != nil {
			return nil, err
		}
		return gh.WithAuthToken(cfg.Token), nil
	}
	return nil, fmt.Errorf("%w: neither %s nor a GitHub App is configured", ErrMissingSetting, EnvToken)
}

func defaultBase() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// A hung response is a timeout the Transport retries, not a hung freeze.
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}
