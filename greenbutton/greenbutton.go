// Package greenbutton is the runbook's T-2 green-button ritual: seal the
// release tag, generate the SBOMs, sign the build provenance, check license
// drift against the previous release, scan the SBOM for known
// vulnerabilities, count the release artifacts, and write the signed
// go/no-go record that names each of those results.
//
// Every gate runs even when an earlier one failed, so the record shows the
// whole picture; the decision is GO only when every gate passed. A gate
// that could not check anything fails: nothing passes unchecked. The one
// exception is the vulnerability scan, which is optional: without a
// database it is SKIPPED, which is never a pass, but does not make the
// decision NO-GO; the record says it was skipped.
package greenbutton

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/canarybot/canarybot/preflight"
	"github.com/canarybot/canarybot/provenance"
	"github.com/canarybot/canarybot/rollout"
	"github.com/canarybot/canarybot/sbom"
	"github.com/canarybot/canarybot/sbom/vuln"
)

// Step names a gate of the ritual, in the order they run.
type Step string

const (
	StepReleaseTag Step = "release_tag"
	StepSBOM       Step = "sbom"
	StepProvenance Step = "provenance"
	StepDrift      Step = "license_drift"
	StepVuln       Step = "vulnerabilities"
	StepArtifacts  Step = "artifact_count"
)

// Steps are the gates in the order they run.
func Steps() []Step {
	return []Step{StepReleaseTag, StepSBOM, StepProvenance, StepDrift, StepVuln, StepArtifacts}
}

// optional reports whether a gate may be skipped without making the
// decision NO-GO. Only the vulnerability scan is: it needs a database that
// not every release machine has, and the record still says it was skipped.
func (s Step) optional() bool { return s == StepVuln }

// counts reports whether a result counts against the decision: anything
// but a pass, except an optional gate's skip.
func (r StepResult) counts() bool {
	return r.Status != rollout.GatePassed && !(r.Status == rollout.GateSkipped && r.Step.optional())
}

// Evidence file names the ritual writes besides the SBOM, provenance and
// record files named by their packages.
const (
	ReleaseTagFile = "release_tag.txt"
	ArtifactsFile  = "artifact_count.txt"
)

// DriftName is the license drift report's evidence file for version.
func DriftName(version string) string { return "license_drift_" + version + ".txt" }

var (
	// ErrNoEvidence: the ritual has nowhere to write its evidence.
	ErrNoEvidence = errors.New("green button: no evidence store")
	// ErrBadArtifactName: an expected artifact name leaves the artifacts
	// directory (absolute, or with ..).
	ErrBadArtifactName = errors.New("bad expected artifact name")
)

// StepResult is one gate's outcome.
type StepResult struct {
	Step   Step
	Status rollout.GateStatus
	Detail string
	// Files are the evidence files the gate wrote.
	Files []string
	Took  time.Duration
}

// Line is the result as a line of output.
func (r StepResult) Line() string {
	return fmt.Sprintf("%-15s %-7s %6s  %s", r.Step, r.Status, r.Took.Round(100*time.Millisecond), r.Detail)
}

// GreenButton is the ritual's configuration. The zero value of every field
// but Expected and Evidence has a working default.
type GreenButton struct {
	// Source is the release's git checkout, also the directory the SBOM is
	// made of (the Go module root); "" means the working directory.
	Source string
	// Binary, if set, is a built executable whose packages the SBOM adds.
	Binary string
	// ArtifactsDir holds the release artifacts; "" means Source/dist.
	ArtifactsDir string
	// Expected are the artifact file names (relative to ArtifactsDir) the
	// release must have; they are the provenance's subjects. Required: a
	// count against an empty list would pass having checked nothing.
	Expected []string
	// Exclude adds SBOM exclusions (see sbom.DefaultExcludes); name the
	// evidence root here when it lies inside Source under another name.
	Exclude []string
	// ModCacheDir is the Go module cache for licenses; "" as in sbom.
	ModCacheDir string
	// PreviousSBOM is the previous release's SBOM. "" compares with an
	// empty baseline: every GPL or AGPL license fails unless excepted.
	PreviousSBOM string
	Exceptions   []sbom.Exception
	LGPL         sbom.LGPLPolicy
	// VulnDB is a grype vulnerability database directory (see
	// vuln.Options.DBPath). "" skips the vulnerability scan: the gate is
	// SKIPPED, not passed, and the record says so. A database that is
	// missing, unusable or too old fails the gate.
	VulnDB string
	// VulnFailOn fails the scan on a finding at or above it; vuln.Unknown
	// reports the findings without failing on any.
	VulnFailOn vuln.Severity
	// Key signs the provenance and the record; nil generates an ephemeral
	// key, and both say UNATTESTED. RequireKey makes that a failed gate.
	Key        *provenance.Key
	RequireKey bool
	// Evidence receives every file; required.
	Evidence rollout.Evidence
	// Who pressed the button, for the record; "" means the release's IC
	// when run as the engine's gate.
	Who string
	// Getenv reads GitHub Actions' variables for the provenance; nil means
	// os.Getenv.
	Getenv func(string) string
	// Now stamps the record; nil means time.Now.
	Now         func() time.Time
	ToolVersion string
	// OnStart and OnDone, if set, are told of each gate as it starts and
	// ends, for progress output.
	OnStart func(step Step, i, n int)
	OnDone  func(StepResult)
}

var _ rollout.Gate = (*GreenButton)(nil)

// Outcome is a whole ritual's result.
type Outcome struct {
	Version string
	Steps   []StepResult
	// Record is the go/no-go record's text, as signed.
	Record    []byte
	KeyID     string
	Ephemeral bool
}

// Passed is true when every gate passed, bar an optional gate that was
// skipped (see Skipped), and at least one did.
func (o Outcome) Passed() bool {
	passed := false
	for _, s := range o.Steps {
		if s.counts() {
			return false
		}
		passed = passed || s.Status == rollout.GatePassed
	}
	return passed
}

// Decision is GO or NO-GO.
func (o Outcome) Decision() string {
	if o.Passed() {
		return "GO"
	}
	return "NO-GO"
}

// Failures names each gate that makes the decision NO-GO, with why.
func (o Outcome) Failures() []string {
	var out []string
	for _, s := range o.Steps {
		if s.counts() {
			out = append(out, fmt.Sprintf("%s %s: %s", s.Step, s.Status, s.Detail))
		}
	}
	return out
}

// Skipped names each optional gate that checked nothing, with why. They do
// not make the decision NO-GO, but nobody should read the GO as covering
// them.
func (o Outcome) Skipped() []string {
	var out []string
	for _, s := range o.Steps {
		if s.Status == rollout.GateSkipped && !s.counts() {
			out = append(out, fmt.Sprintf("%s %s: %s", s.Step, s.Status, s.Detail))
		}
	}
	return out
}

// Summary is "N/M gates passed", and which were skipped: a skipped gate
// stays in M, so the count never reads as complete when it is not.
func (o Outcome) Summary() string {
	n := 0
	var skipped []string
	for _, s := range o.Steps {
		switch s.Status {
		case rollout.GatePassed:
			n++
		case rollout.GateSkipped:
			skipped = append(skipped, string(s.Step))
		}
	}
	sum := fmt.Sprintf("%d/%d gates passed", n, len(o.Steps))
	if len(skipped) > 0 {
		sum += fmt.Sprintf(", %d skipped (%s)", len(skipped), strings.Join(skipped, ", "))
	}
	return sum
}

// Produces lists the evidence files the ritual writes for version; the
// vulnerability report only when a database is configured.
func (g *GreenButton) Produces(version string) []string {
	out := []string{
		ReleaseTagFile,
		sbom.SPDXName(version), sbom.CycloneDXName(version),
		provenance.EnvelopeName(version), provenance.PublicKeyName(version),
		DriftName(version),
	}
	if g.VulnDB != "" {
		out = append(out, vuln.EvidenceName(version))
	}
	return append(out,
		ArtifactsFile,
		provenance.RecordName(version), provenance.RecordSignatureName(version),
	)
}

// Run is the ritual as the engine's T-2 gate: GO is GatePassed, NO-GO is
// GateFailed naming each failed gate. Running it again redoes the ritual
// and rewrites the same files. The error is for a ritual that could not
// record its outcome at all.
func (g *GreenButton) Run(ctx context.Context, r *rollout.Release) (rollout.GateResult, error) {
	gb := *g
	if gb.Who == "" {
		gb.Who = r.IC
	}
	out, err := gb.Ritual(ctx, r.Version)
	if err != nil {
		return rollout.GateResult{}, err
	}
	signed := fmt.Sprintf("%s signed by key %s", provenance.RecordName(r.Version), out.KeyID)
	if out.Ephemeral {
		signed += " (UNATTESTED: ephemeral key)"
	}
	if out.Passed() {
		return rollout.GateResult{Status: rollout.GatePassed, Detail: fmt.Sprintf("GO: %s; %s", out.Summary(), signed)}, nil
	}
	return rollout.GateResult{
		Status: rollout.GateFailed,
		Detail: fmt.Sprintf("NO-GO: %s: %s; %s", out.Summary(), strings.Join(out.Failures(), "; "), signed),
	}, nil
}

// Ritual runs every gate for version, then writes and signs the go/no-go
// record. Failed gates are in the Outcome; the error is for evidence that
// could not be written or a record that could not be signed.
func (g *GreenButton) Ritual(ctx context.Context, version string) (Outcome, error) {
	out := Outcome{Version: version}
	if g.Evidence == nil {
		return out, fmt.Errorf("%w: give it the release's evidence directory", ErrNoEvidence)
	}
	if version == "" {
		return out, errors.New("green button: no release version, e.g. v1.4.0")
	}
	for _, name := range g.Expected {
		if !filepath.IsLocal(name) {
			return out, fmt.Errorf("%w: %q; name a file inside the artifacts directory, e.g. canarybot-linux-amd64 or linux/canarybot", ErrBadArtifactName, name)
		}
	}
	r := &ritual{g: g, version: version, ev: &recorder{ev: g.Evidence}}
	r.key = g.Key
	if r.key == nil {
		k, err := provenance.GenerateEphemeral()
		if err != nil {
			return out, err
		}
		r.key = k
	}
	out.KeyID, out.Ephemeral = r.key.KeyID(), r.key.Ephemeral()

	gates := []struct {
		step Step
		run  func(context.Context) (rollout.GateStatus, string, error)
	}{
		{StepReleaseTag, r.releaseTag},
		{StepSBOM, r.sbom},
		{StepProvenance, r.provenance},
		{StepDrift, r.drift},
		{StepVuln, r.vulnerabilities},
		{StepArtifacts, r.artifacts},
	}
	for i, gate := range gates {
		if g.OnStart != nil {
			g.OnStart(gate.step, i+1, len(gates))
		}
		before := len(r.ev.written())
		t0 := time.Now()
		status, detail, err := gate.run(ctx)
		if err != nil {
			return out, fmt.Errorf("green button %s: %w", gate.step, err)
		}
		res := StepResult{Step: gate.step, Status: status, Detail: oneLine(detail), Took: time.Since(t0)}
		for _, f := range r.ev.written()[before:] {
			res.Files = append(res.Files, f.name)
		}
		out.Steps = append(out.Steps, res)
		if g.OnDone != nil {
			g.OnDone(res)
		}
	}

	// The record names the public key file, so it is there even when the
	// provenance gate failed before writing it.
	pub, err := r.key.PublicPEM()
	if err != nil {
		return out, err
	}
	if err := r.ev.Write(ctx, provenance.PublicKeyName(version), pub); err != nil {
		return out, err
	}
	out.Record = r.record(out)
	sig, err := provenance.SignRecord(ctx, out.Record, r.key)
	if err != nil {
		return out, err
	}
	if err := r.ev.Write(ctx, provenance.RecordName(version), out.Record); err != nil {
		return out, err
	}
	if err := r.ev.Write(ctx, provenance.RecordSignatureName(version), sig); err != nil {
		return out, err
	}
	return out, nil
}

// ritual is one run's state: the key, the SBOM made for the drift gate,
// and what was written.
type ritual struct {
	g       *GreenButton
	version string
	key     *provenance.Key
	ev      *recorder
	spdx    []byte // the SBOM gate's SPDX output; nil when it failed
}

func (r *ritual) source() string {
	if r.g.Source == "" {
		return "."
	}
	return r.g.Source
}

func (r *ritual) getenv(k string) string {
	if r.g.Getenv == nil {
		return os.Getenv(k)
	}
	return r.g.Getenv(k)
}

// releaseTag reuses the preflight's git check: the tag exists and the
// checkout is at it; release_tag.txt is git describe's answer.
func (r *ritual) releaseTag(ctx context.Context) (rollout.GateStatus, string, error) {
	check := preflight.Check{Name: string(StepReleaseTag), Kind: preflight.KindGit, Dir: r.source(), Evidence: ReleaseTagFile}
	rep, err := preflight.Run(ctx, []preflight.Check{check}, preflight.Options{Version: r.version, Evidence: r.ev})
	if err != nil {
		return "", "", err
	}
	res := rep.Results[0]
	if res.Status != preflight.Passed {
		return rollout.GateFailed, res.Detail, nil
	}
	return rollout.GatePassed, res.Detail, nil
}

func (r *ritual) sbom(ctx context.Context) (rollout.GateStatus, string, error) {
	res, err := sbom.Generate(ctx, sbom.GenerateOptions{
		Dir:         r.source(),
		Binary:      r.g.Binary,
		Exclude:     r.g.Exclude,
		ModCacheDir: r.g.ModCacheDir,
		Getenv:      r.g.Getenv,
		Name:        filepath.Base(absOr(r.source())),
		Version:     r.version,
		ToolVersion: r.g.ToolVersion,
	})
	if err != nil {
		// No SBOM is written: a file without licenses would only mislead.
		return rollout.GateFailed, err.Error(), nil
	}
	if err := r.ev.Write(ctx, sbom.SPDXName(r.version), res.SPDX); err != nil {
		return "", "", err
	}
	if err := r.ev.Write(ctx, sbom.CycloneDXName(r.version), res.CycloneDX); err != nil {
		return "", "", err
	}
	r.spdx = res.SPDX
	return rollout.GatePassed, fmt.Sprintf("%s; %s and %s", res.Coverage(), sbom.SPDXName(r.version), sbom.CycloneDXName(r.version)), nil
}

func (r *ritual) provenance(ctx context.Context) (rollout.GateStatus, string, error) {
	if r.key.Ephemeral() && r.g.RequireKey {
		return rollout.GateFailed, fmt.Sprintf("no signing key: pass --key or set $%s; an ephemeral key would leave the release unattested", provenance.KeyEnv), nil
	}
	present, _ := r.presentArtifacts()
	if len(present) == 0 {
		return rollout.GateFailed, fmt.Sprintf("nothing to attest: none of the %d expected artifacts is in %s", len(r.g.Expected), r.artifactsDir()), nil
	}
	res, err := provenance.Generate(ctx, provenance.Options{
		Version: r.version, Artifacts: present, Getenv: r.getenv, Dir: r.source(), Now: r.g.Now,
	}, r.key)
	if err != nil {
		return rollout.GateFailed, err.Error(), nil
	}
	if err := r.ev.Write(ctx, provenance.EnvelopeName(r.version), res.Envelope); err != nil {
		return "", "", err
	}
	if err := r.ev.Write(ctx, provenance.PublicKeyName(r.version), res.PublicPEM); err != nil {
		return "", "", err
	}
	detail := fmt.Sprintf("%d artifacts attested (%s), builder %s, signed by key %s", len(res.Subjects), res.BuildType, res.BuilderID, res.KeyID)
	if res.Ephemeral {
		detail += "; UNATTESTED: ephemeral key generated for this run"
	}
	return rollout.GatePassed, detail, nil
}

func (r *ritual) drift(ctx context.Context) (rollout.GateStatus, string, error) {
	if r.spdx == nil {
		return rollout.GateFailed, "no SBOM to check: the sbom gate failed", nil
	}
	cur, err := sbom.Parse(sbom.SPDXName(r.version), r.spdx)
	if err != nil {
		return rollout.GateFailed, err.Error(), nil
	}
	var prev *sbom.SBOM
	against := "no previous SBOM: every GPL/AGPL license counts as new"
	if r.g.PreviousSBOM != "" {
		if prev, err = sbom.Read(r.g.PreviousSBOM); err != nil {
			return rollout.GateFailed, fmt.Sprintf("previous SBOM: %v", err), nil
		}
		against = "against " + r.g.PreviousSBOM
	}
	rep := sbom.Drift(prev, cur, sbom.Options{LGPL: r.g.LGPL, Exceptions: r.g.Exceptions})
	if err := r.ev.Write(ctx, DriftName(r.version), []byte(rep.Text())); err != nil {
		return "", "", err
	}
	status := rollout.GatePassed
	if rep.Failed {
		status = rollout.GateFailed
	}
	return status, fmt.Sprintf("%s (%s); %s", rep.Verdict(), against, DriftName(r.version)), nil
}

// vulnerabilities scans the SBOM gate's SPDX document, the same bytes the
// evidence holds, so the report is about the SBOM that ships.
func (r *ritual) vulnerabilities(ctx context.Context) (rollout.GateStatus, string, error) {
	if r.g.VulnDB == "" {
		return rollout.GateSkipped, "no vulnerability database given (--vuln-db DIR or green_button.vuln_db): the release was NOT scanned for known vulnerabilities", nil
	}
	if r.spdx == nil {
		return rollout.GateFailed, "no SBOM to scan: the sbom gate failed", nil
	}
	rep, err := vuln.Check(ctx, r.ev, r.version, r.spdx, vuln.Options{DBPath: r.g.VulnDB, FailOn: r.g.VulnFailOn})
	if err != nil {
		if rep != nil {
			// The scan ran but its report could not be written: the
			// evidence is broken, which no gate result can stand for.
			return "", "", err
		}
		return rollout.GateFailed, err.Error(), nil
	}
	status := rollout.GatePassed
	if rep.Failed {
		status = rollout.GateFailed
	}
	return status, fmt.Sprintf("%s (database built %s); %s", rep.Verdict(), rep.DB.Built.UTC().Format(time.RFC3339), vuln.EvidenceName(r.version)), nil
}

func (r *ritual) artifacts(ctx context.Context) (rollout.GateStatus, string, error) {
	dir := r.artifactsDir()
	if len(r.g.Expected) == 0 {
		return rollout.GateFailed, "no expected artifact list: name the release's files (--expect NAME or --expected FILE)", nil
	}
	present, lines := r.presentArtifacts()
	summary := fmt.Sprintf("%d/%d", len(present), len(r.g.Expected))
	var b strings.Builder
	fmt.Fprintf(&b, "artifact completeness: %s expected artifacts in %s\n", summary, dir)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString(summary + "\n")
	if err := r.ev.Write(ctx, ArtifactsFile, []byte(b.String())); err != nil {
		return "", "", err
	}
	if len(present) < len(r.g.Expected) {
		var missing []string
		for _, l := range lines {
			if name, ok := strings.CutPrefix(l, "MISSING  "); ok {
				missing = append(missing, name)
			}
		}
		return rollout.GateFailed, fmt.Sprintf("%s expected artifacts in %s; missing %s", summary, dir, strings.Join(missing, ", ")), nil
	}
	return rollout.GatePassed, fmt.Sprintf("%s expected artifacts in %s", summary, dir), nil
}

func (r *ritual) artifactsDir() string {
	if r.g.ArtifactsDir != "" {
		return r.g.ArtifactsDir
	}
	return filepath.Join(r.source(), "dist")
}

// presentArtifacts are the expected artifacts that are regular files, and
// a line per expected artifact saying what was found.
func (r *ritual) presentArtifacts() (present, lines []string) {
	for _, name := range r.g.Expected {
		p := filepath.Join(r.artifactsDir(), name)
		sum, err := provenance.FileSHA256(p)
		if err != nil {
			lines = append(lines, "MISSING  "+name)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			lines = append(lines, "MISSING  "+name)
			continue
		}
		present = append(present, p)
		lines = append(lines, fmt.Sprintf("present  %s  %d bytes  sha256:%s", name, fi.Size(), sum))
	}
	return present, lines
}

// record is the go/no-go record: decision, who, when, the key, each gate's
// result and the sha256 of every evidence file the ritual wrote, so the
// signature over the record covers them too.
func (r *ritual) record(out Outcome) []byte {
	now := time.Now
	if r.g.Now != nil {
		now = r.g.Now
	}
	who := r.g.Who
	if who == "" {
		who = "unknown (no --as, no IC)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "go/no-go record for %s\n", r.version)
	fmt.Fprintf(&b, "decision: %s (%s)\n", out.Decision(), out.Summary())
	fmt.Fprintf(&b, "by:       %s\n", who)
	fmt.Fprintf(&b, "at:       %s\n", now().UTC().Format(time.RFC3339))
	if r.key.Ephemeral() {
		fmt.Fprintf(&b, "key:      %s — UNATTESTED: ephemeral, generated for this run; anyone could have signed this\n", r.key)
	} else {
		fmt.Fprintf(&b, "key:      %s\n", r.key)
	}
	b.WriteString("\ngates:\n")
	for _, s := range out.Steps {
		fmt.Fprintf(&b, "  %-15s %-7s %s\n", s.Step, s.Status, s.Detail)
	}
	b.WriteString("\nevidence (sha256):\n")
	for _, f := range r.ev.written() {
		fmt.Fprintf(&b, "  %-40s %s\n", f.name, f.sha256)
	}
	fmt.Fprintf(&b, "\nsignature: %s, a DSSE envelope (payload type %s) over this file's exact bytes\n",
		provenance.RecordSignatureName(r.version), provenance.RecordPayloadType)
	fmt.Fprintf(&b, "verify:    canarybot verify %s --key <trusted public key> --artifact %s\n",
		provenance.RecordSignatureName(r.version), provenance.RecordName(r.version))
	return []byte(b.String())
}

// recorder passes writes to the evidence store and remembers each file's
// last digest, in first-written order, for the record.
type recorder struct {
	ev    rollout.Evidence
	mu    sync.Mutex
	files []writtenFile
}

type writtenFile struct{ name, sha256 string }

func (w *recorder) Write(ctx context.Context, name string, data []byte) error {
	if err := w.ev.Write(ctx, name, data); err != nil {
		return fmt.Errorf("writing evidence %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.files {
		if w.files[i].name == name {
			w.files[i].sha256 = hex.EncodeToString(sum[:])
			return nil
		}
	}
	w.files = append(w.files, writtenFile{name: name, sha256: hex.EncodeToString(sum[:])})
	return nil
}

func (w *recorder) written() []writtenFile {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]writtenFile(nil), w.files...)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func absOr(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
