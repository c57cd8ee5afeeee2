package evidence

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The fixture holds release_tag.txt, preflight.txt and rollout_stage_1.txt, in
// that order, with a manifest made by this package. Its hashes were checked
// with sha256sum, so it pins the on-disk format as well.
const fixture = "testdata/v1.4.0"

// copyFixture returns a fresh, writable copy named like a release directory.
func copyFixture(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "v1.4.0")
	if err := os.CopyFS(dst, os.DirFS(fixture)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestVerifyFixtureOK(t *testing.T) {
	r := mustVerifyOK(t, fixture)
	if r.Files != 3 {
		t.Errorf("Files = %d, want 3", r.Files)
	}
	if got, want := r.String(), "ok: 3 evidence files match the manifest and its chain is intact"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	type found struct {
		Kind ProblemKind
		File string
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []found
	}{
		{
			name: "edit a file",
			tamper: func(t *testing.T, dir string) {
				writeRaw(t, filepath.Join(dir, "preflight.txt"), []byte("9/10 checks passed\n"))
			},
			want: []found{{Edited, "preflight.txt"}},
		},
		{
			name: "delete a file",
			tamper: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "rollout_stage_1.txt")); err != nil {
					t.Fatal(err)
				}
			},
			want: []found{{Deleted, "rollout_stage_1.txt"}},
		},
		{
			name:   "add a file",
			tamper: func(t *testing.T, dir string) { writeRaw(t, filepath.Join(dir, "extra.txt"), []byte("x")) },
			want:   []found{{Added, "extra.txt"}},
		},
		{
			name:   "add a hidden file",
			tamper: func(t *testing.T, dir string) { writeRaw(t, filepath.Join(dir, ".sneaky"), []byte("x")) },
			want:   []found{{Added, ".sneaky"}},
		},
		{
			name:   "left-over temp file is not tampering",
			tamper: func(t *testing.T, dir string) { writeRaw(t, filepath.Join(dir, tmpPrefix+"123"), []byte("x")) },
			want:   nil,
		},
		{
			name: "swap first two entries",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Entries[0], m.Entries[1] = m.Entries[1], m.Entries[0] })
			},
			want: []found{{Reordered, "release_tag.txt"}, {Reordered, "preflight.txt"}},
		},
		{
			name: "swap last two entries",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Entries[1], m.Entries[2] = m.Entries[2], m.Entries[1] })
			},
			want: []found{{Reordered, "preflight.txt"}, {Reordered, "rollout_stage_1.txt"}},
		},
		{
			name: "edit a file and its entry's sha256",
			tamper: func(t *testing.T, dir string) {
				forged := []byte("forged\n")
				writeRaw(t, filepath.Join(dir, "preflight.txt"), forged)
				editManifest(t, dir, func(m *manifest) {
					m.Entries[1].SHA256, m.Entries[1].Size = sha256Hex(forged), int64(len(forged))
				})
			},
			want: []found{{ManifestTampered, "preflight.txt"}},
		},
		{
			name: "edit a file, its sha256 and its entry hash",
			tamper: func(t *testing.T, dir string) {
				forged := []byte("forged\n")
				writeRaw(t, filepath.Join(dir, "preflight.txt"), forged)
				editManifest(t, dir, func(m *manifest) {
					e := &m.Entries[1]
					e.SHA256, e.Size = sha256Hex(forged), int64(len(forged))
					e.Hash = entryHash(e.PrevHash, e.Name, e.SHA256)
				})
			},
			want: []found{{ManifestTampered, "preflight.txt"}},
		},
		{
			name: "edit the last file, its sha256 and its entry hash",
			tamper: func(t *testing.T, dir string) {
				forged := []byte("forged\n")
				writeRaw(t, filepath.Join(dir, "rollout_stage_1.txt"), forged)
				editManifest(t, dir, func(m *manifest) {
					e := &m.Entries[2]
					e.SHA256, e.Size = sha256Hex(forged), int64(len(forged))
					e.Hash = entryHash(e.PrevHash, e.Name, e.SHA256)
				})
			},
			want: []found{{ManifestTampered, "rollout_stage_1.txt"}},
		},
		{
			name:   "edit an entry's size",
			tamper: func(t *testing.T, dir string) { editManifest(t, dir, func(m *manifest) { m.Entries[1].Size++ }) },
			want:   []found{{ManifestTampered, "preflight.txt"}},
		},
		{
			name: "drop the last entry",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Entries = m.Entries[:2] })
			},
			want: []found{{ManifestTampered, "preflight.txt"}, {Added, "rollout_stage_1.txt"}},
		},
		{
			name: "drop a middle entry",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Entries = slices.Delete(m.Entries, 1, 2) })
			},
			want: []found{{ManifestTampered, "release_tag.txt"}, {Added, "preflight.txt"}},
		},
		{
			name:   "edit the head",
			tamper: func(t *testing.T, dir string) { editManifest(t, dir, func(m *manifest) { m.Head = genesisHash("x") }) },
			want:   []found{{ManifestTampered, "rollout_stage_1.txt"}},
		},
		{
			name:   "change the version",
			tamper: func(t *testing.T, dir string) { editManifest(t, dir, func(m *manifest) { m.Version = "v1.4.1" }) },
			want:   []found{{ManifestTampered, "release_tag.txt"}},
		},
		{
			name: "entry names a path outside the directory",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Entries[0].Name = "../../etc/passwd"; m.rechain(0) })
			},
			want: []found{{ManifestTampered, "../../etc/passwd"}, {Added, "release_tag.txt"}},
		},
		{
			name: "duplicate entry",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Entries = append(m.Entries, m.Entries[0]); m.rechain(0) })
			},
			want: []found{{ManifestTampered, "release_tag.txt"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyFixture(t)
			tt.tamper(t, dir)
			r, err := Verify(dir)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			var got []found
			for _, p := range r.Problems {
				got = append(got, found{p.Kind, p.File})
				if p.Detail == "" {
					t.Errorf("%s %s has no detail", p.Kind, p.File)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("problems = %v, want %v\n%s", got, tt.want, r)
			}
			if r.OK != (len(tt.want) == 0) {
				t.Errorf("OK = %v with problems %v", r.OK, got)
			}
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   error
	}{
		{
			name: "manifest deleted",
			tamper: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, ManifestName)); err != nil {
					t.Fatal(err)
				}
			},
			want: ErrNoManifest,
		},
		{
			name: "manifest truncated",
			tamper: func(t *testing.T, dir string) {
				b := mustRead(t, filepath.Join(dir, ManifestName))
				writeRaw(t, filepath.Join(dir, ManifestName), b[:len(b)*2/3])
			},
			want: ErrCorruptManifest,
		},
		{
			name:   "manifest emptied",
			tamper: func(t *testing.T, dir string) { writeRaw(t, filepath.Join(dir, ManifestName), []byte("{}")) },
			want:   ErrCorruptManifest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyFixture(t)
			tt.tamper(t, dir)
			_, err := Verify(dir)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, ManifestName)) {
				t.Errorf("error %q does not name the manifest", err)
			}
		})
	}
}

func TestReportString(t *testing.T) {
	dir := copyFixture(t)
	writeRaw(t, filepath.Join(dir, "preflight.txt"), []byte("9/10\n"))
	writeRaw(t, filepath.Join(dir, "extra.txt"), []byte("x"))
	r, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "edited: preflight.txt (sha256 was e1ea021dae795a23f1bcc69b4ffc154e9dcc2865a944291db0a28396ab182b6d, now " +
		sha256Hex([]byte("9/10\n")) + ")\n" +
		"added: extra.txt (on disk, not in the manifest)"
	if got := r.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(t *testing.T) string // returns the dir to check
		wantPresent int
		wantExpect  int
		wantMissing []string
		wantString  string
	}{
		{
			name:        "manifest expected list with a waiver",
			setup:       copyFixture,
			wantPresent: 3, wantExpect: 4,
			wantMissing: []string{"warroom_log.txt"},
			wantString:  "3/4 evidence files present; missing: warroom_log.txt; waived: sbom_v1.4.0.json (green button not configured)",
		},
		{
			name: "waived file on disk is not counted",
			setup: func(t *testing.T) string {
				dir := copyFixture(t)
				writeRaw(t, filepath.Join(dir, "sbom_v1.4.0.json"), []byte("{}"))
				writeRaw(t, filepath.Join(dir, "warroom_log.txt"), []byte("log"))
				return dir
			},
			wantPresent: 4, wantExpect: 4,
			wantString: "4/4 evidence files present; waived: sbom_v1.4.0.json (green button not configured)",
		},
		{
			name: "no manifest: runbook list for the directory's version",
			setup: func(t *testing.T) string {
				dir := filepath.Join(t.TempDir(), "v1.4.0")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				writeRaw(t, filepath.Join(dir, "release_tag.txt"), []byte("v1.4.0"))
				writeRaw(t, filepath.Join(dir, "rollback_dryrun.txt"), []byte("dry"))
				return dir
			},
			wantPresent: 2, wantExpect: 40,
			wantMissing: runbookGolden(t)[1:39],
		},
		{
			name: "manifest without expected list: runbook list for the manifest's version",
			setup: func(t *testing.T) string {
				d, err := Open(t.TempDir(), "v2.0.0")
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range RunbookFiles("v2.0.0", []int{1, 5, 25, 50, 100})[2:] {
					mustWrite(t, d, n, n)
				}
				mustWrite(t, d, "sbom_v1.4.0.json", "wrong version, does not count")
				renamed := filepath.Join(filepath.Dir(d.Path()), "renamed")
				if err := os.Rename(d.Path(), renamed); err != nil {
					t.Fatal(err)
				}
				return renamed
			},
			wantPresent: 38, wantExpect: 40,
			wantMissing: []string{"release_tag.txt", "preflight.txt"},
			wantString:  "38/40 evidence files present; missing: release_tag.txt, preflight.txt",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Check(tt.setup(t))
			if err != nil {
				t.Fatal(err)
			}
			if c.Present != tt.wantPresent || c.Expected != tt.wantExpect || !slices.Equal(c.Missing, tt.wantMissing) {
				t.Errorf("Check = %d/%d missing %v, want %d/%d missing %v",
					c.Present, c.Expected, c.Missing, tt.wantPresent, tt.wantExpect, tt.wantMissing)
			}
			if c.Present+len(c.Missing) != c.Expected {
				t.Errorf("present %d + missing %d != expected %d", c.Present, len(c.Missing), c.Expected)
			}
			if tt.wantString != "" && c.String() != tt.wantString {
				t.Errorf("String() = %q, want %q", c.String(), tt.wantString)
			}
		})
	}
}

func TestCheckCorruptManifest(t *testing.T) {
	dir := copyFixture(t)
	writeRaw(t, filepath.Join(dir, ManifestName), []byte(`{"entries": [`))
	if _, err := Check(dir); !errors.Is(err, ErrCorruptManifest) {
		t.Fatalf("Check error = %v, want ErrCorruptManifest", err)
	}
}

func TestRunbookFiles(t *testing.T) {
	got := RunbookFiles("v1.4.0", []int{1, 5, 25, 50, 100})
	if want := runbookGolden(t); !slices.Equal(got, want) {
		t.Errorf("RunbookFiles =\n%v\nwant (testdata/runbook_files_v1.4.0.txt)\n%v", got, want)
	}
	for _, n := range got {
		if err := checkName(n); err != nil {
			t.Errorf("runbook name %s is not writable: %v", n, err)
		}
	}
	if got := RunbookFiles("v2.0.0", []int{10, 100}); len(got) != 11+5*2+4 || !slices.Contains(got, "summary_stage_10.txt") || !slices.Contains(got, "mini_rca_v2.0.0.md") {
		t.Errorf("RunbookFiles(v2.0.0, [10 100]) = %v", got)
	}
}

// runbookGolden is the runbook's "Expected Evidence" list for v1.4.0, typed in
// from the runbook rather than generated.
func runbookGolden(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("testdata/runbook_files_v1.4.0.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for s := bufio.NewScanner(f); s.Scan(); {
		names = append(names, s.Text())
	}
	return names
}
