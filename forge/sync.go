package forge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-github/v60/github"
)

// PREvent is what the freeze needs from a pull_request webhook event.
type PREvent struct {
	Action  string
	Number  int
	HeadSHA string
	Labels  []string
	// Owner/Repo is the event's repository.
	Owner, Repo string
}

// ErrBadEvent means an event payload is not a usable pull_request event;
// the message says what is missing.
var ErrBadEvent = errors.New("not a pull_request event")

// ParsePREvent reads a pull_request event's JSON payload, as a webhook
// delivers it and as Actions stores it at $GITHUB_EVENT_PATH.
func ParsePREvent(payload []byte) (PREvent, error) {
	var ev github.PullRequestEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return PREvent{}, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	pr := ev.GetPullRequest()
	if pr == nil || ev.GetAction() == "" || pr.GetNumber() == 0 {
		return PREvent{}, fmt.Errorf("%w: no action, pull_request or number in the payload", ErrBadEvent)
	}
	out := PREvent{
		Action: ev.GetAction(), Number: pr.GetNumber(), HeadSHA: pr.GetHead().GetSHA(),
		Owner: ev.GetRepo().GetOwner().GetLogin(), Repo: ev.GetRepo().GetName(),
	}
	for _, l := range pr.Labels {
		out.Labels = append(out.Labels, l.GetName())
	}
	return out, nil
}

// SyncResult says what OnPullRequest did.
type SyncResult struct {
	// Frozen: a freeze was in force (Version, Mode).
	Frozen        bool
	Version, Mode string
	Labelled      bool
	Status        string // the state set on the head ("failure", "success"), or ""
	// Ignored says why nothing was done, when nothing was.
	Ignored string
}

func (r SyncResult) String() string {
	if r.Ignored != "" {
		return "ignored: " + r.Ignored
	}
	var did []string
	if r.Labelled {
		did = append(did, "labelled")
	}
	if r.Status != "" {
		did = append(did, "status "+r.Status)
	}
	if len(did) == 0 {
		did = append(did, "nothing to do")
	}
	if r.Frozen {
		return fmt.Sprintf("freeze %s (%s): %s", r.Version, r.Mode, strings.Join(did, ", "))
	}
	return "no freeze in force: " + strings.Join(did, ", ")
}

// OnPullRequest brings one PR into line with the freeze: while a freeze is
// in force, a PR that is opened, reopened or pushed to gets the label and,
// in ModeStatuses, the failing status on its new head; otherwise, with
// ReportThawed, its head gets a success status. It is idempotent: a
// redelivered event repeats no call the progress recorded.
func (f *Freeze) OnPullRequest(ctx context.Context, ev PREvent) (SyncResult, error) {
	if err := f.check(); err != nil {
		return SyncResult{}, err
	}
	switch ev.Action {
	case "opened", "reopened", "synchronize":
	default:
		return SyncResult{Ignored: fmt.Sprintf("action %q changes no head", ev.Action)}, nil
	}
	if ev.Owner != "" && (!strings.EqualFold(ev.Owner, f.Owner) || !strings.EqualFold(ev.Repo, f.Repo)) {
		return SyncResult{Ignored: fmt.Sprintf("event of %s/%s, not %s/%s", ev.Owner, ev.Repo, f.Owner, f.Repo)}, nil
	}
	if ev.Number <= 0 || ev.HeadSHA == "" {
		return SyncResult{}, fmt.Errorf("%w: no PR number or head commit", ErrBadEvent)
	}
	if f.Beacon {
		return f.onPRByBeacon(ctx, ev)
	}

	// Record the PR first, so that a lift running meanwhile sees it.
	var res SyncResult
	st, err := f.update(ctx, func(s *FreezeState) error {
		// A shared Progress runs this again on a conflict, and a lift may
		// have begun in between: decide afresh.
		res = SyncResult{}
		frozen := (s.Phase == PhaseStarting || s.Phase == PhaseFrozen) && s.Owner == f.Owner && s.Repo == f.Repo
		if !frozen || s.Mode == "" {
			// Not frozen, or still deciding how to block: Start lists this
			// PR itself once it knows.
			return nil
		}
		res = SyncResult{Frozen: true, Version: s.Version, Mode: s.Mode}
		if p := s.pr(ev.Number); p != nil {
			p.HeadSHA = ev.HeadSHA
		} else {
			s.PRs = append(s.PRs, PRState{Number: ev.Number, HeadSHA: ev.HeadSHA, Via: "webhook", HadLabel: containsFold(ev.Labels, s.Label)})
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if !res.Frozen {
		return f.thawed(ctx, ev)
	}
	pr := *st.pr(ev.Number)
	if st.Mode == ModeStatuses && pr.FailedSHA != pr.HeadSHA {
		if err := f.fail(ctx, st.Version, pr); err != nil {
			return res, err
		}
		res.Status = "failure"
	}
	if !pr.HadLabel && !pr.LabelAdded {
		if err := f.addLabel(ctx, pr); err != nil {
			return res, err
		}
		res.Labelled = true
	}
	return res, nil
}

func (f *Freeze) thawed(ctx context.Context, ev PREvent) (SyncResult, error) {
	res := SyncResult{}
	if f.ReportThawed {
		if err := f.setStatus(ctx, ev.Number, ev.HeadSHA, "success", "No merge freeze in force"); err != nil {
			return res, err
		}
		res.Status = "success"
	}
	return res, nil
}

// onPRByBeacon acts on what the label's description says. With no progress
// file to record in, it labels only a PR that does not carry the label and
// sets the failing status on every event (a repeat is harmless: GitHub
// keeps the latest status per context).
func (f *Freeze) onPRByBeacon(ctx context.Context, ev PREvent) (SyncResult, error) {
	l, resp, err := f.Client.Issues.GetLabel(ctx, f.Owner, f.Repo, f.label())
	if err != nil && (resp == nil || resp.StatusCode != http.StatusNotFound) {
		return SyncResult{}, fmt.Errorf("reading the freeze's label %q: %w", f.label(), err)
	}
	version, mode, frozen := parseBeacon(l.GetDescription())
	if !frozen {
		return f.thawed(ctx, ev)
	}
	res := SyncResult{Frozen: true, Version: version, Mode: mode}
	if mode == ModeStatuses {
		if err := f.setStatus(ctx, ev.Number, ev.HeadSHA, "failure", fmt.Sprintf("Merges frozen for the canary release of %s; wait for the freeze to lift", version)); err != nil {
			return res, err
		}
		res.Status = "failure"
	}
	if !containsFold(ev.Labels, f.label()) {
		if err := f.labelIssue(ctx, ev.Number); err != nil {
			return res, err
		}
		res.Labelled = true
	}
	return res, nil
}

// The label's description is the freeze's beacon on GitHub: a workflow
// that has only the repository (`freeze sync`) reads from it whether a
// freeze is in force, of which version, and in which mode.
const (
	beaconFrozen = "canarybot: merges frozen for "
	beaconNone   = "canarybot: no merge freeze in force"
)

func beaconText(version, mode string) string {
	if version == "" {
		return beaconNone
	}
	return fmt.Sprintf("%s%s (%s)", beaconFrozen, version, mode)
}

func parseBeacon(desc string) (version, mode string, frozen bool) {
	rest, ok := strings.CutPrefix(desc, beaconFrozen)
	if !ok {
		return "", "", false
	}
	version, mode, ok = strings.Cut(rest, " (")
	mode = strings.TrimSuffix(mode, ")")
	if !ok || version == "" || (mode != ModeStatuses && mode != ModeRulesets) {
		return "", "", false
	}
	return version, mode, true
}

func containsFold(xs []string, x string) bool {
	for _, v := range xs {
		if strings.EqualFold(v, x) {
			return true
		}
	}
	return false
}
