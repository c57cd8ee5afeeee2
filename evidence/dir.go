// Package evidence keeps a release's evidence files in <root>/<version>/ with a
// tamper-evident manifest.json.
//
// The manifest is a hash chain: each entry records a file's sha256 and the
// hash of the entry before it, and its own hash is
//
//	sha256(prev_hash + "\n" + name + "\n" + sha256 + "\n")
//
// with the first entry's prev_hash being sha256("canarybot-evidence-v1\n" + version).
// Editing, deleting, adding or reordering files or entries breaks the chain or a
// file hash and is reported by Verify. A chain rewritten from the tampered entry
// onwards is only caught against an external anchor (the head committed to git).
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
	Entries  []entry           `json:"entries"`
	Expected []string          `json:"expected,omitempty"`
	Head     string            `json:"head"`
	Version  string            `json:"version"`
	Waived   map[string]string `json:"waived,omitempty"`
}

type entry struct {
	Hash     string `json:"hash"`
	Name     string `json:"name"`
	PrevHash string `json:"prev_hash"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
}

func (m *manifest) clone() *manifest {
	c := *m
	c.Entries = slices.Clone(m.Entries)
	c.Expected = slices.Clone(m.Expected)
	if m.Waived != nil {
		c.Waived = make(map[string]string, len(m.Waived))
		for k, v := range m.Waived {
			c.Waived[k] = v
		}
	}
	return &c
}

func (m *manifest) index(name string) int {
	return slices.IndexFunc(m.Entries, func(e entry) bool { return e.Name == name })
}

// rechain recomputes the links and hashes from entry i on, and the head.
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
	m.Head = prev
}

func genesisHash(version string) string {
	return sha256Hex([]byte("canarybot-evidence-v1\n" + version))
}

func entryHash(prev, name, fileSHA string) string {
	return sha256Hex([]byte(prev + "\n" + name + "\n" + fileSHA + "\n"))
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
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "it contains a control character"
	}
	return ""
}

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
		m = &manifest{Version: version, Entries: []entry{}}
		m.rechain(0)
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

// Expect records which files this release should produce and which are waived
// (file name -> why the step that makes it is not configured). Completeness
// reporting uses them; the file hashes do not depend on them.
func (d *Dir) Expect(expected []string, waived map[string]string) error {
	var exp []string
	for _, n := range expected {
		if err := checkName(n); err != nil {
			return fmt.Errorf("evidence: expected list: %w", err)
		}
		if !slices.Contains(exp, n) {
			exp = append(exp, n)
		}
	}
	var w map[string]string
	for n, why := range waived {
		if err := checkName(n); err != nil {
			return fmt.Errorf("evidence: waived list: %w", err)
		}
		if strings.TrimSpace(why) == "" {
			return fmt.Errorf("evidence: waiver for %s has no reason; say why the step is not configured", n)
		}
		if w == nil {
			w = make(map[string]string, len(waived))
		}
		w[n] = why
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Equal(d.m.Expected, exp) && mapsEqual(d.m.Waived, w) {
		return nil
	}
	m := d.m.clone()
	m.Expected, m.Waived = exp, w
	if err := writeManifest(d.path, m); err != nil {
		return err
	}
	d.m = m
	return nil
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
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
