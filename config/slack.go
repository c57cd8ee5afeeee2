package config

import (
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Slack is the `slack:` section: where the war-room is and who is who.
// The tokens are secrets and never come from this file.
type Slack struct {
	// Channel is the war-room channel, by #name or ID.
	Channel string
	// ReleaseManagers are the Slack user IDs who may start a release, hand
	// command over and roll back.
	ReleaseManagers []string
	// Users maps a Slack user ID to the name that person uses on the
	// command line (--as), so that Slack and the CLI agree on who the
	// Incident Commander is.
	Users map[string]string
	// Listen is the address `canarybot serve` listens on.
	Listen string
	// Review is the red-team checklist posted at T-5; empty means the
	// 15-item default the README lists.
	Review []ReviewItem
}

// ReviewItem is one line of the red-team checklist. Slack shows at most 75
// characters of a checkbox's text.
type ReviewItem struct {
	ID, Text, Guards string
}

// maxReviewItems keeps the checklist readable and within Slack's limits
// (checkbox groups of 10, 50 blocks a message).
const (
	maxReviewItems    = 30
	maxReviewItemText = 75
)

// Defaults of the slack section.
const (
	DefaultSlackChannel = "#spark-warroom"
	DefaultSlackListen  = "127.0.0.1:8080"
)

// DefaultSlack is the slack section of an empty canary.yaml.
func DefaultSlack() Slack {
	return Slack{Channel: DefaultSlackChannel, Listen: DefaultSlackListen}
}

var (
	slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,30}$`)
	// A channel is a #name (lower case, digits, - and _, up to 80) or an ID.
	slackChannel = regexp.MustCompile(`^(#[a-z0-9][a-z0-9_-]{0,79}|[CG][A-Z0-9]{2,30})$`)
)

func (d *decoder) slack(out *Slack) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.mapping(n, path, "a mapping like {channel: \"#spark-warroom\", release_managers: [U024BE7LH]}", []field{
			{"channel", d.slackChannel(&out.Channel)},
			{"release_managers", d.slackUserIDs(&out.ReleaseManagers)},
			{"users", d.slackUsers(&out.Users)},
			{"listen", d.listen(&out.Listen)},
			{"review", d.review(&out.Review)},
		})
	}
}

func (d *decoder) review(out *[]ReviewItem) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		items, ok := d.list(n, path, "a list of checklist items like [{id: RT01, text: \"Diff read end to end\", guards: \"an unreviewed change\"}]")
		if !ok {
			return
		}
		if len(items) > maxReviewItems {
			d.errorf(n, path, "expected at most %d checklist items, got %d", maxReviewItems, len(items))
			return
		}
		seen := map[string]bool{}
		var got []ReviewItem
		for i, it := range items {
			p := path + "[" + strconv.Itoa(i) + "]"
			var ri ReviewItem
			given, ok := d.mapping(it, p, "a checklist item like {id: RT01, text: \"Diff read end to end\", guards: \"an unreviewed change\"}", []field{
				{"id", d.str(&ri.ID)},
				{"text", d.str(&ri.Text)},
				{"guards", d.str(&ri.Guards)},
			})
			if !ok {
				continue
			}
			d.require(it, p, given, "id", "text")
			for _, f := range []struct{ name, v string }{{"text", ri.Text}, {"guards", ri.Guards}, {"id", ri.ID}} {
				if utf8.RuneCountInString(f.v) > maxReviewItemText {
					d.errorf(it, p+"."+f.name, "expected at most %d characters (Slack cuts a checkbox's text there), got %d", maxReviewItemText, utf8.RuneCountInString(f.v))
				}
			}
			if ri.ID != "" && seen[ri.ID] {
				d.errorf(it, p+".id", "expected a unique id, %s is used twice: a tick is recognised by its id", strconv.Quote(ri.ID))
			}
			seen[ri.ID] = true
			got = append(got, ri)
		}
		*out = got
	}
}

func (d *decoder) slackChannel(out *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.text(n, path, "a channel like \"#spark-warroom\"")
		if !ok {
			return
		}
		if !slackChannel.MatchString(s) {
			d.errorf(n, path, "expected a channel as \"#name\" (quoted: a bare # starts a YAML comment) or a channel ID like C024BE91L, got %s", strconv.Quote(s))
			return
		}
		*out = s
	}
}

func (d *decoder) slackUserID(n *yaml.Node, path string) (string, bool) {
	s, ok := d.text(n, path, "a Slack user ID like U024BE7LH")
	if !ok {
		return "", false
	}
	if !slackUserID.MatchString(s) {
		hint := ""
		if strings.HasPrefix(s, "@") {
			hint = ": names change and are not unique; use the member ID (profile → ⋮ → Copy member ID)"
		}
		d.errorf(n, path, "expected a Slack user ID like U024BE7LH, got %s%s", strconv.Quote(s), hint)
		return "", false
	}
	return s, true
}

func (d *decoder) slackUserIDs(out *[]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		items, ok := d.list(n, path, "a list of Slack user IDs like [U024BE7LH]")
		if !ok {
			return
		}
		var ids []string
		for i, it := range items {
			ip := path + "[" + strconv.Itoa(i) + "]"
			id, ok := d.slackUserID(it, ip)
			if !ok {
				continue
			}
			if slices.Contains(ids, id) {
				d.errorf(it, ip, "%s is listed twice; keep one", id)
				continue
			}
			ids = append(ids, id)
		}
		*out = ids
	}
}

// slackUsers replaces the whole mapping, like triggers' labels: there is no
// default to merge with.
func (d *decoder) slackUsers(out *map[string]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		keys := textKeys{
			want:      "a mapping of Slack user ID to CLI name like {U024BE7LH: alice}",
			key:       "a Slack user ID like U024BE7LH",
			valid:     utf8.ValidString,
			firstLine: true,
		}
		names := map[string]string{}
		textMap(d, n, path, out, keys, func(kn, val *yaml.Node, _, kp string) (string, bool) {
			id, ok := d.slackUserID(kn, kp)
			if !ok {
				return "", false
			}
			if isNull(val) {
				d.errorf(val, kp, "expected the name %s uses with --as, got nothing", id)
				return "", false
			}
			name, ok := d.text(val, kp, "a CLI user name like alice")
			if !ok {
				return "", false
			}
			switch {
			case strings.TrimSpace(name) != name || name == "" || strings.ContainsAny(name, " \t\n"):
				d.errorf(val, kp, "expected a CLI user name like alice (no spaces), got %s", strconv.Quote(name))
				return "", false
			case slackUserID.MatchString(name) && name != id:
				d.errorf(val, kp, "%s would be another Slack user's ID; give the name %s uses with --as", name, id)
				return "", false
			}
			if other, dup := names[name]; dup {
				d.errorf(val, kp, "%s and %s both map to %q; each person needs their own name", other, id, name)
				return "", false
			}
			names[name] = id
			return name, true
		})
	}
}

func (d *decoder) listen(out *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.text(n, path, "an address like 127.0.0.1:8080")
		if !ok {
			return
		}
		host, port, err := net.SplitHostPort(s)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil || strings.ContainsAny(host, " /") {
			d.errorf(n, path, "expected host:port like 127.0.0.1:8080 (or :8080 for every interface), got %s", strconv.Quote(s))
			return
		}
		*out = s
	}
}

func (e *encoder) slack(s Slack) *yaml.Node {
	rms := flow(seq())
	for i, id := range s.ReleaseManagers {
		rms.Content = append(rms.Content, e.str("slack.release_managers["+strconv.Itoa(i)+"]", id))
	}
	users := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, id := range sortedKeys(s.Users) {
		users.Content = append(users.Content, e.str("slack.users", id), e.str("slack.users."+id, s.Users[id]))
	}
	kv := []any{
		"channel", e.str("slack.channel", s.Channel),
		"release_managers", rms,
		"users", users,
		"listen", e.str("slack.listen", s.Listen),
	}
	if len(s.Review) > 0 {
		review := seq()
		for i, it := range s.Review {
			p := "slack.review[" + strconv.Itoa(i) + "]"
			item := []any{"id", e.str(p+".id", it.ID), "text", e.str(p+".text", it.Text)}
			if it.Guards != "" {
				item = append(item, "guards", e.str(p+".guards", it.Guards))
			}
			review.Content = append(review.Content, pairs(item...))
		}
		kv = append(kv, "review", review)
	}
	return pairs(kv...)
}
