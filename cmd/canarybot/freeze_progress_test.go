package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarybot/canarybot/forge/forgetest"
)

// TestFreezeProgressLines: off a terminal (the tests' buffers), progress
// lines are plain and appear only as often as --log-every asks: none by
// default in a run this short.
func TestFreezeProgressLines(t *testing.T) {
	clearGitHubEnv(t)
	fake := forgetest.New(t, "acme", "exchange", 130)
	t.Setenv("GITHUB_TOKEN", "ghp_test")
	t.Setenv("GITHUB_REPOSITORY", "acme/exchange")
	t.Setenv("GITHUB_API_URL", fake.URL)
	dir := t.TempDir()
	common := []string{"--evidence-dir", dir, "--state", filepath.Join(dir, "state.db"), "--write-interval", "0s", "--mode", "statuses"}

	out, code := cli(t, append([]string{"freeze", "start", "v1.4.0"}, common...)...)
	if code != exitComplete {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "/130 PRs") || strings.Contains(out, "so far") || strings.Contains(out, "\r") {
		t.Errorf("progress lines in a short run without --log-every:\n%s", out)
	}

	out, code = cli(t, append([]string{"freeze", "lift", "--log-every", "1ns"}, common...)...)
	if code != exitComplete {
		t.Fatalf("lift: exit %d\n%s", code, out)
	}
	for _, want := range []string{"listing open PRs: 130 so far\n", "unblocking 130/130 PRs\n", "unlabelling 130/130 PRs\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("lift with --log-every 1ns lacks %q:\n%.2000s", want, out)
		}
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\x1b[") {
		t.Errorf("terminal escapes off a terminal:\n%q", out[:min(len(out), 500)])
	}

	out, code = cli(t, append([]string{"freeze", "start", "v1.4.0", "--log-every", "-1s"}, common...)...)
	if code != exitBadInput || !strings.Contains(out, "--log-every -1s is negative") {
		t.Errorf("negative --log-every: exit %d\n%s", code, out)
	}
}

func TestIsTTY(t *testing.T) {
	if isTTY(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	// A character device, but no terminal: no escape sequences there.
	if isTTY(devNull) {
		t.Errorf("%s is a terminal", os.DevNull)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTTY(f) {
		t.Error("a regular file is a terminal")
	}
}
