package vuln

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// EvidenceName is the scan's evidence file for version.
func EvidenceName(version string) string { return "vulnerabilities_" + version + ".txt" }

// Text is the report as evidence: what was scanned against, every finding,
// and the verdict last.
func (r *Report) Text() string {
	var b strings.Builder
	if r.DB.Path != "" {
		fmt.Fprintf(&b, "database: %s (schema %s, built %s", r.DB.Path, r.DB.SchemaVersion, r.DB.Built.UTC().Format(time.RFC3339))
		if r.DB.From != "" {
			fmt.Fprintf(&b, ", from %s", r.DB.From)
		}
		b.WriteString(")\n")
	}
	threshold := "none (report only)"
	if r.FailOn != Unknown {
		threshold = r.FailOn.String() + " or worse fails"
	}
	fmt.Fprintf(&b, "threshold: %s\n", threshold)
	fmt.Fprintf(&b, "packages scanned: %d\n", r.Packages)
	if r.Ignored > 0 {
		fmt.Fprintf(&b, "set aside by grype's own rules: %d\n", r.Ignored)
	}
	fmt.Fprintf(&b, "findings: %d (%s)\n", len(r.Findings), r.summary())
	if len(r.Findings) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tPACKAGE\tVERSION\tVULNERABILITY\tFIXED IN\tTYPE")
		for _, f := range r.Findings {
			id := f.ID
			if len(f.Aliases) > 0 {
				id += " (" + strings.Join(f.Aliases, ", ") + ")"
			}
			fix := strings.Join(f.FixVersions, ", ")
			if fix == "" {
				fix = "(" + f.FixState + ")"
			}
			mark := f.Severity.String()
			if r.FailOn != Unknown && f.Severity >= r.FailOn {
				mark += " ✗"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, f.Package, f.Version, id, fix, f.Type)
		}
		_ = tw.Flush() // a strings.Builder does not fail
		if n := r.Counts()[Unknown]; n > 0 && r.FailOn != Unknown {
			fmt.Fprintf(&b, "\n%d finding(s) of unknown severity are listed but not held against the threshold: review them by hand\n", n)
		}
	}
	fmt.Fprintf(&b, "\nverdict: %s\n", r.Verdict())
	return b.String()
}

// Writer receives evidence files; rollout.Evidence and evidence.Dir are
// Writers.
type Writer interface {
	Write(ctx context.Context, name string, data []byte) error
}

// Check is the scan as a release gate, for the green button: it scans doc
// (the release's SPDX SBOM) against o.DBPath and writes the report to ev
// as EvidenceName(version). A threshold breach is Report.Failed, not an
// error; a missing or stale database is an error (ErrNoDB, ErrBadDB,
// ErrStaleDB), and nothing is written, since no scan took place.
func Check(ctx context.Context, ev Writer, version string, doc []byte, o Options) (*Report, error) {
	rep, err := Scan(ctx, doc, o)
	if err != nil {
		return nil, err
	}
	if err := ev.Write(ctx, EvidenceName(version), []byte(rep.Text())); err != nil {
		return rep, fmt.Errorf("writing %s: %w", EvidenceName(version), err)
	}
	return rep, nil
}
