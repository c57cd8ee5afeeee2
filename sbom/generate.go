package sbom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/pkg/cataloger/golang"
	syftsbom "github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source"

	// syft refuses to catalog newer RPM databases without a database/sql
	// "sqlite" driver. This is the package grype registers its driver
	// from (sbom/vuln links grype): importing it here too registers the
	// driver once. Any other "sqlite" driver (modernc.org/sqlite, its
	// origin) would register the name a second time, a panic at start.
	_ "github.com/glebarez/go-sqlite"
)

// Errors a caller of Generate branches on.
var (
	// ErrNothingToScan: neither a directory nor a binary was given.
	ErrNothingToScan = errors.New("nothing to scan")
	// ErrBadExclude: an exclusion pattern syft would reject.
	ErrBadExclude = errors.New("bad exclusion pattern")
	// ErrNoPackages: the scan found no package at all.
	ErrNoPackages = errors.New("SBOM has no packages")
	// ErrNoLicenses: the scan found packages but not one license, which
	// for Go means the module cache was never filled. A license check of
	// such an SBOM would pass having checked nothing.
	ErrNoLicenses = errors.New("SBOM has no licenses")
)

// DefaultExcludes are left out of every directory scan: test fixtures
// (which hold SBOMs and go.mod files of their own), build outputs, release
// evidence (earlier releases' binaries and manifests would be cataloged as
// shipped packages), node_modules (syft skips its lock files, but walking
// it is slow) and the git store. The patterns are syft's:
// rooted at the scanned directory, ./ for its top level, **/ at any depth.
func DefaultExcludes() []string {
	return []string{
		"**/testdata",
		"./bin",
		"./dist",
		"./evidence",
		"./demo-evidence",
		"**/node_modules",
		"**/.git",
	}
}

// GenerateOptions say what to scan. At least one of Dir and Binary is
// needed; with both, the binary's packages that the directory does not
// already name (the standard library, the main module) are added.
type GenerateOptions struct {
	// Dir is a source directory, usually the repository root.
	Dir string
	// Binary is a built executable.
	Binary string
	// Exclude adds syft exclusion patterns (./path, */x or **/x) to
	// DefaultExcludes for the directory scan.
	Exclude []string
	// NoDefaultExcludes drops DefaultExcludes, leaving Exclude alone.
	NoDefaultExcludes bool
	// ModCacheDir is the Go module cache searched for module licenses; ""
	// means $GOMODCACHE, else the first $GOPATH entry's pkg/mod, else
	// ~/go/pkg/mod.
	ModCacheDir string
	// Getenv reads the environment for ModCacheDir's default; nil means
	// os.Getenv.
	Getenv func(string) string
	// Name and Version describe what the SBOM is of (the document name);
	// "" names it after the scanned path.
	Name, Version string
	// ToolVersion is canarybot's version, recorded as the SBOM's creator.
	ToolVersion string
}

// Result is a generated SBOM in both formats, with its license coverage.
type Result struct {
	SPDX      []byte // SPDX 2.3 JSON
	CycloneDX []byte // CycloneDX JSON (syft's default spec version, 1.7 in syft v1.57)
	// Packages and WithLicense are the license coverage: packages with at
	// least one license out of all packages.
	Packages, WithLicense int
	// Unlicensed names the packages without a license, sorted.
	Unlicensed []string
	// ModCacheDir is the module cache that was searched for licenses.
	ModCacheDir string
	// Excludes are the exclusion patterns the directory scan used.
	Excludes []string
}

// Coverage is the license coverage as "N/M packages have a license (P%)".
func (r *Result) Coverage() string {
	pct := 0.0
	if r.Packages > 0 {
		pct = 100 * float64(r.WithLicense) / float64(r.Packages)
	}
	return fmt.Sprintf("%d/%d packages have a license (%.1f%%)", r.WithLicense, r.Packages, pct)
}

// SPDXName and CycloneDXName are the evidence file names for version.
func SPDXName(version string) string      { return "sbom_" + version + ".json" }
func CycloneDXName(version string) string { return "sbom_" + version + ".cdx.json" }

// Generate catalogs o.Dir and/or o.Binary with syft and encodes the result
// as SPDX and CycloneDX JSON. Go module licenses come from the module cache
// only (no `go list`, no network), so the answer depends on nothing but the
// cache: an SBOM without a single license fails with ErrNoLicenses, and the
// Result is returned with it so the caller can show what was found.
func Generate(ctx context.Context, o GenerateOptions) (*Result, error) {
	if o.Dir == "" && o.Binary == "" {
		return nil, fmt.Errorf("%w: give a source directory, a built binary, or both", ErrNothingToScan)
	}
	excludes, err := excludesOf(o)
	if err != nil {
		return nil, err
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	res := &Result{ModCacheDir: o.ModCacheDir, Excludes: excludes}
	if res.ModCacheDir == "" {
		res.ModCacheDir = moduleCacheDir(getenv)
	}

	var doc *syftsbom.SBOM
	if o.Dir != "" {
		if err := checkPath(o.Dir, true); err != nil {
			return nil, err
		}
		if doc, err = scan(ctx, o, o.Dir, "local-directory", excludes, res.ModCacheDir); err != nil {
			return nil, err
		}
	}
	if o.Binary != "" {
		if err := checkPath(o.Binary, false); err != nil {
			return nil, err
		}
		bin, err := scan(ctx, o, o.Binary, "local-file", nil, res.ModCacheDir)
		if err != nil {
			return nil, err
		}
		if doc == nil {
			doc = bin
		} else {
			mergePackages(doc, bin)
		}
	}

	for p := range doc.Artifacts.Packages.Enumerate() {
		res.Packages++
		if !p.Licenses.Empty() {
			res.WithLicense++
			continue
		}
		name := p.Name
		if p.Version != "" {
			name += "@" + p.Version
		}
		res.Unlicensed = append(res.Unlicensed, name)
	}
	sort.Strings(res.Unlicensed)

	if res.SPDX, err = encode(doc, "SPDX", spdxEncoder); err != nil {
		return nil, err
	}
	if res.CycloneDX, err = encode(doc, "CycloneDX", cdxEncoder); err != nil {
		return nil, err
	}

	switch {
	case res.Packages == 0:
		return res, fmt.Errorf("%w: nothing was cataloged in %s; scan the repository root (where go.mod is) or a built Go binary", ErrNoPackages, scanned(o))
	case res.WithLicense == 0:
		return res, fmt.Errorf("%w: none of the %d packages has a license: %s; run `go mod download` in %s first", ErrNoLicenses, res.Packages, describeCache(res.ModCacheDir), scanned(o))
	}
	return res, nil
}

func scanned(o GenerateOptions) string {
	switch {
	case o.Dir != "" && o.Binary != "":
		return o.Dir + " and " + o.Binary
	case o.Dir != "":
		return o.Dir
	}
	return o.Binary
}

// describeCache says what is wrong with the module cache, for the error of
// an SBOM without licenses.
func describeCache(dir string) string {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "module cache " + dir + " does not exist"
	case err != nil:
		return fmt.Sprintf("module cache %s cannot be read (%v)", dir, err)
	case len(entries) == 0:
		return "module cache " + dir + " is empty"
	}
	return "module cache " + dir + " does not hold these modules"
}

func excludesOf(o GenerateOptions) ([]string, error) {
	var out []string
	if !o.NoDefaultExcludes {
		out = DefaultExcludes()
	}
	for _, e := range o.Exclude {
		if !strings.HasPrefix(e, "./") && !strings.HasPrefix(e, "*/") && !strings.HasPrefix(e, "**/") {
			return nil, fmt.Errorf("%w: %q; start it with ./ (from the scanned directory's top) or **/ (at any depth), e.g. ./build or **/fixtures", ErrBadExclude, e)
		}
		out = append(out, e)
	}
	return out, nil
}

func checkPath(p string, dir bool) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("SBOM input: %w", err)
	}
	switch {
	case dir && !fi.IsDir():
		return fmt.Errorf("SBOM input %s is not a directory; pass a built binary as the binary instead", p)
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("SBOM input %s is not a regular file; the binary must be a built executable", p)
	}
	return nil
}

// moduleCacheDir is where `go` keeps modules, found without running go.
func moduleCacheDir(getenv func(string) string) string {
	if d := getenv("GOMODCACHE"); d != "" {
		return d
	}
	if gp := filepath.SplitList(getenv("GOPATH")); len(gp) > 0 && gp[0] != "" {
		return filepath.Join(gp[0], "pkg", "mod")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join("go", "pkg", "mod")
	}
	return filepath.Join(home, "go", "pkg", "mod")
}

// createConfig is syft's default cataloging with one Go license mode:
// the module cache. The default `go list` mode runs the go tool, which may
// download, and gives other answers than the cache; the remote proxy mode
// needs the network at release time.
func createConfig(modCache, toolVersion string) *syft.CreateSBOMConfig {
	cfg := syft.DefaultCreateSBOMConfig()
	goCfg := golang.DefaultCatalogerConfig().
		WithUsePackagesLib(false).
		WithSearchRemoteLicenses(false).
		WithSearchLocalVendorLicenses(false).
		WithSearchLocalModCacheLicenses(true).
		WithLocalModCacheDir(modCache)
	cfg = cfg.WithPackagesConfig(cfg.Packages.WithGolangConfig(goCfg))
	if toolVersion == "" {
		toolVersion = "dev"
	}
	// syft's own version is in the config's audit trail; the creator is us.
	return cfg.WithTool("canarybot", toolVersion)
}

func scan(ctx context.Context, o GenerateOptions, path, provider string, excludes []string, modCache string) (*syftsbom.SBOM, error) {
	src, err := syft.GetSource(ctx, path, syft.DefaultGetSourceConfig().
		WithSources(provider).
		WithExcludeConfig(source.ExcludeConfig{Paths: excludes}).
		WithAlias(source.Alias{Name: o.Name, Version: o.Version}))
	if err != nil {
		return nil, fmt.Errorf("opening %s for the SBOM: %w", path, err)
	}
	defer src.Close()
	doc, err := syft.CreateSBOM(ctx, src, createConfig(modCache, o.ToolVersion))
	if err != nil {
		return nil, fmt.Errorf("cataloging %s: %w", path, err)
	}
	return doc, nil
}

// mergePackages adds bin's packages that doc does not name by PURL. Their
// relationships to the binary's files are left behind: doc describes the
// directory, and a relationship to a file it does not list would dangle.
func mergePackages(doc, bin *syftsbom.SBOM) {
	have := map[string]bool{}
	for p := range doc.Artifacts.Packages.Enumerate() {
		have[identity(p)] = true
	}
	for p := range bin.Artifacts.Packages.Enumerate() {
		if !have[identity(p)] {
			have[identity(p)] = true
			doc.Artifacts.Packages.Add(p)
		}
	}
}

func identity(p pkg.Package) string {
	if p.PURL != "" {
		return p.PURL
	}
	return string(p.Type) + "/" + p.Name + "@" + p.Version
}

func spdxEncoder() (syftsbom.FormatEncoder, error) {
	cfg := spdxjson.DefaultEncoderConfig()
	cfg.Pretty = true
	return spdxjson.NewFormatEncoderWithConfig(cfg)
}

func cdxEncoder() (syftsbom.FormatEncoder, error) {
	cfg := cyclonedxjson.DefaultEncoderConfig()
	cfg.Pretty = true
	return cyclonedxjson.NewFormatEncoderWithConfig(cfg)
}

func encode(doc *syftsbom.SBOM, what string, newEncoder func() (syftsbom.FormatEncoder, error)) ([]byte, error) {
	enc, err := newEncoder()
	if err != nil {
		return nil, fmt.Errorf("%s encoder: %w", what, err)
	}
	var b bytes.Buffer
	if err := enc.Encode(&b, *doc); err != nil {
		return nil, fmt.Errorf("encoding the %s SBOM: %w", what, err)
	}
	return b.Bytes(), nil
}
