package traffic

import (
	"os"
	"sync"
	"testing"

	"github.com/canarybot/canarybot/internal/testenv"
)

// sharedKube starts one kube-apiserver for the package's tests, at the
// first test that needs it (a start costs seconds and ~350 MB).
type sharedKube struct {
	once sync.Once
	k    *testenv.KubeServer
	err  error
}

func (s *sharedKube) get(t testing.TB) *testenv.KubeServer {
	t.Helper()
	s.once.Do(func() { s.k, s.err = testenv.StartKube() })
	if s.err != nil {
		t.Fatalf("testenv: %v", s.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver and etcd logged:\n%s", s.k.Log())
		}
	})
	return s.k
}

func (s *sharedKube) stop() {
	if s.k != nil {
		s.k.Stop()
	}
}

// The one package-level variable of the tests: the shared server, started
// lazily and stopped by TestMain.
var kube sharedKube

func TestMain(m *testing.M) {
	code := m.Run()
	kube.stop()
	os.Exit(code)
}
