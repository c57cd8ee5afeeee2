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

// chainProblems checks the manifest on its own: both chains and the head.
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
	links := make([]link, len(es))
	for i, e := range es {
		links[i] = link{e.Name, e.PrevHash, e.Hash}
	}
	lps, tail := linkProblems(links, genesisHash(m.Version), m.Version, "", "entry", "entries", nil)
	ps = append(ps, lps...)
	ps = append(ps, expectedProblems(m)...)

	if want := headHash(tail, m.ExpectedHead); m.Head != want {
		file := ManifestName
		if len(es) > 0 {
			file = es[len(es)-1].Name
		}
		ps = append(ps, Problem{ManifestTampered, file, fmt.Sprintf(
			"head %s does not recompute from the last entry and expected_head (should be %s): "+
				"entries were removed or appended at the end, or expected_head was rewritten", m.Head, want)})
	}
	return ps
}

// expectedProblems checks the expected list's chain. Its details start with
// "expected list:" because the file they name need not exist.
func expectedProblems(m *manifest) []Problem {
	const prefix = "expected list: "
	var ps []Problem
	xs := m.Expected
	guess := newSealGuesser(m)
	seen := make(map[string]bool, len(xs))
	for _, x := range xs {
		if err := checkName(x.Name); err != nil {
			ps = append(ps, Problem{ManifestTampered, x.Name, prefix + err.Error()})
		}
		if seen[x.Name] {
			ps = append(ps, Problem{ManifestTampered, x.Name, prefix + "listed more than once"})
		}
		seen[x.Name] = true
		if h := expectedHash(x.PrevHash, x.Name, x.Waived); h != x.Hash {
			ps = append(ps, Problem{ManifestTampered, x.Name, prefix + guess.edit(x, h)})
		}
	}
	links := make([]link, len(xs))
	for i, x := range xs {
		links[i] = link{x.Name, x.PrevHash, x.Hash}
	}
	lps, tail := linkProblems(links, expectedGenesisHash(m.Version), m.Version, prefix, "expected file", "expected files", guess.sealed)
	ps = append(ps, lps...)
	if m.ExpectedHead != tail {
		if was, ok := guess.sealed(tail, m.ExpectedHead); ok {
			ps = append(ps, Problem{ManifestTampered, was.Name, prefix + "removed from the end; it was sealed as " + status(was.Waived)})
		} else {
			file := ManifestName
			if len(xs) > 0 {
				file = xs[len(xs)-1].Name
			}
			ps = append(ps, Problem{ManifestTampered, file, fmt.Sprintf(prefix+
				"expected_head %s is not the last expected file's hash %s: expected files were removed or appended at the end, or the version changed",
				m.ExpectedHead, tail)})
		}
	}
	return ps
}

// sealGuesser recovers what an edited or removed expected item was sealed
// as, trying the runbook's names and the reasons the list already uses: a
// hand edit almost always waives a runbook file with a reason copied from
// another one, or drops one.
type sealGuesser struct {
	names   []string
	reasons []string // "" first: required
}

func newSealGuesser(m *manifest) sealGuesser {
	weights := []int{1, 5, 25, 50, 100}
	var names []string
	for _, e := range m.Entries {
		names = append(names, e.Name)
	}
	reasons := []string{""}
	for _, x := range m.Expected {
		names = append(names, x.Name)
		if !slices.Contains(reasons, x.Waived) {
			reasons = append(reasons, x.Waived)
		}
	}
	for _, n := range names {
		// The stage files carry the plan's weights, which may not be the defaults.
		if rest, ok := strings.CutPrefix(n, "rollout_stage_"); ok {
			if w, err := strconv.Atoi(strings.TrimSuffix(rest, ".txt")); err == nil && !slices.Contains(weights, w) {
				weights = append(weights, w)
			}
		}
	}
	names = append(names, RunbookFiles(m.Version, weights)...)
	slices.Sort(names)
	return sealGuesser{names: slices.Compact(names), reasons: reasons}
}

// sealed finds the item that hashes to hash after prev; with the next item's
// prev_hash as hash, that is a single item removed between the two.
func (g sealGuesser) sealed(prev, hash string) (expectation, bool) {
	for _, n := range g.names {
		for _, why := range g.reasons {
			if expectedHash(prev, n, why) == hash {
				return expectation{Name: n, Waived: why}, true
			}
		}
	}
	return expectation{}, false
}

// edit says what changed in an item whose hash does not recompute (want).
func (g sealGuesser) edit(x expectation, want string) string {
	was, ok := g.sealed(x.PrevHash, x.Hash)
	switch {
	case !ok && x.Waived != "":
		return fmt.Sprintf("hash %s does not recompute (should be %s): its name or its waiver reason (now %q) was edited", x.Hash, want, x.Waived)
	case !ok:
		return fmt.Sprintf("hash %s does not recompute (should be %s): its name was edited or a waiver removed", x.Hash, want)
	case was.Name != x.Name:
		return fmt.Sprintf("renamed: it was sealed as %s, %s", was.Name, status(was.Waived))
	case was.Waived == "":
		return fmt.Sprintf("waived (%q) by hand: it was sealed as required", x.Waived)
	case x.Waived == "":
		return fmt.Sprintf("waiver removed by hand: it was sealed as %s", status(was.Waived))
	default:
		return fmt.Sprintf("waiver reason changed by hand from %q to %q", was.Waived, x.Waived)
	}
}

func status(waived string) string {
	if waived == "" {
		return "required"
	}
	return fmt.Sprintf("waived (%q)", waived)
}

// link is one record of a chain, file entry or expected file, as far as
// linking is concerned.
type link struct{ name, prev, hash string }

// linkProblems checks how a chain's records link up from genesis and returns
// the hash the chain ends on. noun and nouns name the records in details;
// between, when not nil, recovers a single record removed at a break.
func linkProblems(ls []link, genesis, version, prefix, noun, nouns string,
	between func(prev, next string) (expectation, bool)) (ps []Problem, tail string) {
	tail = genesis
	if n := len(ls); n > 0 {
		tail = ls[n-1].hash
	}
	broken := linkBreaks(ls, genesis)
	if len(broken) == 0 {
		return nil, tail
	}
	if order, ok := chainOrder(ls, genesis); ok {
		// Every link is intact, only the order changed: name just the moved records.
		for pos, i := range order {
			if pos != i {
				ps = append(ps, Problem{Reordered, ls[i].name,
					fmt.Sprintf("%sis %s %d in the manifest but its chain link puts it at %d", prefix, noun, i+1, pos+1)})
			}
		}
		return ps, ls[order[len(order)-1]].hash
	}
	for _, i := range broken {
		prev, after := genesis, "the start of the list"
		if i > 0 {
			prev, after = ls[i-1].hash, ls[i-1].name
		}
		if between != nil {
			if was, ok := between(prev, ls[i].prev); ok {
				ps = append(ps, Problem{ManifestTampered, was.Name, fmt.Sprintf(
					"%sremoved; it was sealed between %s and %s as %s", prefix, after, ls[i].name, status(was.Waived))})
				continue
			}
		}
		if i == 0 {
			ps = append(ps, Problem{ManifestTampered, ls[0].name, fmt.Sprintf(
				"%sfirst %s does not link to the genesis hash of version %s: the version was changed or %s before it were removed",
				prefix, noun, version, nouns)})
			continue
		}
		ps = append(ps, Problem{ManifestTampered, ls[i-1].name, fmt.Sprintf(
			"%schain broken after this %s: %s links to %s, but this %s's hash is %s (this %s was rewritten, or one after it removed)",
			prefix, noun, ls[i].name, ls[i].prev, noun, ls[i-1].hash, noun)})
	}
	return ps, tail
}

// linkBreaks lists the records whose prev hash is not the hash before them.
func linkBreaks(ls []link, genesis string) []int {
	var out []int
	prev := genesis
	for i, l := range ls {
		if l.prev != prev {
			out = append(out, i)
		}
		prev = l.hash
	}
	return out
}

// chainOrder follows prev links from genesis; ok when they thread every
// record exactly once, i.e. the records are intact but stored out of order.
func chainOrder(ls []link, genesis string) (order []int, ok bool) {
	next := make(map[string]int, len(ls))
	for i, l := range ls {
		if _, dup := next[l.prev]; dup {
			return nil, false
		}
		next[l.prev] = i
	}
	cur := genesis
	for range ls {
		i, found := next[cur]
		if !found {
			return nil, false
		}
		order = append(order, i)
		cur = ls[i].hash
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

// Completeness says how many of the required evidence files exist, against
// the whole list the runbook gives for the release.
type Completeness struct {
	Present  int               // required files on disk
	Expected int               // required files: Listed minus the waived ones
	Listed   int               // every file the list names, waived or not
	Missing  []string          // required files not on disk, in list order
	Waived   map[string]string // file name -> why it is not required
}

// String is a summary line followed by one indented line for the missing
// files and one per waiver reason, so waivers are audited, not just counted.
func (c Completeness) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d required evidence files present (of %d in the runbook list; %d waived)",
		c.Present, c.Expected, c.Listed, len(c.Waived))
	if len(c.Missing) > 0 {
		fmt.Fprintf(&b, "; %d missing\n  missing: %s", len(c.Missing), strings.Join(c.Missing, ", "))
	}
	byReason := make(map[string][]string)
	for n, why := range c.Waived {
		byReason[why] = append(byReason[why], n)
	}
	reasons := make([]string, 0, len(byReason))
	for why, names := range byReason {
		reasons = append(reasons, why)
		slices.SortFunc(names, naturalCompare)
	}
	// The largest groups first: they explain most of the gap to the list.
	slices.SortFunc(reasons, func(a, b string) int {
		if d := len(byReason[b]) - len(byReason[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, why := range reasons {
		fmt.Fprintf(&b, "\n  waived %d (%s): %s", len(byReason[why]), why, strings.Join(byReason[why], ", "))
	}
	return b.String()
}

// naturalCompare orders digit runs by value, so rollout_stage_5.txt sorts
// before rollout_stage_25.txt as in the runbook.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if d := len(na) - len(nb); d != 0 {
				return d
			}
			if d := strings.Compare(na, nb); d != 0 {
				return d
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// Check counts which required files are on disk in dir. The list and its
// waivers come from the manifest, which must verify on its own (a hand-edited
// list is an error wrapping ErrCorruptManifest); without a list it is the
// runbook's, for the manifest's version or, with no manifest, the dir's name.
func Check(dir string) (Completeness, error) {
	version := filepath.Base(dir)
	var list []expectation
	m, err := readManifest(dir)
	switch {
	case err == nil:
		if ps := chainProblems(m); len(ps) > 0 {
			return Completeness{}, fmt.Errorf("evidence: %s: %w, so its expected and waived lists cannot be trusted:\n%s\n"+
				"run `canarybot evidence verify` and restore the manifest from git", filepath.Join(dir, ManifestName),
				ErrCorruptManifest, Report{Problems: ps}.String())
		}
		version, list = m.Version, m.Expected
	case !errors.Is(err, ErrNoManifest):
		return Completeness{}, err
	}
	if len(list) == 0 {
		for _, n := range RunbookFiles(version, []int{1, 5, 25, 50, 100}) {
			list = append(list, expectation{Name: n})
		}
	}
	c := Completeness{Listed: len(list)}
	for _, x := range list {
		if x.Waived != "" {
			if c.Waived == nil {
				c.Waived = make(map[string]string)
			}
			c.Waived[x.Name] = x.Waived
			continue
		}
		c.Expected++
		if checkName(x.Name) != nil {
			c.Missing = append(c.Missing, x.Name)
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, x.Name))
		switch {
		case err == nil && fi.Mode().IsRegular():
			c.Present++
		case err == nil || errors.Is(err, os.ErrNotExist):
			c.Missing = append(c.Missing, x.Name)
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
