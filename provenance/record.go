package provenance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// RecordPayloadType is the DSSE payload type of a signed go/no-go record:
// the record's text, byte for byte. It is not an in-toto statement, so a
// provenance verifier refuses it by its type instead of misreading it.
const RecordPayloadType = "application/vnd.canarybot.go-nogo.v1+text"

// ErrRecordMismatch: the record file is not the text that was signed.
var ErrRecordMismatch = errors.New("go/no-go record differs from the signed one")

// RecordName is the runbook's go/no-go evidence file; RecordSignatureName
// is its signature beside it: a DSSE envelope (JSON) whose payload is the
// record's exact bytes, signed with the provenance's key.
func RecordName(version string) string          { return "go_nogo_signed_" + version + ".txt" }
func RecordSignatureName(version string) string { return RecordName(version) + ".sig" }

// SignRecord signs the go/no-go record's text with k and returns the DSSE
// envelope's JSON.
func SignRecord(ctx context.Context, record []byte, k *Key) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: no key to sign the go/no-go record with", ErrBadKey)
	}
	es, err := dsse.NewEnvelopeSigner(signer{k})
	if err != nil {
		return nil, err
	}
	env, err := es.SignPayload(ctx, RecordPayloadType, record)
	if err != nil {
		return nil, fmt.Errorf("signing the go/no-go record: %w", err)
	}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// RecordReport says what VerifyRecord checked.
type RecordReport struct {
	KeyID string
	// Record is the signed text.
	Record []byte
	// Compared is true when a record file was given and matched.
	Compared bool
}

// EnvelopePayloadType reads an envelope's payload type without verifying
// anything, so a verifier can pick the check that applies.
func EnvelopePayloadType(envelope []byte) (string, error) {
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotEnvelope, err)
	}
	if env.PayloadType == "" || env.Payload == "" {
		return "", fmt.Errorf("%w: payloadType or payload missing", ErrNotEnvelope)
	}
	return env.PayloadType, nil
}

// VerifyRecord checks the envelope's signature against publicKeyPEM, that
// its payload type is a go/no-go record, and, when record is not nil, that
// the record file holds exactly the signed text.
func VerifyRecord(ctx context.Context, envelope, publicKeyPEM, record []byte) (RecordReport, error) {
	var r RecordReport
	payloadType, payload, keyID, err := openEnvelope(ctx, envelope, publicKeyPEM, "record")
	r.KeyID = keyID
	if err != nil {
		return r, err
	}
	if payloadType != RecordPayloadType {
		return r, fmt.Errorf("%w: %q, want %q (a go/no-go record)", ErrPayloadType, payloadType, RecordPayloadType)
	}
	r.Record = payload
	if record != nil {
		if !bytes.Equal(record, payload) {
			return r, fmt.Errorf("%w: the file's text is not what was signed (%d bytes on disk, %d signed); compare it with the envelope's payload", ErrRecordMismatch, len(record), len(payload))
		}
		r.Compared = true
	}
	return r, nil
}
