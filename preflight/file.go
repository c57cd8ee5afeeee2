package preflight

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checksFile is the layout of a --checks file.
type checksFile struct {
	Checks []Check `yaml:"checks"`
}

// LoadChecks reads a checks file (see ParseChecks).
func LoadChecks(path string) ([]Check, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the checks file: %w", ErrBadChecks, err)
	}
	return ParseChecks(data, path)
}

// unknownField matches yaml.v3's message for a key the struct lacks.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)

// ParseChecks decodes a checks file, named source in messages:
//
//	checks:
//	  - name: canary_health
//	    kind: http
//	    url: https://canary.example.com/healthz
//
// An unknown key, a malformed value or an invalid check is an error
// wrapping ErrBadChecks that names the line.
func ParseChecks(data []byte, source string) ([]Check, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f checksFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s is empty: list the checks under `checks:`", ErrBadChecks, source)
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrBadChecks, source, describeYAMLError(err))
	}
	if len(f.Checks) == 0 {
		return nil, fmt.Errorf("%w: %s lists no checks: list them under `checks:`", ErrBadChecks, source)
	}
	lines := checkLines(data)
	var errs []error
	for i, c := range f.Checks {
		if err := c.Validate(); err != nil {
			where := source
			if i < len(lines) {
				where = fmt.Sprintf("%s: line %d", source, lines[i])
			}
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrBadChecks, errors.Join(errs...))
	}
	if err := ValidateAll(f.Checks); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return f.Checks, nil
}

// describeYAMLError rewrites yaml.v3's messages into ones that say what to
// do; each keeps its line number.
func describeYAMLError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if sub := unknownField.FindStringSubmatch(m); sub != nil {
			m = fmt.Sprintf("line %s: unknown key %q: a check's keys are name, kind, url, status, headers, body, max_latency, query, op, value, dir, argv, timeout, sql, dsn_env, column, namespace, deployment, ingress, evidence", sub[1], sub[2])
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

// checkLines gives the line of each item of the top-level checks list, so
// that a validation error points at its check. Decoding already succeeded,
// so a failure here only loses the line numbers.
func checkLines(data []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "checks" {
			var lines []int
			for _, item := range root.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
			return lines
		}
	}
	return nil
}
