package signals

import (
	"context"
	"errors"
	"maps"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/canarybot/canarybot/config"
)

// benchStore fills a store with about 15 virtual minutes of both tracks: two
// instances each, three routes, the runbook's histograms, scraped every 15 s.
func benchStore(b *testing.B) (*Embedded, time.Time) {
	b.Helper()
	routes := []string{"/api/orders", "/api/quotes", "/api/account"}
	var svcs []*service
	var targets []Target
	for _, track := range []string{"canary", "stable"} {
		for _, inst := range []string{"1", "2"} {
			s := newService(b, routes...)
			tr := healthy()
			tr.errors5xx, tr.riskBlocks, tr.idemConflicts = 1, 1, 1
			s.set(tr)
			svcs = append(svcs, s)
			targets = append(targets, s.target(track, track+"-"+inst))
		}
	}
	e, clk := newStore(b, EmbeddedOptions{Targets: targets})
	at := play(b, e, clk, 60, svcs...)
	return e, at
}

// signalQueries are a tick's queries for the default plan, as the runner
// reads them: the 8 signals, each relative one followed by its baseline.
func signalQueries() []string {
	plan := config.Default()
	qs := make([]string, 0, len(plan.Signals)+1)
	for _, s := range plan.Signals {
		qs = append(qs, plan.ResolveQuery(s.Query))
		if s.Relative {
			qs = append(qs, plan.ResolveQuery(s.BaselineQuery))
		}
	}
	return qs
}

// tickSelectors are the distinct series selections of a tick's queries,
// each as a range query over its window with no function applied.
func tickSelectors(b *testing.B) []string {
	b.Helper()
	seen := map[string]bool{}
	for _, q := range signalQueries() {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
		if err != nil {
			b.Fatal(err)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if m, ok := n.(*parser.MatrixSelector); ok {
				seen[m.String()] = true
			}
			return nil
		})
	}
	return slices.Sorted(maps.Keys(seen))
}

// BenchmarkQueryOne is one signal, the API p95 (the heaviest: a histogram
// over every route and instance of the canary).
func BenchmarkQueryOne(b *testing.B) {
	e, at := benchStore(b)
	q := signalQueries()[0]
	ctx := context.Background()
	cpu := startCPU(b)
	for b.Loop() {
		if _, err := e.Query(ctx, q, at); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkQueryAllEight is one tick: the 8 default signals through
// QueryAll.
func BenchmarkQueryAllEight(b *testing.B) {
	e, at := benchStore(b)
	qs := signalQueries()
	ctx := context.Background()
	cpu := startCPU(b)
	for b.Loop() {
		_, errs := e.QueryAll(ctx, qs, at)
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkReadTickSeries reads the samples a tick's queries select, each
// distinct selection once and with no function over it: the floor that
// BenchmarkQueryAllEight is compared with, as a tick has at least these
// samples to decode.
func BenchmarkReadTickSeries(b *testing.B) {
	e, at := benchStore(b)
	sels := tickSelectors(b)
	ctx := context.Background()
	series := 0
	cpu := startCPU(b)
	for b.Loop() {
		series = 0
		for _, sel := range sels {
			qry, err := e.engine.NewInstantQuery(ctx, e.db, nil, sel, at)
			if err != nil {
				b.Fatal(err)
			}
			m, err := qry.Exec(ctx).Matrix()
			if err != nil {
				b.Fatalf("%s: %v", sel, err)
			}
			series += len(m)
			qry.Close()
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(len(sels)), "selections")
	b.ReportMetric(float64(series), "series")
}

// BenchmarkQueryEightOneByOne is the same tick through 8 Query calls, for
// comparison with QueryAll.
func BenchmarkQueryEightOneByOne(b *testing.B) {
	e, at := benchStore(b)
	qs := signalQueries()
	ctx := context.Background()
	cpu := startCPU(b)
	for b.Loop() {
		for _, q := range qs {
			if _, err := e.Query(ctx, q, at); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu.report(b)
}

// cpuMeter reports the process's CPU time per operation next to the wall
// time: on a machine shared with other work, wall time swings with the load,
// while CPU time tells the work one operation does.
type cpuMeter struct{ start time.Duration }

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) cpuMeter { return cpuMeter{start: cpuTime(b)} }

func (m cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(cpuTime(b)-m.start)/float64(b.N), "cpu-ns/op")
}
