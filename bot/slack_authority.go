package bot

import (
	"fmt"
	"slices"
	"strings"
)

// Authorize is the war-room's authority matrix. verb is
// SlashCommand.AuthVerb(): a verb, or "freeze start|lift|status". user and
// releaseIC are Slack user IDs (or "@name"). A refusal says politely who
// may do it instead. Unknown verbs are refused.
func Authorize(verb, user, releaseIC string, releaseManagers []string) (ok bool, why string) {
	return Directory{}.Authorize(verb, user, releaseIC, releaseManagers)
}

// Directory maps Slack user IDs to the names people go by on the command
// line (`canarybot promote --as alice`), so that the Incident Commander
// handed over in Slack is the same person the CLI checks. A Slack user
// without an entry goes by their Slack ID. The zero Directory maps nobody.
type Directory struct {
	byID   map[string]string
	byName map[string]string
}

// NewDirectory builds a directory from Slack user ID → CLI name. Two IDs
// with one name would let either act as the other, so that is an error.
func NewDirectory(users map[string]string) (Directory, error) {
	d := Directory{byID: map[string]string{}, byName: map[string]string{}}
	ids := make([]string, 0, len(users))
	for id := range users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		name := users[id]
		if !userIDRe.MatchString(id) {
			return Directory{}, fmt.Errorf("slack user %q is not a Slack user ID like U024BE7LH (profile → ⋮ → Copy member ID)", id)
		}
		if name == "" {
			return Directory{}, fmt.Errorf("slack user %s maps to an empty name; give the name they use with --as", id)
		}
		if other, dup := d.byName[name]; dup {
			return Directory{}, fmt.Errorf("slack users %s and %s both map to %q; each person needs their own name", other, id, name)
		}
		if userIDRe.MatchString(name) && name != id {
			return Directory{}, fmt.Errorf("slack user %s maps to %q, which is another Slack user's ID", id, name)
		}
		d.byID[id], d.byName[name] = name, id
	}
	return d, nil
}

// Name is who a Slack user is to the engine: their CLI name, or their ID.
func (d Directory) Name(slackID string) string {
	if n, ok := d.byID[slackID]; ok {
		return n
	}
	return slackID
}

// Mention renders a person, by CLI name or Slack ID, as a Slack mention
// when their Slack ID is known.
func (d Directory) Mention(user string) string {
	if id, ok := d.byName[user]; ok {
		return "<@" + id + ">"
	}
	return Mention(user)
}

// Authorize is the authority matrix over people as the engine knows them:
// user, releaseIC and releaseManagers are names from Name (a release
// manager configured by Slack ID is matched through the directory too).
func (d Directory) Authorize(verb, user, releaseIC string, releaseManagers []string) (ok bool, why string) {
	isIC := releaseIC != "" && user == releaseIC
	isRM := slices.ContainsFunc(releaseManagers, func(m string) bool { return m == user || d.Name(m) == user })
	ic := "the Incident Commander"
	if releaseIC != "" {
		ic += " (" + d.Mention(releaseIC) + ")"
	}
	rms := "a release manager"
	if len(releaseManagers) > 0 {
		var ms []string
		for _, m := range releaseManagers {
			ms = append(ms, d.Mention(d.Name(m)))
		}
		rms += " (" + strings.Join(ms, ", ") + ")"
	} else {
		rms += " (none are configured: see slack.release_managers in canary.yaml or serve --release-managers)"
	}
	switch verb {
	case "status", "signals", "help", "drill", "freeze status", "check", "review":
		return true, ""
	case "promote", "hold", "resume", "go", "nogo":
		if isIC {
			return true, ""
		}
		what := verb
		switch verb {
		case "go":
			what = "give the GO"
		case "nogo":
			what = "call NO-GO"
		}
		if releaseIC == "" {
			return false, fmt.Sprintf("Sorry, only the Incident Commander can %s, and this release has none yet: %s can name one with `/canary ic @user`.", what, rms)
		}
		return false, fmt.Sprintf("Sorry, only %s can %s for this release. Ask them, or ask %s to hand command to you with `/canary ic @you`.", ic, what, rms)
	case "rollback":
		if isIC || isRM {
			return true, ""
		}
		return false, fmt.Sprintf("Sorry, only %s or %s can roll back. Please ask one of them; if it is urgent, say so in the channel.", ic, rms)
	case "freeze start", "freeze lift":
		if isIC || isRM {
			return true, ""
		}
		return false, fmt.Sprintf("Sorry, only %s or %s can `/canary %s`. Please ask one of them.", ic, rms, verb)
	case "start", "ic":
		if isRM {
			return true, ""
		}
		return false, fmt.Sprintf("Sorry, only %s can `/canary %s`. Please ask one of them.", rms, verb)
	}
	return false, fmt.Sprintf("Sorry, `%s` is not a command anyone may run: see `/canary help`.", verb)
}
