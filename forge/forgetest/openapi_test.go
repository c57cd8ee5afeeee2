package forgetest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestMiddlewareCatchesViolations drives the validator with requests and
// responses that GitHub's description allows and ones it does not, and
// checks which are reported, with which operation and reason.
func TestMiddlewareCatchesViolations(t *testing.T) {
	spec := LoadSpec(t)
	for _, tc := range []struct {
		name           string
		method, path   string
		body           string
		respStatus     int
		respBody       string
		wantOp         string
		wantResponse   bool
		wantReason     string // "" means no violation
		wantReachFake  bool
		wantStatusSeen int
	}{
		{"a valid status", "POST", "/repos/a/b/statuses/abc", `{"state":"failure","context":"canary/freeze"}`,
			201, `{"url":"u","avatar_url":null,"id":1,"node_id":"n","state":"failure","description":null,"target_url":null,"context":"canary/freeze","created_at":"t","updated_at":"t","creator":null}`,
			"repos/create-commit-status", false, "", true, 201},
		{"a status with a state GitHub does not have", "POST", "/api/v3/repos/a/b/statuses/abc", `{"state":"frozen"}`,
			201, `{}`, "repos/create-commit-status", false, "state", false, 422},
		{"labels as a bare array (go-github's AddLabelsToIssue)", "POST", "/repos/a/b/issues/3/labels", `["hold-for-canary"]`,
			200, `[]`, "issues/add-labels", false, "request body", false, 422},
		{"labels in the documented object", "POST", "/repos/a/b/issues/3/labels", `{"labels":["hold-for-canary"]}`,
			200, `[]`, "issues/add-labels", false, "", true, 200},
		{"an issue number that is not a number", "POST", "/repos/a/b/issues/three/labels", `{"labels":["x"]}`,
			200, `[]`, "issues/add-labels", false, "issue_number", false, 422},
		{"a route GitHub does not have", "POST", "/repos/a/b/freeze", `{}`,
			200, `{}`, "", false, "no matching operation", false, 404},
		{"a label missing required fields", "GET", "/repos/a/b/labels/x", ``,
			200, `{"name":"x"}`, "issues/get-label", true, "property \"id\" is missing", true, 200},
		{"a status GitHub does not declare for the operation", "POST", "/repos/a/b/statuses/abc", `{"state":"success"}`,
			422, `{"message":"x","documentation_url":"d"}`, "repos/create-commit-status", true, "status 422", true, 422},
		{"a rate limit on any route", "GET", "/repos/a/b/pulls", ``,
			429, ``, "pulls/list", false, "", true, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []Violation
			reached := false
			h := spec.Middleware(func(v Violation) { mu.Lock(); got = append(got, v); mu.Unlock() },
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					reached = true
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tc.respStatus)
					io.WriteString(w, tc.respBody)
				}))
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if reached != tc.wantReachFake {
				t.Errorf("request reached the fake: %t, want %t", reached, tc.wantReachFake)
			}
			if rec.Code != tc.wantStatusSeen {
				t.Errorf("client saw %d, want %d", rec.Code, tc.wantStatusSeen)
			}
			if tc.wantReason == "" {
				if len(got) != 0 {
					t.Fatalf("violations %v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("violations %v, want one", got)
			}
			v := got[0]
			if v.Operation != tc.wantOp || v.Response != tc.wantResponse || !strings.Contains(v.Reason, tc.wantReason) {
				t.Errorf("violation %q (operation %q, response %t), want operation %q, response %t, reason containing %q",
					v, v.Operation, v.Response, tc.wantOp, tc.wantResponse, tc.wantReason)
			}
		})
	}
}

// TestFakeAnswersMatchTheDescription: the pull request the fake lists is
// GitHub's own example with the fake's values laid over it; it must still
// validate (the fake's test fails through the middleware otherwise).
func TestFakeAnswersMatchTheDescription(t *testing.T) {
	f := New(t, "acme", "exchange", 3)
	f.LabelPR(2, "needs-review")
	req, _ := http.NewRequest("GET", f.URL+"/repos/acme/exchange/pulls?state=open&per_page=2", nil)
	req.Header.Set("Authorization", "token x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"sha":"`+SHA(2)+`"`) || !strings.Contains(string(body), "needs-review") {
		t.Fatalf("%d %.300s", resp.StatusCode, body)
	}
	if !strings.Contains(resp.Header.Get("Link"), `rel="next"`) {
		t.Errorf("Link %q, want a next page", resp.Header.Get("Link"))
	}
}
