package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func mustWrite(t testing.TB, d *Dir, name, data string) {
	t.Helper()
	if err := d.Write(context.Background(), name, []byte(data)); err != nil {
		t.Fatalf("Write(%s): %v", name, err)
	}
}

func mustManifest(t testing.TB, dir string) *manifest {
	t.Helper()
	m, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustStat(t testing.TB, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func mustVerifyOK(t testing.TB, dir string) Report {
	t.Helper()
	r, err := Verify(dir)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !r.OK || len(r.Problems) > 0 {
		t.Fatalf("Verify found problems:\n%s", r)
	}
	return r
}

func entryNames(m *manifest) []string {
	var ns []string
	for _, e := range m.Entries {
		ns = append(ns, e.Name)
	}
	return ns
}

func TestWriteBuildsChain(t *testing.T) {
	d, err := Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	files := []struct{ name, data string }{
		{"release_tag.txt", "v1.4.0\n"},
		{"preflight.txt", "10/10\n"},
		{"sbom_v1.4.0.json", `{"bomFormat":"CycloneDX"}`},
		{"rollout_stage_1.txt", "ok\n"},
	}
	for _, f := range files {
		mustWrite(t, d, f.name, f.data)
	}

	r := mustVerifyOK(t, d.Path())
	if r.Files != len(files) {
		t.Errorf("Report.Files = %d, want %d", r.Files, len(files))
	}
	m := mustManifest(t, d.Path())
	prev := genesisHash("v1.4.0")
	for i, f := range files {
		e := m.Entries[i]
		if e.Name != f.name || e.SHA256 != sha256Hex([]byte(f.data)) || e.Size != int64(len(f.data)) {
			t.Errorf("entry %d = %+v, want %s with the sha256 and size of its data", i, e, f.name)
		}
		if e.PrevHash != prev || e.Hash != entryHash(prev, e.Name, e.SHA256) {
			t.Errorf("entry %d (%s) is not chained to the one before it", i, e.Name)
		}
		prev = e.Hash
		if got := string(mustRead(t, filepath.Join(d.Path(), f.name))); got != f.data {
			t.Errorf("%s on disk = %q, want %q", f.name, got, f.data)
		}
	}
	if want := headHash(prev, expectedGenesisHash("v1.4.0")); m.Head != want {
		t.Errorf("head = %s, want %s over the last entry hash and the empty expected list", m.Head, want)
	}
	des, _ := os.ReadDir(d.Path())
	for _, de := range des {
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			t.Errorf("temp file %s left behind", de.Name())
		}
	}
}

func TestWriteRewriteRechains(t *testing.T) {
	d, err := Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, "preflight.txt", "p")
	mustWrite(t, d, "warroom_log.txt", "09:00 start\n")
	mustWrite(t, d, "rollout_stage_1.txt", "s1")
	before := mustManifest(t, d.Path())

	mustWrite(t, d, "warroom_log.txt", "09:00 start\n09:15 stage 1 ok\n")

	after := mustManifest(t, d.Path())
	if got, want := entryNames(after), []string{"preflight.txt", "warroom_log.txt", "rollout_stage_1.txt"}; !slices.Equal(got, want) {
		t.Fatalf("entries = %v, want first-write order %v", got, want)
	}
	if after.Entries[0] != before.Entries[0] {
		t.Errorf("entry before the rewritten one changed: %+v -> %+v", before.Entries[0], after.Entries[0])
	}
	for i := 1; i < 3; i++ {
		if after.Entries[i].Hash == before.Entries[i].Hash {
			t.Errorf("entry %d (%s) was not re-chained", i, after.Entries[i].Name)
		}
	}
	if after.Entries[1].SHA256 != sha256Hex([]byte("09:00 start\n09:15 stage 1 ok\n")) {
		t.Errorf("rewritten entry's sha256 not updated")
	}
	mustVerifyOK(t, d.Path())
}

func TestWriteSameContentIsNoop(t *testing.T) {
	d, err := Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, "preflight.txt", "10/10\n")
	mustWrite(t, d, "artifact_count.txt", "42\n")
	mpath := filepath.Join(d.Path(), ManifestName)
	before := mustRead(t, mpath)
	mInfo, fInfo := mustStat(t, mpath), mustStat(t, filepath.Join(d.Path(), "preflight.txt"))

	mustWrite(t, d, "preflight.txt", "10/10\n")
	if after := mustRead(t, mpath); !bytes.Equal(before, after) {
		t.Fatalf("same-content write changed the manifest:\n%s\n---\n%s", before, after)
	}
	// Every real write renames a new file into place, so the same inode means untouched.
	if !os.SameFile(mInfo, mustStat(t, mpath)) || !os.SameFile(fInfo, mustStat(t, filepath.Join(d.Path(), "preflight.txt"))) {
		t.Errorf("same-content write rewrote the manifest or the file")
	}

	// A lost file is restored by the same write, still without a manifest change.
	if err := os.Remove(filepath.Join(d.Path(), "preflight.txt")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, "preflight.txt", "10/10\n")
	if after := mustRead(t, mpath); !bytes.Equal(before, after) {
		t.Fatalf("restoring write changed the manifest")
	}
	mustVerifyOK(t, d.Path())
}

func TestOpenContinuesChain(t *testing.T) {
	root := t.TempDir()
	d1, err := Open(root, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d1, "release_tag.txt", "v1.4.0")
	mustWrite(t, d1, "preflight.txt", "ok")
	last := mustManifest(t, d1.Path()).Entries[1].Hash

	d2, err := Open(root, "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d2, "release_tag.txt", "v1.4.0") // still a no-op after restart
	mustWrite(t, d2, "artifact_count.txt", "40")

	m := mustManifest(t, d2.Path())
	if got, want := entryNames(m), []string{"release_tag.txt", "preflight.txt", "artifact_count.txt"}; !slices.Equal(got, want) {
		t.Fatalf("entries = %v, want %v", got, want)
	}
	if m.Entries[2].PrevHash != last {
		t.Errorf("new entry links to %s, want the previous last entry %s", m.Entries[2].PrevHash, last)
	}
	mustVerifyOK(t, d2.Path())
}

func TestOpenRejects(t *testing.T) {
	tests := []struct {
		name    string
		version string
		setup   func(t *testing.T, dir string) // dir is root/v1.4.0, already holding a good manifest
		want    error
		wantMsg string
	}{
		{name: "empty version", version: "", want: ErrBadName},
		{name: "version with separator", version: "v1/../x", want: ErrBadName},
		{
			name: "truncated manifest", version: "v1.4.0", want: ErrCorruptManifest, wantMsg: "manifest.json",
			setup: func(t *testing.T, dir string) {
				b := mustRead(t, filepath.Join(dir, ManifestName))
				writeRaw(t, filepath.Join(dir, ManifestName), b[:len(b)/2])
			},
		},
		{
			name: "manifest of another version", version: "v1.4.0", want: ErrCorruptManifest, wantMsg: `"v1.3.0"`,
			setup: func(t *testing.T, dir string) {
				if err := writeManifest(dir, newManifest("v1.3.0")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "format 1 manifest", version: "v1.4.0", want: ErrCorruptManifest, wantMsg: "format 1",
			setup: func(t *testing.T, dir string) {
				writeRaw(t, filepath.Join(dir, ManifestName), mustRead(t, "testdata/manifest_format1.json"))
			},
		},
		{
			name: "unknown format", version: "v1.4.0", want: ErrCorruptManifest, wantMsg: "format 3",
			setup: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Format = 3 })
			},
		},
		{
			name: "waiver added by hand", version: "v1.4.0", want: ErrCorruptManifest, wantMsg: "warroom_log.txt",
			setup: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) {
					m.Expected = []expectation{{Name: "preflight.txt"}, {Name: "warroom_log.txt"}}
					m.rechainExpected()
					m.Expected[1].Waived = "not configured here"
				})
			},
		},
		{
			name: "broken chain", version: "v1.4.0", want: ErrCorruptManifest, wantMsg: "preflight.txt",
			setup: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Entries[1].SHA256 = sha256Hex([]byte("forged")) })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.setup != nil {
				d, err := Open(root, "v1.4.0")
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, d, "release_tag.txt", "v1.4.0")
				mustWrite(t, d, "preflight.txt", "ok")
				tt.setup(t, d.Path())
			}
			_, err := Open(root, tt.version)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Open error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestWriteRejectsBadNames(t *testing.T) {
	d, err := Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	mpath := filepath.Join(d.Path(), ManifestName)
	before := mustRead(t, mpath)
	for _, name := range []string{"", "a/b.txt", `a\b.txt`, "../escape.txt", "..", ".", "a..b", ".hidden", "manifest.json", "line\nbreak.txt", "nul\x00.txt"} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			err := d.Write(context.Background(), name, []byte("x"))
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("Write(%q) error = %v, want ErrBadName", name, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
				t.Errorf("error %q does not quote the bad name", err)
			}
		})
	}
	if after := mustRead(t, mpath); !bytes.Equal(before, after) {
		t.Errorf("rejected writes changed the manifest")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(d.Path()), "escape.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejected name escaped the directory: %v", err)
	}
}

func TestWriteCanceledContext(t *testing.T) {
	d, err := Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Write(ctx, "preflight.txt", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write error = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(d.Path(), "preflight.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("canceled write still wrote the file")
	}
}

func TestExpect(t *testing.T) {
	d, err := Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, "release_tag.txt", "v1.4.0")
	mpath := filepath.Join(d.Path(), ManifestName)
	headBefore := mustManifest(t, d.Path()).Head
	exp := []string{"release_tag.txt", "sbom_v1.4.0.json", "release_tag.txt", "warroom_log.txt"}
	waived := map[string]string{"sbom_v1.4.0.json": "green button not configured"}
	if err := d.Expect(exp, waived); err != nil {
		t.Fatal(err)
	}
	m := mustManifest(t, d.Path())
	want := []expectation{{Name: "release_tag.txt"}, {Name: "sbom_v1.4.0.json", Waived: "green button not configured"}, {Name: "warroom_log.txt"}}
	if !slices.EqualFunc(m.Expected, want, func(a, b expectation) bool { return a.Name == b.Name && a.Waived == b.Waived }) {
		t.Errorf("expected = %+v, want %+v (deduplicated, in order, waiver on its item)", m.Expected, want)
	}
	prev := expectedGenesisHash("v1.4.0")
	for i, x := range m.Expected {
		if x.PrevHash != prev || x.Hash != expectedHash(prev, x.Name, x.Waived) {
			t.Errorf("expected item %d (%s) is not chained to the one before it", i, x.Name)
		}
		prev = x.Hash
	}
	if m.ExpectedHead != prev || m.Head != headHash(m.Entries[0].Hash, prev) {
		t.Errorf("expected_head %s / head %s do not seal the list ending on %s", m.ExpectedHead, m.Head, prev)
	}
	if m.Head == headBefore {
		t.Errorf("Expect left the head unchanged, so the list is not sealed")
	}
	mustVerifyOK(t, d.Path())

	before := mustRead(t, mpath)
	if err := d.Expect(exp, waived); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, mustRead(t, mpath)) {
		t.Errorf("repeating Expect changed the manifest")
	}

	bad := []struct {
		name     string
		expected []string
		waived   map[string]string
		want     string
	}{
		{"bad expected name", []string{"../x"}, nil, "expected list"},
		{"bad waived name", nil, map[string]string{"a/b": "x"}, "waived list"},
		{"waiver without reason", nil, map[string]string{"sbom_v1.4.0.json": " "}, "no reason"},
		{"multi-line reason", exp, map[string]string{"sbom_v1.4.0.json": "not\nconfigured"}, "control character"},
		{"waiver for a name not expected", exp, map[string]string{"pg_dead_tuples_top5.txt": "no database"}, "not in the expected list"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Expect(tt.expected, tt.waived)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Expect error = %v, want one mentioning %q", err, tt.want)
			}
			if !bytes.Equal(before, mustRead(t, mpath)) {
				t.Errorf("rejected Expect changed the manifest")
			}
		})
	}

	// Lifting the waiver re-seals: the manifest still verifies and now requires the file.
	if err := d.Expect(exp, nil); err != nil {
		t.Fatal(err)
	}
	mustVerifyOK(t, d.Path())
	if m := mustManifest(t, d.Path()); m.Expected[1].Waived != "" || m.Head == headHashOf(t, before) {
		t.Errorf("lifting the waiver did not re-seal the list: %+v", m.Expected[1])
	}
	// A later write keeps the list sealed.
	mustWrite(t, d, "warroom_log.txt", "09:00 start\n")
	mustVerifyOK(t, d.Path())
}

func headHashOf(t testing.TB, manifestJSON []byte) string {
	t.Helper()
	var m manifest
	if err := json.Unmarshal(manifestJSON, &m); err != nil {
		t.Fatal(err)
	}
	return m.Head
}

func TestConcurrentWrites(t *testing.T) {
	d, err := Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker*2)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				name := fmt.Sprintf("logs_stage_%d_%d.txt", w, i)
				errs <- d.Write(context.Background(), name, []byte(name))
				// Every worker also grows the shared war-room log.
				errs <- d.Write(context.Background(), "warroom_log.txt", []byte(fmt.Sprintf("worker %d line %d\n", w, i)))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	r := mustVerifyOK(t, d.Path())
	if want := workers*perWorker + 1; r.Files != want {
		t.Errorf("manifest has %d entries, want %d", r.Files, want)
	}
}

// BenchmarkWrite writes a 4 KiB file into a directory already holding 60 entries.
func BenchmarkWrite(b *testing.B) {
	data := [2][]byte{bytes.Repeat([]byte("a"), 4096), bytes.Repeat([]byte("b"), 4096)}
	for _, bc := range []struct{ name, file string }{
		{"rewrite_last", "file_59.txt"},    // re-chains one entry
		{"rewrite_first", "file_00.txt"},   // re-chains all 60
		{"unchanged", "file_30.txt"},       // idempotent path: no manifest write
		{"append_then_rewrite", "new.txt"}, // the 61st entry
	} {
		b.Run(bc.name, func(b *testing.B) {
			d, err := Open(b.TempDir(), "v1.4.0")
			if err != nil {
				b.Fatal(err)
			}
			for i := range 60 {
				mustWrite(b, d, fmt.Sprintf("file_%02d.txt", i), fmt.Sprint(i))
			}
			mustWrite(b, d, bc.file, string(data[0]))
			ctx := context.Background()
			i := 0
			for b.Loop() {
				if bc.name != "unchanged" {
					i++
				}
				if err := d.Write(ctx, bc.file, data[i%2]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func writeRaw(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editManifest(t testing.TB, dir string, edit func(m *manifest)) {
	t.Helper()
	m := mustManifest(t, dir)
	edit(m)
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
}
