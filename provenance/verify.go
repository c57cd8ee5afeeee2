package provenance

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// Verification failures a caller branches on.
var (
	// ErrSignature: the envelope is not signed by the given key, or its
	// payload changed after signing.
	ErrSignature = errors.New("signature does not verify")
	// ErrPayloadType: signed, but not an in-toto statement.
	ErrPayloadType = errors.New("wrong payload type")
	// ErrStatement: signed in-toto payload that is not a valid Statement v1
	// with a SLSA Provenance v1 predicate.
	ErrStatement = errors.New("payload is not a valid in-toto SLSA v1 provenance")
	// ErrDigestMismatch: an artifact's sha256 differs from its subject's.
	ErrDigestMismatch = errors.New("artifact digest does not match the provenance")
	// ErrNotASubject: an artifact is not named in the provenance.
	ErrNotASubject = errors.New("artifact is not a subject of the provenance")
	// ErrNotEnvelope: the file is not a DSSE envelope at all (wrong file?).
	ErrNotEnvelope = errors.New("not a DSSE envelope")
)

// Report says what Verify checked.
type Report struct {
	KeyID       string
	PayloadType string
	BuildType   string
	BuilderID   string
	Subjects    []Subject // every subject in the provenance
	Checked     []Subject // the artifacts compared against them
}

// Verify checks, in order, the envelope's signature against publicKeyPEM,
// its payload type, that the payload is an in-toto Statement v1 with a valid
// SLSA Provenance v1 predicate, and each artifact's sha256 against the
// subject of the same base name. The Report is filled as far as checking got.
func Verify(ctx context.Context, envelope, publicKeyPEM []byte, artifacts []string) (Report, error) {
	var r Report
	payloadType, payload, keyID, err := openEnvelope(ctx, envelope, publicKeyPEM, "payload")
	r.KeyID = keyID
	if err != nil {
		return r, err
	}
	r.PayloadType = payloadType
	if payloadType != PayloadType {
		return r, fmt.Errorf("%w: %q, want %q", ErrPayloadType, payloadType, PayloadType)
	}
	var st intoto.Statement
	if err := protojson.Unmarshal(payload, &st); err != nil {
		return r, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if err := st.Validate(); err != nil {
		return r, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if st.GetType() != intoto.StatementTypeUri {
		return r, fmt.Errorf("%w: statement type %q, want %q", ErrStatement, st.GetType(), intoto.StatementTypeUri)
	}
	if st.GetPredicateType() != PredicateType {
		return r, fmt.Errorf("%w: predicate type %q, want %q", ErrStatement, st.GetPredicateType(), PredicateType)
	}
	pred, err := Predicate(&st)
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if err := pred.Validate(); err != nil {
		return r, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	r.BuildType = pred.GetBuildDefinition().GetBuildType()
	r.BuilderID = pred.GetRunDetails().GetBuilder().GetId()
	r.Subjects = subjectsOf(&st)
	byName := map[string]string{}
	for _, s := range r.Subjects {
		byName[s.Name] = s.SHA256
	}
	for _, a := range artifacts {
		// Read first: a file that is not there is a wrong path, not a forgery.
		got, err := FileSHA256(a)
		if err != nil {
			return r, err
		}
		name := filepath.Base(a)
		want, ok := byName[name]
		if !ok {
			return r, fmt.Errorf("%w: %s (as %q); the provenance names %s", ErrNotASubject, a, name, subjectNames(r.Subjects))
		}
		if want == "" {
			return r, fmt.Errorf("%w: %s: its subject has no sha256 digest to compare", ErrDigestMismatch, a)
		}
		if !strings.EqualFold(got, want) {
			return r, fmt.Errorf("%w: %s has sha256 %s, the provenance says %s", ErrDigestMismatch, a, got, want)
		}
		r.Checked = append(r.Checked, Subject{Name: name, SHA256: got})
	}
	return r, nil
}

// ParsePublicKey reads a PKIX "PUBLIC KEY" PEM holding an ed25519 or ECDSA
// P-256 key.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block; expected -----BEGIN PUBLIC KEY-----", ErrBadKey)
	}
	if block.Type != "PUBLIC KEY" {
		// Never echo a private key back, even partially: name its type only.
		return nil, fmt.Errorf("%w: PEM block %q; verification takes the public key (`openssl pkey -pubout`)", ErrBadKey, block.Type)
	}
	raw, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch k := raw.(type) {
	case ed25519.PublicKey:
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA curve %s; only P-256 is accepted", ErrBadKey, k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: %T keys are not accepted; use ed25519 or ECDSA P-256", ErrBadKey, raw)
}

// verifier adapts a public key to dsse.Verifier.
type verifier struct {
	pub   crypto.PublicKey
	keyID string
}

func (v verifier) Verify(_ context.Context, data, sig []byte) error {
	switch k := v.pub.(type) {
	case ed25519.PublicKey:
		if ed25519.Verify(k, data, sig) {
			return nil
		}
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(data)
		if ecdsa.VerifyASN1(k, sum[:], sig) {
			return nil
		}
	}
	return ErrSignature
}

func (v verifier) KeyID() (string, error)   { return v.keyID, nil }
func (v verifier) Public() crypto.PublicKey { return v.pub }

func subjectsOf(st *intoto.Statement) []Subject {
	out := make([]Subject, 0, len(st.GetSubject()))
	for _, s := range st.GetSubject() {
		out = append(out, Subject{Name: s.GetName(), SHA256: s.GetDigest()["sha256"]})
	}
	return out
}

func subjectNames(ss []Subject) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// openEnvelope checks a DSSE envelope's signature against publicKeyPEM and
// returns its payload type and payload; DSSE signs the type with the
// payload, so a verified type is the signer's. keyID is set as soon as the
// key is known, for the report of a failed check. what names the payload in
// the signature error ("payload", "record").
func openEnvelope(ctx context.Context, envelope, publicKeyPEM []byte, what string) (payloadType string, payload []byte, keyID string, err error) {
	pub, err := ParsePublicKey(publicKeyPEM)
	if err != nil {
		return "", nil, "", err
	}
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return "", nil, "", fmt.Errorf("%w: %v", ErrNotEnvelope, err)
	}
	if env.PayloadType == "" || env.Payload == "" {
		return "", nil, "", fmt.Errorf("%w: payloadType or payload missing", ErrNotEnvelope)
	}
	v := verifier{pub: pub}
	if v.keyID, err = dsse.SHA256KeyID(pub); err != nil {
		return "", nil, "", fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	ev, err := dsse.NewEnvelopeVerifier(v)
	if err != nil {
		return "", nil, v.keyID, err
	}
	if _, payload, err = ev.VerifyAndDecode(ctx, &env); err != nil {
		return "", nil, v.keyID, fmt.Errorf("%w with key %s: the %s was changed after signing, or another key signed it (%v)", ErrSignature, v.keyID, what, err)
	}
	return env.PayloadType, payload, v.keyID, nil
}
