package signals

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// cloneCases cover every node type the parser produces and every slice or
// pointer field the engine may write to.
func cloneCases() []string {
	return []string{
		`sum by (route, code) (rate(http_requests_total{track="canary",code=~"5.."}[2m]))`,
		`topk(3, sum without (instance) (up))`,
		`quantile(0.9, x) > bool on (job) group_left (route, le) y`,
		`a / ignoring (code) group_right (x) b`,
		`a + fill(0) b`,
		`-(1 + 2) * scalar(x)`,
		`label_replace(x, "dst", "$1", "src", "(.*)")`,
		`max_over_time(rate(x[1m])[10m:30s] offset 1m @ end())`,
		`max_over_time(x[10m:step()*2] offset (1m*2))`,
		`rate(x[1m+1m])`,
		`x offset (1m*2) @ start()`,
		`rate(x[5m] anchored)`,
		`histogram_quantile(0.95, sum by (le) (rate(x_bucket[2m])))`,
		`"a string"`,
		`vector(time())`,
	}
}

func TestCloneExprSharesNothingTheEngineWrites(t *testing.T) {
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true, EnableBinopFillModifiers: true})
	seen := map[string]bool{}
	for _, q := range cloneCases() {
		t.Run(q, func(t *testing.T) {
			orig, err := p.ParseExpr(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, what := range mutableRefs(reflect.ValueOf(orig), map[uintptr]string{}) {
				seen[what] = true
			}
			c, ok := cloneExpr(orig)
			if !ok {
				t.Fatalf("cloneExpr refused a parsed %T", orig)
			}
			if c.String() != orig.String() {
				t.Errorf("clone prints %q, original %q", c.String(), orig.String())
			}
			origRefs := mutableRefs(reflect.ValueOf(orig), map[uintptr]string{})
			for addr, what := range mutableRefs(reflect.ValueOf(c), map[uintptr]string{}) {
				if _, shared := origRefs[addr]; shared {
					t.Errorf("the clone shares %s with the original", what)
				}
			}
		})
	}
	for _, node := range []string{
		"*parser.AggregateExpr", "*parser.BinaryExpr", "*parser.VectorMatching", "*parser.Call",
		"*parser.DurationExpr", "*parser.MatrixSelector", "*parser.SubqueryExpr", "*parser.NumberLiteral",
		"*parser.ParenExpr", "*parser.StringLiteral", "*parser.UnaryExpr", "*parser.VectorSelector",
	} {
		if !seen[node] {
			t.Errorf("no case has a %s", node)
		}
	}
}

// mutableRefs collects the addresses of every parser node and every
// non-empty slice reachable from v: what a clone must not share. It stops at
// pointers outside the parser package (label matchers, timestamps) and at
// *parser.Function, which are read-only.
func mutableRefs(v reflect.Value, refs map[uintptr]string) map[uintptr]string {
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			mutableRefs(v.Elem(), refs)
		}
	case reflect.Pointer:
		if v.IsNil() || v.Type().Elem().PkgPath() != reflect.TypeFor[parser.Call]().PkgPath() || v.Type() == reflect.TypeFor[*parser.Function]() {
			return refs
		}
		refs[v.Pointer()] = v.Type().String()
		mutableRefs(v.Elem(), refs)
	case reflect.Struct:
		for i := range v.NumField() {
			mutableRefs(v.Field(i), refs)
		}
	case reflect.Slice:
		if v.Len() == 0 {
			return refs
		}
		refs[v.Pointer()] = v.Type().String()
		for i := range v.Len() {
			mutableRefs(v.Index(i), refs)
		}
	}
	return refs
}

func TestCachingParserAnswersAsTheParser(t *testing.T) {
	plain := parser.NewParser(parser.Options{})
	p := newCachingParser(plain)
	queries := append([]string{`sum(rate(x[2m]`, `up{`, `foo bar`}, cloneCases()[:4]...)
	for _, q := range queries {
		want, wantErr := plain.ParseExpr(q)
		for round := range 2 { // a miss, then a hit
			got, err := p.ParseExpr(q)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Errorf("round %d, %s: error %v, want %v", round, q, err, wantErr)
			}
			if wantErr == nil && got.String() != want.String() {
				t.Errorf("round %d, %s: %s, want %s", round, q, got, want)
			}
		}
	}
	if _, cached := p.exprs[`sum(rate(x[2m]`]; cached {
		t.Error("a text that does not parse was cached")
	}
	a, _ := p.ParseExpr(cloneCases()[0])
	b, _ := p.ParseExpr(cloneCases()[0])
	if a == b {
		t.Error("two parses of the same text returned the same tree")
	}
}

func TestCachingParserIsBounded(t *testing.T) {
	p := newCachingParser(parser.NewParser(parser.Options{}))
	for i := range maxCachedExprs + 10 {
		q := fmt.Sprintf("vector(%d)", i)
		e, err := p.ParseExpr(q)
		if err != nil || e.String() != q {
			t.Fatalf("%s parsed as %v, %v", q, e, err)
		}
		if len(p.exprs) > maxCachedExprs {
			t.Fatalf("after %d texts the cache holds %d, more than %d", i+1, len(p.exprs), maxCachedExprs)
		}
	}
}

// The engine records the series it selected in the tree it evaluates: a
// cached tree handed out twice would answer the second query with the first
// query's series and samples.
func TestRepeatedQuerySeesNewSamples(t *testing.T) {
	svc := newService(t)
	e, clk := newStore(t, EmbeddedOptions{Targets: []Target{svc.target("canary", "c1")}})
	ctx := context.Background()
	queries := []string{
		`sum(http_requests_total{track="canary"})`,
		`sum(rate(http_requests_total{track="canary"}[1m]))`,
		`sum(http_requests_total{track="canary"} @ end())`,
		`max_over_time(sum(http_requests_total{track="canary"})[1m:15s])`,
	}
	var prev []float64
	for round := range 3 {
		tr := healthy()
		tr.requests = 10 * (round + 1) // a different rate every round
		svc.set(tr)
		at := play(t, e, clk, 5, svc)
		var got []float64
		for _, q := range queries {
			s, err := e.Query(ctx, q, at)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, q, err)
			}
			got = append(got, s.Value)
		}
		// Counters only grow and every round is busier than the last, so
		// every query must answer more than it did a round before.
		if prev != nil {
			for i, q := range queries {
				if !(got[i] > prev[i]) {
					t.Errorf("round %d, %s = %v, not above the previous round's %v: the query read old samples", round, q, got[i], prev[i])
				}
			}
		}
		prev = got
	}
}

// Queries of the same texts from several goroutines at once each get their
// own tree; under -race a shared tree shows up as a data race.
func TestConcurrentQueriesOfTheSameText(t *testing.T) {
	svc := newService(t, "/api/orders", "/api/quotes")
	e, clk := newStore(t, EmbeddedOptions{Targets: []Target{svc.target("canary", "c1"), svc.target("stable", "s1")}})
	at := play(t, e, clk, 12, svc)
	ctx := context.Background()
	queries := defaultQueries()
	want, wantErrs := e.QueryAll(ctx, queries, at)
	for i, err := range wantErrs {
		if err != nil {
			t.Fatalf("%s: %v", queries[i], err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(queries))
	for range 4 {
		wg.Go(func() {
			for i, q := range queries {
				s, err := e.Query(ctx, q, at)
				if err != nil || !sameValue(s.Value, want[i].Value) {
					errs <- fmt.Errorf("%s = %v, %v; want %v", q, s.Value, err, want[i].Value)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
