package config

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/canarybot/canarybot/rollout"
)

// Marshal writes c as canary.yaml: every field, durations as "15m", in the
// order of the example file. Parse gives c back. Default signals that c does
// not have are written as {name: ..., enabled: false}, since a signals list
// merges over the defaults rather than replacing them.
func Marshal(c Config) ([]byte, error) {
	e := &encoder{}
	root := e.config(c)
	if e.err != nil {
		return nil, e.err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// encoder builds the node tree; the first problem is kept in err.
type encoder struct {
	err error
}

func (e *encoder) str(path, s string) *yaml.Node {
	// The YAML encoder would silently write such bytes as !!binary, which
	// Parse would then read as base64 text.
	if !utf8.ValidString(s) && e.err == nil {
		e.err = fmt.Errorf("marshal config: %s is not valid UTF-8", path)
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if blockUnsafe(s) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// blockUnsafe reports whether the YAML encoder's default literal block (|)
// might not read back as s. It writes a first line that starts with a tab
// without an indentation indicator, which the parser then rejects; lines
// starting with blanks are quoted as well, since the block's indentation is
// guessed from them.
func blockUnsafe(s string) bool {
	if !strings.Contains(s, "\n") {
		return false
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, " ") {
			return true
		}
	}
	return false
}

func durationNode(d time.Duration) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: formatDuration(d)}
}

func intNode(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// floatNode leaves the spelling (.inf, .nan, shortest exact digits) to the
// YAML encoder, which writes floats so that they read back bit for bit.
func floatNode(f float64) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(f); err != nil {
		// Encoding a float64 cannot fail; keep a readable value regardless.
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	return &n
}

// pairs builds a mapping from alternating keys and value nodes.
func pairs(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Content = append(m.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: kv[i].(string)},
			kv[i+1].(*yaml.Node))
	}
	return m
}

func flow(n *yaml.Node) *yaml.Node {
	n.Style = yaml.FlowStyle
	return n
}

func seq(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

func (e *encoder) config(c Config) *yaml.Node {
	p := c.Plan
	var stages, steps, cadence []*yaml.Node
	for _, s := range p.Stages {
		stages = append(stages, flow(pairs("weight", intNode(s.Weight), "dwell", durationNode(s.Dwell))))
	}
	for i, s := range p.Timeline {
		steps = append(steps, flow(pairs("name", e.str(fmt.Sprintf("timeline[%d].name", i), string(s.Name)), "offset", durationNode(s.Offset))))
	}
	for _, c := range p.FirstNight.Cadence {
		cadence = append(cadence, flow(pairs("until", durationNode(c.Until), "every", durationNode(c.Every))))
	}
	labels := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range sortedKeys(p.Triggers.Labels) {
		lp := "triggers.labels." + k
		labels.Content = append(labels.Content, e.str(lp, k), e.str(lp, p.Triggers.Labels[k]))
	}
	return pairs(
		"service", e.str("service", p.Service),
		"evidence_dir", e.str("evidence_dir", c.EvidenceDir),
		"state", e.str("state", c.StatePath),
		"tick", durationNode(p.Tick),
		"hold", durationNode(p.Hold),
		"window", e.str("window", p.Window),
		"auto_promote", boolNode(p.AutoPromote),
		"on_breach", e.str("on_breach", string(p.OnBreach)),
		"max_query_errors", intNode(p.MaxQueryErrors),
		"stages", seq(stages...),
		"signals", e.signals(p.Signals),
		"triggers", pairs("labels", labels),
		"trend", pairs(
			"min_points", intNode(p.Trend.MinPoints),
			"horizon", durationNode(p.Trend.Horizon),
			"lookback", durationNode(p.Trend.Lookback)),
		"timeline", seq(steps...),
		"first_night", pairs("cadence", seq(cadence...)),
		"slack", e.slack(c.Slack),
		"preflight", e.preflight(c.Preflight),
		"battery", e.battery(c.Battery),
		"green_button", e.greenButton(c.GreenButton),
		"github", e.github(c.GitHub),
	)
}

// signals writes each signal in full. baseline_query and relative are left
// out when empty unless the default of the same name has them, in which
// case leaving them out would bring the default's back.
func (e *encoder) signals(signals []rollout.SignalSpec) *yaml.Node {
	defaults := DefaultSignals()
	out := seq()
	present := map[string]bool{}
	for _, s := range signals {
		present[s.Name] = true
		var def rollout.SignalSpec
		for _, d := range defaults {
			if d.Name == s.Name {
				def = d
			}
		}
		sp := "signals[" + s.Name + "]"
		kv := []any{
			"name", e.str(sp+".name", s.Name),
			"column", e.str(sp+".column", s.Column),
			"title", e.str(sp+".title", s.Title),
			"query", e.str(sp+".query", s.Query),
		}
		if s.BaselineQuery != "" || def.BaselineQuery != "" {
			kv = append(kv, "baseline_query", e.str(sp+".baseline_query", s.BaselineQuery))
		}
		kv = append(kv,
			"op", e.str(sp+".op", string(s.Op)),
			"threshold", floatNode(s.Threshold))
		if s.Relative || def.Relative {
			kv = append(kv, "relative", boolNode(s.Relative))
		}
		if s.Floor != 0 || def.Floor != 0 {
			kv = append(kv, "floor", floatNode(s.Floor))
		}
		kv = append(kv, "unit", e.str(sp+".unit", string(s.Unit)))
		out.Content = append(out.Content, pairs(kv...))
	}
	for _, d := range defaults {
		if !present[d.Name] {
			out.Content = append(out.Content, flow(pairs("name", e.str("signals", d.Name), "enabled", boolNode(false))))
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
