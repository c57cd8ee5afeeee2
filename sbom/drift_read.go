// Package sbom reads SPDX 2.x and CycloneDX 1.x JSON SBOMs and compares the
// licenses of two of them: the license drift check of the green button and
// of the corner-case battery.
package sbom

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrBadSBOM is wrapped by every error about an SBOM that cannot be read:
// a missing file, JSON that does not parse, or a format that is neither
// SPDX nor CycloneDX.
var ErrBadSBOM = errors.New("bad SBOM")

// Format is the kind of an SBOM file.
type Format string

const (
	FormatSPDX      Format = "SPDX"
	FormatCycloneDX Format = "CycloneDX"
)

// SBOM is what the drift check needs of an SBOM: its packages and their
// license expressions.
type SBOM struct {
	// Path is where the SBOM was read from, as given; findings name it.
	Path     string
	Format   Format
	Version  string
	Packages []Package
}

// Package is one package of an SBOM.
type Package struct {
	// Key identifies the package across releases: its PURL without the
	// version, or its name when it has no PURL.
	Key     string
	Name    string
	Version string
	PURL    string
	// Ref is the SPDXID or CycloneDX bom-ref, to find the package in the
	// file.
	Ref string
	// Licenses are the package's license expressions as written in the
	// SBOM, NOASSERTION and NONE left out. Each one applies: an SPDX
	// concluded and declared license, or several CycloneDX entries, are
	// all checked.
	Licenses []string
}

// Read reads an SPDX or CycloneDX JSON SBOM, telling them apart by content.
func Read(path string) (*SBOM, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSBOM, err)
	}
	return Parse(path, data)
}

// Parse decodes data as an SPDX 2.x or CycloneDX 1.x JSON SBOM; name is
// used in errors and findings.
func Parse(name string, data []byte) (*SBOM, error) {
	var probe struct {
		SPDXVersion string `json:"spdxVersion"`
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %s is not JSON: %w", ErrBadSBOM, name, err)
	}
	switch {
	case strings.HasPrefix(probe.SPDXVersion, "SPDX-2."):
		return parseSPDX(name, data)
	case probe.SPDXVersion != "":
		return nil, fmt.Errorf("%w: %s is %s; only SPDX 2.x JSON is read", ErrBadSBOM, name, probe.SPDXVersion)
	case probe.BOMFormat == "CycloneDX":
		return parseCycloneDX(name, data, probe.SpecVersion)
	}
	return nil, fmt.Errorf("%w: %s has neither \"spdxVersion\" nor \"bomFormat\": \"CycloneDX\"; give an SPDX 2.x or CycloneDX 1.x JSON SBOM", ErrBadSBOM, name)
}

func parseSPDX(name string, data []byte) (*SBOM, error) {
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			SPDXID           string `json:"SPDXID"`
			Name             string `json:"name"`
			VersionInfo      string `json:"versionInfo"`
			LicenseConcluded string `json:"licenseConcluded"`
			LicenseDeclared  string `json:"licenseDeclared"`
			ExternalRefs     []struct {
				Category string `json:"referenceCategory"`
				Type     string `json:"referenceType"`
				Locator  string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: SPDX JSON: %w", ErrBadSBOM, name, err)
	}
	s := &SBOM{Path: name, Format: FormatSPDX, Version: doc.SPDXVersion}
	for _, p := range doc.Packages {
		pkg := Package{Name: p.Name, Version: p.VersionInfo, Ref: p.SPDXID}
		for _, r := range p.ExternalRefs {
			if strings.EqualFold(r.Type, "purl") {
				pkg.PURL = r.Locator
				break
			}
		}
		pkg.Licenses = addLicense(pkg.Licenses, p.LicenseConcluded)
		pkg.Licenses = addLicense(pkg.Licenses, p.LicenseDeclared)
		s.Packages = append(s.Packages, keyed(pkg))
	}
	return s, nil
}

func parseCycloneDX(name string, data []byte, spec string) (*SBOM, error) {
	type license struct {
		License *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"license"`
		Expression string `json:"expression"`
	}
	type component struct {
		BOMRef     string      `json:"bom-ref"`
		Name       string      `json:"name"`
		Group      string      `json:"group"`
		Version    string      `json:"version"`
		PURL       string      `json:"purl"`
		Licenses   []license   `json:"licenses"`
		Components []component `json:"components"`
	}
	var doc struct {
		Metadata struct {
			Component *component `json:"component"`
		} `json:"metadata"`
		Components []component `json:"components"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: CycloneDX JSON: %w", ErrBadSBOM, name, err)
	}
	s := &SBOM{Path: name, Format: FormatCycloneDX, Version: spec}
	// Components nest (assemblies); every level is shipped code.
	var walk func([]component)
	walk = func(cs []component) {
		for _, c := range cs {
			pkg := Package{Name: c.Name, Version: c.Version, PURL: c.PURL, Ref: c.BOMRef}
			if c.Group != "" {
				pkg.Name = c.Group + "/" + c.Name
			}
			for _, l := range c.Licenses {
				switch {
				case l.Expression != "":
					pkg.Licenses = addLicense(pkg.Licenses, l.Expression)
				case l.License != nil && l.License.ID != "":
					pkg.Licenses = addLicense(pkg.Licenses, l.License.ID)
				case l.License != nil:
					pkg.Licenses = addLicense(pkg.Licenses, l.License.Name)
				}
			}
			s.Packages = append(s.Packages, keyed(pkg))
			walk(c.Components)
		}
	}
	walk(doc.Components)
	return s, nil
}

func addLicense(ls []string, expr string) []string {
	expr = strings.TrimSpace(expr)
	if expr == "" || strings.EqualFold(expr, "NOASSERTION") || strings.EqualFold(expr, "NONE") {
		return ls
	}
	for _, l := range ls {
		if l == expr {
			return ls
		}
	}
	return append(ls, expr)
}

func keyed(p Package) Package {
	p.Key = p.Name
	if p.PURL != "" {
		p.Key = PURLKey(p.PURL)
	}
	return p
}

// PURLKey is a package URL without its version, qualifiers and subpath:
// pkg:golang/github.com/x/y@v1.2.3 → pkg:golang/github.com/x/y. A version
// bump keeps the key; a Go major version (/v2) is another module and
// another key.
func PURLKey(purl string) string {
	purl, _, _ = strings.Cut(purl, "#")
	purl, _, _ = strings.Cut(purl, "?")
	// The version's @ is in the last path segment; an npm scope's @ is
	// in an earlier one.
	slash := strings.LastIndex(purl, "/")
	if at := strings.LastIndex(purl, "@"); at > slash {
		purl = purl[:at]
	}
	if typ, rest, ok := strings.Cut(purl, "/"); ok {
		purl = strings.ToLower(typ) + "/" + rest
	}
	return purl
}

// LicenseCoverage counts the SBOM's packages with at least one license.
func LicenseCoverage(s *SBOM) (withLicense, total int) {
	for _, p := range s.Packages {
		if len(p.Licenses) > 0 {
			withLicense++
		}
	}
	return withLicense, len(s.Packages)
}
