package forge_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr error
		naming  string // the variable the error must name
		check   func(forge.Config) bool
	}{
		{"token", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme/x"}, nil, "",
			func(c forge.Config) bool {
				return c.Token == "t" && c.Owner == "acme" && c.Repo == "x" && c.APIURL == forge.DefaultAPIURL
			}},
		{"enterprise URL", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme/x", "GITHUB_API_URL": "https://ghe.example.com/api/v3"}, nil, "",
			func(c forge.Config) bool { return c.APIURL == "https://ghe.example.com/api/v3" }},
		{"app wins over Actions' token", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme/x", "GITHUB_APP_ID": "12", "GITHUB_INSTALLATION_ID": "34", "GITHUB_APP_PRIVATE_KEY": `-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----`}, nil, "",
			func(c forge.Config) bool {
				return c.App() && c.Token == "" && c.AppID == 12 && c.InstallationID == 34 && strings.Count(string(c.AppKey), "\n") == 2
			}},
		{"no repository", map[string]string{"GITHUB_TOKEN": "t"}, forge.ErrMissingSetting, "GITHUB_REPOSITORY", nil},
		{"bad repository", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme"}, forge.ErrInvalidSetting, "GITHUB_REPOSITORY", nil},
		{"no credentials", map[string]string{"GITHUB_REPOSITORY": "acme/x"}, forge.ErrMissingSetting, "GITHUB_TOKEN", nil},
		{"app without installation", map[string]string{"GITHUB_REPOSITORY": "acme/x", "GITHUB_APP_ID": "12", "GITHUB_APP_PRIVATE_KEY": "-----BEGIN"}, forge.ErrMissingSetting, "GITHUB_INSTALLATION_ID", nil},
		{"app id not a number", map[string]string{"GITHUB_REPOSITORY": "acme/x", "GITHUB_APP_ID": "twelve", "GITHUB_INSTALLATION_ID": "1", "GITHUB_APP_PRIVATE_KEY": "-----BEGIN"}, forge.ErrInvalidSetting, "GITHUB_APP_ID", nil},
		{"app without key", map[string]string{"GITHUB_REPOSITORY": "acme/x", "GITHUB_APP_ID": "12", "GITHUB_INSTALLATION_ID": "1"}, forge.ErrMissingSetting, "GITHUB_APP_PRIVATE_KEY", nil},
		{"key file missing", map[string]string{"GITHUB_REPOSITORY": "acme/x", "GITHUB_APP_ID": "12", "GITHUB_INSTALLATION_ID": "1", "GITHUB_APP_PRIVATE_KEY_FILE": "/nonexistent/key.pem"}, forge.ErrInvalidSetting, "GITHUB_APP_PRIVATE_KEY_FILE", nil},
		{"bad API URL", map[string]string{"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "acme/x", "GITHUB_API_URL": "ghe.example.com"}, forge.ErrInvalidSetting, "GITHUB_API_URL", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := forge.ConfigFromEnv(env(tc.env))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.naming) {
					t.Fatalf("error %v, want %v naming %s", err, tc.wantErr, tc.naming)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestAppAuth(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	fake := forgetest.New(t, "acme", "exchange", 3)
	cfg, err := forge.ConfigFromEnv(env(map[string]string{
		"GITHUB_REPOSITORY": "acme/exchange", "GITHUB_API_URL": fake.Server.URL,
		"GITHUB_APP_ID": "12", "GITHUB_INSTALLATION_ID": "34", "GITHUB_APP_PRIVATE_KEY": string(pemKey),
	}))
	if err != nil {
		t.Fatal(err)
	}
	var s sleeps
	c, err := forge.NewClient(cfg, nil, fastOptions(&s, &forge.Metrics{}))
	if err != nil {
		t.Fatal(err)
	}
	f := newFreeze(t, fake, c, filepath.Join(t.TempDir(), "f.json"))
	if _, err := f.Start(context.Background(), "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	if got := fake.Applied()["token 34"]; got != 1 {
		t.Errorf("installation token minted %d times, want 1 (it is cached)", got)
	}
	auth := fake.Auth()
	if !strings.HasPrefix(auth[0], "Bearer ") {
		t.Errorf("token request authorised with %q, want the App's JWT", auth[0])
	}
	if auth[len(auth)-1] != "token ghs_fake34" {
		t.Errorf("API call authorised with %q, want the installation token", auth[len(auth)-1])
	}

	cfg.AppKey = []byte("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n")
	if _, err := forge.NewClient(cfg, nil, forge.DefaultTransportOptions()); !errors.Is(err, forge.ErrInvalidSetting) {
		t.Errorf("bad key: %v, want ErrInvalidSetting", err)
	}
}

func TestTransportWaits(t *testing.T) {
	reset := time.Now().Add(90 * time.Second).Truncate(time.Second)
	for _, tc := range []struct {
		name    string
		replies []forgetest.Reply
		// waits the Transport must ask for, in order (rounded to the second).
		want    []time.Duration
		metrics func(*forge.Metrics) int64
	}{
		{"429 without Retry-After waits a minute, then two",
			[]forgetest.Reply{{Status: 429, Body: `{"message":"slow down"}`}, {Status: 429}},
			[]time.Duration{time.Minute, 2 * time.Minute}, func(m *forge.Metrics) int64 { return m.Secondary.Load() }},
		{"403 secondary limit with Retry-After",
			[]forgetest.Reply{{Status: 403, Header: map[string]string{"Retry-After": "7"}, Body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`}},
			[]time.Duration{7 * time.Second}, func(m *forge.Metrics) int64 { return m.Secondary.Load() }},
		{"403 primary limit waits until the reset",
			[]forgetest.Reply{{Status: 403, Header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": fmt.Sprint(reset.Unix())}, Body: `{"message":"API rate limit exceeded"}`}},
			[]time.Duration{91 * time.Second}, func(m *forge.Metrics) int64 { return m.Primary.Load() }},
		{"5xx backs off exponentially",
			[]forgetest.Reply{{Status: 502}, {Status: 503}, {Status: 500}},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, func(m *forge.Metrics) int64 { return m.Server.Load() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := forgetest.New(t, "acme", "exchange", 2)
			fake.Reply(tc.replies...)
			var s sleeps
			m := &forge.Metrics{}
			o := fastOptions(&s, m)
			o.Now = func() time.Time { return reset.Add(-90 * time.Second) }
			f := newFreeze(t, fake, tokenClient(t, fake, o), filepath.Join(t.TempDir(), "f.json"))
			if _, err := f.Start(context.Background(), "v1.4.0"); err != nil {
				t.Fatal(err)
			}
			got := s.all()
			for i := range got {
				got[i] = got[i].Round(time.Second)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("waits %v, want %v", got, tc.want)
			}
			if n := tc.metrics(m); n != int64(len(tc.want)) {
				t.Errorf("counted %d waits, want %d", n, len(tc.want))
			}
			exactlyOnce(t, fake, 2, "failure")
		})
	}
}

func TestTransportGivesUpAndKeepsPlain403(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 1)
	fake.Reply(forgetest.Reply{Status: 403, Body: `{"message":"Resource not accessible by integration"}`})
	var s sleeps
	m := &forge.Metrics{}
	f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, m)), filepath.Join(t.TempDir(), "f.json"))
	if _, err := f.Start(context.Background(), "v1.4.0"); err == nil || !strings.Contains(err.Error(), "not accessible") {
		t.Fatalf("a permission 403: %v, want it returned as is", err)
	}
	if len(s.all()) != 0 {
		t.Errorf("waited %v on a permission 403", s.all())
	}

	replies := make([]forgetest.Reply, 10)
	for i := range replies {
		replies[i] = forgetest.Reply{Status: 502}
	}
	fake.Reply(replies...)
	if _, err := f.Start(context.Background(), "v1.4.0"); err == nil {
		t.Fatal("six 502s in a row: no error")
	}
	if m.GaveUp.Load() != 1 || m.Server.Load() != 5 {
		t.Errorf("gave up %d times after %d waits; want 1 after 5 (MaxAttempts 6)", m.GaveUp.Load(), m.Server.Load())
	}
}

func TestTransportPacesWrites(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 3)
	var s sleeps
	o := fastOptions(&s, &forge.Metrics{})
	o.WriteInterval = time.Second
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	// Each request takes no time on this clock, so every write after the
	// first waits the whole interval.
	o.Now = func() time.Time { return now }
	f := newFreeze(t, fake, tokenClient(t, fake, o), filepath.Join(t.TempDir(), "f.json"))
	if _, err := f.Start(context.Background(), "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	writes := 1 + 3*2 // label, then a label and a status per PR
	if got := len(s.all()); got != writes-1 {
		t.Errorf("%d pacing waits for %d writes, want %d", got, writes, writes-1)
	}
	for _, d := range s.all() {
		if d != time.Second {
			t.Errorf("pacing wait %v, want 1s", d)
		}
	}
}
