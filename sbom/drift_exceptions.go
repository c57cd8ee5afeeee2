package sbom

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrBadExceptions is wrapped by every error about an exceptions file.
var ErrBadExceptions = errors.New("bad license exceptions file")

// Exception exempts an offender: a package (its key, or a glob over keys
// such as pkg:golang/github.com/spdx/*) under a license, for a reason
// that the report shows.
type Exception struct {
	Package string
	// License is an identifier the package's expression names, or the
	// whole expression; a glob is allowed.
	License string
	Reason  string
	// Line is where the entry starts in the exceptions file.
	Line int
}

// matches reports whether e exempts f.
func (e Exception) matches(f Finding) bool {
	if !globOrEqual(e.Package, f.Package) {
		return false
	}
	if globOrEqual(e.License, f.License) {
		return true
	}
	for _, id := range f.ids {
		if globOrEqual(e.License, id) {
			return true
		}
	}
	return false
}

func globOrEqual(pattern, s string) bool {
	if strings.EqualFold(pattern, s) {
		return true
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// ReadExceptions reads a YAML exceptions file.
func ReadExceptions(file string) ([]Exception, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadExceptions, err)
	}
	return ParseExceptions(file, data)
}

// ParseExceptions decodes a YAML list of {package, license, reason}. An
// entry without a reason is an error naming its line: an exemption nobody
// can explain is not reviewed.
func ParseExceptions(name string, data []byte) ([]Exception, error) {
	const example = "e.g.\n- package: pkg:golang/github.com/spdx/tools-golang\n  license: GPL-2.0-or-later\n  reason: dual-licensed Apache-2.0 OR GPL-2.0-or-later; we use it under Apache-2.0"
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadExceptions, name, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%w: %s line %d: want a list of {package, license, reason}, %s", ErrBadExceptions, name, list.Line, example)
	}
	var out []Exception
	for _, item := range list.Content {
		var raw map[string]string
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%w: %s line %d: an entry must be a map of package, license and reason, %s", ErrBadExceptions, name, item.Line, example)
		}
		if err := item.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %w", ErrBadExceptions, name, item.Line, err)
		}
		e := Exception{Line: item.Line}
		for k, v := range raw {
			v = strings.TrimSpace(v)
			switch k {
			case "package":
				e.Package = v
			case "license":
				e.License = v
			case "reason":
				e.Reason = v
			default:
				return nil, fmt.Errorf("%w: %s line %d: unknown field %q; the fields are package, license and reason", ErrBadExceptions, name, item.Line, k)
			}
		}
		var missing []string
		for _, f := range []struct{ name, v string }{{"package", e.Package}, {"license", e.License}, {"reason", e.Reason}} {
			if f.v == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%w: %s line %d: the entry for %q has no %s; every exception needs a package, a license and a reason", ErrBadExceptions, name, item.Line, e.Package, strings.Join(missing, " and no "))
		}
		if _, err := path.Match(e.Package, ""); err != nil {
			return nil, fmt.Errorf("%w: %s line %d: package %q is not a valid glob: %w", ErrBadExceptions, name, item.Line, e.Package, err)
		}
		out = append(out, e)
	}
	return out, nil
}
