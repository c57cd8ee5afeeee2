package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ProblemKind classifies one finding of Verify.
type ProblemKind string

const (
	Edited           ProblemKind = "edited"            // file bytes differ from the manifest's sha256
	Deleted          ProblemKind = "deleted"           // in the manifest, missing on disk
	Added            ProblemKind = "added"             // on disk, not in the manifest
	Reordered        ProblemKind = "reordered"         // entries intact but not in chain order
	ManifestTampered ProblemKind = "manifest tampered" // an entry, link or the head does not recompute
)

// Problem is one finding, naming the file it concerns.
type Problem struct {
	Kind   ProblemKind
	File   string
	Detail string
}

// Report is the outcome of Verify.
type Report struct {
	OK       bool
	Files    int // entries in the manifest
	Problems []Problem
}

func (r Report) String() string {
	if r.OK {
		return fmt.Sprintf("ok: %d evidence files match the manifest and its chain is intact", r.Files)
	}
	lines := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		lines[i] = fmt.Sprintf("%s: %s (%s)", p.Kind, p.File, p.Detail)
	}
	return strings.Join(lines, "\n")
}

// Verify checks dir against its manifest.json. Every finding is a Problem; the
// error is only for I/O failures and a missing (ErrNoManifest) or unparsable
// (ErrCorruptManifest) manifest.
func Verify(dir string) (Report, error) {
	m, err := readManifest(dir)
	if err != nil {
		return Report{}, err
	}
	ps := chainProblems(m)

	seen := make(map[string]bool, len(m.Entries))
	for _, e := range m.Entries {
		if seen[e.Name] {
			continue // chainProblems reported the duplicate
		}
		seen[e.Name] = true
		if err := checkName(e.Name); err != nil {
			continue // never read outside dir; chainProblems reported the name
		}
		sum, size, err := hashFile(filepath.Join(dir, e.Name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			ps = append(ps, Problem{Deleted, e.Name, "listed in the manifest, missing on disk"})
		case err != nil:
			return Report{}, fmt.Errorf("evidence: verify: %w", err)
		case sum != e.SHA256:
			ps = append(ps, Problem{Edited, e.Name, fmt.Sprintf("sha256 was %s, now %s", e.SHA256, sum)})
		case size != e.Size:
			ps = append(ps, Problem{ManifestTampered, e.Name,
				fmt.Sprintf("entry says %d bytes, file has %d with the recorded sha256", e.Size, size)})
		}
	}

	des, err := os.ReadDir(dir)
	if err != nil {
		return Report{}, fmt.Errorf("evidence: verify: %w", err)
	}
	for _, de := range des { // ReadDir sorts by name, so Added is stable
		n := de.Name()
		if n == ManifestName || strings.HasPrefix(n, tmpPrefix) || seen[n] {
			continue
		}
		ps = append(ps, Problem{Added, n, "on disk, not in the manifest"})
	}
	return Report{OK: len(ps) == 0, Files: len(m.Entries), Problems: ps}, nil
}

// chainProblems checks the manifest on its own: entry hashes, links and head.
func chainProblems(m *manifest) []Problem {
	var ps []Problem
	es := m.Entries
	seen := make(map[string]bool, len(es))
	for _, e := range es {
		if err := checkName(e.Name); err != nil {
			ps = append(ps, Problem{ManifestTampered, e.Name, err.Error()})
		}
		if seen[e.Name] {
			ps = append(ps, Problem{ManifestTampered, e.Name, "listed more than once"})
		}
		seen[e.Name] = true
		if h := entryHash(e.PrevHash, e.Name, e.SHA256); h != e.Hash {
			ps = append(ps, Problem{ManifestTampered, e.Name,
				fmt.Sprintf("entry hash %s does not recompute (should be %s): the entry was edited", e.Hash, h)})
		}
	}

	genesis := genesisHash(m.Version)
	tail := genesis
	if n := len(es); n > 0 {
		tail = es[n-1].Hash
	}
	if broken := linkBreaks(es, genesis); len(broken) > 0 {
		if order, ok := chainOrder(es, genesis); ok {
			// Every link is intact, only the order changed: name just the moved entries.
			for pos, i := range order {
				if pos != i {
					ps = append(ps, Problem{Reordered, es[i].Name,
						fmt.Sprintf("is entry %d in the manifest but its chain link puts it at %d", i+1, pos+1)})
				}
			}
			tail = es[order[len(order)-1]].Hash
		} else {
			for _, i := range broken {
				if i == 0 {
					ps = append(ps, Problem{ManifestTampered, es[0].Name, fmt.Sprintf(
						"first entry does not link to the genesis hash of version %s: the version was changed or entries before it were removed", m.Version)})
					continue
				}
				ps = append(ps, Problem{ManifestTampered, es[i-1].Name, fmt.Sprintf(
					"chain broken after this entry: %s links to %s, but this entry's hash is %s (this entry was rewritten, or one after it removed)",
					es[i].Name, es[i].PrevHash, es[i-1].Hash)})
			}
		}
	}
	if m.Head != tail {
		file := ManifestName
		if len(es) > 0 {
			file = es[len(es)-1].Name
		}
		ps = append(ps, Problem{ManifestTampered, file, fmt.Sprintf(
			"head %s is not the last entry's hash %s: entries were removed or appended at the end", m.Head, tail)})
	}
	return ps
}

// linkBreaks lists the entries whose prev_hash is not the hash before them.
func linkBreaks(es []entry, genesis string) []int {
	var out []int
	prev := genesis
	for i, e := range es {
		if e.PrevHash != prev {
			out = append(out, i)
		}
		prev = e.Hash
	}
	return out
}

// chainOrder follows prev_hash links from genesis; ok when they thread every
// entry exactly once, i.e. the entries are intact but stored out of order.
func chainOrder(es []entry, genesis string) (order []int, ok bool) {
	next := make(map[string]int, len(es))
	for i, e := range es {
		if _, dup := next[e.PrevHash]; dup {
			return nil, false
		}
		next[e.PrevHash] = i
	}
	cur := genesis
	for range es {
		i, found := next[cur]
		if !found {
			return nil, false
		}
		order = append(order, i)
		cur = es[i].Hash
	}
	return order, true
}

func hashFile(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	size, err = io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// Completeness says how many of the expected evidence files exist.
type Completeness struct {
	Present  int
	Expected int // expected files minus waived ones
	Missing  []string
	Waived   map[string]string
}

func (c Completeness) String() string {
	s := fmt.Sprintf("%d/%d evidence files present", c.Present, c.Expected)
	if len(c.Missing) > 0 {
		s += "; missing: " + strings.Join(c.Missing, ", ")
	}
	if len(c.Waived) > 0 {
		names := make([]string, 0, len(c.Waived))
		for n := range c.Waived {
			names = append(names, n)
		}
		slices.Sort(names)
		for i, n := range names {
			names[i] = n + " (" + c.Waived[n] + ")"
		}
		s += "; waived: " + strings.Join(names, ", ")
	}
	return s
}

// Check counts which expected files are on disk in dir. The expected list and
// waivers come from the manifest; without an expected list it is the
// runbook's, for the manifest's version or, with no manifest, the dir's name.
func Check(dir string) (Completeness, error) {
	version := filepath.Base(dir)
	var expected []string
	var waived map[string]string
	m, err := readManifest(dir)
	switch {
	case err == nil:
		version, expected, waived = m.Version, m.Expected, m.Waived
	case !errors.Is(err, ErrNoManifest):
		return Completeness{}, err
	}
	if len(expected) == 0 {
		expected = RunbookFiles(version, []int{1, 5, 25, 50, 100})
	}
	c := Completeness{Waived: waived}
	for _, n := range expected {
		if _, ok := waived[n]; ok {
			continue
		}
		c.Expected++
		if checkName(n) != nil {
			c.Missing = append(c.Missing, n)
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, n))
		switch {
		case err == nil && fi.Mode().IsRegular():
			c.Present++
		case err == nil || errors.Is(err, os.ErrNotExist):
			c.Missing = append(c.Missing, n)
		default:
			return Completeness{}, fmt.Errorf("evidence: check: %w", err)
		}
	}
	return c, nil
}

// RunbookFiles is the runbook's "Expected Evidence" list for a version and the
// plan's stage weights, in the runbook's order.
func RunbookFiles(version string, stageWeights []int) []string {
	v := version
	files := []string{
		"release_tag.txt",
		"preflight.txt",
		"pgbouncer_pools_" + v + ".tsv",
		"prisma_status_" + v + ".txt",
		"csp_headers_" + v + ".txt",
		"pg_dead_tuples_top5.txt",
		"micro_blast_" + v + ".log",
		"artifact_count.txt",
		"sbom_" + v + ".json",
		"build_provenance_" + v + ".json",
		"go_nogo_signed_" + v + ".txt",
	}
	for _, w := range stageWeights {
		files = append(files, "rollout_stage_"+strconv.Itoa(w)+".txt")
	}
	for _, prefix := range []string{"db_health_stage_", "pgbouncer_stage_", "logs_stage_", "summary_stage_"} {
		for _, w := range stageWeights {
			files = append(files, prefix+strconv.Itoa(w)+".txt")
		}
	}
	return append(files,
		"warroom_log.txt",
		"release_oneliner.txt",
		"mini_rca_"+v+".md",
		"rollback_dryrun.txt",
	)
}
