package deploy

import (
	"bufio"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// No container engine runs here, so TestDockerfile checks what it can
// without one: the image's shape (multi-stage, a static build, a non-root
// distroless final stage) and that the build stage's own command, run as
// written, produces a static binary that starts.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var froms, runs []string
	var user string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "FROM "):
			froms = append(froms, line)
		case strings.HasPrefix(line, "RUN "):
			runs = append(runs, strings.TrimPrefix(line, "RUN "))
		case strings.HasPrefix(line, "USER "):
			user = strings.TrimPrefix(line, "USER ")
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a small final one: %v", len(froms), froms)
	}
	if final := froms[len(froms)-1]; !strings.Contains(final, "distroless/static") {
		t.Errorf("final stage %q is not a static distroless base", final)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	var build string
	for _, r := range runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "-trimpath") {
		t.Fatalf("build command %q: want CGO_ENABLED=0 and -trimpath for a static, reproducible binary", build)
	}

	// Run the build stage's command as written, from the repository root,
	// with the image's paths and build argument mapped onto this machine.
	out := filepath.Join(t.TempDir(), "canarybot")
	cmdline := strings.ReplaceAll(build, "/out/canarybot", out)
	cmdline = regexp.MustCompile(`\$\{?VERSION\}?`).ReplaceAllString(cmdline, "v0.0.0-dockerfile-test")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", cmdline)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build command failed: %v\n%s", err, b)
	}
	bin, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary needs a dynamic loader: it would not start on distroless/static")
		}
	}
	if b, err := exec.CommandContext(ctx, out, "version").CombinedOutput(); err != nil || !strings.Contains(string(b), "v0.0.0-dockerfile-test") {
		t.Errorf("the built binary's `version`: %q, %v", b, err)
	}
}
