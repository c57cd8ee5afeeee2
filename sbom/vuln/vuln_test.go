package vuln

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anchore/grype/grype/version"
	"github.com/anchore/grype/grype/vulnerability"
	"github.com/anchore/grype/grype/vulnerability/mock"

	"github.com/canarybot/canarybot/sbom"
)

// advisory is a mock database entry.
func advisory(id, ns, pkgName, constraint string, f version.Format, severity string, fix ...string) vulnerability.Vulnerability {
	v := vulnerability.Vulnerability{
		Reference:   vulnerability.Reference{ID: id, Namespace: ns},
		PackageName: pkgName,
		Constraint:  version.MustGetConstraint(constraint, f),
		Fix:         vulnerability.Fix{State: vulnerability.FixStateNotFixed},
	}
	if len(fix) > 0 {
		v.Fix = vulnerability.Fix{Versions: fix, State: vulnerability.FixStateFixed}
	}
	if severity != "" {
		v.Metadata = &vulnerability.Metadata{ID: id, Namespace: ns, Severity: severity, DataSource: "https://github.com/advisories/" + id}
	}
	return v
}

// mockDB holds advisories for the packages of testdata/release.spdx.json:
// widget v1.2.0 has a critical and a low one, gadget v0.4.0 a medium one
// without a fix and one without a rating, left-pad 1.0.0 (npm) a high
// one; safe v2.0.0 is past its advisory's range.
func mockDB() vulnerability.Provider {
	const goNS, npmNS = "github:language:go", "github:language:javascript"
	crit := advisory("GHSA-crit-widg-0001", goNS, "github.com/acme/widget", "< 1.2.5", version.GolangFormat, "Critical", "1.2.5")
	crit.RelatedVulnerabilities = []vulnerability.Reference{{ID: "CVE-2025-0001", Namespace: "nvd:cpe"}}
	return mock.VulnerabilityProvider(
		crit,
		advisory("GHSA-lowx-widg-0002", goNS, "github.com/acme/widget", "< 1.3.0", version.GolangFormat, "Low", "1.3.0"),
		advisory("GHSA-medx-gadg-0003", goNS, "github.com/acme/gadget", "< 0.5.0", version.GolangFormat, "Medium"),
		advisory("GHSA-none-gadg-0004", goNS, "github.com/acme/gadget", "< 1.0.0", version.GolangFormat, ""),
		advisory("GHSA-oldx-safe-0005", goNS, "github.com/acme/safe", "< 1.0.0", version.GolangFormat, "Critical", "1.0.0"),
		advisory("GHSA-high-lpad-0006", npmNS, "left-pad", "< 1.3.0", version.SemanticFormat, "High", "1.3.0"),
	)
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// row is a finding reduced to what the tables compare.
func row(f Finding) string {
	return strings.Join([]string{f.Severity.String(), f.Package, f.Version, f.ID, strings.Join(f.FixVersions, ","), f.FixState}, " ")
}

func TestScanWithMock(t *testing.T) {
	t.Parallel()
	allSPDX := []string{
		"critical github.com/acme/widget v1.2.0 GHSA-crit-widg-0001 1.2.5 fixed",
		"high left-pad 1.0.0 GHSA-high-lpad-0006 1.3.0 fixed",
		"medium github.com/acme/gadget v0.4.0 GHSA-medx-gadg-0003  not-fixed",
		"low github.com/acme/widget v1.2.0 GHSA-lowx-widg-0002 1.3.0 fixed",
		"unknown github.com/acme/gadget v0.4.0 GHSA-none-gadg-0004  not-fixed",
	}
	tests := []struct {
		name       string
		fixture    string
		failOn     string
		wantFailed bool
		// wantAbove are the IDs at or above the threshold.
		wantAbove []string
		want      []string
		verdict   string
	}{
		{"report only", "release.spdx.json", "none", false, nil, allSPDX,
			"PASS (report only, no threshold): 1 critical, 1 high, 1 medium, 1 low, 1 unknown in 4 packages"},
		{"critical", "release.spdx.json", "critical", true, []string{"GHSA-crit-widg-0001"}, allSPDX,
			"FAIL: 1 finding(s) at or above critical"},
		{"high", "release.spdx.json", "HIGH", true, []string{"GHSA-crit-widg-0001", "GHSA-high-lpad-0006"}, allSPDX,
			"FAIL: 2 finding(s) at or above high"},
		{"low, unknown never counts", "release.spdx.json", "low", true,
			[]string{"GHSA-crit-widg-0001", "GHSA-high-lpad-0006", "GHSA-medx-gadg-0003", "GHSA-lowx-widg-0002"}, allSPDX,
			"FAIL: 4 finding(s) at or above low"},
		{"cyclonedx", "release.cdx.json", "critical", true, []string{"GHSA-crit-widg-0001"},
			[]string{allSPDX[0], allSPDX[3]}, "FAIL: 1 finding(s) at or above critical (1 critical, 1 low of 3 packages)"}, // the root component counts,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			failOn, err := ParseSeverity(tt.failOn)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := ScanWith(context.Background(), mockDB(), readFixture(t, tt.fixture), Options{FailOn: failOn})
			if err != nil {
				t.Fatal(err)
			}
			var got, above []string
			for _, f := range rep.Findings {
				got = append(got, row(f))
			}
			for _, f := range rep.AtOrAbove() {
				above = append(above, f.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if rep.Failed != tt.wantFailed || !slices.Equal(above, tt.wantAbove) {
				t.Errorf("failed %v at or above %v, want %v %v", rep.Failed, above, tt.wantFailed, tt.wantAbove)
			}
			if !strings.HasPrefix(rep.Verdict(), tt.verdict) {
				t.Errorf("verdict %q, want it to start with %q", rep.Verdict(), tt.verdict)
			}
		})
	}
}

func TestPassVerdicts(t *testing.T) {
	t.Parallel()
	low := advisory("GHSA-lowx-widg-0002", "github:language:go", "github.com/acme/widget", "< 1.3.0", version.GolangFormat, "Low", "1.3.0")
	tests := []struct {
		name string
		db   vulnerability.Provider
		want string
	}{
		{"nothing known", mock.VulnerabilityProvider(), "PASS: no known vulnerability in 4 packages"},
		{"below the threshold", mock.VulnerabilityProvider(low), "PASS: 1 low in 4 packages, none at or above high"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep, err := ScanWith(context.Background(), tt.db, readFixture(t, "release.spdx.json"), Options{FailOn: High})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Failed || rep.Verdict() != tt.want {
				t.Errorf("failed %v, verdict %q; want %q", rep.Failed, rep.Verdict(), tt.want)
			}
		})
	}
}

func TestFindingDetails(t *testing.T) {
	t.Parallel()
	rep, err := ScanWith(context.Background(), mockDB(), readFixture(t, "release.spdx.json"), Options{FailOn: High})
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Findings[0]
	if f.PURL != "pkg:golang/github.com/acme/widget@v1.2.0" || f.Type != "go-module" || f.Namespace != "github:language:go" ||
		!slices.Equal(f.Aliases, []string{"CVE-2025-0001"}) || f.URL != "https://github.com/advisories/GHSA-crit-widg-0001" {
		t.Errorf("first finding %+v", f)
	}
	text := rep.Text()
	for _, want := range []string{
		"threshold: high or worse fails",
		"packages scanned: 4",
		"critical ✗  github.com/acme/widget  v1.2.0   GHSA-crit-widg-0001 (CVE-2025-0001)",
		"medium      github.com/acme/gadget  v0.4.0   GHSA-medx-gadg-0003                  (not-fixed)",
		"1 finding(s) of unknown severity are listed but not held against the threshold",
		"verdict: FAIL: 2 finding(s) at or above high",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "acme/safe") {
		t.Errorf("safe v2.0.0 is past its advisory's range, yet reported:\n%s", text)
	}
}

func TestScanRefusesWhatChecksNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  []byte
		want error
		msg  string
	}{
		{"no packages", readFixture(t, "empty.spdx.json"), ErrNoPackages, "nothing would be checked"},
		{"not an SBOM", readFixture(t, "notsbom.json"), ErrBadSBOM, "SPDX or CycloneDX"},
		{"empty", nil, ErrBadSBOM, "the SBOM is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ScanWith(context.Background(), mockDB(), tt.doc, Options{FailOn: High})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err %v, want %v saying %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestParseSeverity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Severity
		err  bool
	}{
		{"critical", Critical, false}, {"High", High, false}, {" medium ", Medium, false},
		{"low", Low, false}, {"negligible", Negligible, false}, {"none", Unknown, false}, {"", Unknown, false},
		{"severe", Unknown, true}, {"unknown", Unknown, true},
	}
	for _, tt := range tests {
		got, err := ParseSeverity(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && (!errors.Is(err, ErrBadSeverity) || !strings.Contains(err.Error(), "use negligible, low, medium, high, critical or none")) {
			t.Errorf("ParseSeverity(%q) error %q does not say what to use", tt.in, err)
		}
	}
}

// TestScanGeneratedSBOM scans the SBOM sbom.Generate makes of sbom's
// fixture module: the whole path canarybot takes, with syft cataloging
// through the sqlite driver grype registers (both linked in this test).
func TestScanGeneratedSBOM(t *testing.T) {
	t.Parallel()
	res, err := sbom.Generate(context.Background(), sbom.GenerateOptions{Dir: filepath.Join("..", "testdata", "gomod"), Version: "v0.0.1"})
	if err != nil {
		t.Fatalf("generating the fixture's SBOM: %v (run make deps to fill the module cache)", err)
	}
	db := mock.VulnerabilityProvider(
		advisory("GHSA-cobr-a000-0001", "github:language:go", "github.com/spf13/cobra", "< 1.10.3", version.GolangFormat, "High", "1.10.3"),
		advisory("GHSA-bbol-t000-0002", "github:language:go", "go.etcd.io/bbolt", "< 1.4.0", version.GolangFormat, "Critical", "1.4.0"),
	)
	rep, err := ScanWith(context.Background(), db, res.SPDX, Options{FailOn: High})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.Findings {
		got = append(got, row(f))
	}
	want := []string{"high github.com/spf13/cobra v1.10.2 GHSA-cobr-a000-0001 1.10.3 fixed"}
	if !slices.Equal(got, want) || !rep.Failed || rep.Packages != res.Packages {
		t.Errorf("findings %q failed %v over %d packages; want %q, failed, over the SBOM's %d", got, rep.Failed, rep.Packages, want, res.Packages)
	}
}
