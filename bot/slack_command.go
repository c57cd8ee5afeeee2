package bot

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Verb is what a /canary command asks for.
type Verb string

const (
	VerbStart    Verb = "start"
	VerbPromote  Verb = "promote"
	VerbHold     Verb = "hold"
	VerbResume   Verb = "resume"
	VerbRollback Verb = "rollback"
	VerbDrill    Verb = "drill"
	VerbStatus   Verb = "status"
	VerbSignals  Verb = "signals"
	VerbIC       Verb = "ic"
	VerbFreeze   Verb = "freeze"
	VerbHelp     Verb = "help"
	// The verbs of buttons in the war-room messages: there is no
	// `/canary go`, so that GO is always given on the checklist it answers.
	VerbGo     Verb = "go"     // the IC's GO at go/no-go
	VerbNoGo   Verb = "nogo"   // the IC's NO-GO: stop before traffic moves
	VerbCheck  Verb = "check"  // a reviewer ticks a red-team checklist item
	VerbReview Verb = "review" // the red-team review is done
)

// Freeze actions of `/canary freeze`.
const (
	FreezeStart  = "start"
	FreezeLift   = "lift"
	FreezeStatus = "status"
)

// ErrMalformed is wrapped by every error of ParseCommand; the message says
// what was wrong and shows the right form.
var ErrMalformed = errors.New("malformed /canary command")

// SlashCommand is a parsed `/canary` text.
type SlashCommand struct {
	Verb         Verb
	Version      string        // start
	Duration     time.Duration // hold; 0 = the plan's default
	Reason       string        // hold, rollback
	Target       string        // ic: a Slack user ID (U…/W…) or "@name"
	FreezeAction string        // freeze
	// Set by buttons only.
	Release string // the release the pressed message is about
	Stage   int    // the 1-based stage of a stage message's button; 0: none
	Item    string // check: the checklist item
}

// usage is the right form of each verb, shown in errors and in help.
var usage = []struct {
	verb Verb
	form string
	what string
}{
	{VerbStart, "/canary start <version>", "start a release (release managers)"},
	{VerbPromote, "/canary promote", "promote to the next stage (IC only)"},
	{VerbHold, "/canary hold [duration] [reason]", "hold the release, e.g. `/canary hold 15m waiting for pgbouncer` (IC only)"},
	{VerbResume, "/canary resume", "end a hold (IC only)"},
	{VerbRollback, "/canary rollback <reason>", "roll the canary back to 0% now (IC or release managers)"},
	{VerbDrill, "/canary drill", "the rollback dry run: logs each step, touches nothing"},
	{VerbStatus, "/canary status", "phase, stage, weight and the last decision"},
	{VerbSignals, "/canary signals", "the latest signal readings"},
	{VerbIC, "/canary ic @user", "hand command to another Incident Commander (release managers)"},
	{VerbFreeze, "/canary freeze start|lift|status", "the deploy freeze (release managers; status: anyone)"},
	{VerbHelp, "/canary help", "this list"},
}

func formOf(v Verb) string {
	for _, u := range usage {
		if u.verb == v {
			return u.form
		}
	}
	return "/canary help"
}

// Help is the text of `/canary help`.
func Help() string {
	var b strings.Builder
	b.WriteString("*/canary commands*\n")
	for _, u := range usage {
		fmt.Fprintf(&b, "• `%s` — %s\n", u.form, u.what)
	}
	return b.String()
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

var (
	versionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	userIDRe  = regexp.MustCompile(`^[UW][A-Z0-9]{2,30}$`)
	userName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$`)
	// mentionRe is Slack's escaped mention: <@U123> or <@U123|name>.
	mentionRe = regexp.MustCompile(`^<@([^|>]*)(?:\|[^>]*)?>$`)
)

// ParseCommand parses the text after `/canary`. Empty text is help.
func ParseCommand(text string) (SlashCommand, error) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return SlashCommand{Verb: VerbHelp}, nil
	}
	v, args := Verb(strings.ToLower(f[0])), f[1:]
	c := SlashCommand{Verb: v}
	noArgs := func() (SlashCommand, error) {
		if len(args) > 0 {
			return SlashCommand{}, malformed("`/canary %s` takes no arguments, got %q: `%s`", v, strings.Join(args, " "), formOf(v))
		}
		return c, nil
	}
	switch v {
	case VerbPromote, VerbResume, VerbDrill, VerbStatus, VerbSignals, VerbHelp:
		return noArgs()
	case VerbStart:
		if len(args) != 1 {
			return SlashCommand{}, malformed("`/canary start` needs exactly one version: `%s`, e.g. `/canary start v1.4.0`", formOf(v))
		}
		if !versionRe.MatchString(args[0]) {
			return SlashCommand{}, malformed("%q is not a version (letters, digits, `.`, `_`, `+`, `-`; up to 64): `%s`, e.g. `/canary start v1.4.0`", args[0], formOf(v))
		}
		c.Version = args[0]
	case VerbHold:
		if len(args) > 0 {
			if d, err := time.ParseDuration(args[0]); err == nil {
				if d <= 0 {
					return SlashCommand{}, malformed("hold duration must be positive, got %s: `%s`, e.g. `/canary hold 15m`", args[0], formOf(v))
				}
				c.Duration, args = d, args[1:]
			}
		}
		c.Reason = strings.Join(args, " ")
	case VerbRollback:
		if len(args) == 0 {
			return SlashCommand{}, malformed("`/canary rollback` needs a reason: `%s`, e.g. `/canary rollback eventloop lag breach`", formOf(v))
		}
		c.Reason = strings.Join(args, " ")
	case VerbIC:
		if len(args) != 1 {
			return SlashCommand{}, malformed("`/canary ic` needs exactly one person: `%s`", formOf(v))
		}
		t, err := parseMention(args[0])
		if err != nil {
			return SlashCommand{}, err
		}
		c.Target = t
	case VerbFreeze:
		if len(args) != 1 {
			return SlashCommand{}, malformed("`/canary freeze` needs one of start, lift, status: `%s`", formOf(v))
		}
		switch a := strings.ToLower(args[0]); a {
		case FreezeStart, FreezeLift, FreezeStatus:
			c.FreezeAction = a
		default:
			return SlashCommand{}, malformed("unknown freeze action %q: `%s`", args[0], formOf(v))
		}
	default:
		return SlashCommand{}, malformed("unknown command %q; the commands are: %s. See `/canary help`", f[0], verbList())
	}
	return c, nil
}

// parseMention turns `<@U123|name>`, `<@U123>` or `@name` into a user ID
// or "@name".
func parseMention(s string) (string, error) {
	if m := mentionRe.FindStringSubmatch(s); m != nil {
		if !userIDRe.MatchString(m[1]) {
			return "", malformed("%q is not a Slack user mention: `%s` (pick the person from Slack's @ list)", s, formOf(VerbIC))
		}
		return m[1], nil
	}
	if name, ok := strings.CutPrefix(s, "@"); ok && userName.MatchString(name) {
		return "@" + name, nil
	}
	return "", malformed("%q is not a person: `%s` (mention them with @)", s, formOf(VerbIC))
}

func verbList() string {
	var vs []string
	for _, u := range usage {
		vs = append(vs, string(u.verb))
	}
	return strings.Join(vs, ", ")
}

// String renders the command as `/canary` text that parses back to it.
func (c SlashCommand) String() string {
	parts := []string{string(c.Verb)}
	switch c.Verb {
	case VerbStart:
		parts = append(parts, c.Version)
	case VerbHold:
		if c.Duration > 0 {
			parts = append(parts, c.Duration.String())
		}
		if c.Reason != "" {
			parts = append(parts, c.Reason)
		}
	case VerbRollback:
		parts = append(parts, c.Reason)
	case VerbIC:
		parts = append(parts, Mention(c.Target))
	case VerbFreeze:
		parts = append(parts, c.FreezeAction)
	case VerbNoGo:
		if c.Reason != "" {
			parts = append(parts, c.Reason)
		}
	case VerbCheck:
		parts = append(parts, c.Item)
		if c.Reason != "" {
			parts = append(parts, c.Reason)
		}
	case VerbReview:
		if c.Reason != "" {
			parts = append(parts, c.Reason)
		}
	}
	return strings.Join(parts, " ")
}

// AuthVerb is the verb Authorize decides on: freeze's action matters.
func (c SlashCommand) AuthVerb() string {
	if c.Verb == VerbFreeze {
		return string(VerbFreeze) + " " + c.FreezeAction
	}
	return string(c.Verb)
}

// Mention renders a user ID as a Slack mention and leaves "@name" as is.
func Mention(user string) string {
	if userIDRe.MatchString(user) {
		return "<@" + user + ">"
	}
	if strings.HasPrefix(user, "@") {
		return user
	}
	return "@" + user
}
