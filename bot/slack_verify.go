package bot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Slack's signing headers and the window its documentation asks for.
const (
	HeaderSignature = "X-Slack-Signature"
	HeaderTimestamp = "X-Slack-Request-Timestamp"
	// SignatureWindow is how far a request's timestamp may be from now.
	SignatureWindow = 5 * time.Minute
	// DefaultReplayCacheSize bounds the replay cache. Only correctly signed
	// requests are cached, so filling it needs the signing secret.
	DefaultReplayCacheSize = 10000
)

// Errors of Verify. All but ErrReplayCacheFull wrap ErrUnverified, which
// a caller answers with 401.
var (
	ErrUnverified      = errors.New("request not verified as coming from Slack")
	ErrUnsigned        = fmt.Errorf("%w: missing %s or %s header", ErrUnverified, HeaderSignature, HeaderTimestamp)
	ErrStale           = fmt.Errorf("%w: timestamp outside the %s window", ErrUnverified, SignatureWindow)
	ErrBadSignature    = fmt.Errorf("%w: signature does not match", ErrUnverified)
	ErrReplayed        = fmt.Errorf("%w: request already seen (replay)", ErrUnverified)
	ErrReplayCacheFull = errors.New("replay cache full: too many signed requests within the window")
)

// Verifier checks Slack's v0 request signatures against a signing secret,
// a timestamp window on an injected clock, and a replay cache.
//
// It computes the HMAC itself rather than through slack.NewSecretsVerifier
// because that checks the timestamp against the wall clock (time.Since),
// which can be neither injected nor tested on Slack's documented example
// from 2018. The algorithm is the same: HMAC-SHA256 of "v0:<ts>:<body>".
type Verifier struct {
	secret []byte
	now    func() time.Time
	max    int

	mu   sync.Mutex
	seen map[string]time.Time // signature → when it may be forgotten
}

// NewVerifier returns a verifier for secret. now is the clock (time.Now if nil).
func NewVerifier(secret string, now func() time.Time) (*Verifier, error) {
	if secret == "" {
		return nil, errors.New("empty Slack signing secret: set SLACK_SIGNING_SECRET to the app's Signing Secret (Basic Information → App Credentials)")
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{secret: []byte(secret), now: now, max: DefaultReplayCacheSize, seen: map[string]time.Time{}}, nil
}

// Verify checks one request's headers and raw body. A request that passes
// is remembered, so the same request a second time fails with ErrReplayed.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	sig, sts := h.Get(HeaderSignature), h.Get(HeaderTimestamp)
	if sig == "" || sts == "" {
		return ErrUnsigned
	}
	ts, err := strconv.ParseInt(sts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not a Unix time", ErrUnverified, sts)
	}
	now := v.now()
	at := time.Unix(ts, 0)
	if now.Sub(at).Abs() > SignatureWindow {
		return ErrStale
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return fmt.Errorf("%w: signature is not a v0 signature", ErrUnverified)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return ErrBadSignature
	}
	if !hmac.Equal(got, Sign(string(v.secret), sts, body)) {
		return ErrBadSignature
	}
	// The decoded bytes are the key: hex in another letter case is the same
	// signature and must count as a replay.
	return v.remember(hex.EncodeToString(got), at.Add(SignatureWindow), now)
}

func (v *Verifier) remember(key string, until, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, dup := v.seen[key]; dup {
		return ErrReplayed
	}
	if len(v.seen) >= v.max {
		for k, t := range v.seen {
			if now.After(t) {
				delete(v.seen, k)
			}
		}
	}
	// Evicting a live entry would let its request be replayed: refuse instead.
	if len(v.seen) >= v.max {
		return ErrReplayCacheFull
	}
	v.seen[key] = until
	return nil
}

// Sign is Slack's v0 signature of body at timestamp ts, without the "v0="
// prefix. Tests use it to build requests exactly as Slack signs them.
func Sign(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%s:", ts)
	m.Write(body)
	return m.Sum(nil)
}

// SignatureHeader is the X-Slack-Signature value for body at ts.
func SignatureHeader(secret, ts string, body []byte) string {
	return "v0=" + hex.EncodeToString(Sign(secret, ts, body))
}
