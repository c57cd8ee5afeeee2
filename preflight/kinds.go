package preflight

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canarybot/canarybot/rollout"
)

const (
	// maxBody is how much of a response an http check reads.
	maxBody = 1 << 20
	// maxQuote caps what a detail quotes from a body or a stderr.
	maxQuote = 200
	// waitDelay is how long a killed command's pipes may stay open (a
	// grandchild holding stdout) before Wait gives up on them.
	waitDelay = time.Second
)

func runHTTP(ctx context.Context, c Check, o Options) (Result, []byte) {
	target := c.URL
	switch {
	case target == "":
		return cannotRun("no URL configured for this check"), nil
	case strings.HasPrefix(target, "/"):
		if o.Canary == "" {
			return cannotRun("url %s is a path and no canary URL is given (--canary)", target), nil
		}
		target = strings.TrimRight(o.Canary, "/") + target
	}
	if c.MaxLatency > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.MaxLatency)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return failed("building the request to %s: %v", target, err), nil
	}
	t0 := time.Now()
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		if why := tlsProblem(err); why != "" {
			return failed("TLS certificate of %s is not valid: %s", target, why), nil
		}
		if c.MaxLatency > 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return failed("slow: no answer from %s within max_latency %s", target, c.MaxLatency), nil
		}
		return failed("GET %s: %v", target, err), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	took := time.Since(t0)
	if err != nil {
		if c.MaxLatency > 0 && ctx.Err() != nil {
			return failed("slow: body of %s not read within max_latency %s", target, c.MaxLatency), nil
		}
		return failed("reading the body of %s: %v", target, err), nil
	}
	ev := headerEvidence(target, resp)

	want := c.Status
	if want == 0 {
		want = http.StatusOK
	}
	var problems []string
	if resp.StatusCode != want {
		problems = append(problems, fmt.Sprintf("status %d, want %d", resp.StatusCode, want))
	}
	for _, name := range sortedKeys(c.Headers) {
		values := resp.Header.Values(name)
		if len(values) == 0 {
			problems = append(problems, fmt.Sprintf("header %s missing", name))
			continue
		}
		joined := strings.Join(values, ", ")
		for _, sub := range c.Headers[name] {
			if !strings.Contains(joined, sub) {
				problems = append(problems, fmt.Sprintf("header %s lacks %q", name, sub))
			}
		}
	}
	if c.Body != "" {
		// Validate compiled it already.
		if re := regexp.MustCompile(c.Body); !re.Match(body) {
			problems = append(problems, fmt.Sprintf("body does not match /%s/: %q", c.Body, quote(body)))
		}
	}
	if c.MaxLatency > 0 && took > c.MaxLatency {
		problems = append(problems, fmt.Sprintf("slow: took %s, over max_latency %s", took.Round(time.Millisecond), c.MaxLatency))
	}
	if len(problems) > 0 {
		return failed("GET %s: %s", target, strings.Join(problems, "; ")), ev
	}
	return passed("GET %s: %d in %s", target, resp.StatusCode, took.Round(time.Millisecond)), ev
}

// headerEvidence is the status line and headers, sorted, one per line.
func headerEvidence(target string, resp *http.Response) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s\n%s %s\n", target, resp.Proto, resp.Status)
	for _, name := range sortedKeys(resp.Header) {
		for _, v := range resp.Header[name] {
			// Evidence is committed and shared: session cookies and
			// credentials are named, not copied.
			switch http.CanonicalHeaderKey(name) {
			case "Set-Cookie", "Authorization", "Proxy-Authorization", "Www-Authenticate":
				v = "[redacted]"
			}
			fmt.Fprintf(&b, "%s: %s\n", name, v)
		}
	}
	return b.Bytes()
}

// tlsProblem says what is wrong with a server's certificate, "" if err is
// not about one.
func tlsProblem(err error) string {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return "signed by an unknown authority"
	case errors.As(err, &hostname):
		return hostname.Error()
	case errors.As(err, &invalid):
		return invalid.Error()
	case errors.As(err, &verify):
		return verify.Err.Error()
	}
	return ""
}

func runPromQL(ctx context.Context, c Check, o Options) (Result, []byte) {
	if o.Prometheus == nil {
		return cannotRun("no Prometheus URL configured (--prometheus or PROMETHEUS_URL)"), nil
	}
	s, err := o.Prometheus.Query(ctx, c.Query, time.Time{})
	switch {
	case errors.Is(err, rollout.ErrNoValues):
		return failed("no data for `%s`", c.Query), nil
	case err != nil:
		return failed("%v", err), nil
	}
	bound := *c.Value
	ev := fmt.Appendf(nil, "query: %s\nvalue: %s\nbound: %s %s\n", c.Query, formatFloat(s.Value), c.Op, formatFloat(bound))
	if math.IsNaN(s.Value) {
		return failed("`%s` is NaN, want %s %s", c.Query, c.Op, formatFloat(bound)), ev
	}
	if !compare(s.Value, c.Op, bound) {
		return failed("`%s` is %s, want %s %s", c.Query, formatFloat(s.Value), c.Op, formatFloat(bound)), ev
	}
	return passed("`%s` is %s %s %s", c.Query, formatFloat(s.Value), c.Op, formatFloat(bound)), ev
}

func compare(v float64, op string, bound float64) bool {
	switch op {
	case OpLT:
		return v < bound
	case OpLE:
		return v <= bound
	case OpEQ:
		return v == bound
	case OpGE:
		return v >= bound
	case OpGT:
		return v > bound
	}
	return false
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func runGit(ctx context.Context, c Check, o Options) (Result, []byte) {
	if o.Version == "" {
		return cannotRun("no version given to look for"), nil
	}
	dir := c.Dir
	if dir == "" {
		dir = o.Repo
	}
	if dir == "" {
		dir = "."
	}
	if _, err := exec.LookPath("git"); err != nil {
		return cannotRun("git is not installed: %v", err), nil
	}
	if _, err := gitOutput(ctx, dir, "rev-parse", "-q", "--verify", "refs/tags/"+o.Version); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 1 {
			return failed("tag %s does not exist in %s: tag the release first (git tag %s)", o.Version, dir, o.Version), nil
		}
		return failed("git rev-parse in %s: %v", dir, err), nil
	}
	out, err := gitOutput(ctx, dir, "describe", "--tags", "--always")
	if err != nil {
		return failed("git describe in %s: %v", dir, err), nil
	}
	describe := strings.TrimSpace(out)
	ev := []byte(describe + "\n")
	if describe != o.Version {
		return failed("git describe says %s, not %s: the checkout is not at the release tag", describe, o.Version), ev
	}
	return passed("tag %s exists and git describe matches", o.Version), ev
}

// gitOutput runs git in dir, its error carrying git's stderr.
func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = waitDelay
	out, err := cmd.Output()
	if err != nil && stderr.Len() > 0 {
		return "", fmt.Errorf("%w: %s", err, quote(stderr.Bytes()))
	}
	return string(out), err
}

func runCommand(ctx context.Context, c Check, budget time.Duration) (Result, []byte) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = budget
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, c.Argv[0], c.Argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	argv := strings.Join(c.Argv, " ")
	// Non-nil even when empty: a command that printed nothing still leaves
	// its (empty) evidence file.
	out := append([]byte{}, stdout.Bytes()...)
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return cannotRun("%s: %v", c.Argv[0], err), nil
	case err != nil && ctx.Err() == nil && cctx.Err() != nil:
		return failed("%s: timed out after %s", argv, timeout), nil
	case err != nil:
		detail := fmt.Sprintf("%s: %v", argv, err)
		if stderr.Len() > 0 {
			detail += ": " + quote(stderr.Bytes())
		}
		return failed("%s", detail), out
	}
	return passed("%s: exit 0", argv), out
}

// quote is b trimmed to one short line, for a detail.
func quote(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > maxQuote {
		s = strings.ToValidUTF8(s[:maxQuote], "") + "…"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
