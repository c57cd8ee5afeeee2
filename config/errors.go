package config

import (
	"errors"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid matches (errors.Is) every error Parse, Load and Validate return
// for a configuration that is wrong, as opposed to one that could not be read.
var ErrInvalid = errors.New("invalid configuration")

// DefaultFileName names the file in messages when the caller did not say
// which file the bytes came from.
const DefaultFileName = "canary.yaml"

// FieldError is one problem with one field.
type FieldError struct {
	// File is the file the field came from; "" means canary.yaml.
	File string
	// Path names the field: "tick", "stages[2].dwell" (0-based),
	// "signals[api_p95].threshold", "triggers.labels.auto_rollback".
	// It is empty for a problem with the file as a whole (bad YAML syntax).
	Path string
	// Line and Column locate the offending node, 1-based; 0 when the value
	// did not come from a file (a default, or a Config built in code).
	Line, Column int
	Msg          string
}

// Error reads like a compiler's message:
// canary.yaml:12:5: stages[2].dwell: expected a duration like 15m, got "fifteen".
func (e *FieldError) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = DefaultFileName
	}
	switch {
	case e.Line > 0:
		b.WriteString(file)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
		b.WriteString(": ")
	case e.Path == "":
		b.WriteString(file)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for a single FieldError too.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// ValidationError is every problem found in one configuration, in file order
// (problems without a line last).
type ValidationError struct {
	Errors []*FieldError
}

// Error lists the problems one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each FieldError.
func (e *ValidationError) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		out[i] = fe
	}
	return out
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// newValidationError orders the problems as a reader meets them in the file
// and returns nil when there are none.
func newValidationError(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		switch {
		case a.Line == 0 && b.Line == 0:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		case a.Line != b.Line:
			return a.Line - b.Line
		default:
			return a.Column - b.Column
		}
	})
	return &ValidationError{Errors: errs}
}
