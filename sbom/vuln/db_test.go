package vuln

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/testdb"
)

// buildDB builds a real grype v6 database, with grype's own builder, from
// the GHSA records in testdata/advisories (vunnel's flat-file layout), into
// a cache root laid out as `grype db update` leaves it: ROOT/6/. The
// database records the wall clock as its build time; that is returned.
func buildDB(t *testing.T) (string, time.Time) {
	t.Helper()
	in := filepath.Join(t.TempDir(), "advisories")
	// The builder writes its listing and metadata beside the records.
	if err := os.CopyFS(in, os.DirFS(filepath.Join("testdata", "advisories"))); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// An include pattern makes the builder build: without one it skips
	// whenever its output looks older than its input, as a new one does.
	testdb.BuildFromFlatFileDir(t, time.Now(), filepath.Join(root, SchemaDir), in, "**/*.json")
	d, err := v6.ReadDescription(filepath.Join(root, SchemaDir, v6.VulnerabilityDBFileName))
	if err != nil {
		t.Fatal(err)
	}
	return root, d.Built.Time
}

func TestSchemaDir(t *testing.T) {
	t.Parallel()
	if want := strconv.Itoa(v6.ModelVersion); SchemaDir != want {
		t.Errorf("SchemaDir %q, but the linked grype reads schema %s: update it and the advice that names it", SchemaDir, want)
	}
}

// at returns a clock reading built+d.
func at(built time.Time, d time.Duration) func() time.Time {
	return func() time.Time { return built.Add(d) }
}

func TestScanRealDB(t *testing.T) {
	t.Parallel()
	root, built := buildDB(t)
	doc := readFixture(t, "release.spdx.json")
	// The cache root, the schema directory and the file all name it.
	for _, p := range []string{root, filepath.Join(root, SchemaDir), filepath.Join(root, SchemaDir, "vulnerability.db")} {
		rep, err := Scan(context.Background(), doc, Options{DBPath: p, FailOn: High, Now: at(built, time.Hour)})
		if err != nil {
			t.Fatalf("DBPath %s: %v", p, err)
		}
		var got []string
		for _, f := range rep.Findings {
			got = append(got, row(f)+" "+strings.Join(f.Aliases, ","))
		}
		want := []string{
			"critical github.com/acme/widget v1.2.0 GHSA-crit-widg-0001 1.2.5 fixed CVE-2025-0001",
			"medium github.com/acme/gadget v0.4.0 GHSA-medx-gadg-0003 0.5.0 fixed CVE-2025-0003",
		}
		if !slices.Equal(got, want) || !rep.Failed {
			t.Errorf("DBPath %s: findings\n%s\nfailed %v; want\n%s\nand failed", p, strings.Join(got, "\n"), rep.Failed, strings.Join(want, "\n"))
		}
		if rep.DB.Path != filepath.Join(root, SchemaDir, "vulnerability.db") || !rep.DB.Built.Equal(built) || !strings.HasPrefix(rep.DB.SchemaVersion, "v6.") {
			t.Errorf("DB %+v", rep.DB)
		}
		if text := rep.Text(); !strings.Contains(text, "database: "+rep.DB.Path+" (schema "+rep.DB.SchemaVersion+", built "+built.UTC().Format(time.RFC3339)) {
			t.Errorf("report does not say which database:\n%s", text)
		}
	}
}

func TestOpenRefusals(t *testing.T) {
	t.Parallel()
	root, built := buildDB(t)
	dbFile := filepath.Join(root, SchemaDir, "vulnerability.db")

	tampered := t.TempDir()
	if err := os.CopyFS(tampered, os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(tampered, SchemaDir, "vulnerability.db"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("tampered"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	otherSchema := t.TempDir()
	if err := os.WriteFile(filepath.Join(otherSchema, "vulnerability.db"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	notDB := filepath.Join(t.TempDir(), "grype.tar.zst")
	if err := os.WriteFile(notDB, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		o    Options
		want error
		msg  []string
	}{
		{"no path", Options{}, ErrNoDB, []string{"no database path given", "grype db update"}},
		{"missing", Options{DBPath: filepath.Join(root, "nope")}, ErrNoDB, []string{"no such file or directory", "copy /tmp/grype-db here"}},
		{"empty directory", Options{DBPath: t.TempDir()}, ErrNoDB, []string{"has no 6/vulnerability.db", "grype db update"}},
		{"other schema", Options{DBPath: otherSchema}, ErrNoDB, []string{"outside a 6/ directory", "schema v6"}},
		{"an archive, not a directory", Options{DBPath: notDB}, ErrNoDB, []string{"is a file, not a grype database directory"}},
		{"tampered", Options{DBPath: tampered, Now: at(built, time.Hour)}, ErrBadDB, []string{"bad db checksum"}},
		{"stale by default", Options{DBPath: root, Now: at(built, DefaultMaxDBAge+time.Hour)}, ErrStaleDB, []string{dbFile, "was built " + built.UTC().Format(time.RFC3339) + " (121h0m0s ago), more than the 120h0m0s allowed"}},
		{"stale by choice", Options{DBPath: root, MaxDBAge: 30 * time.Minute, Now: at(built, time.Hour)}, ErrStaleDB, []string{"more than the 30m0s allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, _, err := Open(tt.o)
			if p != nil {
				t.Cleanup(func() { _ = p.Close() })
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
		})
	}

	t.Run("any age when told", func(t *testing.T) {
		t.Parallel()
		p, db, err := Open(Options{DBPath: root, MaxDBAge: -1, Now: at(built, 365*24*time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if !db.Built.Equal(built) {
			t.Errorf("built %v, want %v", db.Built, built)
		}
	})
}

// TestCheckWritesEvidence is the green-button hook: the report lands in
// the evidence under its name, and nothing is written when no scan ran.
func TestCheckWritesEvidence(t *testing.T) {
	t.Parallel()
	root, built := buildDB(t)
	ev := &memEvidence{}
	rep, err := Check(context.Background(), ev, "v1.4.0", readFixture(t, "release.spdx.json"), Options{DBPath: root, FailOn: Critical, Now: at(built, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed || len(ev.files) != 1 || ev.files[EvidenceName("v1.4.0")] != rep.Text() || EvidenceName("v1.4.0") != "vulnerabilities_v1.4.0.txt" {
		t.Errorf("failed %v, evidence %v", rep.Failed, ev.files)
	}

	ev = &memEvidence{}
	if _, err := Check(context.Background(), ev, "v1.4.0", readFixture(t, "release.spdx.json"), Options{DBPath: t.TempDir()}); !errors.Is(err, ErrNoDB) || len(ev.files) != 0 {
		t.Errorf("without a database: err %v, evidence %v", err, ev.files)
	}
}

type memEvidence struct{ files map[string]string }

func (m *memEvidence) Write(_ context.Context, name string, data []byte) error {
	if m.files == nil {
		m.files = map[string]string{}
	}
	m.files[name] = string(data)
	return nil
}
