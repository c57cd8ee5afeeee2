package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/canarybot/canarybot/rollout"
)

// DefaultBudget is the runbook's 60 seconds.
const DefaultBudget = 60 * time.Second

// Status is a check's outcome. CannotRun is never a pass: the check's
// target is not configured or cannot be reached, so nothing was proved.
type Status string

const (
	Passed    Status = "passed"
	Failed    Status = "failed"
	CannotRun Status = "cannot_run"
)

// Result is one check's outcome.
type Result struct {
	Name     string
	Kind     string
	Status   Status
	Duration time.Duration
	Detail   string
	// Evidence is the file the check wrote, "" if none.
	Evidence string
}

// Line is the result as one line of preflight.txt.
func (r Result) Line() string {
	return fmt.Sprintf("%-26s %-8s %-10s %8s  %s", r.Name, r.Kind, r.Status, r.Duration.Round(time.Millisecond), r.Detail)
}

// Options are what a run needs from its environment.
type Options struct {
	// Version is the release being checked (the git tag, {version} in
	// evidence names).
	Version string
	// Canary is the canary's base URL; http checks whose URL is a path are
	// sent there. "" makes them cannot_run.
	Canary string
	// Prometheus answers promql checks; nil makes them cannot_run.
	Prometheus rollout.Metrics
	// Repo is the repository of git checks without a dir; "" means ".".
	Repo string
	// Budget bounds the whole run; 0 means DefaultBudget. A check still
	// running at its end fails as timed out.
	Budget time.Duration
	// HTTPClient sends http checks; nil means a client with the system's
	// certificate pool and no timeout of its own (the budget and
	// max_latency bound it).
	HTTPClient *http.Client
	// Getenv reads the environment variables that hold postgres checks'
	// DSNs; nil means os.Getenv.
	Getenv func(string) string
	// Kubeconfig is the kubeconfig file of kubernetes checks; "" means
	// $KUBECONFIG, else the pod's service account, else ~/.kube/config
	// (traffic.ClientConfig). With none of them those checks cannot run.
	Kubeconfig string
	// Kube, if set, is the cluster client kubernetes checks use instead of
	// Kubeconfig (e.g. the one the traffic router shares), and
	// KubeNamespace the namespace of checks that name none ("" means
	// "default").
	Kube          kubernetes.Interface
	KubeNamespace string
	// Evidence receives the checks' evidence files; nil writes none.
	Evidence rollout.Evidence
	// OnResult, if set, is called with each result as its check finishes,
	// from one goroutine at a time.
	OnResult func(Result)
}

// Report is a whole run's outcome, results in the order of the checks.
type Report struct {
	Version string
	Budget  time.Duration
	Results []Result
}

// Counts tallies the results.
func (r *Report) Counts() (passed, failed, cannotRun int) {
	for _, res := range r.Results {
		switch res.Status {
		case Passed:
			passed++
		case CannotRun:
			cannotRun++
		default:
			failed++
		}
	}
	return passed, failed, cannotRun
}

// Passed is true only when every check passed.
func (r *Report) Passed() bool {
	p, _, _ := r.Counts()
	return len(r.Results) > 0 && p == len(r.Results)
}

// Summary is the last line of preflight.txt: "N/M passed, K cannot run".
func (r *Report) Summary() string {
	p, _, c := r.Counts()
	return fmt.Sprintf("%d/%d passed, %d cannot run", p, len(r.Results), c)
}

// Problems names every check that did not pass, with why, for a NO-GO.
func (r *Report) Problems() []string {
	var out []string
	for _, res := range r.Results {
		if res.Status == Passed {
			continue
		}
		what := "failed"
		if res.Status == CannotRun {
			what = "cannot run"
		}
		out = append(out, fmt.Sprintf("%s %s: %s", res.Name, what, res.Detail))
	}
	return out
}

// Text is preflight.txt: a line per check, then the summary.
func (r *Report) Text() []byte {
	var b strings.Builder
	for _, res := range r.Results {
		b.WriteString(res.Line())
		b.WriteByte('\n')
	}
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	return []byte(b.String())
}

// errBudget is the cause of a run's context ending at its budget.
var errBudget = errors.New("preflight budget spent")

// outcome is what a check's runner hands back: its result and the bytes
// of its evidence file, written only once the check is known to have
// finished within the budget.
type outcome struct {
	i        int
	res      Result
	evidence []byte
}

// Run runs checks concurrently within o.Budget and writes each finished
// check's evidence file. It returns an error only for invalid checks
// (wrapping ErrBadChecks); every check's own trouble is in its Result.
func Run(ctx context.Context, checks []Check, o Options) (*Report, error) {
	if err := ValidateAll(checks); err != nil {
		return nil, err
	}
	budget := o.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	rctx, cancel := context.WithTimeoutCause(ctx, budget, errBudget)
	defer cancel()

	start := time.Now()
	// Buffered for every check: a check finishing after the budget must
	// not block on a collector that has gone.
	done := make(chan outcome, len(checks))
	for i, c := range checks {
		go func() {
			t0 := time.Now()
			res, ev := runOne(rctx, c, o, budget)
			res.Name, res.Kind, res.Duration = c.Name, c.Kind, time.Since(t0)
			if res.Status != Passed && rctx.Err() != nil {
				res.Status, res.Detail = Failed, stopped(rctx, budget)
				ev = nil
			}
			done <- outcome{i: i, res: res, evidence: ev}
		}()
	}

	rep := &Report{Version: o.Version, Budget: budget, Results: make([]Result, len(checks))}
	finished := make([]bool, len(checks))
	record := func(out outcome) {
		c := checks[out.i]
		if name := c.EvidenceName(o.Version); out.evidence != nil && name != "" && o.Evidence != nil {
			// The parent context: the evidence of a check that made it in
			// time is written even when the budget ends meanwhile.
			if err := o.Evidence.Write(ctx, name, out.evidence); err != nil {
				out.res.Status = Failed
				out.res.Detail = fmt.Sprintf("%s; writing evidence %s: %v", out.res.Detail, name, err)
			} else {
				out.res.Evidence = name
			}
		}
		rep.Results[out.i] = out.res
		finished[out.i] = true
		if o.OnResult != nil {
			o.OnResult(out.res)
		}
	}
	for n := 0; n < len(checks); n++ {
		select {
		case out := <-done:
			record(out)
			continue
		case <-rctx.Done():
		}
		// Take what already arrived, then time out the rest.
		for drained := false; !drained; {
			select {
			case out := <-done:
				record(out)
			default:
				drained = true
			}
		}
		for i, c := range checks {
			if !finished[i] {
				record(outcome{i: i, res: Result{Name: c.Name, Kind: c.Kind, Status: Failed, Duration: time.Since(start), Detail: stopped(rctx, budget)}})
			}
		}
		break
	}
	return rep, nil
}

// stopped says why a check's context ended: the budget, or the caller.
func stopped(ctx context.Context, budget time.Duration) string {
	if errors.Is(context.Cause(ctx), errBudget) {
		return fmt.Sprintf("timed out: still running when the %s budget ran out", budget)
	}
	return fmt.Sprintf("interrupted: %v", context.Cause(ctx))
}

// runOne dispatches on the kind. Name, Kind and Duration are filled in by
// the caller.
func runOne(ctx context.Context, c Check, o Options, budget time.Duration) (Result, []byte) {
	switch c.Kind {
	case KindHTTP:
		return runHTTP(ctx, c, o)
	case KindPromQL:
		return runPromQL(ctx, c, o)
	case KindGit:
		return runGit(ctx, c, o)
	case KindCommand:
		return runCommand(ctx, c, budget)
	case KindPostgres:
		return runPostgres(ctx, c, o)
	case KindKubernetes:
		return runKubernetes(ctx, c, o)
	}
	return Result{Status: Failed, Detail: fmt.Sprintf("kind %q is unknown", c.Kind)}, nil
}

func passed(format string, args ...any) Result {
	return Result{Status: Passed, Detail: fmt.Sprintf(format, args...)}
}

func failed(format string, args ...any) Result {
	return Result{Status: Failed, Detail: fmt.Sprintf(format, args...)}
}

func cannotRun(format string, args ...any) Result {
	return Result{Status: CannotRun, Detail: fmt.Sprintf(format, args...)}
}
