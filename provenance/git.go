package provenance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// fromGit describes a build from the local checkout in dir. Without CI
// there is no trusted builder: the signer vouches for commit and tree state.
func fromGit(ctx context.Context, dir, version string) (*slsa.Provenance, error) {
	where := dir
	if where == "" {
		where = "the working directory"
	}
	top, err := git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("%w: %s (%v); run canarybot provenance inside the release's checkout, or in a GitHub Actions job", ErrNotGitRepo, where, err)
	}
	head, err := git(ctx, dir, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return nil, fmt.Errorf("git checkout %s has no commit to attest (%v); commit the release first", top, err)
	}
	describe, err := git(ctx, dir, "describe", "--tags", "--always")
	if err != nil {
		return nil, fmt.Errorf("git describe in %s: %w", top, err)
	}
	status, err := git(ctx, dir, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return nil, fmt.Errorf("git status in %s: %w", top, err)
	}
	// A missing origin is normal for a fresh clone-less repo; the source is
	// then named by commit alone.
	remote, _ := git(ctx, dir, "remote", "get-url", "origin")
	remote = withoutCredentials(remote)

	source := map[string]any{"commit": head, "describe": describe}
	dep := &intoto.ResourceDescriptor{Digest: map[string]string{"gitCommit": head}}
	if remote != "" {
		source["repository"] = remote
		dep.Uri = "git+" + remote + "@" + head
	} else {
		dep.Name = "local checkout " + top
	}
	ext, err := structpb.NewStruct(map[string]any{"source": source, "version": version})
	if err != nil {
		return nil, err
	}
	internal, err := structpb.NewStruct(map[string]any{
		"uncommitted_changes": status != "",
	})
	if err != nil {
		return nil, err
	}
	return &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{
			BuildType:            LocalBuildType,
			ExternalParameters:   ext,
			InternalParameters:   internal,
			ResolvedDependencies: []*intoto.ResourceDescriptor{dep},
		},
		RunDetails: &slsa.RunDetails{
			Builder: &slsa.Builder{Id: LocalBuilderID},
		},
	}, nil
}

// git runs git in dir and returns its trimmed standard output; on failure
// the error carries git's own message.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(errOut.String()); msg != "" {
			return "", errors.New(msg)
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out.String()), nil
}

// withoutCredentials drops user:token@ from a remote URL: CI clones often
// embed a token there, and the provenance is published.
func withoutCredentials(remote string) string {
	u, err := url.Parse(remote)
	if err != nil || u.User == nil {
		return remote
	}
	u.User = nil
	return u.String()
}
