package forge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/google/go-github/v60/github"
)

// EnvWebhookSecret is the variable canarybot serve reads the webhook's
// secret from (the secret set on the repository's webhook).
const EnvWebhookSecret = "GITHUB_WEBHOOK_SECRET"

// maxWebhookBody is GitHub's cap on a delivery's payload.
const maxWebhookBody = 25 << 20

// WebhookHandler serves POST /github/webhook: it verifies
// X-Hub-Signature-256 and, for pull_request events, brings the PR into
// line with the freeze (Freeze.OnPullRequest). A delivery whose signature
// does not verify gets 401 and changes nothing.
type WebhookHandler struct {
	secret []byte
	freeze *Freeze
	log    *slog.Logger
	// timeout bounds the GitHub calls of one delivery; GitHub gives up on
	// a delivery after 10 s.
	timeout time.Duration
}

// NewWebhookHandler needs the webhook's secret: without one, anyone could
// post events (go-github would skip the check for an empty secret).
func NewWebhookHandler(secret []byte, f *Freeze, log *slog.Logger) (*WebhookHandler, error) {
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: %s is empty; set it to the secret of the repository's webhook", ErrMissingSetting, EnvWebhookSecret)
	}
	if f == nil {
		return nil, errors.New("forge: NewWebhookHandler needs a Freeze")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &WebhookHandler{secret: secret, freeze: f, log: log, timeout: 9 * time.Second}, nil
}

// ServeHTTP implements http.Handler.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (ct != "application/json" && ct != "application/x-www-form-urlencoded") {
		http.Error(w, "Content-Type must be application/json (set it on the webhook)", http.StatusUnsupportedMediaType)
		return
	}
	body := http.MaxBytesReader(w, r.Body, maxWebhookBody)
	// Only the SHA-256 header: ValidatePayload would fall back to the
	// SHA-1 one, which GitHub keeps only for old integrations.
	payload, err := github.ValidatePayloadFromBody(ct, body, r.Header.Get(github.SHA256SignatureHeader), h.secret)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		h.log.Warn("github webhook: signature does not verify", "delivery", github.DeliveryID(r), "remote", r.RemoteAddr, "err", err)
		http.Error(w, "signature does not verify", http.StatusUnauthorized)
		return
	}
	event := github.WebHookType(r)
	switch event {
	case "ping":
		io.WriteString(w, "pong\n")
		return
	case "pull_request":
	default:
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "event %q ignored\n", event)
		return
	}
	ev, err := ParsePREvent(payload)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	res, err := h.freeze.OnPullRequest(ctx, ev)
	if err != nil {
		// GitHub shows the failed delivery; redelivering it is safe.
		h.log.Error("github webhook: pull_request", "delivery", github.DeliveryID(r), "pr", ev.Number, "action", ev.Action, "err", err)
		http.Error(w, "could not apply the freeze to this pull request; redeliver it", http.StatusBadGateway)
		return
	}
	h.log.Info("github webhook: pull_request", "delivery", github.DeliveryID(r), "pr", ev.Number, "action", ev.Action, "result", res.String())
	fmt.Fprintf(w, "#%d: %s\n", ev.Number, res)
}
