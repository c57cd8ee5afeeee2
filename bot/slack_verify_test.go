package bot

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// Slack's documented signing example.
const (
	exSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	exTS     = "1531420618"
	exBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	exSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func header(sig, ts string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	if ts != "" {
		h.Set(HeaderTimestamp, ts)
	}
	return h
}

func at(ts string, d time.Duration) func() time.Time {
	n, _ := strconv.ParseInt(ts, 10, 64)
	return func() time.Time { return time.Unix(n, 0).Add(d) }
}

func TestVerifySlackExample(t *testing.T) {
	body := []byte(exBody)
	flipped := []byte(exBody)
	flipped[10] ^= 1
	tests := []struct {
		name    string
		clock   time.Duration
		h       http.Header
		body    []byte
		wantErr error
	}{
		{"documented example", 0, header(exSig, exTS), body, nil},
		{"clock 4m59s later", 4*time.Minute + 59*time.Second, header(exSig, exTS), body, nil},
		{"clock 4m59s earlier", -(4*time.Minute + 59*time.Second), header(exSig, exTS), body, nil},
		{"one byte changed", 0, header(exSig, exTS), flipped, ErrBadSignature},
		{"clock 6 minutes later", 6 * time.Minute, header(exSig, exTS), body, ErrStale},
		{"clock 6 minutes earlier", -6 * time.Minute, header(exSig, exTS), body, ErrStale},
		{"no signature", 0, header("", exTS), body, ErrUnsigned},
		{"no timestamp", 0, header(exSig, ""), body, ErrUnsigned},
		{"no headers", 0, http.Header{}, body, ErrUnsigned},
		{"v1 signature", 0, header("v1="+exSig[3:], exTS), body, ErrUnverified},
		{"not hex", 0, header("v0=zz", exTS), body, ErrBadSignature},
		{"timestamp not a number", 0, header(exSig, "yesterday"), body, ErrUnverified},
		{"other timestamp, same signature", 0, header(exSig, "1531420619"), body, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(exSecret, at(exTS, tt.clock))
			if err != nil {
				t.Fatal(err)
			}
			err = v.Verify(tt.h, tt.body)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && !errors.Is(err, ErrUnverified) {
				t.Errorf("%v does not wrap ErrUnverified", err)
			}
		})
	}
}

func TestVerifyReplay(t *testing.T) {
	now := at(exTS, 0)
	v, err := NewVerifier(exSecret, func() time.Time { return now() })
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(header(exSig, exTS), []byte(exBody)); err != nil {
		t.Fatalf("first: %v", err)
	}
	if err := v.Verify(header(exSig, exTS), []byte(exBody)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay = %v, want ErrReplayed", err)
	}
	// A mis-signed request must not poison the cache for the real one.
	v2, _ := NewVerifier(exSecret, now)
	_ = v2.Verify(header(exSig, exTS), []byte(exBody+"x"))
	if err := v2.Verify(header(exSig, exTS), []byte(exBody)); err != nil {
		t.Fatalf("after a bad request the good one = %v", err)
	}
}

func TestReplayCacheBoundedAndExpires(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	now := base
	v, _ := NewVerifier("s3cret", func() time.Time { return now })
	v.max = 3
	send := func(i int) error {
		ts := strconv.FormatInt(now.Unix(), 10)
		body := []byte("text=" + strconv.Itoa(i))
		return v.Verify(header(SignatureHeader("s3cret", ts, body), ts), body)
	}
	for i := range 3 {
		if err := send(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := send(3); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("4th live request with a full cache = %v, want ErrReplayCacheFull", err)
	}
	now = base.Add(SignatureWindow + time.Second)
	if err := send(4); err != nil {
		t.Fatalf("after the window the cache should have room: %v", err)
	}
	if len(v.seen) != 1 {
		t.Errorf("cache holds %d entries, want 1 (expired ones dropped)", len(v.seen))
	}
}

// The signature we compute is the one slack-go accepts (on the wall clock).
func TestSignAgreesWithSlackGo(t *testing.T) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body := []byte("text=status&user_id=U1")
	h := header(SignatureHeader("abc", ts, body), ts)
	sv, err := slack.NewSecretsVerifier(h, "abc")
	if err != nil {
		t.Fatal(err)
	}
	sv.Write(body)
	if err := sv.Ensure(); err != nil {
		t.Fatalf("slack-go rejects our signature: %v", err)
	}
	if got := SignatureHeader(exSecret, exTS, []byte(exBody)); got != exSig {
		t.Fatalf("SignatureHeader = %s, want Slack's %s", got, exSig)
	}
}

func TestNewVerifierEmptySecret(t *testing.T) {
	if _, err := NewVerifier("", nil); err == nil {
		t.Fatal("empty secret accepted")
	}
}

// TestReplayInAnotherCase: hex in upper case is the same signature, so a
// captured request cannot be replayed by changing the letter case.
func TestReplayInAnotherCase(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	v, err := NewVerifier("s3cret", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("command=%2Fcanary&text=promote")
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, SignatureHeader("s3cret", ts, body))
	if err := v.Verify(h, body); err != nil {
		t.Fatal(err)
	}
	h.Set(HeaderSignature, "v0="+strings.ToUpper(strings.TrimPrefix(SignatureHeader("s3cret", ts, body), "v0=")))
	if err := v.Verify(h, body); !errors.Is(err, ErrReplayed) {
		t.Fatalf("the same signature in upper case: %v, want ErrReplayed", err)
	}
}
