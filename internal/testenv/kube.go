package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// KubeVersion is the kube-apiserver scripts/kube-apiserver.sh builds.
const KubeVersion = "v1.37.2"

// KubeNamespace is created at start; tests put their objects in it, and the
// bot's static token is the identity of its ServiceAccount there.
const KubeNamespace = "spark"

// BotServiceAccount is the ServiceAccount deploy/kubernetes binds its Role
// to; BotToken authenticates as it.
const BotServiceAccount = "canarybot"

// etcdBinary is where Debian's etcd-server package installs etcd.
const etcdBinary = "/usr/bin/etcd"

// KubeServer is a running kube-apiserver backed by its own etcd. No
// controllers run: objects have no status unless a test sets it.
type KubeServer struct {
	// URL is the API server's https base URL.
	URL string
	// CA is the PEM of the self-signed CA that signed the serving cert.
	CA []byte
	// AdminToken is in system:masters; BotToken is
	// system:serviceaccount:<KubeNamespace>:<BotServiceAccount> with no
	// permissions until a test applies a Role binding to it.
	AdminToken, BotToken string
	Dir                  string
	log                  *SyncBuffer
	stop                 func()
}

// Config returns a client configuration that authenticates with token and
// verifies the server's certificate against its CA.
func (k *KubeServer) Config(token string) *rest.Config {
	return &rest.Config{
		Host:            k.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: k.CA},
		// The default client-side limit (5 qps) would slow tests that
		// race writers on purpose.
		QPS: 200, Burst: 400,
	}
}

// Clientset is a client as the admin.
func (k *KubeServer) Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(k.Config(k.AdminToken))
	if err != nil {
		t.Fatalf("testenv: kube client: %v", err)
	}
	return cs
}

// Kubeconfig writes a kubeconfig file for token into dir and returns its
// path, for code that reads KUBECONFIG.
func (k *KubeServer) Kubeconfig(dir, token string) (string, error) {
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: test
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: %s
current-context: test
`, k.URL, base64.StdEncoding.EncodeToString(k.CA), token, KubeNamespace)
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("writing kubeconfig: %w", err)
	}
	return path, nil
}

// Log returns the tail of etcd's and the API server's logs.
func (k *KubeServer) Log() string { return k.log.Tail(logTail) }

// Stop kills the API server and etcd and removes their files.
func (k *KubeServer) Stop() { k.stop() }

// KubeAPIServerBinary is where scripts/kube-apiserver.sh caches the build.
func KubeAPIServerBinary() string {
	if p := os.Getenv("CANARYBOT_KUBE_APISERVER"); p != "" {
		return p
	}
	cache := os.Getenv("CANARYBOT_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "canarybot")
	}
	return filepath.Join(cache, "kube-apiserver-"+KubeVersion)
}

// Kube starts etcd and a kube-apiserver for one test and stops them at
// cleanup. Packages with several tests should share one through StartKube
// in TestMain: a start costs a few seconds and ~350 MB.
func Kube(t testing.TB) *KubeServer {
	t.Helper()
	k, err := StartKube()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: kube-apiserver and etcd logged:\n%s", k.Log())
		}
		k.Stop()
	})
	return k
}

// StartKube starts etcd (Debian's etcd-server) and the cached
// kube-apiserver on loopback, creates KubeNamespace, and returns once the
// server is ready. It fails when either binary is missing: run `make deps`.
func StartKube() (*KubeServer, error) {
	apiserver := KubeAPIServerBinary()
	if _, err := os.Stat(apiserver); err != nil {
		return nil, fmt.Errorf("kube-apiserver %s is not built (%v): run `make deps` (scripts/kube-apiserver.sh builds and caches it)", KubeVersion, err)
	}
	etcd := etcdBinary
	if _, err := os.Stat(etcd); err != nil {
		p, lerr := exec.LookPath("etcd")
		if lerr != nil {
			return nil, fmt.Errorf("etcd is not installed (%v): run `make deps`, which installs Debian's etcd-server", err)
		}
		etcd = p
	}
	dir, err := os.MkdirTemp("", "canarybot-kube-")
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	var lastErr error
	for range startAttempts {
		k, err := startKube(dir, etcd, apiserver)
		if err == nil {
			return k, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func startKube(dir, etcdBin, apiserverBin string) (*KubeServer, error) {
	run, err := os.MkdirTemp(dir, "run-")
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	log := &SyncBuffer{}
	var procs []*process
	stopAll := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	etcdProc, err := startProcess(log, etcdBin,
		"--name", "test",
		"--data-dir", filepath.Join(run, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer, "--initial-cluster-state", "new",
		"--log-level", "warn",
	)
	if err != nil {
		return nil, err
	}
	procs = append(procs, etcdProc)

	admin, bot := randomToken(), randomToken()
	tokens := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n%s,system:serviceaccount:%s:%s,canarybot-uid,\"system:serviceaccounts,system:serviceaccounts:%s\"\n",
		admin, bot, KubeNamespace, BotServiceAccount, KubeNamespace)
	tokenFile := filepath.Join(run, "tokens.csv")
	saKey, saPub := filepath.Join(run, "sa.key"), filepath.Join(run, "sa.pub")
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		stopAll()
		return nil, fmt.Errorf("kube: %w", err)
	}
	if err := writeServiceAccountKeys(saKey, saPub); err != nil {
		stopAll()
		return nil, err
	}
	certDir := filepath.Join(run, "certs")
	apiPort := ports[2]
	apiProc, err := startProcess(log, apiserverBin,
		"--etcd-servers", client,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", certDir,
		"--token-auth-file", tokenFile,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--endpoint-reconciler-type", "none",
		"--v", "0",
	)
	if err != nil {
		stopAll()
		return nil, err
	}
	procs = append(procs, apiProc)

	k := &KubeServer{
		URL:        "https://127.0.0.1:" + strconv.Itoa(apiPort),
		AdminToken: admin, BotToken: bot,
		Dir: dir, log: log,
	}
	k.stop = func() {
		stopAll()
		os.RemoveAll(dir)
	}
	if err := k.waitReady(certDir, apiProc); err != nil {
		stopAll()
		if strings.Contains(log.String(), "address already in use") {
			return nil, fmt.Errorf("a port was taken before the servers bound it: %w", errAddrInUse)
		}
		return nil, fmt.Errorf("%w\nlogs:\n%s", err, log.Tail(logTail))
	}
	cs, err := kubernetes.NewForConfig(k.Config(admin))
	if err == nil {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: KubeNamespace}}
		_, err = cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		k.stop()
		return nil, fmt.Errorf("kube: creating namespace %s: %w", KubeNamespace, err)
	}
	return k, nil
}

// waitReady waits for the self-signed certificate, then for /readyz.
func (k *KubeServer) waitReady(certDir string, apiserver *process) error {
	const timeout = 60 * time.Second
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if k.CA == nil {
			k.CA = selfSignedCA(filepath.Join(certDir, "apiserver.crt"))
		}
		if k.CA != nil {
			if ok := k.ready(); ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver at %s was not ready after %s", k.URL, timeout)
		}
		select {
		case <-apiserver.exited:
			return fmt.Errorf("kube-apiserver exited before it was ready: %v", apiserver.err)
		case <-tick.C:
		}
	}
}

func (k *KubeServer) ready() bool {
	transport, err := rest.TransportFor(k.Config(k.AdminToken))
	if err != nil {
		return false
	}
	c := &http.Client{Transport: transport, Timeout: 2 * time.Second}
	resp, err := c.Get(k.URL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// selfSignedCA is the second PEM block of the generated serving cert: the
// API server writes its certificate followed by the CA that signed it.
func selfSignedCA(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var blocks [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		blocks = append(blocks, pem.EncodeToMemory(b))
	}
	if len(blocks) < 2 {
		return nil
	}
	return blocks[1]
}

func writeServiceAccountKeys(keyPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("kube: service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("kube: service account key: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	return nil
}

type process struct {
	cmd *exec.Cmd
	// exited is closed once the process has exited; err is then its
	// Wait error.
	exited chan struct{}
	err    error
}

func startProcess(log *SyncBuffer, binary string, args ...string) (*process, error) {
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) stop() {
	killProcessGroup(p.cmd)
	<-p.exited
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// SharedKube starts one kube-apiserver for a package's tests, at the first
// test that needs it; the package's TestMain calls Stop after m.Run.
type SharedKube struct {
	once sync.Once
	k    *KubeServer
	err  error
}

// Get returns the package's server, starting it on first use; it fails
// the test when the server cannot start.
func (s *SharedKube) Get(t testing.TB) *KubeServer {
	t.Helper()
	s.once.Do(func() { s.k, s.err = StartKube() })
	if s.err != nil {
		t.Fatalf("testenv: %v", s.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver and etcd logged:\n%s", s.k.Log())
		}
	})
	return s.k
}

// Stop stops the server if it was started.
func (s *SharedKube) Stop() {
	if s.k != nil {
		s.k.Stop()
	}
}
