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
	isIC := releaseIC != "" && user == releaseIC
	isRM := slices.Contains(releaseManagers, user)
	ic := "the Incident Commander"
	if releaseIC != "" {
		ic += " (" + Mention(releaseIC) + ")"
	}
	rms := "a release manager"
	if len(releaseManagers) > 0 {
		var ms []string
		for _, m := range releaseManagers {
			ms = append(ms, Mention(m))
		}
		rms += " (" + strings.Join(ms, ", ") + ")"
	} else {
		rms += " (none are configured: see --release-managers)"
	}
	switch verb {
	case "status", "signals", "help", "drill", "freeze status":
		return true, ""
	case "promote", "hold", "resume":
		if isIC {
			return true, ""
		}
		if releaseIC == "" {
			return false, fmt.Sprintf("Sorry, only the Incident Commander can %s, and this release has none yet: %s can name one with `/canary ic @user`.", verb, rms)
		}
		return false, fmt.Sprintf("Sorry, only %s can %s this release. Ask them, or ask %s to hand command to you with `/canary ic @you`.", ic, verb, rms)
	case "rollback":
		if isIC || isRM {
			return true, ""
		}
		return false, fmt.Sprintf("Sorry, only %s or %s can roll back. Please ask one of them; if it is urgent, say so in the channel.", ic, rms)
	case "start", "ic", "freeze start", "freeze lift":
		if isRM {
			return true, ""
		}
		return false, fmt.Sprintf("Sorry, only %s can `/canary %s`. Please ask one of them.", rms, verb)
	}
	return false, fmt.Sprintf("Sorry, `%s` is not a command anyone may run: see `/canary help`.", verb)
}
