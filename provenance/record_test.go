package provenance

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

func TestSignVerifyRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	record := []byte("go/no-go record: v1.4.0\ndecision: GO\n")
	for _, kind := range []string{"ed25519", "p256"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			priv, pub := keyPEMs(t, kind)
			k, err := ParsePrivateKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			env, err := SignRecord(ctx, record, k)
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := EnvelopePayloadType(env); err != nil || pt != RecordPayloadType {
				t.Errorf("payload type %q, %v", pt, err)
			}
			rep, err := VerifyRecord(ctx, env, pub, record)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Compared || string(rep.Record) != string(record) || rep.KeyID != k.KeyID() {
				t.Errorf("report %+v", rep)
			}
			// Without the file, the signed text is still returned to show.
			if rep, err := VerifyRecord(ctx, env, pub, nil); err != nil || rep.Compared || string(rep.Record) != string(record) {
				t.Errorf("envelope only: %+v, %v", rep, err)
			}
		})
	}
}

func TestVerifyRecordRejects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	record := []byte("go/no-go record: v1.4.0\ndecision: NO-GO\n")
	priv, pub := keyPEMs(t, "ed25519")
	_, otherPub := keyPEMs(t, "ed25519")
	k, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	env, err := SignRecord(ctx, record, k)
	if err != nil {
		t.Fatal(err)
	}
	// The signed text with NO-GO turned into GO, signature kept.
	var e dsse.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	e.Payload = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(record), "NO-GO", "GO", 1)))
	forged, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	// A provenance envelope is signed by the right key but is no record.
	provEnv := signRaw(t, k, PayloadType, []byte(`{}`))

	tests := []struct {
		name     string
		envelope []byte
		pub      []byte
		record   []byte
		target   error
		want     string
	}{
		{"edited record file", env, pub, []byte("go/no-go record: v1.4.0\ndecision: GO\n"), ErrRecordMismatch, "not what was signed"},
		{"edited envelope payload", forged, pub, nil, ErrSignature, "changed after signing"},
		{"wrong key", env, otherPub, record, ErrSignature, "another key"},
		{"provenance, not a record", provEnv, pub, nil, ErrPayloadType, RecordPayloadType},
		{"not an envelope", []byte(`{"hello":1}`), pub, nil, ErrNotEnvelope, "payloadType or payload missing"},
		{"private key given", env, priv, record, ErrBadKey, "public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := VerifyRecord(ctx, tt.envelope, tt.pub, tt.record)
			if !errors.Is(err, tt.target) {
				t.Fatalf("err = %v, want %v", err, tt.target)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error lacks %q: %v", tt.want, err)
			}
		})
	}
	if _, err := SignRecord(ctx, record, nil); !errors.Is(err, ErrBadKey) {
		t.Errorf("SignRecord without a key: %v", err)
	}
}
