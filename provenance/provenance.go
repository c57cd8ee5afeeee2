// Package provenance builds, signs and verifies the release's build
// provenance: an in-toto Statement v1 whose predicate is SLSA Provenance v1,
// wrapped in a DSSE envelope. The runbook's green-button ritual needs it to be
// produced by the tool and checkable by anyone holding the public key.
package provenance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// PayloadType is the DSSE payload type of an in-toto Statement.
	PayloadType = "application/vnd.in-toto+json"
	// PredicateType is SLSA Provenance v1.
	PredicateType = "https://slsa.dev/provenance/v1"
	// GitHubBuildType is the build type actions/attest-build-provenance uses,
	// so verifiers that know GitHub's provenance read ours the same way.
	GitHubBuildType = "https://actions.github.io/buildtypes/workflow/v1"
	// LocalBuildType marks a build from a local git checkout, outside CI.
	LocalBuildType = "https://github.com/canarybot/canarybot/buildtypes/local-git/v1"
	// LocalBuilderID names canarybot run by hand as the builder. It is a
	// claim by whoever held the signing key, nothing more.
	LocalBuilderID = "https://github.com/canarybot/canarybot/builders/local"
)

var (
	// ErrNoArtifacts means there was nothing to attest.
	ErrNoArtifacts = errors.New("no artifacts to attest")
	// ErrDuplicateSubject means two artifacts share a file name; verify
	// matches artifacts by base name, so they would be ambiguous.
	ErrDuplicateSubject = errors.New("two artifacts share a file name")
	// ErrNotGitRepo means local mode ran outside a git checkout.
	ErrNotGitRepo = errors.New("not a git checkout")
	// ErrGitHubEnv means GITHUB_ACTIONS=true but a variable the provenance
	// needs is missing.
	ErrGitHubEnv = errors.New("incomplete GitHub Actions environment")
)

// Subject is one attested artifact.
type Subject struct {
	Name   string // base name of the file
	SHA256 string // hex
}

// Options say what to attest and where the build facts come from.
type Options struct {
	Version   string   // release version, recorded as an external parameter
	Artifacts []string // file paths; subjects are named by base name
	// Getenv reads the environment (os.Getenv in production). GitHub
	// Actions mode applies when it returns "true" for GITHUB_ACTIONS.
	Getenv func(string) string
	// Dir is the git checkout for local mode; "" means the working directory.
	Dir string
	// Now stamps the build metadata; nil means time.Now.
	Now func() time.Time
}

// Statement builds the in-toto Statement for o and checks it and its
// predicate with the in-toto types' own validators.
func Statement(ctx context.Context, o Options) (*intoto.Statement, error) {
	if o.Version == "" {
		return nil, errors.New("provenance needs the release version, e.g. v1.4.0")
	}
	subjects, err := Subjects(o.Artifacts)
	if err != nil {
		return nil, err
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	var pred *slsa.Provenance
	if getenv("GITHUB_ACTIONS") == "true" {
		pred, err = fromGitHub(getenv, o.Version)
	} else {
		pred, err = fromGit(ctx, o.Dir, o.Version)
	}
	if err != nil {
		return nil, err
	}
	if pred.RunDetails.Metadata == nil {
		pred.RunDetails.Metadata = &slsa.BuildMetadata{}
	}
	pred.RunDetails.Metadata.FinishedOn = timestamppb.New(now().UTC())
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("SLSA provenance predicate is invalid: %w", err)
	}
	ps, err := toStruct(pred)
	if err != nil {
		return nil, err
	}
	st := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		PredicateType: PredicateType,
		Predicate:     ps,
	}
	for _, s := range subjects {
		st.Subject = append(st.Subject, &intoto.ResourceDescriptor{
			Name:   s.Name,
			Digest: map[string]string{"sha256": s.SHA256},
		})
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("in-toto statement is invalid: %w", err)
	}
	return st, nil
}

// Marshal encodes a Statement with protojson: the protobuf types carry the
// in-toto field names (_type, predicateType) only in their JSON mapping.
func Marshal(st *intoto.Statement) ([]byte, error) {
	b, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding the in-toto statement: %w", err)
	}
	return b, nil
}

// Predicate decodes the SLSA Provenance v1 predicate of st.
func Predicate(st *intoto.Statement) (*slsa.Provenance, error) {
	if st.GetPredicate() == nil {
		return nil, intoto.ErrPredicateRequired
	}
	b, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, err
	}
	var p slsa.Provenance
	if err := protojson.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("predicate is not SLSA Provenance v1: %w", err)
	}
	return &p, nil
}

// Subjects hashes each artifact. The result is sorted by name so the same
// artifacts always give the same statement.
func Subjects(paths []string) ([]Subject, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: pass the release artifacts, e.g. --artifact dist/canarybot-linux-amd64", ErrNoArtifacts)
	}
	seen := map[string]string{}
	out := make([]Subject, 0, len(paths))
	for _, p := range paths {
		name := filepath.Base(p)
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("%w: %s and %s are both %q; rename one", ErrDuplicateSubject, prev, p, name)
		}
		seen[name] = p
		sum, err := FileSHA256(p)
		if err != nil {
			return nil, err
		}
		out = append(out, Subject{Name: name, SHA256: sum})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// FileSHA256 is the hex sha256 of a regular file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("artifact %s is not a regular file; name each built file, not a directory", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("artifact %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fromGitHub describes the build the way actions/attest-build-provenance
// does, from the runner's default environment variables.
func fromGitHub(getenv func(string) string, version string) (*slsa.Provenance, error) {
	required := []string{"GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_REF", "GITHUB_SHA", "GITHUB_WORKFLOW_REF", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"}
	var missing []string
	for _, k := range required {
		if getenv(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: GITHUB_ACTIONS=true but %s unset; run inside a workflow job or unset GITHUB_ACTIONS to attest from the local git checkout", ErrGitHubEnv, strings.Join(missing, ", "))
	}
	server := strings.TrimSuffix(getenv("GITHUB_SERVER_URL"), "/")
	repo := getenv("GITHUB_REPOSITORY")
	workflowRef := getenv("GITHUB_WORKFLOW_REF") // owner/repo/.github/workflows/x.yml@refs/...
	wfPath, wfRef, ok := strings.Cut(strings.TrimPrefix(workflowRef, repo+"/"), "@")
	if !ok {
		return nil, fmt.Errorf("%w: GITHUB_WORKFLOW_REF %q is not <owner>/<repo>/<path>@<ref>", ErrGitHubEnv, workflowRef)
	}
	internal := map[string]any{}
	for k, env := range map[string]string{
		"event_name":          "GITHUB_EVENT_NAME",
		"repository_id":       "GITHUB_REPOSITORY_ID",
		"repository_owner_id": "GITHUB_REPOSITORY_OWNER_ID",
		"runner_environment":  "RUNNER_ENVIRONMENT",
	} {
		if v := getenv(env); v != "" {
			internal[k] = v
		}
	}
	ext, err := structpb.NewStruct(map[string]any{
		"workflow": map[string]any{
			"ref":        wfRef,
			"repository": server + "/" + repo,
			"path":       wfPath,
		},
		"version": version,
	})
	if err != nil {
		return nil, err
	}
	bd := &slsa.BuildDefinition{
		BuildType:          GitHubBuildType,
		ExternalParameters: ext,
		ResolvedDependencies: []*intoto.ResourceDescriptor{{
			Uri:    "git+" + server + "/" + repo + "@" + getenv("GITHUB_REF"),
			Digest: map[string]string{"gitCommit": getenv("GITHUB_SHA")},
		}},
	}
	if len(internal) > 0 {
		in, err := structpb.NewStruct(map[string]any{"github": internal})
		if err != nil {
			return nil, err
		}
		bd.InternalParameters = in
	}
	return &slsa.Provenance{
		BuildDefinition: bd,
		RunDetails: &slsa.RunDetails{
			Builder: &slsa.Builder{Id: server + "/" + workflowRef},
			Metadata: &slsa.BuildMetadata{
				InvocationId: fmt.Sprintf("%s/%s/actions/runs/%s/attempts/%s", server, repo, getenv("GITHUB_RUN_ID"), getenv("GITHUB_RUN_ATTEMPT")),
			},
		},
	}, nil
}

// toStruct carries a protobuf message into the Statement's predicate field,
// which is an untyped Struct.
func toStruct(p *slsa.Provenance) (*structpb.Struct, error) {
	b, err := protojson.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding the SLSA predicate: %w", err)
	}
	var s structpb.Struct
	if err := protojson.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("encoding the SLSA predicate: %w", err)
	}
	return &s, nil
}
