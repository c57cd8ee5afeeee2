package config

import (
	"os"
	"reflect"
	"testing"
)

func TestSlackSection(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		c, err := Parse(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := (Slack{Channel: "#spark-warroom", Listen: "127.0.0.1:8080"}); !reflect.DeepEqual(c.Slack, want) {
			t.Fatalf("default slack = %+v, want %+v", c.Slack, want)
		}
	})
	t.Run("valid", func(t *testing.T) {
		c, err := Load("testdata/slack/valid.yaml")
		if err != nil {
			t.Fatal(err)
		}
		want := Slack{
			Channel:         "#release-war-room",
			ReleaseManagers: []string{"U0ALICE", "W0BOB"},
			Users:           map[string]string{"U0ALICE": "alice", "W0BOB": "bob", "U0CAROL": "carol.s"},
			Listen:          "0.0.0.0:9090",
			Review: []ReviewItem{
				{ID: "RT01", Text: "Diff since the last release read end to end", Guards: "an unreviewed change riding along"},
				{ID: "RT02", Text: "Schema migrations are backward compatible"},
			},
		}
		if !reflect.DeepEqual(c.Slack, want) {
			t.Fatalf("slack = %+v, want %+v", c.Slack, want)
		}
		// The rest stays the runbook's.
		c.Slack = DefaultSlack()
		if !reflect.DeepEqual(c, DefaultConfig()) {
			t.Fatal("a slack section changed other settings")
		}
	})
	t.Run("round trip", func(t *testing.T) {
		c, err := Load("testdata/slack/valid.yaml")
		if err != nil {
			t.Fatal(err)
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(c)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back.Slack, c.Slack) {
			t.Fatalf("round trip: %+v, want %+v\n%s", back.Slack, c.Slack, out)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		data, err := os.ReadFile("testdata/slack/invalid.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(data)
		checkProblems(t, err, []want{
			{"slack.channel", 2, `expected a channel as "#name" (quoted: a bare # starts a YAML comment)`},
			{"slack.release_managers[0]", 3, `got "@alice": names change and are not unique`},
			{"slack.release_managers[2]", 3, "U0BOB is listed twice"},
			{"slack.users.alice", 6, `expected a Slack user ID like U024BE7LH, got "alice"`},
			{"slack.users.U0CAROL", 7, `U0ALICE and U0CAROL both map to "alice"`},
			{"slack.users.U0DAVE", 8, "U0ERIN would be another Slack user's ID"},
			{"slack.users.U0FRANK", 9, "expected the name U0FRANK uses with --as, got nothing"},
			{"slack.listen", 10, `expected host:port like 127.0.0.1:8080`},
			{"slack.token", 11, `unknown key "token"`},
		})
	})
	t.Run("invalid review", func(t *testing.T) {
		data, err := os.ReadFile("testdata/slack/invalid_review.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(data)
		checkProblems(t, err, []want{
			{"slack.review[0].text", 3, "expected at most 75 characters"},
			{"slack.review[1].id", 4, `"RT01" is used twice`},
			{"slack.review[2].id", 5, "missing; each entry needs id and text"},
		})
	})
}
