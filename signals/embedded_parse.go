package signals

import (
	"slices"
	"sync"

	"github.com/prometheus/prometheus/promql/parser"
)

// maxCachedExprs bounds the parse cache. A release asks the same few dozen
// queries and rules on every tick and scrape; the bound only matters if a
// caller sends endless distinct queries, and then the cache starts over.
const maxCachedExprs = 1024

// cachingParser is a PromQL parser that parses each distinct text once. The
// engine parses a query's text on every evaluation, and the store evaluates
// the same signal queries every tick and the same rules after every scrape:
// parsing was about a sixth of a tick's CPU time.
//
// The engine writes into the tree it is given (the series it selected,
// offsets resolved for @, step-invariant wrappers, sorted groupings), so the
// cache keeps a pristine tree that it never hands out and returns a fresh
// copy of it. A copy is far cheaper than a parse: it compiles no regular
// expression and allocates only the nodes.
type cachingParser struct {
	parser.Parser

	mu    sync.Mutex
	exprs map[string]parser.Expr
}

func newCachingParser(p parser.Parser) *cachingParser {
	return &cachingParser{Parser: p, exprs: make(map[string]parser.Expr)}
}

// ParseExpr returns a tree that the caller owns. A text that does not parse
// is not cached: it is parsed again every time, and the error (with the
// partial tree) is the parser's own.
func (p *cachingParser) ParseExpr(input string) (parser.Expr, error) {
	p.mu.Lock()
	cached, ok := p.exprs[input]
	p.mu.Unlock()
	if ok {
		c, _ := cloneExpr(cached)
		return c, nil
	}
	expr, err := p.Parser.ParseExpr(input)
	if err != nil {
		return expr, err
	}
	c, ok := cloneExpr(expr)
	if !ok {
		// A node this file does not know how to copy: sharing the tree
		// would let the engine write into the cached one.
		return expr, nil
	}
	p.mu.Lock()
	if len(p.exprs) >= maxCachedExprs {
		clear(p.exprs)
	}
	p.exprs[input] = expr
	p.mu.Unlock()
	return c, nil
}

// cloneExpr deep-copies a parsed tree: every node and every slice the engine
// may write to. Label matchers are shared, since nothing writes to a
// matcher. ok is false if the tree holds a node type unknown here.
func cloneExpr(e parser.Expr) (c parser.Expr, ok bool) {
	if e == nil {
		return nil, true
	}
	ok = true
	sub := func(e parser.Expr) parser.Expr {
		c, subOK := cloneExpr(e)
		ok = ok && subOK
		return c
	}
	dur := func(d *parser.DurationExpr) *parser.DurationExpr {
		if d == nil {
			return nil
		}
		c := *d
		c.LHS, c.RHS = sub(d.LHS), sub(d.RHS)
		return &c
	}
	switch n := e.(type) {
	case *parser.AggregateExpr:
		c := *n
		c.Expr, c.Param = sub(n.Expr), sub(n.Param)
		c.Grouping = slices.Clone(n.Grouping)
		return &c, ok
	case *parser.BinaryExpr:
		c := *n
		c.LHS, c.RHS = sub(n.LHS), sub(n.RHS)
		if n.VectorMatching != nil {
			vm := *n.VectorMatching
			vm.MatchingLabels = slices.Clone(vm.MatchingLabels)
			vm.Include = slices.Clone(vm.Include)
			c.VectorMatching = &vm
		}
		return &c, ok
	case *parser.Call:
		c := *n
		if n.Args != nil {
			c.Args = make(parser.Expressions, len(n.Args))
			for i, a := range n.Args {
				c.Args[i] = sub(a)
			}
		}
		return &c, ok
	case *parser.DurationExpr:
		return dur(n), ok
	case *parser.MatrixSelector:
		c := *n
		c.VectorSelector = sub(n.VectorSelector)
		c.RangeExpr = dur(n.RangeExpr)
		return &c, ok
	case *parser.SubqueryExpr:
		c := *n
		c.Expr = sub(n.Expr)
		c.RangeExpr, c.OriginalOffsetExpr, c.StepExpr = dur(n.RangeExpr), dur(n.OriginalOffsetExpr), dur(n.StepExpr)
		return &c, ok
	case *parser.NumberLiteral:
		c := *n
		return &c, ok
	case *parser.ParenExpr:
		c := *n
		c.Expr = sub(n.Expr)
		return &c, ok
	case *parser.StringLiteral:
		c := *n
		return &c, ok
	case *parser.UnaryExpr:
		c := *n
		c.Expr = sub(n.Expr)
		return &c, ok
	case *parser.StepInvariantExpr:
		c := *n
		c.Expr = sub(n.Expr)
		return &c, ok
	case *parser.VectorSelector:
		if n.UnexpandedSeriesSet != nil || n.Series != nil {
			// Already evaluated: its selection must not be shared.
			return nil, false
		}
		c := *n
		c.OriginalOffsetExpr = dur(n.OriginalOffsetExpr)
		c.LabelMatchers = slices.Clone(n.LabelMatchers)
		return &c, ok
	default:
		return nil, false
	}
}
