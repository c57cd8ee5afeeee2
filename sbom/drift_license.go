package sbom

import (
	"regexp"
	"strings"

	"github.com/github/go-spdx/v2/spdxexp"
)

// Family is a copyleft license family; the empty Family is everything
// else (permissive, weak file-level copyleft, unknown).
type Family string

const (
	FamilyNone Family = ""
	FamilyLGPL Family = "LGPL"
	FamilyGPL  Family = "GPL"
	FamilyAGPL Family = "AGPL"
)

// rank orders the families by how much they demand of this project.
func (f Family) rank() int {
	switch f {
	case FamilyLGPL:
		return 1
	case FamilyGPL:
		return 2
	case FamilyAGPL:
		return 3
	}
	return 0
}

func (f Family) String() string {
	if f == FamilyNone {
		return "none"
	}
	return string(f)
}

// Classification is what a license expression requires of its user.
type Classification struct {
	// Family is the least demanding copyleft family that every way of
	// meeting the expression brings in: FamilyNone when some choice is
	// free of copyleft (MIT OR GPL-3.0-only), GPL for MIT AND
	// GPL-2.0-only.
	Family Family
	// IDs are the license identifiers the expression names.
	IDs []string
	// Fallback is true when the expression is not SPDX (GPLv2, "GNU
	// General Public License") and was classified by name patterns.
	Fallback bool
}

// Classify parses expr as an SPDX expression and finds the copyleft family
// it requires. A string that is not SPDX goes through patterns instead of
// failing: SBOMs are full of "GPLv2" and "GPL v3".
func Classify(expr string) Classification {
	ids, err := spdxexp.ExtractLicenses(expr)
	if err != nil || len(ids) == 0 {
		return Classification{Family: classifyName(expr), IDs: []string{strings.TrimSpace(expr)}, Fallback: true}
	}
	c := Classification{IDs: ids}
	worst := FamilyNone
	for _, id := range ids {
		if f := classifyName(id); f.rank() > worst.rank() {
			worst = f
		}
	}
	if worst == FamilyNone {
		return c
	}
	// The expression is met by the least demanding tier whose licenses
	// alone satisfy it: an OR is a choice, an AND needs both.
	for _, tier := range []Family{FamilyNone, FamilyLGPL, FamilyGPL} {
		var allowed []string
		for _, id := range ids {
			if classifyName(id).rank() <= tier.rank() {
				allowed = append(allowed, id)
			}
		}
		if len(allowed) == 0 {
			continue
		}
		if ok, err := spdxexp.Satisfies(expr, allowed); err == nil && ok {
			c.Family = tier
			return c
		}
	}
	c.Family = worst
	return c
}

var (
	reAGPL = regexp.MustCompile(`(?i)agpl|affero`)
	reLGPL = regexp.MustCompile(`(?i)lgpl|lesser\s+general\s+public|library\s+general\s+public`)
	reGPL  = regexp.MustCompile(`(?i)gpl|general\s+public\s+licen[cs]e`)
)

// classifyName finds the strongest family a license identifier or free
// text names. Each family's words are removed before the next, weaker
// check, so "GNU Lesser General Public License" is LGPL and not also GPL.
func classifyName(s string) Family {
	f := FamilyNone
	if reAGPL.MatchString(s) {
		f = FamilyAGPL
		s = reAGPL.ReplaceAllString(s, " ")
	}
	lgpl := reLGPL.MatchString(s)
	s = reLGPL.ReplaceAllString(s, " ")
	if f == FamilyNone && reGPL.MatchString(s) {
		f = FamilyGPL
	}
	if f == FamilyNone && lgpl {
		f = FamilyLGPL
	}
	return f
}
