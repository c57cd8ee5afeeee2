package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerfile checks the image's shape as written: multi-stage, a static
// reproducible build, a non-root distroless final stage. TestImage builds and
// runs it.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var froms, runs []string
	var user string
	args := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "ARG ") && len(froms) == 0:
			name, value, _ := strings.Cut(strings.TrimPrefix(line, "ARG "), "=")
			args[name] = value
		case strings.HasPrefix(line, "FROM "):
			// A FROM line's arguments are the ARGs declared before the
			// first FROM, with their defaults.
			froms = append(froms, os.Expand(line, func(name string) string { return args[name] }))
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
}
