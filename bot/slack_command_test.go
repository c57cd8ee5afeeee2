package bot

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		text    string
		want    SlashCommand
		wantErr string // substrings of the error, which must also show the form
	}{
		{text: "", want: SlashCommand{Verb: VerbHelp}},
		{text: "help", want: SlashCommand{Verb: VerbHelp}},
		{text: "  HELP  ", want: SlashCommand{Verb: VerbHelp}},
		{text: "help me", wantErr: "`/canary help`"},
		{text: "start v1.4.0", want: SlashCommand{Verb: VerbStart, Version: "v1.4.0"}},
		{text: "start", wantErr: "`/canary start <version>`"},
		{text: "start v1 v2", wantErr: "`/canary start <version>`"},
		{text: "start ../../etc", wantErr: "is not a version"},
		{text: "promote", want: SlashCommand{Verb: VerbPromote}},
		{text: "promote now", wantErr: "`/canary promote`"},
		{text: "hold", want: SlashCommand{Verb: VerbHold}},
		{text: "hold 15m", want: SlashCommand{Verb: VerbHold, Duration: 15 * time.Minute}},
		{text: "hold 15m pgbouncer  waits", want: SlashCommand{Verb: VerbHold, Duration: 15 * time.Minute, Reason: "pgbouncer waits"}},
		{text: "hold pgbouncer waits", want: SlashCommand{Verb: VerbHold, Reason: "pgbouncer waits"}},
		{text: "hold -5m", wantErr: "must be positive"},
		{text: "hold 0s", wantErr: "`/canary hold [duration] [reason]`"},
		{text: "resume", want: SlashCommand{Verb: VerbResume}},
		{text: "resume x", wantErr: "`/canary resume`"},
		{text: "rollback eventloop lag", want: SlashCommand{Verb: VerbRollback, Reason: "eventloop lag"}},
		{text: "rollback", wantErr: "`/canary rollback` needs a reason: `/canary rollback <reason>`"},
		{text: "drill", want: SlashCommand{Verb: VerbDrill}},
		{text: "drill 25%", wantErr: "`/canary drill`"},
		{text: "status", want: SlashCommand{Verb: VerbStatus}},
		{text: "status v1", wantErr: "`/canary status`"},
		{text: "signals", want: SlashCommand{Verb: VerbSignals}},
		{text: "ic <@U123ABC|roadrunner>", want: SlashCommand{Verb: VerbIC, Target: "U123ABC"}},
		{text: "ic <@W0XYZ>", want: SlashCommand{Verb: VerbIC, Target: "W0XYZ"}},
		{text: "ic @roadrunner", want: SlashCommand{Verb: VerbIC, Target: "@roadrunner"}},
		{text: "ic", wantErr: "`/canary ic @user`"},
		{text: "ic roadrunner", wantErr: "mention them with @"},
		{text: "ic <@foo|bar>", wantErr: "not a Slack user mention"},
		{text: "ic @a @b", wantErr: "exactly one person"},
		{text: "freeze start", want: SlashCommand{Verb: VerbFreeze, FreezeAction: FreezeStart}},
		{text: "freeze LIFT", want: SlashCommand{Verb: VerbFreeze, FreezeAction: FreezeLift}},
		{text: "freeze status", want: SlashCommand{Verb: VerbFreeze, FreezeAction: FreezeStatus}},
		{text: "freeze", wantErr: "`/canary freeze start|lift|status`"},
		{text: "freeze thaw", wantErr: "unknown freeze action"},
		{text: "deploy v1", wantErr: "unknown command \"deploy\""},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := ParseCommand(tt.text)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseCommand(%q) = %+v, want an error", tt.text, got)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v does not wrap ErrMalformed", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "/canary") {
					t.Errorf("error %q lacks %q or the right form", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.text, err)
			}
			if got != tt.want {
				t.Fatalf("ParseCommand(%q) = %+v, want %+v", tt.text, got, tt.want)
			}
			back, err := ParseCommand(got.String())
			if err != nil || back != got {
				t.Fatalf("String() %q parses to %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestHelpListsEveryVerb(t *testing.T) {
	h := Help()
	for _, u := range usage {
		if !strings.Contains(h, u.form) {
			t.Errorf("help lacks %s", u.form)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"", "start v1.4.0", "hold 15m db", "hold 1h0m0s", "rollback x y", "ic <@U1AB|n>", "ic @n", "freeze lift", "status", "hold 9999999999h x", "hold \u00a0 x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCommand(text)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		back, err := ParseCommand(c.String())
		if err != nil {
			t.Fatalf("%q → %+v → %q: %v", text, c, c.String(), err)
		}
		if back != c {
			t.Fatalf("%q → %+v → %q → %+v", text, c, c.String(), back)
		}
	})
}
