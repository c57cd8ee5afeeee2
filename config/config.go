// Package config reads canary.yaml: the release plan plus where canarybot
// keeps its files. Every field is optional; Default() (the runbook's plan)
// fills the rest. A bad file is rejected as a whole, before anything runs,
// with every problem's field path, line and what was expected.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/canarybot/canarybot/rollout"
)

// Config is the whole file: the plan plus where things live.
type Config struct {
	Plan rollout.Plan
	// EvidenceDir is where evidence files are written (yaml: evidence_dir).
	EvidenceDir string
	// StatePath is the embedded database file (yaml: state).
	StatePath string
	// Slack is the war-room's Slack settings (yaml: slack).
	Slack Slack
	// Preflight, Battery, GreenButton and GitHub configure the pre-canary
	// gates (yaml: preflight, battery, green_button, github; gates.go).
	Preflight   Preflight
	Battery     Battery
	GreenButton GreenButton
	GitHub      GitHub
}

// DefaultConfig is the configuration of an empty canary.yaml.
func DefaultConfig() Config {
	return Config{
		Plan:        Default(),
		EvidenceDir: "evidence",
		StatePath:   "canarybot.db",
		Slack:       DefaultSlack(),
		Preflight:   DefaultPreflight(),
		Battery:     DefaultBattery(),
		GreenButton: DefaultGreenButton(),
		GitHub:      DefaultGitHub(),
	}
}

// Load reads and parses the file at path; "" means no file, the defaults.
// A file that cannot be read is an error wrapping the os error (so
// errors.Is(err, fs.ErrNotExist) works); a bad file is an error matching
// ErrInvalid whose messages name path.
func Load(path string) (Config, error) {
	if path == "" {
		return DefaultConfig(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	return parse(data, path)
}

// Parse merges a canary.yaml over the defaults and validates the result.
// The error, if any, is a *ValidationError listing every problem.
func Parse(data []byte) (Config, error) {
	return parse(data, "")
}

func parse(data []byte, file string) (Config, error) {
	c := DefaultConfig()
	root, err := readYAML(data, file)
	if err != nil {
		return Config{}, err
	}
	if isNull(root) {
		return c, nil
	}
	d := newDecoder(file)
	d.config(root, &c)
	errs := d.errs
	for _, fe := range check(c, d.pos, file) {
		if !under(fe.Path, d.bad) {
			errs = append(errs, fe)
		}
	}
	if err := newValidationError(errs); err != nil {
		return Config{}, err
	}
	return c, nil
}

// readYAML parses data into a node tree and returns its root, or nil for a
// file with no document (empty, or only comments).
func readYAML(data []byte, file string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(err, file)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(err, file)
	default:
		return nil, newValidationError([]*FieldError{{
			File: file, Line: extra.Line, Column: extra.Column,
			Msg: "a second YAML document (after ---); canary.yaml holds exactly one",
		}})
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

func syntaxError(err error, file string) error {
	// The parser says "yaml: line 3: did not find expected key"; the line
	// belongs in the FieldError's position, not in its message.
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	fe := &FieldError{File: file}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				fe.Line, msg = n, tail
			}
		}
	}
	fe.Msg = "invalid YAML: " + msg
	return newValidationError([]*FieldError{fe})
}

// under reports whether path is, or is inside, one of the given paths.
func under(path string, paths []string) bool {
	for _, p := range paths {
		if path == p || (strings.HasPrefix(path, p) && (path[len(p)] == '.' || path[len(p)] == '[')) {
			return true
		}
	}
	return false
}
