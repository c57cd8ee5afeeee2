package forgetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// EnvSpec names GitHub's OpenAPI description (generated/api.github.com.json
// of the npm package @octokit/openapi). When it is unset the tests ask
// scripts/openapi.sh --check, which knows where `make deps` installed it.
const EnvSpec = "CANARYBOT_GITHUB_OPENAPI"

// Spec is GitHub's REST API description, loaded and routed.
type Spec struct {
	Path   string
	doc    *openapi3.T
	router routers.Router
}

// loadSpec loads the 13 MB description once per test binary (about 3 s):
// every Fake of every test shares it. The document and router are only read
// after loading.
var loadSpec = sync.OnceValues(func() (*Spec, error) {
	path, err := specPath()
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading GitHub's OpenAPI description %s: %w", path, err)
	}
	// The servers entry is https://api.github.com; the fake runs on
	// 127.0.0.1 under / and under GitHub Enterprise's /api/v3 (stripped
	// before routing), so routes must match any host.
	doc.Servers = nil
	// Not doc.Validate: the description fails kin-openapi's whole-document
	// check on things no route of ours touches (examples that do not match
	// their schemas, e.g. actions-hosted-runner's numeric "20.04" for a
	// string; /orgs/{org}/attestations/{subject_digest} and
	// /{attestation_id} differing only by parameter name). Routing and
	// per-operation validation do not depend on it.
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("routing GitHub's OpenAPI description %s: %w", path, err)
	}
	return &Spec{Path: path, doc: doc, router: router}, nil
})

// LoadSpec returns GitHub's OpenAPI description, failing the test (never
// skipping it) when it is not installed.
func LoadSpec(tb testing.TB) *Spec {
	tb.Helper()
	s, err := loadSpec()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func specPath() (string, error) {
	if p := strings.TrimSpace(os.Getenv(EnvSpec)); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w; run scripts/openapi.sh to install it and point %s at the path it prints", EnvSpec, p, err, EnvSpec)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("GitHub's OpenAPI description: %s is not set and %w", EnvSpec, err)
	}
	script := filepath.Join(root, "scripts", "openapi.sh")
	// --check never downloads: tests stay off the network.
	out, err := exec.Command(script, "--check").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = strings.TrimSpace(string(ee.Stderr))
		}
		return "", fmt.Errorf("GitHub's OpenAPI description is not installed (%s --check: %w: %s); run `make deps` or scripts/openapi.sh (needs npm), or set %s", script, err, stderr, EnvSpec)
	}
	return strings.TrimSpace(string(out)), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory to find scripts/openapi.sh from")
		}
		dir = parent
	}
}

// Violation is a request or response of the fake that GitHub's description
// does not allow.
type Violation struct {
	Method, Path string
	// Operation is GitHub's operationId, e.g. "repos/create-commit-status";
	// empty when no operation matched.
	Operation string
	// Response is false for a request violation.
	Response bool
	Status   int
	Reason   string
}

func (v Violation) String() string {
	what := "request"
	if v.Response {
		what = fmt.Sprintf("response %d", v.Status)
	}
	op := v.Operation
	if op == "" {
		op = "no operation"
	}
	return fmt.Sprintf("%s %s (%s): %s does not match GitHub's OpenAPI description: %s", v.Method, v.Path, op, what, v.Reason)
}

// anyEndpoint are statuses GitHub may answer on any route whether or not
// the operation declares them: authentication (401), rate limits (403,
// 429) and server trouble (5xx). Their bodies are checked only where the
// operation declares the status.
var anyEndpoint = map[int]bool{401: true, 403: true, 429: true, 500: true, 502: true, 503: true, 504: true}

// Middleware validates every request next receives and every response it
// writes against the description; each mismatch goes to report. A request
// that does not match gets GitHub's 422 (or 404 for an unknown route) and
// never reaches next, so it changes nothing. A response that does not
// match is still written (the fault is the fake's, and the test fails
// through report).
func (s *Spec) Middleware(report func(Violation), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))

		// Route on a copy without Enterprise's /api/v3 and /api/uploads
		// prefixes.
		rr := r.Clone(r.Context())
		for _, prefix := range []string{"/api/v3/", "/api/uploads/"} {
			if strings.HasPrefix(r.URL.Path, prefix) {
				rr.URL.Path = strings.TrimPrefix(r.URL.Path, prefix[:len(prefix)-1])
				rr.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, prefix[:len(prefix)-1])
			}
		}
		escapeRefSlashes(rr.URL) // gitdata.go
		rr.Body = io.NopCloser(bytes.NewReader(body))
		v := Violation{Method: r.Method, Path: rr.URL.Path}
		route, params, err := s.router.FindRoute(rr)
		if err != nil {
			v.Reason = err.Error()
			report(v)
			writeJSON(w, http.StatusNotFound, basicError("Not Found"))
			return
		}
		v.Operation = route.Operation.OperationID
		in := &openapi3filter.RequestValidationInput{
			Request: rr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{
				AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
				MultiError:         true,
				// Defaults must not be written into the request the fake
				// sees: it would hide what the client really sent.
				SkipSettingDefaults: true,
			},
		}
		if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
			v.Reason = oneLine(err)
			report(v)
			writeJSON(w, http.StatusUnprocessableEntity, validationError(v.Reason))
			return
		}

		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)

		if reason := s.checkResponse(r.Context(), in, rec); reason != "" {
			v.Response, v.Status, v.Reason = true, rec.status, reason
			report(v)
		}
		for k, vs := range rec.header {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	})
}

func (s *Spec) checkResponse(ctx context.Context, in *openapi3filter.RequestValidationInput, rec *recorder) string {
	declared := in.Route.Operation.Responses.Status(rec.status) != nil || in.Route.Operation.Responses.Default() != nil
	if !declared {
		if anyEndpoint[rec.status] {
			return ""
		}
		return fmt.Sprintf("status %d is not among the operation's responses", rec.status)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.status,
		Header:                 rec.header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(rec.body.Bytes())
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return oneLine(err)
	}
	return ""
}

// oneLine keeps the first line of a validation error and where in the
// document it is, dropping the schema and value dumps kin-openapi appends
// (pages long for GitHub's schemas).
func oneLine(err error) string {
	var re *openapi3filter.RequestError
	if errors.As(err, &re) && re.Err != nil {
		switch {
		case re.Parameter != nil:
			return fmt.Sprintf("parameter %q in %s: %s", re.Parameter.Name, re.Parameter.In, oneLine(re.Err))
		case re.RequestBody != nil:
			return "request body: " + oneLine(re.Err)
		}
	}
	var me openapi3.MultiError
	if errors.As(err, &me) {
		parts := make([]string, 0, len(me))
		for _, e := range me {
			parts = append(parts, oneLine(e))
		}
		return strings.Join(parts, "; ")
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	var se *openapi3.SchemaError
	if errors.As(err, &se) && len(se.JSONPointer()) > 0 && !strings.Contains(line, "Error at") {
		line += " (at /" + strings.Join(se.JSONPointer(), "/") + ")"
	}
	return line
}

type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}

func basicError(msg string) map[string]string {
	return map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"}
}

func validationError(msg string) map[string]any {
	return map[string]any{"message": "Validation Failed: " + msg, "documentation_url": "https://docs.github.com/rest"}
}
