package sbom

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustRead(t *testing.T, name string) *SBOM {
	t.Helper()
	s, err := Read(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustExceptions(t *testing.T, name string) []Exception {
	t.Helper()
	es, err := ReadExceptions(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// buckets says, by package key, which list of the report each finding
// landed in.
func buckets(r DriftReport) map[string]string {
	out := map[string]string{}
	for name, fs := range map[string][]Finding{"new": r.New, "warning": r.Warnings, "exempted": r.Exempted, "present": r.AlreadyPresent} {
		for _, f := range fs {
			out[f.Package] = name
		}
	}
	return out
}

func TestDrift(t *testing.T) {
	t.Parallel()
	const g = "pkg:golang/github.com/acme/"
	tests := []struct {
		name       string
		prev, cur  string
		opts       Options
		exceptions string
		want       map[string]string
		wantFailed bool
	}{
		{
			name: "spdx: new GPL, AND, GPLv2 and relicensing fail; choice, bumps and old GPL pass; LGPL warns",
			prev: "previous.spdx.json", cur: "current.spdx.json",
			want: map[string]string{
				g + "oldgpl": "present", g + "oldlgpl": "present",
				g + "relicensed": "new", g + "newgpl": "new", g + "both": "new", g + "gplv2": "new",
				"pkg:golang/github.com/spdx/tools-golang": "new",
				g + "newlgpl": "warning",
			},
			wantFailed: true,
		},
		{
			name: "spdx with exceptions",
			prev: "previous.spdx.json", cur: "current.spdx.json", exceptions: "exceptions.yaml",
			want: map[string]string{
				g + "oldgpl": "present", g + "oldlgpl": "present",
				g + "relicensed": "new", g + "newgpl": "new", g + "both": "new", g + "gplv2": "new",
				"pkg:golang/github.com/spdx/tools-golang": "exempted",
				g + "newlgpl": "exempted",
			},
			wantFailed: true,
		},
		{
			name: "clean: version bumps, copyleft already present and a choice pass",
			prev: "previous.spdx.json", cur: "clean.spdx.json",
			want: map[string]string{g + "oldgpl": "present"},
		},
		{
			name: "LGPL warns by default",
			prev: "previous.spdx.json", cur: "lgpl.spdx.json",
			want: map[string]string{g + "newlgpl": "warning"},
		},
		{
			name: "LGPL fails with --lgpl fail",
			prev: "previous.spdx.json", cur: "lgpl.spdx.json", opts: Options{LGPL: LGPLFail},
			want:       map[string]string{g + "newlgpl": "new"},
			wantFailed: true,
		},
		{
			name: "LGPL ignored with --lgpl allow",
			prev: "previous.spdx.json", cur: "lgpl.spdx.json", opts: Options{LGPL: LGPLAllow},
			want: map[string]string{},
		},
		{
			name: "no previous SBOM: every offender is new",
			cur:  "clean.spdx.json",
			want: map[string]string{g + "oldgpl": "new"}, wantFailed: true,
		},
		{
			name: "no licenses fails coverage",
			prev: "previous.spdx.json", cur: "nolicenses.spdx.json",
			want: map[string]string{}, wantFailed: true,
		},
		{
			name: "cyclonedx",
			prev: "previous.cdx.json", cur: "current.cdx.json",
			want: map[string]string{
				"pkg:npm/oldgpl": "present", "pkg:npm/both": "new", "pkg:npm/gplv3": "new", "newlgpl": "warning",
			},
			wantFailed: true,
		},
		{
			name: "previous in SPDX, current in CycloneDX",
			prev: "previous.spdx.json", cur: "current.cdx.json",
			want: map[string]string{
				"pkg:npm/oldgpl": "new", "pkg:npm/both": "new", "pkg:npm/gplv3": "new", "newlgpl": "warning",
			},
			wantFailed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var prev *SBOM
			if tt.prev != "" {
				prev = mustRead(t, tt.prev)
			}
			if tt.exceptions != "" {
				tt.opts.Exceptions = mustExceptions(t, tt.exceptions)
			}
			r := Drift(prev, mustRead(t, tt.cur), tt.opts)
			if got := buckets(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("findings:\n got %v\nwant %v\n%s", got, tt.want, r.Text())
			}
			if r.Failed != tt.wantFailed {
				t.Errorf("Failed = %v, want %v\n%s", r.Failed, tt.wantFailed, r.Text())
			}
		})
	}
}

func TestDriftText(t *testing.T) {
	t.Parallel()
	r := Drift(mustRead(t, "previous.spdx.json"), mustRead(t, "current.spdx.json"), Options{Exceptions: mustExceptions(t, "exceptions.yaml")})
	text := r.Text()
	for _, want := range []string{
		"NEW copyleft (fails) (4):",
		"pkg:golang/github.com/acme/newgpl v0.3.0: GPL-2.0-or-later (GPL) in testdata/current.spdx.json#SPDXRef-Package-newgpl",
		"pkg:golang/github.com/acme/both v1.0.0: MIT AND GPL-2.0-only (GPL)",
		"pkg:golang/github.com/acme/gplv2 v1.0.0: GPLv2 (GPL) in testdata/current.spdx.json#SPDXRef-Package-gplv2 [not an SPDX expression; classified by name]",
		"pkg:golang/github.com/acme/relicensed v2.0.0: AGPL-3.0-or-later (AGPL)",
		"exempted (2):",
		"reason: dual-licensed Apache-2.0 OR GPL-2.0-or-later upstream; syft reports it as AND; we use it under Apache-2.0 (exception at line 2)",
		"reason: linked dynamically in the plugin host, reviewed by legal 2024-05 (exception at line 5)",
		"already present in the previous release (passes) (2):",
		"previously: testdata/previous.spdx.json#SPDXRef-Package-oldgpl (GPL-3.0-only, GPL)",
		"license coverage: 11 of 11 packages have a license",
		"verdict: FAIL: 4 new copyleft license(s)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "acme/choice") {
		t.Errorf("MIT OR GPL-3.0-only is a choice, yet the report lists it:\n%s", text)
	}
}

func TestDriftNoLicenses(t *testing.T) {
	t.Parallel()
	r := Drift(mustRead(t, "previous.spdx.json"), mustRead(t, "nolicenses.spdx.json"), Options{})
	want := "has 2 packages and no licenses: nothing was checked — was the Go module cache filled?"
	if !r.Failed || !strings.Contains(r.NothingChecked, want) || !strings.Contains(r.Text(), want) {
		t.Errorf("failed %v, NothingChecked %q; want a failure saying %q", r.Failed, r.NothingChecked, want)
	}
	empty, err := Parse("empty.json", []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := Drift(nil, empty, Options{}); !r.Failed || !strings.Contains(r.NothingChecked, "no packages") {
		t.Errorf("an SBOM without packages: failed %v, %q", r.Failed, r.NothingChecked)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr     string
		want     Family
		fallback bool
	}{
		{"MIT", FamilyNone, false},
		{"Apache-2.0 AND BSD-3-Clause", FamilyNone, false},
		{"MIT OR GPL-3.0-only", FamilyNone, false},
		{"MIT AND GPL-2.0-only", FamilyGPL, false},
		{"(MIT OR LGPL-2.1-only) AND Apache-2.0", FamilyNone, false},
		{"(MIT OR LGPL-2.1-only) AND GPL-3.0-only", FamilyGPL, false},
		{"LGPL-2.1-only OR GPL-2.0-only", FamilyLGPL, false},
		{"GPL-3.0-only OR AGPL-3.0-only", FamilyGPL, false},
		{"AGPL-3.0-only", FamilyAGPL, false},
		{"GPL-2.0-only WITH Classpath-exception-2.0", FamilyGPL, false},
		{"GPL-2.0+", FamilyGPL, false},
		{"LGPL-2.1+", FamilyLGPL, false},
		{"MPL-2.0", FamilyNone, false},
		{"GPLv2", FamilyGPL, true},
		{"GPL v3", FamilyGPL, true},
		{"gpl", FamilyGPL, true},
		{"AGPL", FamilyAGPL, true},
		{"GNU Affero General Public License v3", FamilyAGPL, true},
		{"GNU General Public License", FamilyGPL, true},
		{"GNU Lesser General Public License v2.1", FamilyLGPL, true},
		{"GNU Library General Public License", FamilyLGPL, true},
		{"LGPLv3", FamilyLGPL, true},
		{"BSD-style", FamilyNone, true},
		{"Public Domain", FamilyNone, true},
	}
	for _, tt := range tests {
		c := Classify(tt.expr)
		if c.Family != tt.want || c.Fallback != tt.fallback {
			t.Errorf("Classify(%q) = %s (fallback %v), want %s (fallback %v)", tt.expr, c.Family, c.Fallback, tt.want, tt.fallback)
		}
	}
}

func TestPURLKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"pkg:golang/github.com/x/y@v1.2.3":             "pkg:golang/github.com/x/y",
		"pkg:golang/github.com/x/y/v2@v2.0.0":          "pkg:golang/github.com/x/y/v2",
		"pkg:golang/github.com/x/y":                    "pkg:golang/github.com/x/y",
		"pkg:npm/%40acme/perm@1.0.0":                   "pkg:npm/%40acme/perm",
		"pkg:npm/@acme/perm@1.0.0":                     "pkg:npm/@acme/perm",
		"pkg:npm/@acme/perm":                           "pkg:npm/@acme/perm",
		"pkg:deb/debian/curl@7.50.3-1?arch=i386":       "pkg:deb/debian/curl",
		"pkg:github/package-url/purl-spec@244fd47#src": "pkg:github/package-url/purl-spec",
		"PKG:Golang/github.com/x/y@v1":                 "pkg:golang/github.com/x/y",
	} {
		if got := PURLKey(in); got != want {
			t.Errorf("PURLKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	s := mustRead(t, "current.spdx.json")
	if s.Format != FormatSPDX || len(s.Packages) != 11 {
		t.Fatalf("format %s, %d packages; want SPDX, 11", s.Format, len(s.Packages))
	}
	if p := s.Packages[10]; p.Key != "vendored-thing" || !reflect.DeepEqual(p.Licenses, []string{"BSD-3-Clause"}) {
		t.Errorf("a package without PURL: key %q, licenses %q; want its name and BSD-3-Clause without NONE", p.Key, p.Licenses)
	}
	c := mustRead(t, "current.cdx.json")
	if c.Format != FormatCycloneDX || len(c.Packages) != 7 {
		t.Fatalf("format %s, %d packages; want CycloneDX, 7 (with the nested one)", c.Format, len(c.Packages))
	}
	if p := c.Packages[0]; p.Key != "pkg:npm/%40acme/perm" || p.Ref != "perm-ref" || p.Version != "1.2.0" {
		t.Errorf("first component %+v", p)
	}
	if w, n := LicenseCoverage(mustRead(t, "nolicenses.spdx.json")); w != 0 || n != 2 {
		t.Errorf("coverage %d of %d, want 0 of 2", w, n)
	}
	if w, n := LicenseCoverage(c); w != 7 || n != 7 {
		t.Errorf("coverage %d of %d, want 7 of 7", w, n)
	}

	for name, data := range map[string]string{
		"not json":      `{"spdxVersion": `,
		"neither":       `{"name": "x"}`,
		"SPDX 3":        `{"spdxVersion": "SPDX-3.0"}`,
		"wrong type":    `{"spdxVersion": "SPDX-2.3", "packages": {"name": "x"}}`,
		"cdx bad field": `{"bomFormat": "CycloneDX", "components": [{"licenses": "MIT"}]}`,
	} {
		if _, err := Parse(name, []byte(data)); !errors.Is(err, ErrBadSBOM) {
			t.Errorf("%s: err %v, want ErrBadSBOM", name, err)
		}
	}
	if _, err := Read("testdata/missing.json"); !errors.Is(err, ErrBadSBOM) {
		t.Errorf("missing file: err %v, want ErrBadSBOM", err)
	}
}

func TestParseExceptions(t *testing.T) {
	t.Parallel()
	es := mustExceptions(t, "exceptions.yaml")
	if len(es) != 2 || es[0].Package != "pkg:golang/github.com/spdx/*" || es[0].License != "GPL-2.0-or-later" || es[0].Line != 2 || es[1].Line != 5 {
		t.Errorf("exceptions %+v", es)
	}
	if _, err := ReadExceptions("testdata/exceptions_noreason.yaml"); !errors.Is(err, ErrBadExceptions) ||
		!strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "has no reason") {
		t.Errorf("an entry without a reason: err %v, want ErrBadExceptions naming line 4", err)
	}
	if es, err := ParseExceptions("empty.yaml", nil); err != nil || len(es) != 0 {
		t.Errorf("an empty file: %v, %v; want no exceptions and no error", es, err)
	}
	for name, data := range map[string]string{
		"not a list":    "package: x\nlicense: GPL-2.0-only\nreason: r\n",
		"not a map":     "- just a string\n",
		"unknown field": "- package: x\n  license: GPL-2.0-only\n  reason: r\n  expires: 2025-01-01\n",
		"no license":    "- package: x\n  reason: r\n",
		"bad glob":      "- package: 'pkg:golang/['\n  license: GPL-2.0-only\n  reason: r\n",
		"bad yaml":      "- package: [\n",
		"blank reason":  "- package: x\n  license: GPL-2.0-only\n  reason: '  '\n",
	} {
		if _, err := ParseExceptions(name, []byte(data)); !errors.Is(err, ErrBadExceptions) {
			t.Errorf("%s: err %v, want ErrBadExceptions", name, err)
		}
	}
}

func TestParseLGPLPolicy(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]LGPLPolicy{"": LGPLWarn, "warn": LGPLWarn, "FAIL": LGPLFail, "allow": LGPLAllow} {
		if got, err := ParseLGPLPolicy(in); err != nil || got != want {
			t.Errorf("ParseLGPLPolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseLGPLPolicy("ignore"); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("ignore: err %v, want ErrBadPolicy", err)
	}
}
