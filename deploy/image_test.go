package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildahPath is Debian's buildah, a container engine that needs no daemon;
// scripts/deps.sh installs it with busybox-static.
const (
	buildahPath = "/usr/bin/buildah"
	busyboxPath = "/bin/busybox"
)

// distroless's nonroot user, which the final stage runs as.
const nonrootUID = 65532

// TestImage builds the Dockerfile with buildah and runs the image.
//
// No registry is reachable here, so the two base images are stand-ins built
// from this machine and passed as the Dockerfile's GO_IMAGE and
// RUNTIME_IMAGE arguments: this machine's Go toolchain with a busybox shell
// for golang:1.26, and for distroless/static-debian12:nonroot the files that
// image has (CA certificates, /etc/passwd with nonroot at 65532, /tmp, and a
// /home/nonroot owned by nonroot). The module and build caches are mounted
// into the RUN steps, as a BuildKit cache mount would be, so the build needs
// no network.
func TestImage(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		t.Fatalf("%s is missing (%v): run `make deps` (scripts/deps.sh) to install busybox-static", busyboxPath, err)
	}
	b := newBuildah(t)
	goBase := b.goBase(t)
	runtimeBase := b.distrolessBase(t)

	const image, version = "localhost/canarybot:image-test", "v0.0.0-image-test"
	modCache, buildCache := goEnv(t, "GOMODCACHE"), goEnv(t, "GOCACHE")
	b.run(t, "bud", "--isolation", "chroot", "--quiet",
		"--build-arg", "GO_IMAGE="+goBase,
		"--build-arg", "RUNTIME_IMAGE="+runtimeBase,
		"--build-arg", "VERSION="+version,
		"--volume", modCache+":/go/pkg/mod",
		"--volume", buildCache+":/root/.cache/go-build",
		"--tag", image, "..")

	var inspected struct {
		OCIv1 struct {
			Config struct {
				User       string
				Entrypoint []string
				WorkingDir string
			} `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(b.run(t, "inspect", "--type", "image", image)), &inspected); err != nil {
		t.Fatalf("buildah inspect: %v", err)
	}
	cfg := inspected.OCIv1.Config
	if cfg.User != "nonroot:nonroot" {
		t.Errorf("image user %q, want nonroot:nonroot", cfg.User)
	}
	if strings.Join(cfg.Entrypoint, " ") != "/usr/local/bin/canarybot" {
		t.Errorf("image entrypoint %q, want /usr/local/bin/canarybot", cfg.Entrypoint)
	}

	ctr := strings.TrimSpace(b.run(t, "from", "--quiet", image))
	root := strings.TrimSpace(b.run(t, "mount", ctr))

	// Small: the base's few files and the binary, nothing from the build
	// stage (no toolchain, no sources, no shell).
	binPath := filepath.Join(root, "usr", "local", "bin", "canarybot")
	var others int64
	var extra []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == binPath {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		others += info.Size()
		if rel, _ := filepath.Rel(root, p); !strings.HasPrefix(rel, "etc/") {
			extra = append(extra, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) > 0 || others > 1<<20 {
		t.Errorf("the final image holds %d bytes besides the binary, outside /etc: %v; want only the base's files", others, extra)
	}
	bin, err := elf.Open(binPath)
	if err != nil {
		t.Fatalf("the image has no binary at /usr/local/bin/canarybot: %v", err)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the image's binary needs a dynamic loader, which distroless/static does not have")
		}
	}
	bin.Close()

	if out := b.run(t, "run", "--isolation", "chroot", ctr, "--", "/usr/local/bin/canarybot", "version"); !strings.Contains(out, version) {
		t.Errorf("`canarybot version` in the image printed %q, want the VERSION build argument %s", out, version)
	}
	// The runbook's drill writes evidence into the working directory: it
	// must be writable by the image's user, and what it writes is that
	// user's, not root's.
	b.run(t, "run", "--isolation", "chroot", ctr, "--",
		"/usr/local/bin/canarybot", "rollback", "--reason", "image test", "--stage", "1", "--dry-run",
		"--evidence-dir", "evidence", "--state", "state.db")
	drill := filepath.Join(root, cfg.WorkingDir, "evidence", "drill", "rollback_dryrun.txt")
	info, err := os.Stat(drill)
	if err != nil {
		t.Fatalf("the drill in the image wrote no rollback_dryrun.txt in its working directory %s: %v", cfg.WorkingDir, err)
	}
	if uid := info.Sys().(*syscall.Stat_t).Uid; uid != nonrootUID {
		t.Errorf("the image's process wrote %s as uid %d, want the nonroot user %d", drill, uid, nonrootUID)
	}

	t.Run("get-binary.sh", func(t *testing.T) {
		build := []string{
			"--build-arg", "GO_IMAGE=" + goBase, "--build-arg", "RUNTIME_IMAGE=" + runtimeBase,
			"--volume", modCache + ":/go/pkg/mod", "--volume", buildCache + ":/root/.cache/go-build",
		}
		testGetBinary(t, b, image, version, strings.Join(build, " "))
	})
}

// testGetBinary runs the canary action's get-binary.sh as a workflow step
// would, with a docker that is buildah on the test's store
// (testdata/docker): from an image, by building the Dockerfile, and from a
// binary already on the runner.
func testGetBinary(t *testing.T, b *buildah, image, imageVersion, standinBuildArgs string) {
	shim, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "actions", "canary", "get-binary.sh"))
	if err != nil {
		t.Fatal(err)
	}
	containers := func() string { return b.run(t, "containers", "--quiet") }
	existing := filepath.Join(t.TempDir(), "canarybot")
	copyFile(t, filepath.Join(b.mountOf(t, image), "usr", "local", "bin", "canarybot"), existing, 0o755)
	before := containers()

	tests := []struct {
		name, wantVersion string
		env               []string
	}{
		{name: "image", env: []string{"CANARYBOT_IMAGE=" + image}, wantVersion: imageVersion},
		{name: "the Dockerfile built in the job", env: []string{"CANARYBOT_VERSION=v0.0.0-action-build", "STANDIN_BUILD_ARGS=" + standinBuildArgs}, wantVersion: "v0.0.0-action-build"},
		{name: "a binary on the runner", env: []string{"CANARYBOT_BINARY=" + existing}, wantVersion: imageVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runner := t.TempDir()
			ghPath, ghOutput := filepath.Join(runner, "github_path"), filepath.Join(runner, "github_output")
			cmd := exec.CommandContext(t.Context(), "bash", script)
			cmd.Env = append(os.Environ(), append(tt.env,
				"PATH="+shim+string(os.PathListSeparator)+os.Getenv("PATH"),
				"BUILDAH_GLOBAL="+strings.Join(b.global, " "),
				"RUNNER_TEMP="+runner, "GITHUB_PATH="+ghPath, "GITHUB_OUTPUT="+ghOutput)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("get-binary.sh: %v\n%s", err, out)
			}
			dir := filepath.Join(runner, "canarybot-bin")
			if got := strings.TrimSpace(readFile(t, ghPath)); got != dir {
				t.Errorf("GITHUB_PATH got %q, want %s", got, dir)
			}
			if got := strings.TrimSpace(readFile(t, ghOutput)); got != "path="+filepath.Join(dir, "canarybot") {
				t.Errorf("GITHUB_OUTPUT got %q, want path=%s/canarybot", got, dir)
			}
			v, err := exec.CommandContext(t.Context(), filepath.Join(dir, "canarybot"), "version").CombinedOutput()
			if err != nil || !strings.Contains(string(v), tt.wantVersion) {
				t.Errorf("the binary on the runner's PATH: `version` printed %q (%v), want %s", v, err, tt.wantVersion)
			}
			if after := containers(); after != before {
				t.Errorf("get-binary.sh left a container behind:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// buildah runs buildah on a store of its own under ~/.cache/canarybot,
// emptied before and after the test. A lock keeps two test runs on one
// machine from sharing it.
type buildah struct {
	global []string
}

func newBuildah(t *testing.T) *buildah {
	t.Helper()
	if _, err := os.Stat(buildahPath); err != nil {
		t.Fatalf("%s is missing (%v): run `make deps` (scripts/deps.sh) to install buildah", buildahPath, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "canarybot", "buildah")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.Create(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	b := &buildah{global: []string{
		"--root", filepath.Join(dir, "root"),
		"--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "overlay",
	}}
	b.empty(t)
	t.Cleanup(func() {
		b.empty(t)
		lock.Close()
	})
	return b
}

// run runs buildah and fails the test with its output when it exits
// non-zero. Its context is not the test's, which is cancelled before the
// cleanup that empties the store runs.
func (b *buildah) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildahPath, append(append([]string{}, b.global...), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("buildah %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// mountOf mounts a new container of image and returns its root.
func (b *buildah) mountOf(t *testing.T, image string) string {
	t.Helper()
	ctr := strings.TrimSpace(b.run(t, "from", "--quiet", image))
	return strings.TrimSpace(b.run(t, "mount", ctr))
}

// empty removes every container and image, which leaves the store's disk
// space (gigabytes, with the build stage) to the machine.
func (b *buildah) empty(t *testing.T) {
	t.Helper()
	b.run(t, "rm", "--all")
	b.run(t, "rmi", "--all", "--force")
}

// goBase makes the stand-in for golang:1.26: busybox for the RUN steps'
// shell, this machine's Go toolchain, and CA certificates.
func (b *buildah) goBase(t *testing.T) string {
	t.Helper()
	const name = "localhost/canarybot-test/golang:1.26"
	ctr := strings.TrimSpace(b.run(t, "from", "scratch"))
	root := strings.TrimSpace(b.run(t, "mount", ctr))
	mkdirs(t, root, "bin", "usr/local", "etc/ssl/certs", "root", "go")
	mkdirMode(t, filepath.Join(root, "tmp"), 0o777|os.ModeSticky)
	copyFile(t, busyboxPath, filepath.Join(root, "bin", "busybox"), 0o755)
	for _, applet := range []string{"sh", "ls", "cat", "mkdir", "rm", "cp"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(root, "etc", "ssl", "certs", "ca-certificates.crt"), 0o644)
	writeFile(t, filepath.Join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	if out, err := exec.CommandContext(t.Context(), "cp", "-a", goEnv(t, "GOROOT"), filepath.Join(root, "usr", "local", "go")).CombinedOutput(); err != nil {
		t.Fatalf("copy the Go toolchain into the stand-in golang image: %v\n%s", err, out)
	}
	b.run(t, "config", "--env", "PATH=/usr/local/go/bin:/go/bin:/bin", "--env", "GOPATH=/go", "--env", "HOME=/root", ctr)
	b.run(t, "commit", "--quiet", "--rm", ctr, name)
	return name
}

// distrolessBase makes the stand-in for distroless/static-debian12:nonroot
// with that image's layout.
func (b *buildah) distrolessBase(t *testing.T) string {
	t.Helper()
	const name = "localhost/canarybot-test/distroless-static:nonroot"
	ctr := strings.TrimSpace(b.run(t, "from", "scratch"))
	root := strings.TrimSpace(b.run(t, "mount", ctr))
	mkdirs(t, root, "etc/ssl/certs")
	mkdirMode(t, filepath.Join(root, "tmp"), 0o777|os.ModeSticky)
	home := filepath.Join(root, "home", "nonroot")
	mkdirMode(t, home, 0o700)
	if err := os.Chown(home, nonrootUID, nonrootUID); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(root, "etc", "ssl", "certs", "ca-certificates.crt"), 0o644)
	writeFile(t, filepath.Join(root, "etc", "passwd"),
		"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n", 0o644)
	writeFile(t, filepath.Join(root, "etc", "group"), "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n", 0o644)
	b.run(t, "commit", "--quiet", "--rm", ctr, name)
	return name
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// mkdirMode creates dir with exactly mode, which MkdirAll's umask would not.
func mkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b), mode)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
