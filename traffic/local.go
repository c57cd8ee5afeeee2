// Package traffic moves the canary's share of requests: Local is an
// in-process weighted router for the demo, with ingress-nginx's semantics.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// ErrInvalidWeight is returned (wrapped) for a weight outside 0..100.
var ErrInvalidWeight = errors.New("invalid canary weight")

// Headers of the local router.
const (
	// CanaryHeader overrides the weight for one request, like
	// ingress-nginx's `nginx.ingress.kubernetes.io/canary-by-header:
	// X-Canary`.
	CanaryHeader = "X-Canary"
	// RoutedHeader on every response names the backend that served it.
	RoutedHeader = "X-Canary-Routed"
)

// Values of RoutedHeader.
const (
	RoutedStable = "stable"
	RoutedCanary = "canary"
)

// Local is a weighted reverse proxy in front of a stable and a canary
// backend, standing in for an ingress-nginx Ingress with a canary Ingress
// beside it. It follows the annotations' semantics:
//
//   - nginx.ingress.kubernetes.io/canary-weight: the canary's share out of
//     a total of 100 (canary-weight-total's default). Each request goes to
//     the canary independently with probability weight/100, so weight 0
//     never routes there and 100 always does. There is no stickiness.
//   - nginx.ingress.kubernetes.io/canary-by-header: X-Canary. A request
//     whose X-Canary header is "always" goes to the canary and "never" to
//     the stable, whatever the weight; any other value falls through to the
//     weight. As in ingress-nginx, the header takes precedence over the
//     weight.
//
// A WebSocket is routed once, when it connects, and stays on its backend
// until it closes: a weight change moves new connections only. The Host
// header is passed through unchanged, as ingress-nginx does.
//
// Local implements rollout.Traffic and http.Handler; it is safe for
// concurrent use. Its weight starts at 0.
type Local struct {
	stable, canary *httputil.ReverseProxy
	weight         atomic.Int32
	servedStable   atomic.Uint64
	servedCanary   atomic.Uint64
}

// NewLocal returns a router in front of the stable and canary base URLs,
// both required.
func NewLocal(stable, canary *url.URL) *Local {
	if stable == nil || canary == nil {
		panic("traffic.NewLocal: both the stable and the canary URL are required")
	}
	// One transport for both backends, with enough idle connections per
	// host for the demo's load; the default's 2 would make the router
	// dial (and leave TIME_WAIT sockets) for almost every request.
	tr := &http.Transport{
		// No Proxy: the backends are on loopback, never behind an HTTP proxy.
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	return &Local{stable: newProxy(stable, tr), canary: newProxy(canary, tr)}
}

func newProxy(target *url.URL, tr http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: tr,
		// Flush every write, so a streamed body reaches the client as
		// the backend sends it, as with nginx's proxy_buffering off.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client left; nobody reads an answer
			}
			http.Error(w, fmt.Sprintf("bad gateway: backend %s did not answer: %v", target.Host, err), http.StatusBadGateway)
		},
	}
}

// SetWeight sets the canary's share in percent. Setting the current weight
// changes nothing.
func (l *Local) SetWeight(_ context.Context, weight int) error {
	if weight < 0 || weight > 100 {
		return fmt.Errorf("%w %d: use a percentage from 0 to 100", ErrInvalidWeight, weight)
	}
	l.weight.Store(int32(weight))
	return nil
}

// Weight returns the canary's share in percent.
func (l *Local) Weight(context.Context) (int, error) {
	return int(l.weight.Load()), nil
}

// Served returns how many requests (WebSocket connections included) went
// to each backend, for the observed canary share.
func (l *Local) Served() (stable, canary uint64) {
	return l.servedStable.Load(), l.servedCanary.Load()
}

// ServeHTTP routes one request to the stable or the canary backend.
func (l *Local) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if l.toCanary(r) {
		l.servedCanary.Add(1)
		w.Header().Set(RoutedHeader, RoutedCanary)
		l.canary.ServeHTTP(w, r)
		return
	}
	l.servedStable.Add(1)
	w.Header().Set(RoutedHeader, RoutedStable)
	l.stable.ServeHTTP(w, r)
}

func (l *Local) toCanary(r *http.Request) bool {
	switch r.Header.Get(CanaryHeader) {
	case "always":
		return true
	case "never":
		return false
	}
	switch w := int(l.weight.Load()); w {
	case 0:
		return false
	case 100:
		return true
	default:
		// math/rand/v2's top-level source is safe for concurrent use and
		// needs no lock on the hot path.
		return rand.IntN(100) < w
	}
}
