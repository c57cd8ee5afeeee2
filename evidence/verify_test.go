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
// that order, and a manifest whose expected list is release_tag.txt,
// preflight.txt, rollout_stage_1.txt, sbom_v1.4.0.json (waived) and
// warroom_log.txt (missing). Its hashes were computed with printf and
// sha256sum by testdata/seal_v1.4.0.sh, not by this package, so it pins the
// on-disk format as well.
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
		detail string // when set, the report must say this
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
			// Both chains start from the version: the entries and the expected list.
			want:   []found{{ManifestTampered, "release_tag.txt"}, {ManifestTampered, "release_tag.txt"}},
			detail: "expected list: first expected file does not link to the genesis hash of version v1.4.1",
		},
		{
			name: "waive a missing file",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected[4].Waived = "not configured here" })
			},
			want:   []found{{ManifestTampered, "warroom_log.txt"}},
			detail: `expected list: waived ("not configured here") by hand: it was sealed as required`,
		},
		{
			name: "waive a missing file with another file's reason",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected[4].Waived = m.Expected[3].Waived })
			},
			want:   []found{{ManifestTampered, "warroom_log.txt"}},
			detail: `waived ("green button not configured") by hand: it was sealed as required`,
		},
		{
			name: "waive a missing file and recompute its item hash",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) {
					x := &m.Expected[4]
					x.Waived = "not configured here"
					x.Hash = expectedHash(x.PrevHash, x.Name, x.Waived)
				})
			},
			want:   []found{{ManifestTampered, "warroom_log.txt"}},
			detail: "expected list: expected_head",
		},
		{
			name: "waive a missing file and reseal the whole list but not the head",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) {
					m.Expected[4].Waived = "not configured here"
					head := m.Head
					m.rechainExpected()
					m.Head = head
				})
			},
			want:   []found{{ManifestTampered, "rollout_stage_1.txt"}},
			detail: "or expected_head was rewritten",
		},
		{
			name: "lift a waiver",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected[3].Waived = "" })
			},
			want:   []found{{ManifestTampered, "sbom_v1.4.0.json"}},
			detail: "its name was edited or a waiver removed",
		},
		{
			name: "change a waiver's reason",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected[3].Waived = "SBOM is not needed for this release" })
			},
			want:   []found{{ManifestTampered, "sbom_v1.4.0.json"}},
			detail: `its name or its waiver reason (now "SBOM is not needed for this release") was edited`,
		},
		{
			name: "rename an expected file",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected[4].Name = "release_oneliner.txt" })
			},
			want:   []found{{ManifestTampered, "release_oneliner.txt"}},
			detail: "renamed: it was sealed as warroom_log.txt, required",
		},
		{
			name: "remove a required name from the middle of the expected list",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected = slices.Delete(m.Expected, 1, 2) })
			},
			want:   []found{{ManifestTampered, "preflight.txt"}},
			detail: "expected list: removed; it was sealed between release_tag.txt and rollout_stage_1.txt as required",
		},
		{
			name: "remove the only file with its reason",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected = slices.Delete(m.Expected, 3, 4) })
			},
			// The reason left with the item, so only the break is known.
			want:   []found{{ManifestTampered, "rollout_stage_1.txt"}},
			detail: "expected list: chain broken after this expected file: warroom_log.txt links to",
		},
		{
			name: "remove the first expected name",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected = m.Expected[1:] })
			},
			want:   []found{{ManifestTampered, "release_tag.txt"}},
			detail: "sealed between the start of the list and preflight.txt as required",
		},
		{
			name: "remove the last expected name",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected = m.Expected[:4] })
			},
			want:   []found{{ManifestTampered, "warroom_log.txt"}},
			detail: "expected list: removed from the end; it was sealed as required",
		},
		{
			name: "empty the expected list",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected = nil })
			},
			want:   []found{{ManifestTampered, ManifestName}},
			detail: "expected files were removed or appended at the end",
		},
		{
			name: "append an expected name",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) {
					last := m.Expected[len(m.Expected)-1].Hash
					m.Expected = append(m.Expected, expectation{Name: "extra.txt", PrevHash: last, Hash: expectedHash(last, "extra.txt", "")})
				})
			},
			want: []found{{ManifestTampered, "extra.txt"}},
		},
		{
			name: "swap two expected names",
			tamper: func(t *testing.T, dir string) {
				editManifest(t, dir, func(m *manifest) { m.Expected[0], m.Expected[1] = m.Expected[1], m.Expected[0] })
			},
			want:   []found{{Reordered, "release_tag.txt"}, {Reordered, "preflight.txt"}},
			detail: "expected list: is expected file 1 in the manifest but its chain link puts it at 2",
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
			if !strings.Contains(r.String(), tt.detail) {
				t.Errorf("report does not say %q:\n%s", tt.detail, r)
			}
		})
	}
}

// TestVerifyNamesExpectedListEdits runs the hand edits that fake completeness
// on a list shaped like a real release's, where waiver reasons repeat and so
// the original of an edited item can be recovered and named.
func TestVerifyNamesExpectedListEdits(t *testing.T) {
	const (
		noDB   = "no database is configured for per-stage health snapshots"
		noLogs = "no log source is configured for per-stage log capture"
	)
	tests := []struct {
		name   string
		edit   func(m *manifest)
		file   string
		detail string
	}{
		{
			name:   "change a reason to another one in use",
			edit:   func(m *manifest) { m.Expected[findExpected(m, "db_health_stage_10.txt")].Waived = noLogs },
			file:   "db_health_stage_10.txt",
			detail: "waiver reason changed by hand from \"" + noDB + "\" to \"" + noLogs + "\"",
		},
		{
			name:   "lift a waiver",
			edit:   func(m *manifest) { m.Expected[findExpected(m, "logs_stage_100.txt")].Waived = "" },
			file:   "logs_stage_100.txt",
			detail: "waiver removed by hand: it was sealed as waived (\"" + noLogs + "\")",
		},
		{
			name:   "waive a missing required file with a reason in use",
			edit:   func(m *manifest) { m.Expected[findExpected(m, "summary_stage_10.txt")].Waived = noDB },
			file:   "summary_stage_10.txt",
			detail: "waived (\"" + noDB + "\") by hand: it was sealed as required",
		},
		{
			name: "drop a missing required file",
			edit: func(m *manifest) {
				i := findExpected(m, "warroom_log.txt")
				m.Expected = slices.Delete(m.Expected, i, i+1)
			},
			file:   "warroom_log.txt",
			detail: "removed; it was sealed between summary_stage_100.txt and release_oneliner.txt as required",
		},
		{
			name: "drop a waived file",
			edit: func(m *manifest) {
				i := findExpected(m, "db_health_stage_100.txt")
				m.Expected = slices.Delete(m.Expected, i, i+1)
			},
			file:   "db_health_stage_100.txt",
			detail: "as waived (\"" + noDB + "\")",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(t.TempDir(), "v2.0.0")
			if err != nil {
				t.Fatal(err)
			}
			list := RunbookFiles("v2.0.0", []int{10, 100})
			waived := map[string]string{}
			for _, n := range list {
				switch {
				case strings.HasPrefix(n, "db_health_stage_"):
					waived[n] = noDB
				case strings.HasPrefix(n, "logs_stage_"):
					waived[n] = noLogs
				}
			}
			if err := d.Expect(list, waived); err != nil {
				t.Fatal(err)
			}
			mustVerifyOK(t, d.Path())
			editManifest(t, d.Path(), tt.edit)
			r, err := Verify(d.Path())
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Problems) != 1 || r.Problems[0].Kind != ManifestTampered || r.Problems[0].File != tt.file ||
				!strings.Contains(r.Problems[0].Detail, tt.detail) {
				t.Fatalf("problems:\n%s\nwant one %s on %s saying %q", r, ManifestTampered, tt.file, tt.detail)
			}
		})
	}
}

func findExpected(m *manifest, name string) int {
	i := slices.IndexFunc(m.Expected, func(x expectation) bool { return x.Name == name })
	if i < 0 {
		panic(name + " is not in the expected list: the test's edit is wrong")
	}
	return i
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
		wantListed  int
		wantWaived  int
		wantMissing []string
		wantString  string
	}{
		{
			name:        "manifest expected list with a waiver",
			setup:       copyFixture,
			wantPresent: 3, wantExpect: 4, wantListed: 5, wantWaived: 1,
			wantMissing: []string{"warroom_log.txt"},
			wantString: "3/4 required evidence files present (of 5 in the runbook list; 1 waived); 1 missing\n" +
				"  missing: warroom_log.txt\n" +
				"  waived 1 (green button not configured): sbom_v1.4.0.json",
		},
		{
			name: "waived file on disk is not counted",
			setup: func(t *testing.T) string {
				dir := copyFixture(t)
				writeRaw(t, filepath.Join(dir, "sbom_v1.4.0.json"), []byte("{}"))
				writeRaw(t, filepath.Join(dir, "warroom_log.txt"), []byte("log"))
				return dir
			},
			wantPresent: 4, wantExpect: 4, wantListed: 5, wantWaived: 1,
			wantString: "4/4 required evidence files present (of 5 in the runbook list; 1 waived)\n" +
				"  waived 1 (green button not configured): sbom_v1.4.0.json",
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
			wantPresent: 2, wantExpect: 40, wantListed: 40,
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
			wantPresent: 38, wantExpect: 40, wantListed: 40,
			wantMissing: []string{"release_tag.txt", "preflight.txt"},
			wantString: "38/40 required evidence files present (of 40 in the runbook list; 0 waived); 2 missing\n" +
				"  missing: release_tag.txt, preflight.txt",
		},
		{
			name:        "a release's list: most of it waived, grouped by reason",
			setup:       releaseLike,
			wantPresent: 20, wantExpect: 22, wantListed: 40, wantWaived: 18,
			wantMissing: []string{"rollout_stage_100.txt", "summary_stage_100.txt"},
			wantString: "20/22 required evidence files present (of 40 in the runbook list; 18 waived); 2 missing\n" +
				"  missing: rollout_stage_100.txt, summary_stage_100.txt\n" +
				"  waived 5 (no database is configured for per-stage health snapshots): " +
				"db_health_stage_1.txt, db_health_stage_5.txt, db_health_stage_25.txt, db_health_stage_50.txt, db_health_stage_100.txt\n" +
				"  waived 5 (no log source is configured for per-stage log capture): " +
				"logs_stage_1.txt, logs_stage_5.txt, logs_stage_25.txt, logs_stage_50.txt, logs_stage_100.txt\n" +
				"  waived 5 (no pgBouncer is configured for per-stage pool snapshots): " +
				"pgbouncer_stage_1.txt, pgbouncer_stage_5.txt, pgbouncer_stage_25.txt, pgbouncer_stage_50.txt, pgbouncer_stage_100.txt\n" +
				"  waived 3 (green button is not configured in this deployment): " +
				"build_provenance_v1.4.0.json, go_nogo_signed_v1.4.0.txt, sbom_v1.4.0.json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Check(tt.setup(t))
			if err != nil {
				t.Fatal(err)
			}
			if c.Present != tt.wantPresent || c.Expected != tt.wantExpect || c.Listed != tt.wantListed ||
				len(c.Waived) != tt.wantWaived || !slices.Equal(c.Missing, tt.wantMissing) {
				t.Errorf("Check = %d/%d of %d, %d waived, missing %v; want %d/%d of %d, %d waived, missing %v",
					c.Present, c.Expected, c.Listed, len(c.Waived), c.Missing,
					tt.wantPresent, tt.wantExpect, tt.wantListed, tt.wantWaived, tt.wantMissing)
			}
			if c.Present+len(c.Missing) != c.Expected || c.Expected+len(c.Waived) != c.Listed {
				t.Errorf("present %d + missing %d != required %d, or required + waived %d != listed %d",
					c.Present, len(c.Missing), c.Expected, len(c.Waived), c.Listed)
			}
			if tt.wantString != "" && c.String() != tt.wantString {
				t.Errorf("String() =\n%s\nwant\n%s", c.String(), tt.wantString)
			}
		})
	}
}

// releaseLike is a v1.4.0 directory shaped like the demo's: the per-stage
// database, pool and log files and three green-button files waived, the
// release stopped before writing its 100% stage files.
func releaseLike(t *testing.T) string {
	d, err := Open(t.TempDir(), "v1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	list := RunbookFiles("v1.4.0", []int{1, 5, 25, 50, 100})
	waived := map[string]string{
		"sbom_v1.4.0.json":             "green button is not configured in this deployment",
		"build_provenance_v1.4.0.json": "green button is not configured in this deployment",
		"go_nogo_signed_v1.4.0.txt":    "green button is not configured in this deployment",
	}
	for _, n := range list {
		for prefix, why := range map[string]string{
			"db_health_stage_": "no database is configured for per-stage health snapshots",
			"pgbouncer_stage_": "no pgBouncer is configured for per-stage pool snapshots",
			"logs_stage_":      "no log source is configured for per-stage log capture",
		} {
			if strings.HasPrefix(n, prefix) {
				waived[n] = why
			}
		}
	}
	if err := d.Expect(list, waived); err != nil {
		t.Fatal(err)
	}
	for _, n := range list {
		if _, ok := waived[n]; !ok && n != "rollout_stage_100.txt" && n != "summary_stage_100.txt" {
			mustWrite(t, d, n, n)
		}
	}
	mustVerifyOK(t, d.Path())
	return d.Path()
}

// TestHandWaiverIsCaught is the forgery the sealed list exists for: waiving a
// missing file by editing manifest.json must fail both verify and check.
func TestHandWaiverIsCaught(t *testing.T) {
	dir := releaseLike(t)
	editManifest(t, dir, func(m *manifest) {
		for i, x := range m.Expected {
			if x.Name == "rollout_stage_100.txt" || x.Name == "summary_stage_100.txt" {
				m.Expected[i].Waived = "not reached: rolled back at stage 4"
			}
		}
	})
	r, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range r.Problems {
		if p.Kind == ManifestTampered {
			files = append(files, p.File)
		}
	}
	if r.OK || !slices.Equal(files, []string{"rollout_stage_100.txt", "summary_stage_100.txt"}) {
		t.Errorf("Verify after a hand waiver: OK=%v, tampered %v; want both waived files named\n%s", r.OK, files, r)
	}
	_, err = Check(dir)
	if !errors.Is(err, ErrCorruptManifest) {
		t.Fatalf("Check after a hand waiver: error %v, want ErrCorruptManifest", err)
	}
	for _, want := range []string{"rollout_stage_100.txt", "summary_stage_100.txt", "evidence verify"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error does not mention %q:\n%v", want, err)
		}
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"rollout_stage_5.txt", "rollout_stage_25.txt", -1},
		{"rollout_stage_100.txt", "rollout_stage_50.txt", 1},
		{"stage_05.txt", "stage_5.txt", 0},
		{"logs_stage_1.txt", "pgbouncer_stage_1.txt", -1},
		{"a1", "a1b", -1},
		{"a", "a", 0},
		{"sbom_v1.4.0.json", "sbom_v1.10.0.json", -1},
	}
	for _, tt := range tests {
		got := naturalCompare(tt.a, tt.b)
		if sign(got) != tt.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
		if sign(naturalCompare(tt.b, tt.a)) != -tt.want {
			t.Errorf("naturalCompare(%q, %q) is not antisymmetric", tt.b, tt.a)
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
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
