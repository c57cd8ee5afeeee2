package sbom

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"
)

// fixture is a Go module whose requirements this repository also requires,
// so `go mod download` (make deps) has put them in the module cache. Its
// bin/, dist/, evidence/ and testdata/ hold manifests of packages that
// must never reach the SBOM. (node_modules/ is excluded for speed only:
// syft already skips the lock files inside it.)
const fixture = "testdata/gomod"

// wantFixture are the fixture's modules and the licenses their LICENSE
// files carry in the module cache.
var wantFixture = map[string]string{
	"pkg:golang/github.com/spf13/cobra@v1.10.2": "Apache-2.0",
	"pkg:golang/github.com/spf13/pflag@v1.0.10": "BSD-3-Clause",
	"pkg:golang/go.etcd.io/bbolt@v1.5.0":        "MIT",
}

// traps are what the fixture's excluded directories would add.
var traps = map[string]string{
	"testdata": "pkg:golang/github.com/acme/from-testdata@v0.1.0",
	"dist":     "pkg:golang/github.com/acme/from-dist@v0.1.0",
	"bin":      "pkg:golang/github.com/acme/from-bin@v0.1.0",
	"evidence": "pkg:golang/github.com/acme/from-evidence@v0.1.0",
}

// decoded is a package as an independent parser read it.
type decoded struct {
	licenses []string
}

// decodeSPDX reads the SPDX output with spdx/tools-golang, keyed by PURL.
func decodeSPDX(t *testing.T, b []byte) map[string]decoded {
	t.Helper()
	doc, err := spdxjson.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("tools-golang cannot read the SPDX output: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		t.Errorf("SPDX version %q, want SPDX-2.3", doc.SPDXVersion)
	}
	out := map[string]decoded{}
	for _, p := range doc.Packages {
		for _, r := range p.PackageExternalReferences {
			if r.RefType == "purl" {
				var ls []string
				for _, l := range []string{p.PackageLicenseDeclared, p.PackageLicenseConcluded} {
					if l != "" && l != "NOASSERTION" && l != "NONE" && !slices.Contains(ls, l) {
						ls = append(ls, l)
					}
				}
				out[r.Locator] = decoded{licenses: ls}
			}
		}
	}
	return out
}

// decodeCycloneDX reads the CycloneDX output with CycloneDX/cyclonedx-go.
func decodeCycloneDX(t *testing.T, b []byte) map[string]decoded {
	t.Helper()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("cyclonedx-go cannot read the CycloneDX output: %v", err)
	}
	out := map[string]decoded{}
	if bom.Components == nil {
		return out
	}
	for _, c := range *bom.Components {
		var ls []string
		if c.Licenses != nil {
			for _, l := range *c.Licenses {
				switch {
				case l.Expression != "":
					ls = append(ls, l.Expression)
				case l.License != nil && l.License.ID != "":
					ls = append(ls, l.License.ID)
				case l.License != nil:
					ls = append(ls, l.License.Name)
				}
			}
		}
		out[c.PackageURL] = decoded{licenses: ls}
	}
	return out
}

func TestGenerateFixture(t *testing.T) {
	tests := []struct {
		name     string
		opts     GenerateOptions
		wantTrap []string // traps that must be in the SBOM; the others must not
	}{
		{name: "default excludes", opts: GenerateOptions{Dir: fixture}},
		{
			name: "own excludes only",
			opts: GenerateOptions{Dir: fixture, NoDefaultExcludes: true, Exclude: []string{"./dist"}},
			// Proves each trap is live: without the exclusions, it is cataloged.
			wantTrap: []string{"testdata", "bin", "evidence"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Name, tt.opts.Version = "fixture", "v0.0.1"
			res, err := Generate(context.Background(), tt.opts)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			for format, got := range map[string]map[string]decoded{
				"SPDX":      decodeSPDX(t, res.SPDX),
				"CycloneDX": decodeCycloneDX(t, res.CycloneDX),
			} {
				for purl, lic := range wantFixture {
					p, ok := got[purl]
					if !ok {
						t.Errorf("%s: %s missing; packages: %v", format, purl, keys(got))
						continue
					}
					if !slices.Equal(p.licenses, []string{lic}) {
						t.Errorf("%s: %s licenses %q, want [%s]", format, purl, p.licenses, lic)
					}
				}
				for dir, purl := range traps {
					_, present := got[purl]
					if want := slices.Contains(tt.wantTrap, dir); present != want {
						t.Errorf("%s: %s (from %s/) present=%v, want %v", format, purl, dir, present, want)
					}
				}
			}
			wantPkgs := len(wantFixture) + len(tt.wantTrap)
			if res.Packages != wantPkgs || res.WithLicense != len(wantFixture) {
				t.Errorf("coverage %s, want %d/%d", res.Coverage(), len(wantFixture), wantPkgs)
			}
			if len(res.Unlicensed) != len(tt.wantTrap) {
				t.Errorf("unlicensed %v, want the %d traps", res.Unlicensed, len(tt.wantTrap))
			}
			// The drift check reads what we write, with the same coverage.
			for name, b := range map[string][]byte{"spdx": res.SPDX, "cdx": res.CycloneDX} {
				s, err := Parse(name, b)
				if err != nil {
					t.Fatalf("drift reader: %v", err)
				}
				if with, _ := LicenseCoverage(s); with != len(wantFixture) {
					t.Errorf("%s: drift reader sees %d licensed packages, want %d", name, with, len(wantFixture))
				}
			}
		})
	}
}

// TestGenerateNoLicenses: with a module cache that lacks the modules, the
// SBOM still lists them, and Generate fails rather than hand a license
// check an SBOM in which it would find nothing.
func TestGenerateNoLicenses(t *testing.T) {
	tests := []struct {
		name, cache, want string
	}{
		{"empty cache", t.TempDir(), "is empty"},
		{"no cache", filepath.Join(t.TempDir(), "never-created"), "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMODCACHE", tt.cache)
			res, err := Generate(context.Background(), GenerateOptions{Dir: fixture})
			if !errors.Is(err, ErrNoLicenses) {
				t.Fatalf("err = %v, want ErrNoLicenses", err)
			}
			for _, w := range []string{tt.cache, tt.want, "run `go mod download`", "none of the 3 packages"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if res == nil || res.Packages != 3 || res.WithLicense != 0 || res.ModCacheDir != tt.cache {
				t.Fatalf("result %+v, want 3 packages, none licensed, cache %s", res, tt.cache)
			}
			if res.Coverage() != "0/3 packages have a license (0.0%)" {
				t.Errorf("coverage %q", res.Coverage())
			}
		})
	}
}

// TestGenerateBinary catalogs a Go binary built here, alone and beside
// the fixture directory.
func TestGenerateBinary(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module example.com/tiny\n\ngo 1.22\n",
		"main.go": "package main\n\nfunc main() {}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "tiny")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	alone, err := Generate(context.Background(), GenerateOptions{Binary: bin})
	if err != nil {
		t.Fatalf("Generate binary: %v", err)
	}
	stdlib := findPrefix(decodeSPDX(t, alone.SPDX), "pkg:golang/stdlib@")
	if stdlib == nil || !slices.Equal(stdlib.licenses, []string{"BSD-3-Clause"}) {
		t.Errorf("binary SBOM: stdlib %+v, want one with BSD-3-Clause", stdlib)
	}

	both, err := Generate(context.Background(), GenerateOptions{Dir: fixture, Binary: bin})
	if err != nil {
		t.Fatalf("Generate dir+binary: %v", err)
	}
	got := decodeCycloneDX(t, both.CycloneDX)
	if findPrefix(got, "pkg:golang/stdlib@") == nil {
		t.Errorf("dir+binary SBOM lacks the binary's stdlib: %v", keys(got))
	}
	for purl := range wantFixture {
		if _, ok := got[purl]; !ok {
			t.Errorf("dir+binary SBOM lacks %s", purl)
		}
	}
}

func TestGenerateBadInput(t *testing.T) {
	notDir := filepath.Join(fixture, "go.mod")
	tests := []struct {
		name   string
		opts   GenerateOptions
		target error
		want   string
	}{
		{"nothing", GenerateOptions{}, ErrNothingToScan, "give a source directory"},
		{"unrooted exclude", GenerateOptions{Dir: fixture, Exclude: []string{"build"}}, ErrBadExclude, `"build"; start it with ./`},
		{"missing dir", GenerateOptions{Dir: filepath.Join(fixture, "nope")}, fs.ErrNotExist, "nope"},
		{"dir is a file", GenerateOptions{Dir: notDir}, nil, "is not a directory"},
		{"binary is a dir", GenerateOptions{Binary: fixture}, nil, "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(context.Background(), tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("err = %v, want %v", err, tt.target)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error lacks %q: %v", tt.want, err)
			}
		})
	}
}

func TestModuleCacheDir(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GOMODCACHE": "/c", "GOPATH": "/g"}, "/c"},
		{map[string]string{"GOPATH": "/g1" + string(filepath.ListSeparator) + "/g2"}, "/g1/pkg/mod"},
		{map[string]string{}, filepath.Join(home, "go", "pkg", "mod")},
	}
	for _, tt := range tests {
		if got := moduleCacheDir(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("env %v: %s, want %s", tt.env, got, tt.want)
		}
	}
}

func findPrefix(m map[string]decoded, prefix string) *decoded {
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			return &v
		}
	}
	return nil
}

func keys(m map[string]decoded) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
