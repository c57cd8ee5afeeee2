package sbom

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// LGPLPolicy is what the drift check does with a new LGPL package.
type LGPLPolicy string

const (
	LGPLWarn  LGPLPolicy = "warn"
	LGPLFail  LGPLPolicy = "fail"
	LGPLAllow LGPLPolicy = "allow"
)

// ErrBadPolicy is returned by ParseLGPLPolicy.
var ErrBadPolicy = errors.New("bad LGPL policy")

// ParseLGPLPolicy reads fail, warn or allow; empty is warn.
func ParseLGPLPolicy(s string) (LGPLPolicy, error) {
	switch p := LGPLPolicy(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return LGPLWarn, nil
	case LGPLWarn, LGPLFail, LGPLAllow:
		return p, nil
	}
	return "", fmt.Errorf("%w: %q; use fail, warn or allow", ErrBadPolicy, s)
}

// Options configure Drift.
type Options struct {
	// LGPL defaults to LGPLWarn.
	LGPL       LGPLPolicy
	Exceptions []Exception
}

// Finding is one package whose license brings in a copyleft family.
type Finding struct {
	// Package is the package's key: its PURL without version, or its name.
	Package string
	Version string
	// License is the expression as written in the SBOM.
	License string
	Family  Family
	// Where is the SBOM file and the package's SPDXID or bom-ref.
	Where string
	// Previous is where the same family was in the previous SBOM, for a
	// finding that is already present.
	Previous string
	// Reason is the exception's reason, for an exempted finding.
	Reason string
	// Fallback is true when License is not SPDX and was classified by
	// name patterns.
	Fallback bool

	ids []string
}

func (f Finding) line() string {
	pkg := f.Package
	if f.Version != "" {
		pkg += " " + f.Version
	}
	s := fmt.Sprintf("%s: %s (%s) in %s", pkg, f.License, f.Family, f.Where)
	if f.Fallback {
		s += " [not an SPDX expression; classified by name]"
	}
	return s
}

// DriftReport is the outcome of comparing the licenses of two SBOMs.
type DriftReport struct {
	Previous, Current string
	// New are the offenders this release brings in: a package new since
	// the previous SBOM, or one whose licenses now require a copyleft
	// family they did not. Any makes the check fail.
	New []Finding
	// Warnings are new LGPL packages under LGPLWarn.
	Warnings []Finding
	// Exempted are offenders an exception covers, with its reason.
	Exempted []Finding
	// AlreadyPresent are copyleft packages the previous release already
	// shipped under the same family: they pass.
	AlreadyPresent []Finding
	// WithLicense and Packages are the current SBOM's license coverage.
	WithLicense, Packages int
	// NothingChecked is set when the current SBOM has no packages or no
	// licenses: the check fails rather than pass having checked nothing.
	NothingChecked string
	Failed         bool
}

// Drift compares the licenses of current with those of previous (nil when
// there is no previous release: every offender is new).
func Drift(previous, current *SBOM, o Options) DriftReport {
	if o.LGPL == "" {
		o.LGPL = LGPLWarn
	}
	r := DriftReport{Current: current.Path}
	r.WithLicense, r.Packages = LicenseCoverage(current)
	switch {
	case r.Packages == 0:
		r.NothingChecked = fmt.Sprintf("%s has no packages: nothing was checked — was it generated from the right directory?", current.Path)
	case r.WithLicense == 0:
		r.NothingChecked = fmt.Sprintf("%s has %d packages and no licenses: nothing was checked — was the Go module cache filled?", current.Path, r.Packages)
	}
	before := map[string]Finding{}
	if previous != nil {
		r.Previous = previous.Path
		for _, f := range findings(previous) {
			if b, ok := before[f.Package]; !ok || f.Family.rank() > b.Family.rank() {
				before[f.Package] = f
			}
		}
	}
	for _, f := range findings(current) {
		if f.Family == FamilyLGPL && o.LGPL == LGPLAllow {
			continue
		}
		if b, ok := before[f.Package]; ok && b.Family.rank() >= f.Family.rank() {
			f.Previous = fmt.Sprintf("%s (%s, %s)", b.Where, b.License, b.Family)
			r.AlreadyPresent = append(r.AlreadyPresent, f)
			continue
		}
		if e, ok := exemption(o.Exceptions, f); ok {
			f.Reason = fmt.Sprintf("%s (exception at line %d)", e.Reason, e.Line)
			r.Exempted = append(r.Exempted, f)
			continue
		}
		if f.Family == FamilyLGPL && o.LGPL == LGPLWarn {
			r.Warnings = append(r.Warnings, f)
			continue
		}
		r.New = append(r.New, f)
	}
	r.Failed = len(r.New) > 0 || r.NothingChecked != ""
	return r
}

func exemption(es []Exception, f Finding) (Exception, bool) {
	for _, e := range es {
		if e.matches(f) {
			return e, true
		}
	}
	return Exception{}, false
}

// findings are the SBOM's packages that require a copyleft family, one per
// license expression, in package order.
func findings(s *SBOM) []Finding {
	var out []Finding
	for _, p := range s.Packages {
		for _, l := range p.Licenses {
			c := Classify(l)
			if c.Family == FamilyNone {
				continue
			}
			out = append(out, Finding{
				Package: p.Key, Version: p.Version, License: l, Family: c.Family,
				Where: s.Path + "#" + p.Ref, Fallback: c.Fallback, ids: c.IDs,
			})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Package < out[j].Package })
	return out
}

// Verdict is the report's one line.
func (r DriftReport) Verdict() string {
	switch {
	case r.NothingChecked != "":
		return "FAIL: " + r.NothingChecked
	case len(r.New) > 0:
		return fmt.Sprintf("FAIL: %d new copyleft license(s)", len(r.New))
	case len(r.Warnings) > 0:
		return fmt.Sprintf("PASS with %d warning(s)", len(r.Warnings))
	}
	return "PASS"
}

// Text is the report: every offender with its license and where it was
// found, the warnings, the exemptions with their reasons, and what the
// previous release already had.
func (r DriftReport) Text() string {
	var s strings.Builder
	prev := r.Previous
	if prev == "" {
		prev = "(none: every copyleft package counts as new)"
	}
	fmt.Fprintf(&s, "license drift: previous %s, current %s\n", prev, r.Current)
	fmt.Fprintf(&s, "license coverage: %d of %d packages have a license\n", r.WithLicense, r.Packages)
	section := func(title string, fs []Finding, extra func(Finding) string) {
		if len(fs) == 0 {
			return
		}
		fmt.Fprintf(&s, "%s (%d):\n", title, len(fs))
		for _, f := range fs {
			fmt.Fprintf(&s, "  %s%s\n", f.line(), extra(f))
		}
	}
	none := func(Finding) string { return "" }
	section("NEW copyleft (fails)", r.New, none)
	section("warnings (LGPL, allowed with --lgpl warn)", r.Warnings, none)
	section("exempted", r.Exempted, func(f Finding) string { return "\n    reason: " + f.Reason })
	section("already present in the previous release (passes)", r.AlreadyPresent, func(f Finding) string { return "\n    previously: " + f.Previous })
	fmt.Fprintf(&s, "verdict: %s\n", r.Verdict())
	return s.String()
}
