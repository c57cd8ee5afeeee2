//go:build !unix

package forge

import (
	"context"
	"os"
)

// lockFile without flock: only one process may use a progress file at a
// time on this platform (canarybot ships for Linux).
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}
