package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/testdb"
	"github.com/spf13/afero"

	"github.com/canarybot/canarybot/evidence"
	"github.com/canarybot/canarybot/sbom/vuln"
)

// scanCLI runs `sbom scan` with its own globals: main.go registers the
// command, so the test does not depend on that.
func scanCLI(t *testing.T, evidenceDir string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := newSBOMScanCmd(&globals{evidenceDir: evidenceDir, out: &out, errOut: &errOut})
	c.SilenceUsage, c.SilenceErrors = true, true // as under the root command
	c.SetOut(&out)
	c.SetErr(&errOut)
	c.SetArgs(args)
	err := c.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return out.String() + errOut.String(), exitCode(err)
}

// grypeDB builds a real grype database, with grype's own builder, from the
// GHSA records sbom/vuln's tests use: widget v1.2.0 has a critical
// advisory, gadget v0.4.0 a medium one.
func grypeDB(t *testing.T) string {
	t.Helper()
	in := filepath.Join(t.TempDir(), "advisories")
	if err := os.CopyFS(in, os.DirFS(filepath.Join("..", "..", "sbom", "vuln", "testdata", "advisories"))); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	testdb.BuildFromFlatFileDir(t, time.Now(), filepath.Join(root, vuln.SchemaDir), in, "**/*.json")
	return root
}

// ageDB makes the database at root say it was built at when, and records
// the changed file's checksum as an import would.
func ageDB(t *testing.T, root string, when time.Time) {
	t.Helper()
	dir := filepath.Join(root, vuln.SchemaDir)
	db, err := sql.Open("sqlite", filepath.Join(dir, v6.VulnerabilityDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if res, err := db.Exec("UPDATE db_metadata SET build_timestamp = ?", when.UTC()); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d metadata rows updated, want 1", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := v6.WriteImportMetadata(afero.NewOsFs(), dir, "test"); err != nil {
		t.Fatal(err)
	}
}

func TestSBOMScan(t *testing.T) {
	t.Parallel()
	db := grypeDB(t)
	stale := grypeDB(t)
	ageDB(t, stale, time.Now().Add(-30*24*time.Hour))
	fixture := filepath.Join("..", "..", "sbom", "vuln", "testdata", "release.spdx.json")
	spdx, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	// evidenceWithSBOM is an evidence root whose v1.4.0 holds the fixture
	// as the release's SBOM.
	evidenceWithSBOM := func(t *testing.T) string {
		root := t.TempDir()
		ev, err := evidence.Open(root, "v1.4.0")
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.Write(context.Background(), "sbom_v1.4.0.json", spdx); err != nil {
			t.Fatal(err)
		}
		return root
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
		// evidence is whether vulnerabilities_v1.4.0.txt lands in the evidence.
		evidence bool
	}{
		{"critical fails the default threshold", []string{"v1.4.0", "--db", db}, exitFailure,
			[]string{"threshold: high or worse fails", "critical ✗  github.com/acme/widget  v1.2.0   GHSA-crit-widg-0001 (CVE-2025-0001)  1.2.5", "verdict: FAIL: 1 finding(s) at or above high"}, true},
		{"report only", []string{"v1.4.0", "--db", db, "--fail-on", "none"}, exitComplete,
			[]string{"threshold: none (report only)", "medium    github.com/acme/gadget", "verdict: PASS (report only, no threshold): 1 critical, 1 medium in 4 packages"}, true},
		{"db by its schema directory", []string{"v1.4.0", "--db", filepath.Join(db, vuln.SchemaDir), "--fail-on", "critical"}, exitFailure,
			[]string{"FAIL: 1 finding(s) at or above critical"}, true},
		{"stale database", []string{"v1.4.0", "--db", stale}, exitFailure,
			[]string{"vulnerability scan of", "not done: vulnerability database too old", "more than the 120h0m0s allowed"}, false},
		{"any age when told", []string{"v1.4.0", "--db", stale, "--max-db-age", "0"}, exitFailure,
			[]string{"verdict: FAIL: 1 finding(s) at or above high"}, true},
		{"missing database", []string{"v1.4.0", "--db", filepath.Join(db, "nope")}, exitBadInput,
			[]string{"no vulnerability database", "GRYPE_DB_CACHE_DIR=/tmp/grype-db grype db update"}, false},
		{"bad threshold", []string{"v1.4.0", "--db", db, "--fail-on", "severe"}, exitBadInput,
			[]string{"--fail-on: bad severity \"severe\": use negligible, low, medium, high, critical or none"}, false},
		{"no version", []string{"--db", db}, exitBadInput, []string{"scan takes one <version>, got 0 arguments"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := evidenceWithSBOM(t)
			out, code := scanCLI(t, root, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d:\n%s", code, tt.wantCode, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			report := filepath.Join(root, "v1.4.0", "vulnerabilities_v1.4.0.txt")
			b, err := os.ReadFile(report)
			switch {
			case tt.evidence && err != nil:
				t.Errorf("no evidence: %v", err)
			case tt.evidence && !strings.Contains(out, string(b)):
				t.Errorf("evidence differs from what was printed:\n%s", b)
			case !tt.evidence && err == nil:
				t.Errorf("evidence written though no scan took place:\n%s", b)
			}
			if tt.evidence {
				if out, code := cli(t, "evidence", "verify", filepath.Join(root, "v1.4.0")); code != exitComplete || !strings.Contains(out, "ok: 2 evidence files match the manifest") {
					t.Errorf("evidence verify exit %d, or the report is not in the manifest:\n%s", code, out)
				}
			}
		})
	}

	t.Run("sbom and output named", func(t *testing.T) {
		t.Parallel()
		outDir := filepath.Join(t.TempDir(), "out")
		out, code := scanCLI(t, t.TempDir(), "v1.4.0", "--db", db, "--sbom", fixture, "--output", outDir, "--fail-on", "none")
		if code != exitComplete || !strings.Contains(out, "written: "+filepath.Join(outDir, "vulnerabilities_v1.4.0.txt")) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if b, err := os.ReadFile(filepath.Join(outDir, "vulnerabilities_v1.4.0.txt")); err != nil || !strings.Contains(string(b), "GHSA-medx-gadg-0003") {
			t.Errorf("report %q, %v", b, err)
		}
	})

	t.Run("no SBOM yet", func(t *testing.T) {
		t.Parallel()
		out, code := scanCLI(t, t.TempDir(), "v1.4.0", "--db", db)
		if code != exitBadInput || !strings.Contains(out, "run `canarybot sbom generate v1.4.0` first, or name one with --sbom") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

// TestSBOMScanNoDB is not parallel: it clears grype's variable, the
// fallback for --db.
func TestSBOMScanNoDB(t *testing.T) {
	t.Setenv(grypeDBEnv, "")
	out, code := scanCLI(t, t.TempDir(), "v1.4.0", "--sbom", filepath.Join("..", "..", "sbom", "vuln", "testdata", "release.spdx.json"))
	if code != exitBadInput || !strings.Contains(out, "no database path given") || !strings.Contains(out, "grype db update") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
