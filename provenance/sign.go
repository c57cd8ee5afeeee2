package provenance

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// KeyEnv is the environment variable that may hold the PEM text of the
// signing key, for CI secrets that are not files.
const KeyEnv = "CANARYBOT_SIGNING_KEY"

// ErrBadKey means a key could not be used: not PEM, not PKCS8/PKIX, or not
// ed25519 / ECDSA P-256. Messages never include key material.
var ErrBadKey = errors.New("unusable key")

// Key is a signing key. Its String never shows the private half.
type Key struct {
	priv      crypto.Signer
	keyID     string
	ephemeral bool
}

// String keeps the private key out of logs and %v.
func (k *Key) String() string {
	kind := "ed25519"
	if _, ok := k.priv.(*ecdsa.PrivateKey); ok {
		kind = "ecdsa-p256"
	}
	return fmt.Sprintf("%s key %s", kind, k.keyID)
}

// GoString keeps the private key out of %#v as well.
func (k *Key) GoString() string { return k.String() }

// Ephemeral reports whether the key was generated for this run only, so
// the provenance it signs is attested by nobody.
func (k *Key) Ephemeral() bool { return k.ephemeral }

// KeyID is the key's SSH-style SHA256 fingerprint, as DSSE records it.
func (k *Key) KeyID() string { return k.keyID }

// PublicPEM is the PKIX "PUBLIC KEY" PEM of the key's public half.
func (k *Key) PublicPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// GenerateEphemeral makes an ed25519 key that lives for one run.
func GenerateEphemeral() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating an ephemeral key: %w", err)
	}
	k, err := newKey(priv)
	if err != nil {
		return nil, err
	}
	k.ephemeral = true
	return k, nil
}

// ParsePrivateKey reads an ed25519 or ECDSA P-256 private key from PEM:
// PKCS8 ("PRIVATE KEY", as `openssl genpkey` writes) or SEC1
// ("EC PRIVATE KEY").
func ParsePrivateKey(pemBytes []byte) (*Key, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block; expected -----BEGIN PRIVATE KEY----- (e.g. `openssl genpkey -algorithm ed25519`)", ErrBadKey)
	}
	var raw any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		raw, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		raw, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: the private key is encrypted; decrypt it first (`openssl pkey -in enc.pem -out key.pem`) and keep it in a secret store", ErrBadKey)
	case "PUBLIC KEY":
		return nil, fmt.Errorf("%w: this is a public key; signing needs the private key", ErrBadKey)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key; expected PRIVATE KEY (PKCS8) or EC PRIVATE KEY", ErrBadKey, block.Type)
	}
	if err != nil {
		// x509's messages describe the structure, never the key bytes.
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return newKey(raw)
}

func newKey(raw any) (*Key, error) {
	var s crypto.Signer
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		s = k
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA curve %s; only P-256 is accepted", ErrBadKey, k.Curve.Params().Name)
		}
		s = k
	default:
		return nil, fmt.Errorf("%w: %T keys are not accepted; use ed25519 or ECDSA P-256", ErrBadKey, raw)
	}
	id, err := dsse.SHA256KeyID(s.Public())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return &Key{priv: s, keyID: id}, nil
}

// LoadSigningKey finds the signing key: the PEM file at path if given,
// else the PEM text in $CANARYBOT_SIGNING_KEY; (nil, nil) when neither.
func LoadSigningKey(path string, getenv func(string) string) (*Key, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		k, err := ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, err)
		}
		return k, nil
	}
	if getenv == nil {
		return nil, nil
	}
	v := getenv(KeyEnv)
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	k, err := ParsePrivateKey([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("$%s must hold the key's PEM text (use --key for a file): %w", KeyEnv, err)
	}
	return k, nil
}

// signer adapts a Key to dsse.Signer. ECDSA signs the SHA-256 of the PAE in
// ASN.1, as securesystemslib's ecdsa-sha2-nistp256 scheme does, so its
// verifiers accept our envelopes too.
type signer struct{ k *Key }

func (s signer) Sign(_ context.Context, data []byte) ([]byte, error) {
	switch p := s.k.priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(p, data), nil
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256(data)
		return ecdsa.SignASN1(rand.Reader, p, sum[:])
	}
	return nil, fmt.Errorf("%w: unsupported key type %T", ErrBadKey, s.k.priv)
}

func (s signer) KeyID() (string, error) { return s.k.keyID, nil }

// SignStatement wraps the statement's JSON in a DSSE envelope signed with k
// and returns the envelope's JSON.
func SignStatement(ctx context.Context, payload []byte, k *Key) ([]byte, error) {
	es, err := dsse.NewEnvelopeSigner(signer{k})
	if err != nil {
		return nil, err
	}
	env, err := es.SignPayload(ctx, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("signing the provenance: %w", err)
	}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Result is a signed provenance.
type Result struct {
	Envelope  []byte    // DSSE envelope JSON
	PublicPEM []byte    // public half of the signing key
	Ephemeral bool      // signed by a key generated for this run: unattested
	KeyID     string    // fingerprint of the signing key
	Subjects  []Subject // what was attested
	BuilderID string
	BuildType string
}

// Generate builds the statement for o and signs it with k; a nil k means
// an ephemeral key, reported in Result.Ephemeral.
func Generate(ctx context.Context, o Options, k *Key) (Result, error) {
	st, err := Statement(ctx, o)
	if err != nil {
		return Result{}, err
	}
	payload, err := Marshal(st)
	if err != nil {
		return Result{}, err
	}
	if k == nil {
		if k, err = GenerateEphemeral(); err != nil {
			return Result{}, err
		}
	}
	env, err := SignStatement(ctx, payload, k)
	if err != nil {
		return Result{}, err
	}
	pub, err := k.PublicPEM()
	if err != nil {
		return Result{}, err
	}
	pred, err := Predicate(st)
	if err != nil {
		return Result{}, err
	}
	return Result{
		Envelope:  env,
		PublicPEM: pub,
		Ephemeral: k.Ephemeral(),
		KeyID:     k.KeyID(),
		Subjects:  subjectsOf(st),
		BuilderID: pred.GetRunDetails().GetBuilder().GetId(),
		BuildType: pred.GetBuildDefinition().GetBuildType(),
	}, nil
}

// EnvelopeName and PublicKeyName are the evidence file names for version.
func EnvelopeName(version string) string  { return "build_provenance_" + version + ".json" }
func PublicKeyName(version string) string { return "build_provenance_" + version + ".pub.pem" }
