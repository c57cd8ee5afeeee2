// Package vuln scans a release's SBOM for known vulnerabilities with grype,
// against a grype vulnerability database already on disk. Nothing is
// downloaded: the release machine may have no network, and a database that
// changes under a release would make its evidence unreproducible.
package vuln

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anchore/grype/grype"
	"github.com/anchore/grype/grype/match"
	"github.com/anchore/grype/grype/matcher"
	"github.com/anchore/grype/grype/matcher/dpkg"
	"github.com/anchore/grype/grype/matcher/rpm"
	"github.com/anchore/grype/grype/matcher/stock"
	grypepkg "github.com/anchore/grype/grype/pkg"
	"github.com/anchore/grype/grype/version"
	"github.com/anchore/grype/grype/vulnerability"

	"github.com/canarybot/canarybot/sbom"
)

// Errors a caller branches on.
var (
	// ErrNoDB: the database directory is missing or holds no grype
	// database of the schema this build reads.
	ErrNoDB = errors.New("no vulnerability database")
	// ErrBadDB: the database is there but cannot be used (checksum, schema,
	// corrupt file).
	ErrBadDB = errors.New("unusable vulnerability database")
	// ErrStaleDB: the database was built longer ago than Options.MaxDBAge.
	// A scan against it would pass releases for want of recent advisories.
	ErrStaleDB = errors.New("vulnerability database too old")
	// ErrBadSBOM: the SBOM is not SPDX, CycloneDX or syft JSON.
	ErrBadSBOM = errors.New("bad SBOM")
	// ErrNoPackages: the SBOM lists no package; a scan would pass having
	// checked nothing.
	ErrNoPackages = errors.New("SBOM has no packages to scan")
	// ErrBadSeverity: a severity name ParseSeverity does not know.
	ErrBadSeverity = errors.New("bad severity")
)

// Severity orders findings. Unknown is below every other: grype reports it
// for advisories without a rating, and a threshold never counts it.
type Severity int

const (
	Unknown Severity = iota
	Negligible
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"unknown", "negligible", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return severityNames[Unknown]
	}
	return severityNames[s]
}

// ParseSeverity reads a threshold: negligible, low, medium, high or
// critical (any case); "none" or "" is Unknown, meaning no threshold.
func ParseSeverity(s string) (Severity, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case "", "none":
		return Unknown, nil
	default:
		for i, n := range severityNames[Negligible:] {
			if v == n {
				return Negligible + Severity(i), nil
			}
		}
	}
	return Unknown, fmt.Errorf("%w %q: use negligible, low, medium, high, critical or none", ErrBadSeverity, s)
}

func fromGrype(s string) Severity {
	return Severity(vulnerability.ParseSeverity(s))
}

// DefaultMaxDBAge is grype's own limit on a database's age.
const DefaultMaxDBAge = 5 * 24 * time.Hour

// Options say what to scan against and when the scan fails.
type Options struct {
	// DBPath is grype's database directory: the cache root (the directory
	// holding 6/vulnerability.db, as GRYPE_DB_CACHE_DIR names it) or the
	// schema directory holding vulnerability.db and import.json.
	DBPath string
	// FailOn fails the scan when a finding is at or above it; Unknown
	// means no threshold (report only).
	FailOn Severity
	// MaxDBAge refuses a database built longer ago; 0 means
	// DefaultMaxDBAge, negative means any age.
	MaxDBAge time.Duration
	// Now dates the age check; nil means time.Now.
	Now func() time.Time
}

// Finding is one vulnerability matched to one package.
type Finding struct {
	Package string
	Version string
	// Type is syft's package type (go-module, npm, deb, ...).
	Type string
	PURL string
	// ID is the advisory (GHSA-…, CVE-…, GO-…); Aliases are related IDs,
	// usually the CVE of a GHSA.
	ID      string
	Aliases []string
	// Namespace is where grype found it, e.g. github:language:go.
	Namespace string
	Severity  Severity
	// FixVersions are the versions that fix it; FixState is grype's word:
	// fixed, not-fixed, wont-fix or unknown.
	FixVersions []string
	FixState    string
	// URL is the advisory's primary reference.
	URL string
}

// DB describes the database a scan ran against.
type DB struct {
	Path          string
	SchemaVersion string
	Built         time.Time
	// From is where the database was imported from, when recorded.
	From string
}

// Report is a scan's outcome.
type Report struct {
	// Findings are sorted by severity (worst first), then package, then ID.
	Findings []Finding
	// Packages is how many packages grype looked up.
	Packages int
	// Ignored counts matches grype itself set aside (for example an
	// advisory the distribution marked as not affecting the package).
	Ignored int
	FailOn  Severity
	// Failed is true when a finding is at or above FailOn.
	Failed bool
	DB     DB
}

// AtOrAbove are the findings that fail the threshold.
func (r *Report) AtOrAbove() []Finding {
	var out []Finding
	if r.FailOn == Unknown {
		return nil
	}
	for _, f := range r.Findings {
		if f.Severity >= r.FailOn {
			out = append(out, f)
		}
	}
	return out
}

// Counts is the number of findings per severity.
func (r *Report) Counts() map[Severity]int {
	out := map[Severity]int{}
	for _, f := range r.Findings {
		out[f.Severity]++
	}
	return out
}

// Verdict is the one-line outcome.
func (r *Report) Verdict() string {
	switch {
	case r.Failed:
		return fmt.Sprintf("FAIL: %d finding(s) at or above %s (%s of %d packages)", len(r.AtOrAbove()), r.FailOn, r.summary(), r.Packages)
	case len(r.Findings) == 0:
		return fmt.Sprintf("PASS: no known vulnerability in %d packages", r.Packages)
	case r.FailOn == Unknown:
		return fmt.Sprintf("PASS (report only, no threshold): %s in %d packages", r.summary(), r.Packages)
	}
	return fmt.Sprintf("PASS: %s in %d packages, none at or above %s", r.summary(), r.Packages, r.FailOn)
}

func (r *Report) summary() string {
	c := r.Counts()
	var parts []string
	for s := Critical; s >= Unknown; s-- {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	if len(parts) == 0 {
		return "no findings"
	}
	return strings.Join(parts, ", ")
}

// Scan matches the packages of doc (SPDX, CycloneDX or syft JSON, as
// sbom.Generate writes it) against the database at o.DBPath. Nothing is
// downloaded. A threshold breach is not an error: it is Report.Failed.
func Scan(ctx context.Context, doc []byte, o Options) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	provider, db, err := Open(o)
	if err != nil {
		return nil, err
	}
	defer provider.Close()
	rep, err := ScanWith(ctx, provider, doc, o)
	if err != nil {
		return nil, err
	}
	rep.DB = db
	return rep, nil
}

// ScanResult scans a freshly generated SBOM.
func ScanResult(ctx context.Context, r *sbom.Result, o Options) (*Report, error) {
	if r == nil || len(r.SPDX) == 0 {
		return nil, fmt.Errorf("%w: the SBOM result has no SPDX document; generate it first", ErrBadSBOM)
	}
	return Scan(ctx, r.SPDX, o)
}

// ScanWith scans doc against any grype vulnerability provider: a database
// from Open, or grype's mock provider in tests. o.DBPath and MaxDBAge are
// not used.
func ScanWith(ctx context.Context, provider vulnerability.Provider, doc []byte, o Options) (*Report, error) {
	pkgs, pkgCtx, err := packages(doc)
	if err != nil {
		return nil, err
	}
	m := grype.VulnerabilityMatcher{
		VulnerabilityProvider: provider,
		Matchers:              matcher.NewDefaultMatchers(matcherConfig()),
	}
	matches, ignored, err := m.FindMatchesContext(ctx, pkgs, pkgCtx)
	if err != nil {
		return nil, fmt.Errorf("matching %d packages against the vulnerability database: %w", len(pkgs), err)
	}
	rep := &Report{Packages: len(pkgs), Ignored: len(ignored), FailOn: o.FailOn}
	for _, mt := range matches.Sorted() {
		rep.Findings = append(rep.Findings, finding(mt))
	}
	slices.SortStableFunc(rep.Findings, func(a, b Finding) int {
		if a.Severity != b.Severity {
			return int(b.Severity - a.Severity)
		}
		if c := strings.Compare(a.Package, b.Package); c != 0 {
			return c
		}
		if c := strings.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	rep.Failed = len(rep.AtOrAbove()) > 0
	return rep, nil
}

// packages decodes doc into grype's packages. grype's own provider is
// used, so an SPDX or CycloneDX SBOM gets the same PURL-based enrichment
// (distribution, upstream names) as `grype sbom:FILE`.
func packages(doc []byte) ([]grypepkg.Package, grypepkg.Context, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, grypepkg.Context{}, fmt.Errorf("%w: the SBOM is empty", ErrBadSBOM)
	}
	pkgs, pkgCtx, _, err := grypepkg.ProvideFromReader(bytes.NewReader(doc), grypepkg.ProviderConfig{})
	if err != nil {
		return nil, grypepkg.Context{}, fmt.Errorf("%w: %v; give the SPDX or CycloneDX JSON that `canarybot sbom generate` writes", ErrBadSBOM, err)
	}
	if len(pkgs) == 0 {
		return nil, grypepkg.Context{}, fmt.Errorf("%w: nothing would be checked; generate the SBOM of the repository root or the built binary", ErrNoPackages)
	}
	return pkgs, pkgCtx, nil
}

// matcherConfig is grype's CLI default: CPE matching only where no
// ecosystem feed exists (stock), so Go modules are matched by their
// advisories and not by fuzzy CPE names. Java's upstream Maven search is
// off (the zero value): it would reach the network.
func matcherConfig() matcher.Config {
	return matcher.Config{
		Stock: stock.MatcherConfig{UseCPEs: true},
		Dpkg:  dpkg.MatcherConfig{MissingEpochStrategy: version.MissingEpochStrategyZero},
		Rpm:   rpm.MatcherConfig{MissingEpochStrategy: version.MissingEpochStrategyAuto},
	}
}

func finding(m match.Match) Finding {
	v := m.Vulnerability
	f := Finding{
		Package:     m.Package.Name,
		Version:     m.Package.Version,
		Type:        string(m.Package.Type),
		PURL:        m.Package.PURL,
		ID:          v.ID,
		Namespace:   v.Namespace,
		FixVersions: slices.Clone(v.Fix.Versions),
		FixState:    string(v.Fix.State),
	}
	if f.FixState == "" {
		f.FixState = string(vulnerability.FixStateUnknown)
	}
	if v.Metadata != nil {
		f.Severity = fromGrype(v.Metadata.Severity)
		f.URL = v.Metadata.DataSource
	}
	for _, r := range v.RelatedVulnerabilities {
		if r.ID != v.ID && !slices.Contains(f.Aliases, r.ID) {
			f.Aliases = append(f.Aliases, r.ID)
		}
	}
	slices.Sort(f.Aliases)
	return f
}
