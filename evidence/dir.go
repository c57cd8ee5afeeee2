// Package evidence keeps a release's evidence files in <root>/<version>/ with a
// tamper-evident manifest.json (format 2).
//
// The manifest holds two hash chains and a head that seals both. Each file
// entry's hash is
//
//	sha256(prev_hash + "\n" + name + "\n" + sha256 + "\n")
//
// with the first entry's prev_hash being sha256("canarybot-evidence-v1\n" + version).
// Each item of the expected list (the runbook's files for this release, some
// waived with the reason their step is not configured) has the hash
//
//	sha256(prev_hash + "\n" + name + "\n" + "required" + "\n")          or
//	sha256(prev_hash + "\n" + name + "\n" + "waived: " + reason + "\n")
//
// with the first item's prev_hash being sha256("canarybot-evidence-v2 expected\n" + version);
// expected_head is the last item's hash (the genesis for an empty list), and
//
//	head = sha256("canarybot-evidence-v2\n" + last entry hash + "\n" + expected_head + "\n")
//
// with the entries' genesis standing in for the last entry hash when there are
// none. So the version, every file and every expected name and waiver reason
// reach the head: editing, deleting, adding or reordering files or entries, or
// waiving, un-waiving or dropping an expected file, breaks a chain, a file hash
// or the head and is reported by Verify. The chains are not keyed: a manifest
// rewritten from the tampered record onwards, head included, is only caught
// against an external anchor (the head committed to git).
package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// ManifestName is the manifest's file name inside a release's evidence directory.
const ManifestName = "manifest.json"

// manifestFormat is the manifest layout this package reads and writes. Format
// 1 (no "format" field) left the expected and waived lists outside the chain,
// so its completeness claims cannot be trusted and it is not read.
const manifestFormat = 2

// tmpPrefix starts the names of our temp files; Verify ignores them so a crash
// mid-write does not look like tampering.
const tmpPrefix = ".canarybot-tmp-"

var (
	// ErrNoManifest means the directory has no manifest.json.
	ErrNoManifest = errors.New("no evidence manifest")
	// ErrCorruptManifest means manifest.json exists but cannot be trusted to continue.
	ErrCorruptManifest = errors.New("evidence manifest is corrupt")
	// ErrBadName means an evidence file name is not a plain file name.
	ErrBadName = errors.New("bad evidence file name")
)

type manifest struct {
	Entries      []entry       `json:"entries"`
	Expected     []expectation `json:"expected"`
	ExpectedHead string        `json:"expected_head"`
	Format       int           `json:"format"`
	Head         string        `json:"head"`
	Version      string        `json:"version"`
}

type entry struct {
	Hash     string `json:"hash"`
	Name     string `json:"name"`
	PrevHash string `json:"prev_hash"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
}

// expectation is one file of the expected list; a non-empty Waived is the
// reason the file is not required.
type expectation struct {
	Hash     string `json:"hash"`
	Name     string `json:"name"`
	PrevHash string `json:"prev_hash"`
	Waived   string `json:"waived,omitempty"`
}

func newManifest(version string) *manifest {
	m := &manifest{Format: manifestFormat, Version: version, Entries: []entry{}, Expected: []expectation{}}
	m.rechainExpected()
	return m
}

func (m *manifest) clone() *manifest {
	c := *m
	c.Entries = slices.Clone(m.Entries)
	c.Expected = slices.Clone(m.Expected)
	return &c
}

func (m *manifest) index(name string) int {
	return slices.IndexFunc(m.Entries, func(e entry) bool { return e.Name == name })
}

// rechain recomputes the entries' links and hashes from entry i on, and the head.
func (m *manifest) rechain(from int) {
	prev := genesisHash(m.Version)
	if from > 0 {
		prev = m.Entries[from-1].Hash
	}
	for i := from; i < len(m.Entries); i++ {
		e := &m.Entries[i]
		e.PrevHash = prev
		e.Hash = entryHash(prev, e.Name, e.SHA256)
		prev = e.Hash
	}
	m.seal()
}

// rechainExpected recomputes the expected list's links, expected_head and the head.
func (m *manifest) rechainExpected() {
	prev := expectedGenesisHash(m.Version)
	for i := range m.Expected {
		x := &m.Expected[i]
		x.PrevHash = prev
		x.Hash = expectedHash(prev, x.Name, x.Waived)
		prev = x.Hash
	}
	m.ExpectedHead = prev
	m.seal()
}

func (m *manifest) seal() {
	tail := genesisHash(m.Version)
	if n := len(m.Entries); n > 0 {
		tail = m.Entries[n-1].Hash
	}
	m.Head = headHash(tail, m.ExpectedHead)
}

func genesisHash(version string) string {
	return sha256Hex([]byte("canarybot-evidence-v1\n" + version))
}

func entryHash(prev, name, fileSHA string) string {
	return sha256Hex([]byte(prev + "\n" + name + "\n" + fileSHA + "\n"))
}

func expectedGenesisHash(version string) string {
	return sha256Hex([]byte("canarybot-evidence-v2 expected\n" + version))
}

// expectedHash seals a name with its status. The reason is the last field, so
// a reason holding a newline still cannot make two items hash alike.
func expectedHash(prev, name, waived string) string {
	status := "required"
	if waived != "" {
		status = "waived: " + waived
	}
	return sha256Hex([]byte(prev + "\n" + name + "\n" + status + "\n"))
}

func headHash(entriesTail, expectedHead string) string {
	return sha256Hex([]byte("canarybot-evidence-v2\n" + entriesTail + "\n" + expectedHead + "\n"))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkName accepts only plain, visible file names so evidence cannot escape
// its directory or hide next to the manifest.
func checkName(name string) error {
	if why := badName(name); why != "" {
		return fmt.Errorf("%w %q: %s; use a plain file name such as preflight.txt", ErrBadName, name, why)
	}
	return nil
}

func badName(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, os.PathSeparator):
		return "it contains a path separator"
	case strings.Contains(name, ".."):
		return `it contains ".."`
	case strings.HasPrefix(name, "."):
		return "it is hidden (starts with a dot)"
	case name == ManifestName:
		return "manifest.json is reserved for the manifest"
	case strings.ContainsFunc(name, isControl):
		return "it contains a control character"
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Dir is one release's evidence directory. Safe for concurrent use within one
// process; two processes must not write the same directory at once.
type Dir struct {
	path string
	mu   sync.Mutex
	m    *manifest
}

// Open opens root/version, creating it and an empty manifest if needed. An
// existing manifest is loaded so a restarted process continues its chain; one
// that does not parse, is for another version, or whose chain is broken is an
// error wrapping ErrCorruptManifest.
func Open(root, version string) (*Dir, error) {
	// The version names a directory, so it obeys the file name rules.
	if why := badName(version); why != "" {
		return nil, fmt.Errorf("evidence: %w: version %q: %s; use a release tag such as v1.4.0", ErrBadName, version, why)
	}
	path := filepath.Join(root, version)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("evidence: create directory: %w", err)
	}
	m, err := readManifest(path)
	switch {
	case errors.Is(err, ErrNoManifest):
		m = newManifest(version)
		if err := writeManifest(path, m); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case m.Version != version:
		return nil, fmt.Errorf("evidence: %s: %w: it is for version %q, not %q; move it to the right directory",
			filepath.Join(path, ManifestName), ErrCorruptManifest, m.Version, version)
	default:
		if ps := chainProblems(m); len(ps) > 0 {
			return nil, fmt.Errorf("evidence: %s: %w: %s; run `canarybot evidence verify` and restore it from git before continuing",
				filepath.Join(path, ManifestName), ErrCorruptManifest, Report{Problems: ps}.String())
		}
	}
	return &Dir{path: path, m: m}, nil
}

// Path is the release's evidence directory, root/version.
func (d *Dir) Path() string { return d.path }

// Write stores data under name atomically and records it in the manifest.
// Rewriting the same bytes changes nothing; new bytes for an existing name
// keep its place in the chain and re-chain every later entry.
func (d *Dir) Write(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("evidence: write %s: %w", name, err)
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("evidence: write: %w", err)
	}
	sum := sha256Hex(data)
	file := filepath.Join(d.path, name)

	d.mu.Lock()
	defer d.mu.Unlock()
	i := d.m.index(name)
	if i >= 0 && d.m.Entries[i].SHA256 == sum {
		// Restore the file if it was lost or edited, but never touch the manifest.
		if onDisk, err := os.ReadFile(file); err == nil && sha256Hex(onDisk) == sum {
			return nil
		}
		return writeAtomic(d.path, name, data)
	}
	// File first: a crash before the manifest is updated leaves a file the
	// next identical Write records, rather than a manifest entry with no file.
	if err := writeAtomic(d.path, name, data); err != nil {
		return err
	}
	m := d.m.clone()
	e := entry{Name: name, SHA256: sum, Size: int64(len(data))}
	if i < 0 {
		i = len(m.Entries)
		m.Entries = append(m.Entries, e)
	} else {
		m.Entries[i] = e
	}
	m.rechain(i)
	if err := writeManifest(d.path, m); err != nil {
		return err
	}
	d.m = m
	return nil
}

// Expect records which files this release should produce and which of them
// are waived (file name -> why the step that makes it is not configured, one
// line). Both are sealed into the manifest's head, so a later hand edit of
// either is reported by Verify and refused by Open and Check. Every waived
// name must be in expected; expected keeps its order, without repeats.
func (d *Dir) Expect(expected []string, waived map[string]string) error {
	xs := make([]expectation, 0, len(expected))
	at := make(map[string]int, len(expected))
	for _, n := range expected {
		if err := checkName(n); err != nil {
			return fmt.Errorf("evidence: expected list: %w", err)
		}
		if _, dup := at[n]; !dup {
			at[n] = len(xs)
			xs = append(xs, expectation{Name: n})
		}
	}
	names := make([]string, 0, len(waived))
	for n := range waived {
		names = append(names, n)
	}
	slices.Sort(names) // the first bad waiver reported does not depend on map order
	for _, n := range names {
		why := waived[n]
		if err := checkName(n); err != nil {
			return fmt.Errorf("evidence: waived list: %w", err)
		}
		if strings.TrimSpace(why) == "" {
			return fmt.Errorf("evidence: waiver for %s has no reason; say why the step is not configured", n)
		}
		if strings.ContainsFunc(why, isControl) {
			return fmt.Errorf("evidence: waiver for %s: reason %q contains a control character; give a one-line reason", n, why)
		}
		i, ok := at[n]
		if !ok {
			return fmt.Errorf("evidence: waiver for %s: it is not in the expected list; add it to the list or drop the waiver", n)
		}
		xs[i].Waived = why
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.EqualFunc(d.m.Expected, xs, func(a, b expectation) bool { return a.Name == b.Name && a.Waived == b.Waived }) {
		return nil
	}
	m := d.m.clone()
	m.Expected = xs
	m.rechainExpected()
	if err := writeManifest(d.path, m); err != nil {
		return err
	}
	d.m = m
	return nil
}

func readManifest(dir string) (*manifest, error) {
	path := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("evidence: %s: %w", path, ErrNoManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: read manifest: %w", err)
	}
	// Read the format alone first: a format-1 manifest's expected list is a
	// list of strings and would otherwise fail with a puzzling type error.
	var probe struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("evidence: %s: %w: %v; restore it from git", path, ErrCorruptManifest, err)
	}
	switch {
	case probe.Format == 0:
		return nil, fmt.Errorf("evidence: %s: %w: it has no \"format\" field, so it is format 1, whose expected and waived lists "+
			"are not sealed and cannot be trusted; move the directory aside and rerun the release to rebuild its evidence in format %d",
			path, ErrCorruptManifest, manifestFormat)
	case probe.Format != manifestFormat:
		return nil, fmt.Errorf("evidence: %s: %w: it is format %d and this canarybot reads format %d; use the canarybot that wrote it",
			path, ErrCorruptManifest, probe.Format, manifestFormat)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("evidence: %s: %w: %v; restore it from git", path, ErrCorruptManifest, err)
	}
	if m.Version == "" || m.Head == "" {
		return nil, fmt.Errorf("evidence: %s: %w: version or head is missing; restore it from git", path, ErrCorruptManifest)
	}
	return &m, nil
}

func writeManifest(dir string, m *manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("evidence: encode manifest: %w", err)
	}
	return writeAtomic(dir, ManifestName, append(b, '\n'))
}

// writeAtomic replaces dir/name via a synced temp file and a rename, then
// syncs the directory so the rename itself survives a crash.
func writeAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("evidence: write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("evidence: write %s: %w", name, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	dh, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer dh.Close()
	return dh.Sync()
}
