package forge_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/forge"
	"github.com/canarybot/canarybot/forge/forgetest"
)

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func deliver(t *testing.T, h http.Handler, event, body, signature string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/github/webhook", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", "d-1")
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// prPayload is testdata/pull_request_opened.json (a pull_request event as
// GitHub delivers it, trimmed) with the action, number, head and labels set.
func prPayload(t *testing.T, action string, n int, sha string, labels ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "pull_request_opened.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ls []string
	for _, l := range labels {
		ls = append(ls, fmt.Sprintf(`{"name":%q}`, l))
	}
	return strings.NewReplacer(`"action": "opened"`, fmt.Sprintf(`"action": %q`, action),
		`"number": 7`, fmt.Sprintf(`"number": %d`, n),
		`"sha": "HEAD"`, fmt.Sprintf(`"sha": %q`, sha),
		`"labels": []`, `"labels": [`+strings.Join(ls, ",")+`]`).Replace(string(data))
}

// TestWebhookSignature: GitHub's documented example verifies; anything else
// is 401 and changes nothing.
func TestWebhookSignature(t *testing.T) {
	const secret = "It's a Secret to Everybody"
	const example = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	fake := forgetest.New(t, "acme", "exchange", 3)
	var s sleeps
	f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json"))
	if _, err := f.Start(context.Background(), "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	h, err := forge.NewWebhookHandler([]byte(secret), f, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forge.NewWebhookHandler(nil, f, nil); err == nil {
		t.Error("a webhook handler without a secret was built")
	}

	if rec := deliver(t, h, "ping", "Hello, World!", example); rec.Code != http.StatusOK {
		t.Errorf("GitHub's example: %d %s", rec.Code, rec.Body)
	}
	// The example verifies but is no pull_request payload.
	if rec := deliver(t, h, "pull_request", "Hello, World!", example); rec.Code != http.StatusBadRequest {
		t.Errorf("example body as a pull_request: %d %s, want 400", rec.Code, rec.Body)
	}

	before := fake.TotalCalls()
	body := prPayload(t, "opened", 3, forgetest.SHA(3))
	for _, tc := range []struct{ name, sig string }{
		{"no signature", ""},
		{"wrong secret", sign("not the secret", body)},
		{"example signature on another body", example},
		{"SHA-1 header name with a SHA-256 value", strings.Replace(sign(secret, body), "sha256", "sha1", 1)},
		{"truncated", sign(secret, body)[:40]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := deliver(t, h, "pull_request", body, tc.sig); rec.Code != http.StatusUnauthorized {
				t.Errorf("%d %s, want 401", rec.Code, rec.Body)
			}
		})
	}
	if after := fake.TotalCalls(); after != before {
		t.Errorf("unverified deliveries made %d GitHub calls", after-before)
	}
	if rec := deliver(t, h, "pull_request", body, sign(secret, body)); rec.Code != http.StatusOK {
		t.Errorf("signed delivery: %d %s", rec.Code, rec.Body)
	}
}

// TestWebhookWhileFrozen: opened, pushed and reopened PRs join the freeze;
// a redelivery repeats no call; after the lift, with ReportThawed, a PR's
// head gets success.
func TestWebhookWhileFrozen(t *testing.T) {
	const secret = "s3cret"
	for _, mode := range []string{forge.ModeStatuses, forge.ModeRulesets} {
		t.Run(mode, func(t *testing.T) {
			fake := forgetest.New(t, "acme", "exchange", 2)
			var s sleeps
			f := newFreeze(t, fake, tokenClient(t, fake, fastOptions(&s, &forge.Metrics{})), filepath.Join(t.TempDir(), "f.json"))
			f.Mode, f.ReportThawed = mode, true
			ctx := context.Background()
			if _, err := f.Start(ctx, "v1.4.0"); err != nil {
				t.Fatal(err)
			}
			h, err := forge.NewWebhookHandler([]byte(secret), f, nil)
			if err != nil {
				t.Fatal(err)
			}
			send := func(action string, n int, sha string, labels ...string) string {
				body := prPayload(t, action, n, sha, labels...)
				rec := deliver(t, h, "pull_request", body, sign(secret, body))
				if rec.Code != http.StatusOK {
					t.Fatalf("%s #%d: %d %s", action, n, rec.Code, rec.Body)
				}
				return rec.Body.String()
			}
			failing := 0
			if mode == forge.ModeStatuses {
				failing = 1
			}

			pr := fake.OpenPR()
			send("opened", pr.Number, pr.SHA)
			a := fake.Applied()
			if a[fmt.Sprintf("label+ #%d", pr.Number)] != 1 || a["status failure "+pr.SHA] != failing {
				t.Errorf("opened: applied %v", a)
			}
			calls := fake.TotalCalls()
			send("opened", pr.Number, pr.SHA) // GitHub redelivers
			if fake.TotalCalls() != calls {
				t.Errorf("a redelivery made %d calls", fake.TotalCalls()-calls)
			}

			head := fake.PushPR(pr.Number)
			out := send("synchronize", pr.Number, head, "hold-for-canary")
			a = fake.Applied()
			if a[fmt.Sprintf("label+ #%d", pr.Number)] != 1 || a["status failure "+head] != failing {
				t.Errorf("synchronize: %s; applied %v", out, a)
			}
			send("closed", pr.Number, head) // ignored
			send("labeled", pr.Number, head)

			sum, err := f.Lift(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if sum.ViaWebhook != 1 || len(fake.PRLabels(pr.Number)) != 0 {
				t.Errorf("lift: %+v; labels %v", sum, fake.PRLabels(pr.Number))
			}
			if mode == forge.ModeStatuses && fake.Applied()["status success "+head] != 1 {
				t.Errorf("lift set no success on the pushed head")
			}

			// Thawed: a push gets success, so a required check reports.
			head = fake.PushPR(pr.Number)
			if out := send("synchronize", pr.Number, head); !strings.Contains(out, "no freeze in force") {
				t.Errorf("thawed: %s", out)
			}
			if fake.Applied()["status success "+head] != 1 {
				t.Errorf("thawed push: no success status")
			}
		})
	}
}

// TestSyncByBeacon: `freeze sync` on a workflow's runner has no progress
// file; it reads from the label's description whether a freeze is in force.
func TestSyncByBeacon(t *testing.T) {
	fake := forgetest.New(t, "acme", "exchange", 2)
	var s sleeps
	c := tokenClient(t, fake, fastOptions(&s, &forge.Metrics{}))
	f := newFreeze(t, fake, c, filepath.Join(t.TempDir(), "f.json"))
	ctx := context.Background()
	if _, err := f.Start(ctx, "v1.4.0"); err != nil {
		t.Fatal(err)
	}
	runner := newFreeze(t, fake, c, filepath.Join(t.TempDir(), "absent.json"))
	runner.Beacon, runner.ReportThawed = true, true
	pr := fake.OpenPR()
	ev, err := forge.ParsePREvent([]byte(prPayload(t, "opened", pr.Number, pr.SHA)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := runner.OnPullRequest(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Frozen || res.Version != "v1.4.0" || res.Mode != forge.ModeStatuses || !res.Labelled || res.Status != "failure" {
		t.Errorf("sync while frozen: %+v", res)
	}
	// Another PR opened during the freeze, labelled by a person: the freeze
	// has seen neither, and only the label's history tells them apart.
	person := fake.OpenPR()
	fake.LabelAsPerson(person.Number, "hold-for-canary")
	if _, err := f.Lift(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fake.PRLabels(pr.Number); slices.Contains(got, "hold-for-canary") {
		t.Errorf("#%d labelled by sync on a runner kept its label after the lift: %v", pr.Number, got)
	}
	if got := fake.PRLabels(person.Number); !slices.Contains(got, "hold-for-canary") {
		t.Errorf("#%d labelled by a person lost its label at the lift: %v", person.Number, got)
	}
	res, err = runner.OnPullRequest(ctx, ev)
	if err != nil || res.Frozen || res.Status != "success" {
		t.Errorf("sync after the lift: %+v, %v", res, err)
	}
	if _, err := forge.ParsePREvent([]byte(`{"zen":"Keep it logically awesome."}`)); err == nil {
		t.Error("a ping payload parsed as a pull_request event")
	}
}
