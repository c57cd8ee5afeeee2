package deploy

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/canarybot/canarybot/bot"
)

// slackManifest is the part of a Slack app manifest canarybot relies on.
type slackManifest struct {
	Features struct {
		BotUser struct {
			DisplayName string `yaml:"display_name"`
		} `yaml:"bot_user"`
		SlashCommands []struct {
			Command      string `yaml:"command"`
			URL          string `yaml:"url"`
			ShouldEscape bool   `yaml:"should_escape"`
		} `yaml:"slash_commands"`
	} `yaml:"features"`
	OAuthConfig struct {
		Scopes struct {
			Bot []string `yaml:"bot"`
		} `yaml:"scopes"`
	} `yaml:"oauth_config"`
	Settings struct {
		Interactivity struct {
			IsEnabled  bool   `yaml:"is_enabled"`
			RequestURL string `yaml:"request_url"`
		} `yaml:"interactivity"`
		SocketModeEnabled *bool `yaml:"socket_mode_enabled"`
	} `yaml:"settings"`
}

// slackMethodScopes maps the slack-go client methods the bot calls to the
// Web API method and the bot scope it needs (api.slack.com/methods).
var slackMethodScopes = map[string]struct{ api, scope string }{
	"PostMessageContext":            {"chat.postMessage", "chat:write"},
	"UpdateMessageContext":          {"chat.update", "chat:write"},
	"GetConversationHistoryContext": {"conversations.history", "channels:history"},
	"GetConversationRepliesContext": {"conversations.replies", "channels:history"},
	"GetConversationsContext":       {"conversations.list", "channels:read"},
}

// TestSlackManifest checks deploy/slack/manifest.yaml asks for exactly the
// scopes of the Slack methods the bot calls (every method of bot.OutboxAPI,
// the only Slack client the bot holds, plus the slash command), and points
// Slack at serve's endpoints.
func TestSlackManifest(t *testing.T) {
	data, err := os.ReadFile("slack/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m slackManifest
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("manifest.yaml: %v", err)
	}
	want := []string{"commands"} // the slash command
	api := reflect.TypeFor[bot.OutboxAPI]()
	for i := range api.NumMethod() {
		name := api.Method(i).Name
		s, ok := slackMethodScopes[name]
		if !ok {
			t.Errorf("the bot calls %s, which this test does not know: add its Slack method and scope here and to the manifest", name)
			continue
		}
		if !slices.Contains(want, s.scope) {
			want = append(want, s.scope)
		}
	}
	got := slices.Clone(m.OAuthConfig.Scopes.Bot)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("bot scopes %v, want exactly %v", got, want)
	}
	if len(m.Features.SlashCommands) != 1 {
		t.Fatalf("want one slash command, got %d", len(m.Features.SlashCommands))
	}
	sc := m.Features.SlashCommands[0]
	if sc.Command != "/canary" || !strings.HasSuffix(sc.URL, "/slack/commands") {
		t.Errorf("slash command %s at %s, want /canary at …/slack/commands", sc.Command, sc.URL)
	}
	if !sc.ShouldEscape {
		t.Error("should_escape is off: `/canary ic @user` would carry a name, not a user ID")
	}
	if i := m.Settings.Interactivity; !i.IsEnabled || !strings.HasSuffix(i.RequestURL, "/slack/interactions") {
		t.Errorf("interactivity %+v, want enabled at …/slack/interactions (the war-room buttons)", i)
	}
	if m.Settings.SocketModeEnabled == nil {
		t.Error("socket_mode_enabled is not set: say whether Slack pushes over HTTP or Socket Mode")
	}
	if m.Features.BotUser.DisplayName == "" {
		t.Error("no bot user: the bot could not post")
	}
}
