package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a server process a helper started on a loopback port. A test can
// Stop it and Start it again on the same address and data directory, to
// play an outage; cleanup stops it whatever state it is in.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:40123 (https
	// when it serves TLS).
	URL string
	// Dir holds the server's configuration and data; it is removed at
	// cleanup.
	Dir string

	name   string
	binary string
	args   []string
	ready  func() error
	log    *SyncBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
}

// Log returns the last few KiB of the server's own log, to explain a
// failure.
func (s *Server) Log() string { return s.log.Tail(logTail) }

// Running says whether the process is up (it may not be ready yet).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Stop kills the server, as a crash or an OOM kill would, and waits until
// it has exited. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	killProcessGroup(s.cmd)
	<-s.exited
	s.cmd, s.exited = nil, nil
}

// Start starts the server again on its address with its data, and waits
// until it is ready. Starting a running server does nothing.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	return s.startLocked()
}

func (s *Server) startLocked() error {
	cmd := exec.Command(s.binary, s.args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitUntil(s.name, s.URL, s.ready, exited); err != nil {
		killProcessGroup(cmd)
		<-exited
		if strings.Contains(s.log.String(), "address already in use") {
			return fmt.Errorf("%s: the port was taken before it bound it: %w", s.name, errAddrInUse)
		}
		return fmt.Errorf("%w\n%s log:\n%s", err, s.name, s.log.Tail(logTail))
	}
	s.cmd, s.exited = cmd, exited
	return nil
}

// waitUntil polls ready until it succeeds, the process exits, or
// readyTimeout passes.
func waitUntil(name, url string, ready func() error, exited <-chan error) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s at %s was not ready after %s: %w", name, url, readyTimeout, err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before it was ready: %v", name, err)
		case <-tick.C:
		}
	}
}

// processSpec says how to start one server.
type processSpec struct {
	name, binary, dir, scheme string
	// args builds the command line for the address the server listens on.
	args func(addr string) []string
	// ready reports whether the server at base answers.
	ready func(base string) error
}

// startServer starts spec on a free loopback port, retrying when the port
// is taken between finding and binding it, and stops it at t.Cleanup.
func startServer(t testing.TB, spec processSpec) *Server {
	t.Helper()
	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		base := spec.scheme + "://" + addr
		s := &Server{
			URL: base, Dir: spec.dir, name: spec.name, binary: spec.binary,
			args:  spec.args(addr),
			ready: func() error { return spec.ready(base) },
			log:   &SyncBuffer{},
		}
		if lastErr = s.Start(); lastErr == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("testenv: %s at %s logged:\n%s", s.name, s.URL, s.log.Tail(logTail))
				}
			})
			return s
		}
		if !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	t.Fatalf("testenv: %v", lastErr)
	return nil
}

// httpReady is a readiness check: GET path answers 200.
func httpReady(client *http.Client, path string, header http.Header) func(base string) error {
	return func(base string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	}
}

// findBinary returns the first of the paths that exists, else the name
// found on PATH, else fails the test with what to install.
func findBinary(t testing.TB, what, pkg string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if strings.ContainsRune(c, os.PathSeparator) {
			if _, err := os.Stat(c); err == nil {
				return c
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Fatalf("testenv: %s is not installed (looked for %s): run `make deps`, which installs Debian's %s package", what, strings.Join(candidates, ", "), pkg)
	return ""
}
