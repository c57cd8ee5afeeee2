package bot

import (
	"strings"
	"testing"
)

func TestAuthorize(t *testing.T) {
	const ic, rm, other = "UIC", "URM", "UOTHER"
	rms := []string{rm, "URM2"}
	// who may run each verb: i = the IC, r = a release manager, o = anyone else.
	matrix := map[string]string{
		"start": "r", "promote": "i", "hold": "i", "resume": "i", "rollback": "ir",
		"drill": "iro", "status": "iro", "signals": "iro", "help": "iro", "ic": "r",
		"freeze start": "ir", "freeze lift": "ir", "freeze status": "iro",
		// buttons
		"go": "i", "nogo": "i", "check": "iro", "review": "iro",
		"deploy": "", "": "",
	}
	who := map[byte]string{'i': ic, 'r': rm, 'o': other}
	for verb, allowed := range matrix {
		for _, k := range []byte("iro") {
			user := who[k]
			ok, why := Authorize(verb, user, ic, rms)
			want := strings.IndexByte(allowed, k) >= 0
			if ok != want {
				t.Errorf("Authorize(%q, %s) = %v (%s), want %v", verb, user, ok, why, want)
			}
			if ok && why != "" {
				t.Errorf("Authorize(%q, %s) allowed with a reason %q", verb, user, why)
			}
			if !ok {
				if !strings.HasPrefix(why, "Sorry") {
					t.Errorf("refusal of %q is not polite: %q", verb, why)
				}
				if strings.Contains(allowed, "i") && !strings.Contains(why, "<@UIC>") {
					t.Errorf("refusal of %q does not name the IC: %q", verb, why)
				}
				if strings.Contains(allowed, "r") && !strings.Contains(why, "<@URM>, <@URM2>") {
					t.Errorf("refusal of %q does not name the release managers: %q", verb, why)
				}
			}
		}
	}
}

func TestAuthorizeEdges(t *testing.T) {
	tests := []struct {
		name, verb, user, ic string
		rms                  []string
		want                 bool
		whyHas               string
	}{
		{"no IC: nobody promotes", "promote", "", "", nil, false, "has none yet"},
		{"release manager is not IC", "promote", "URM", "UIC", []string{"URM"}, false, "<@UIC>"},
		{"no release managers configured", "start", "U1", "", nil, false, "none are configured"},
		{"name-form IC", "hold", "@amy", "@amy", nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := Authorize(tt.verb, tt.user, tt.ic, tt.rms)
			if ok != tt.want || !strings.Contains(why, tt.whyHas) {
				t.Fatalf("Authorize = %v %q, want %v with %q", ok, why, tt.want, tt.whyHas)
			}
		})
	}
}

func TestDirectory(t *testing.T) {
	d, err := NewDirectory(map[string]string{"U0ALICE": "alice", "U0BOB": "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name("U0ALICE") != "alice" || d.Name("U0CAROL") != "U0CAROL" {
		t.Fatalf("Name: %q %q", d.Name("U0ALICE"), d.Name("U0CAROL"))
	}
	if d.Mention("alice") != "<@U0ALICE>" || d.Mention("U0CAROL") != "<@U0CAROL>" || d.Mention("dave") != "@dave" {
		t.Fatalf("Mention: %q %q %q", d.Mention("alice"), d.Mention("U0CAROL"), d.Mention("dave"))
	}
	// The IC as the CLI knows them ("alice") is the Slack user U0ALICE; a
	// release manager configured by Slack ID is recognised by name.
	tests := []struct {
		verb, user string
		want       bool
		whyHas     string
	}{
		{"promote", "alice", true, ""},
		{"promote", "bob", false, "(<@U0ALICE>)"},
		{"rollback", "bob", true, ""},
		{"ic", "alice", false, "(<@U0BOB>)"},
	}
	for _, tt := range tests {
		ok, why := d.Authorize(tt.verb, tt.user, "alice", []string{"U0BOB"})
		if ok != tt.want || !strings.Contains(why, tt.whyHas) {
			t.Errorf("%s by %s = %v %q, want %v with %q", tt.verb, tt.user, ok, why, tt.want, tt.whyHas)
		}
	}
	for _, bad := range []map[string]string{
		{"alice": "alice"},
		{"U0A": ""},
		{"U0A": "x", "U0B": "x"},
		{"U0A": "U0B"},
	} {
		if _, err := NewDirectory(bad); err == nil {
			t.Errorf("NewDirectory(%v) accepted", bad)
		}
	}
}
