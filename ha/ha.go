// Package ha lets several replicas of canarybot run with one of them in
// charge: they elect a leader through a coordination.k8s.io Lease with
// client-go's leaderelection, only the leader drives releases, and the
// others serve status and refuse (or forward) commands until the leader
// goes away and one of them takes over.
package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
)

// Defaults of the election, client-go's for core controllers: a dead
// leader is replaced within about LeaseDuration + RetryPeriod.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// ErrConfig is returned (wrapped) for an unusable Config.
var ErrConfig = errors.New("invalid leader election configuration")

// Config says which Lease the replicas compete for and how fast.
type Config struct {
	Client    kubernetes.Interface
	Namespace string
	LeaseName string
	// Identity names this replica in the Lease; it must differ between
	// replicas. DefaultIdentity gives the pod's name and a random suffix.
	Identity string
	// LeaseDuration is how long followers wait after the last renewal
	// before taking over; RenewDeadline is how long the leader keeps
	// trying to renew before it stops leading; RetryPeriod is the pace of
	// both. LeaseDuration > RenewDeadline > RetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
}

// DefaultIdentity is $POD_NAME (the Deployment sets it from the downward
// API), else the host name, with a random suffix so that a restarted pod
// is a new candidate rather than a resurrected leader.
func DefaultIdentity() string {
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	if name == "" {
		name = "canarybot"
	}
	return name + "_" + string(uuid.NewUUID())[:8]
}

func (c *Config) validate() error {
	if c.Client == nil {
		return fmt.Errorf("%w: no Kubernetes client", ErrConfig)
	}
	if c.Namespace == "" || c.LeaseName == "" {
		return fmt.Errorf("%w: the Lease needs a namespace and a name (got %q/%q), e.g. spark/canarybot", ErrConfig, c.Namespace, c.LeaseName)
	}
	if c.Identity == "" {
		return fmt.Errorf("%w: no identity for this replica (use ha.DefaultIdentity())", ErrConfig)
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	if c.LeaseDuration <= c.RenewDeadline || float64(c.RenewDeadline) <= leaderelection.JitterFactor*float64(c.RetryPeriod) {
		return fmt.Errorf("%w: want lease duration (%s) > renew deadline (%s) > %.1f × retry period (%s)",
			ErrConfig, c.LeaseDuration, c.RenewDeadline, leaderelection.JitterFactor, c.RetryPeriod)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Elector is one replica's candidacy. Its zero value is not usable: use New.
type Elector struct {
	cfg     Config
	leading atomic.Bool
	mu      sync.Mutex
	leader  string
	// leadMu is held while lead runs: a new term's lead waits for the
	// previous term's to return, and the Lease is released only after it
	// has, so that two leads never overlap in this process nor across a
	// hand-over.
	leadMu sync.Mutex
}

// New checks the configuration and returns an elector.
func New(cfg Config) (*Elector, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Elector{cfg: cfg}, nil
}

// Run is New followed by Elector.Run.
func Run(ctx context.Context, cfg Config, lead func(ctx context.Context)) error {
	e, err := New(cfg)
	if err != nil {
		return err
	}
	return e.Run(ctx, lead)
}

// IsLeader reports whether this replica holds the Lease and its lead
// function is running: only then may it act on a release. Followers serve
// status and refuse commands (or forward them to Leader()).
func (e *Elector) IsLeader() bool { return e.leading.Load() }

// Leader is the identity of the replica last seen holding the Lease, "" if
// none has been seen.
func (e *Elector) Leader() string {
	if e.leading.Load() {
		// OnNewLeader reports asynchronously and may lag our own term.
		return e.cfg.Identity
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// Identity is this replica's name in the Lease.
func (e *Elector) Identity() string { return e.cfg.Identity }

// Run competes for the Lease until ctx ends or lead returns on its own, and
// returns nil then: after a lost Lease it competes again, and lead
// returning while this replica still leads means its work is done. Call it
// once at a time per Elector.
//
// Each time this replica wins, lead runs with a context that ends when the
// replica stops leading (the Lease could not be renewed within the renew
// deadline) or ctx ends; lead must then stop acting at once. Once lead has
// returned, the Lease is released, so a follower takes over at its next
// try; a crash releases nothing, and followers take over once the Lease
// expires.
//
// A Lease cannot fence writes: a leader that lost its Lease may still land
// a write it had in flight. The state store's resourceVersion checks make
// such a write and its successor's conflict instead of both succeeding, so
// lead should treat rollout.ErrConflict as "load the release again and
// resume", not as a failure.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	// leaderelection logs through klog; give it this elector's logger.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(e.cfg.Log.Handler()))
	for ctx.Err() == nil {
		done, err := e.term(ctx, lead)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
	return nil
}

// term is one run of client-go's elector: wait to acquire, lead, lose or
// give up the Lease. It reports whether lead returned on its own.
func (e *Elector) term(ctx context.Context, lead func(ctx context.Context)) (bool, error) {
	// The election has its own context: cancelling ctx must first stop
	// lead and wait for it, and only then give up the Lease.
	electCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElection()
	var finished atomic.Bool
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaOf(e.cfg.Namespace, e.cfg.LeaseName),
		Client:     e.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.cfg.Identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		Name:          e.cfg.LeaseName,
		LeaseDuration: e.cfg.LeaseDuration,
		RenewDeadline: e.cfg.RenewDeadline,
		RetryPeriod:   e.cfg.RetryPeriod,
		// Not client-go's ReleaseOnCancel: it releases when renewing
		// fails too, while lead may still be winding down. The Lease is
		// released below, once lead has returned.
		ReleaseOnCancel: false,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(termCtx context.Context) {
				e.leadMu.Lock()
				defer e.leadMu.Unlock()
				// Whatever ends lead, this term is over.
				defer stopElection()
				leadCtx, cancel := context.WithCancel(termCtx)
				defer cancel()
				defer context.AfterFunc(ctx, cancel)()
				if leadCtx.Err() != nil {
					return // the term ended before it began
				}
				e.cfg.Log.Info("leading", "lease", e.cfg.Namespace+"/"+e.cfg.LeaseName, "identity", e.cfg.Identity)
				e.leading.Store(true)
				lead(leadCtx)
				e.leading.Store(false)
				if termCtx.Err() == nil && ctx.Err() == nil {
					finished.Store(true)
				}
				e.cfg.Log.Info("stopped leading", "identity", e.cfg.Identity, "lost_lease", termCtx.Err() != nil && ctx.Err() == nil)
			},
			OnStoppedLeading: func() {
				// The Lease could not be renewed, or the term is over:
				// whatever lead is still doing, this replica no longer
				// leads.
				e.leading.Store(false)
			},
			OnNewLeader: func(identity string) {
				e.mu.Lock()
				e.leader = identity
				e.mu.Unlock()
				e.cfg.Log.Info("leader observed", "leader", identity, "self", identity == e.cfg.Identity)
			},
		},
	})
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	// A follower stops competing as soon as ctx ends; a leader's lead is
	// stopped through its context and ends the term itself. Taking leadMu
	// waits for a lead in progress to return first.
	stop := context.AfterFunc(ctx, func() {
		e.leadMu.Lock()
		stopElection()
		e.leadMu.Unlock()
	})
	defer stop()
	le.Run(electCtx)
	// Wait for a lead of this term that is still returning; only then may
	// another replica take over.
	e.leadMu.Lock()
	defer e.leadMu.Unlock()
	if le.IsLeader() {
		e.release(lock)
	}
	return finished.Load(), nil
}

// release gives up the Lease if this replica still holds it, so that a
// follower takes over at its next try instead of after the Lease expires.
// It runs only once lead has returned and the elector has stopped renewing.
func (e *Elector) release(lock *resourcelock.LeaseLock) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RenewDeadline)
	defer cancel()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rec, _, err := lock.Get(ctx)
		if err != nil {
			return err
		}
		if rec.HolderIdentity != e.cfg.Identity {
			return nil // expired and taken: nothing of ours to give up
		}
		now := metav1.NewTime(time.Now())
		return lock.Update(ctx, resourcelock.LeaderElectionRecord{
			LeaderTransitions:    rec.LeaderTransitions,
			LeaseDurationSeconds: 1,
			RenewTime:            now,
			AcquireTime:          now,
		})
	})
	if err != nil {
		// Harmless: followers take over once the Lease expires.
		e.cfg.Log.Warn("could not release the lease; followers take over when it expires", "lease", lock.Describe(), "err", err)
		return
	}
	e.cfg.Log.Info("lease released", "lease", lock.Describe(), "identity", e.cfg.Identity)
}

func metaOf(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
