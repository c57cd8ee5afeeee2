package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// crdResource is apiextensions.k8s.io/v1's CustomResourceDefinition,
// reached through the dynamic client: the apiextensions clientset is not
// among the module's dependencies, and the tests need only create and read
// the Established condition.
var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crdEstablishTimeout bounds the wait for the API server to serve a new
// CRD; it takes well under a second here, a few seconds for the largest
// Gateway API schemas on a busy machine.
const crdEstablishTimeout = 60 * time.Second

// ModuleDir is the directory of a Go module the main module requires, as
// `go list -m` reports it, so that tests install a dependency's own
// manifests (its CRDs) rather than a copy that drifts from its Go types.
func ModuleDir(ctx context.Context, module string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("finding module %s: the go command is not on PATH: %w", module, err)
	}
	out, err := exec.CommandContext(ctx, goBin, "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go list -m %s: %w: %s (run `go mod download`)", module, err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("module %s is not downloaded: run `go mod download`", module)
	}
	return dir, nil
}

// LoadCRDs reads the CustomResourceDefinitions in YAML files. Other
// documents beside them (Gateway API ships a ValidatingAdmissionPolicy in
// the same folder) are left out: they are not needed to serve the types.
func LoadCRDs(paths ...string) ([]*unstructured.Unstructured, error) {
	var crds []*unstructured.Unstructured
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("CRDs: %w", err)
		}
		docs, err := readYAMLDocs(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("CRDs in %s: %w", p, err)
		}
		for _, d := range docs {
			if d.GetKind() == "CustomResourceDefinition" {
				crds = append(crds, d)
			}
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinition in %s", strings.Join(paths, ", "))
	}
	return crds, nil
}

func readYAMLDocs(r io.Reader) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(doc)) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, err
		}
		if len(u.Object) > 0 {
			docs = append(docs, u)
		}
	}
}

// InstallCRDs creates the CRDs on the server cfg reaches (as an identity
// allowed to) and waits until every one is Established, i.e. served. A CRD
// that already exists is left as it is, so that the tests of a package
// sharing one server may each call it.
func InstallCRDs(ctx context.Context, cfg *rest.Config, crds ...*unstructured.Unstructured) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("CRDs: dynamic client: %w", err)
	}
	res := client.Resource(crdResource)
	for _, c := range crds {
		if _, err := res.Create(ctx, c, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", c.GetName(), err)
		}
	}
	for _, c := range crds {
		var last string
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, crdEstablishTimeout, true, func(ctx context.Context) (bool, error) {
			got, err := res.Get(ctx, c.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			ok, why := established(got)
			last = why
			return ok, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s is not Established (%s): %w", c.GetName(), last, err)
		}
	}
	return nil
}

// established reads the CRD's Established condition, and otherwise what
// its conditions say, for the error.
func established(crd *unstructured.Unstructured) (bool, string) {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	var said []string
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		if m["type"] == "Established" && m["status"] == "True" {
			return true, ""
		}
		said = append(said, fmt.Sprintf("%v=%v %v", m["type"], m["status"], m["message"]))
	}
	if len(said) == 0 {
		return false, "no conditions yet"
	}
	return false, strings.Join(said, "; ")
}
