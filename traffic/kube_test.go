package traffic

import (
	"os"
	"testing"

	"github.com/canarybot/canarybot/internal/testenv"
)

// The one package-level variable of the tests: the shared server, started
// lazily and stopped by TestMain.
var kube testenv.SharedKube

func TestMain(m *testing.M) {
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}
