package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/canarybot/canarybot/rollout"
)

// position is where a value was written in the file, 1-based.
type position struct{ line, col int }

// decoder walks the yaml.Node tree of canary.yaml over a Config that already
// holds the defaults. It never stops at the first problem: every error is
// collected with the line of the node it is about, and the position of every
// value given is kept so that validation can point at it too.
type decoder struct {
	file string
	errs []*FieldError
	// pos maps a field's path to where its value was written.
	pos map[string]position
	// bad lists the paths that failed to decode: their value is left at the
	// default or zero, and validation must not complain about it again.
	bad []string
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, pos: map[string]position{}}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	fe := &FieldError{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		fe.Line, fe.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, fe)
	d.bad = append(d.bad, path)
}

// keyErrorf reports a problem with a key rather than a value: the value
// decoded (or was skipped) as usual, so validation of it still counts.
func (d *decoder) keyErrorf(n *yaml.Node, path, format string, args ...any) {
	d.errorf(n, path, format, args...)
	d.bad = d.bad[:len(d.bad)-1]
}

// deref follows an alias to the node it names. Aliases cannot nest, and the
// schema is only a few levels deep, so following them cannot loop or blow up.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe says what a node is, for "expected X, got Y".
func describe(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return "an empty value"
	case n.Kind == yaml.ScalarNode:
		v := n.Value
		if len(v) > 60 {
			v = v[:57] + "..."
		}
		if n.ShortTag() == "!!str" {
			return strconv.Quote(v)
		}
		return v
	default:
		return "something else"
	}
}

// unquoteHint says to drop the quotes when the quoted text, written plain,
// would have been a value of one of the wanted tags ("true", "3").
func unquoteHint(v *yaml.Node, tags ...string) string {
	if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		return ""
	}
	plain := yaml.Node{Kind: yaml.ScalarNode, Value: v.Value}
	for _, t := range tags {
		if plain.ShortTag() == t {
			return "; remove the quotes"
		}
	}
	return ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// field is one known key of a mapping and how to decode its value.
type field struct {
	key    string
	decode func(n *yaml.Node, path string)
}

// mapping decodes the known keys of a mapping node and reports unknown,
// repeated and merge keys. A key whose value is empty (null) counts as not
// given, so the default stays. It returns the keys whose value was decoded,
// or nil with ok false when n is not a mapping at all.
func (d *decoder) mapping(n *yaml.Node, path, expected string, fields []field) (given map[string]bool, ok bool) {
	v := deref(n)
	if v.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected %s, got %s", expected, describe(v))
		return nil, false
	}
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	given = map[string]bool{}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		kn, val := v.Content[i], v.Content[i+1]
		k := deref(kn)
		if k.Kind != yaml.ScalarNode {
			d.keyErrorf(kn, path, "expected a key such as %s, got %s", keys[0], describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.keyErrorf(kn, path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		kp := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.keyErrorf(kn, kp, "given twice (first at line %d); keep one", first.Line)
			continue
		}
		seen[k.Value] = kn
		var f *field
		for i := range fields {
			if fields[i].key == k.Value {
				f = &fields[i]
				break
			}
		}
		if f == nil {
			if msg := secretKey(kp, k.Value); msg != "" {
				d.keyErrorf(kn, kp, "%s", msg)
				continue
			}
			d.keyErrorf(kn, kp, "unknown key %s%s", strconv.Quote(k.Value), knownKeys(k.Value, keys))
			continue
		}
		if isNull(val) {
			continue
		}
		d.pos[kp] = position{val.Line, val.Column}
		given[k.Value] = true
		f.decode(val, kp)
	}
	return given, true
}

// knownKeys is the tail of an unknown-key message: a suggestion when one is
// close, else the list of keys allowed there.
func knownKeys(k string, keys []string) string {
	if s := didYouMean(k, keys); s != "" {
		return s
	}
	return "; expected one of: " + strings.Join(keys, ", ")
}

// list returns the items of a sequence node, recording each item's position.
func (d *decoder) list(n *yaml.Node, path, expected string) ([]*yaml.Node, bool) {
	v := deref(n)
	if v.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected %s, got %s", expected, describe(v))
		return nil, false
	}
	for i, it := range v.Content {
		d.pos[fmt.Sprintf("%s[%d]", path, i)] = position{it.Line, it.Column}
	}
	return v.Content, true
}

// require reports the keys of a list item that must be given but were not.
func (d *decoder) require(n *yaml.Node, path string, given map[string]bool, keys ...string) {
	for _, k := range keys {
		if !given[k] {
			d.errorf(n, joinPath(path, k), "missing; each entry needs %s", strings.Join(keys, " and "))
		}
	}
}

// listOf decodes a list that replaces what out held, each item by item,
// which reports false to leave the item out; an empty list is nil.
func listOf[T any](d *decoder, out *[]T, want string, item func(it *yaml.Node, path string) (T, bool)) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		items, ok := d.list(n, path, want)
		if !ok {
			return
		}
		var got []T
		for i, it := range items {
			if v, ok := item(it, fmt.Sprintf("%s[%d]", path, i)); ok {
				got = append(got, v)
			}
		}
		*out = got
	}
}

// mappingList decodes a list of mappings, each item's keys by the fields
// fields gives for it and each needing the required keys. The list replaces
// what out held: merging entries by position would be guesswork.
func mappingList[T any](d *decoder, out *[]T, listWant, itemWant string, fields func(*T) []field, required ...string) func(*yaml.Node, string) {
	return listOf(d, out, listWant, func(it *yaml.Node, path string) (T, bool) {
		var v T
		if given, ok := d.mapping(it, path, itemWant, fields(&v)); ok {
			d.require(it, path, given, required...)
		}
		return v, true
	})
}

// textKeys describes a mapping whose keys the user chooses (label names,
// header names, Slack user IDs) rather than the schema, for textMap.
type textKeys struct {
	// want and key say what the mapping and each key should be, for
	// "expected ..., got ...".
	want, key string
	// valid is what a key's text must be besides a plain scalar.
	valid func(string) bool
	// firstLine refuses every repeated key, saying where the first one is.
	// Without it only a repeat of a key already kept is refused, so that a
	// value that failed can be given again below it.
	firstLine bool
}

// textMap decodes a mapping described by keys into a map that replaces
// what out held (nil when empty). Each value's position is recorded; value
// then decodes it, given the key's text k and the value's path kp, and
// reports false to leave the key out.
func textMap[V any](d *decoder, n *yaml.Node, path string, out *map[string]V, keys textKeys, value func(kn, val *yaml.Node, k, kp string) (V, bool)) {
	v := deref(n)
	if v.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected %s, got %s", keys.want, describe(v))
		return
	}
	m := map[string]V{}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		kn, val := v.Content[i], v.Content[i+1]
		k := deref(kn)
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" || !keys.valid(k.Value) {
			d.keyErrorf(kn, path, "expected %s, got %s", keys.key, describe(k))
			continue
		}
		kp := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.keyErrorf(kn, kp, "given twice (first at line %d); keep one", first.Line)
			continue
		}
		if _, dup := m[k.Value]; dup {
			d.keyErrorf(kn, kp, "given twice; keep one")
			continue
		}
		if keys.firstLine {
			seen[k.Value] = kn
		}
		d.pos[kp] = position{val.Line, val.Column}
		if x, ok := value(kn, val, k.Value, kp); ok {
			m[k.Value] = x
		}
	}
	if len(m) == 0 {
		m = nil
	}
	*out = m
}

// scalar returns the scalar node n stands for, or reports what was expected.
func (d *decoder) scalar(n *yaml.Node, path, expected string) (*yaml.Node, bool) {
	v := deref(n)
	if v.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, got %s", expected, describe(v))
		return nil, false
	}
	return v, true
}

// text decodes a scalar as text. Any scalar is accepted, so that
// "service: 1234" or a label value written as true means the text as written.
func (d *decoder) text(n *yaml.Node, path, expected string) (string, bool) {
	v, ok := d.scalar(n, path, expected)
	if !ok {
		return "", false
	}
	// Double-quoted escapes can produce bytes that are not text; they could
	// not be written back as YAML text either.
	if !utf8.ValidString(v.Value) {
		d.errorf(n, path, "expected UTF-8 text; the value has invalid byte sequences")
		return "", false
	}
	return v.Value, true
}

func (d *decoder) str(out *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if s, ok := d.text(n, path, "a string"); ok {
			*out = s
		}
	}
}

// enum decodes a string that must be one of allowed. hint, if not nil,
// explains a wrong value better than a spelling suggestion can.
func enum[T ~string](d *decoder, out *T, allowed []string, hint func(string) string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		expected := "one of: " + strings.Join(allowed, ", ")
		s, ok := d.text(n, path, expected)
		if !ok {
			return
		}
		for _, a := range allowed {
			if s == a {
				*out = T(s)
				return
			}
		}
		tail := ""
		if hint != nil {
			tail = hint(s)
		}
		if tail == "" {
			tail = didYouMean(s, allowed)
		}
		d.errorf(n, path, "expected %s, got %s%s", expected, strconv.Quote(s), tail)
	}
}

func (d *decoder) boolean(out *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		v, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		var b bool
		if v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
			d.errorf(n, path, "expected true or false, got %s%s", describe(v), unquoteHint(v, "!!bool"))
			return
		}
		*out = b
	}
}

func (d *decoder) integer(out *int, expected string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		v, ok := d.scalar(n, path, expected)
		if !ok {
			return
		}
		var i int
		if v.ShortTag() != "!!int" || v.Decode(&i) != nil {
			d.errorf(n, path, "expected %s, got %s%s", expected, describe(v), unquoteHint(v, "!!int"))
			return
		}
		*out = i
	}
}

func (d *decoder) number(out *float64) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		const expected = "a number like 0.25"
		v, ok := d.scalar(n, path, expected)
		if !ok {
			return
		}
		var f float64
		if tag := v.ShortTag(); (tag != "!!int" && tag != "!!float") || v.Decode(&f) != nil {
			d.errorf(n, path, "expected %s, got %s%s", expected, describe(v), unquoteHint(v, "!!int", "!!float"))
			return
		}
		*out = f
	}
}

// duration decodes "15m", "1h30m", "-30m". A bare number is refused even
// though it would fit an integer: 15 could mean minutes or nanoseconds.
// Only 0 needs no unit.
func (d *decoder) duration(out *time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		const expected = "a duration like 15m"
		v, ok := d.scalar(n, path, expected)
		if !ok {
			return
		}
		s := strings.TrimSpace(v.Value)
		if s == "0" {
			*out = 0
			return
		}
		if v.ShortTag() != "!!int" {
			if dur, err := time.ParseDuration(s); err == nil {
				*out = dur
				return
			}
		}
		switch {
		case isDigits(s):
			d.errorf(n, path, "expected %s, got %s: add a unit, e.g. %sm or %ss", expected, describe(v), s, s)
		case strings.HasSuffix(s, "d") && isDigits(strings.TrimSuffix(s, "d")):
			d.errorf(n, path, "expected %s, got %s: days are not a unit here, use hours (24h)", expected, describe(v))
		default:
			d.errorf(n, path, "expected %s, got %s (units: h, m, s, ms)", expected, describe(v))
		}
	}
}

// config decodes the top level of canary.yaml over c.
func (d *decoder) config(n *yaml.Node, c *Config) {
	p := &c.Plan
	d.mapping(n, "", "a mapping of settings like \"service: spark\"", []field{
		{"service", d.str(&p.Service)},
		{"evidence_dir", d.str(&c.EvidenceDir)},
		{"state", d.str(&c.StatePath)},
		{"tick", d.duration(&p.Tick)},
		{"hold", d.duration(&p.Hold)},
		{"window", d.window(&p.Window)},
		{"auto_promote", d.boolean(&p.AutoPromote)},
		{"on_breach", enum(d, &p.OnBreach, breachPolicies(), nil)},
		{"max_query_errors", d.integer(&p.MaxQueryErrors, "a whole number like 3")},
		{"stages", d.stages(&p.Stages)},
		{"signals", d.signals(&p.Signals)},
		{"triggers", d.triggers(&p.Triggers)},
		{"trend", d.trend(&p.Trend)},
		{"timeline", d.timeline(&p.Timeline)},
		{"first_night", d.firstNight(&p.FirstNight)},
		{"slack", d.slack(&c.Slack)},
		{"preflight", d.preflight(&c.Preflight)},
		{"battery", d.battery(&c.Battery)},
		{"green_button", d.greenButton(&c.GreenButton)},
		{"github", d.github(&c.GitHub)},
	})
}

// window keeps the text as written: it is substituted into queries verbatim,
// and validation checks it is a Prometheus duration. A bare number gets the
// same "add a unit" hint as other durations.
func (d *decoder) window(out *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		v, ok := d.scalar(n, path, "a duration like 2m")
		if !ok {
			return
		}
		if v.ShortTag() == "!!int" && v.Value != "0" {
			d.errorf(n, path, "expected a duration like 2m, got %s: add a unit, e.g. %sm or %ss", v.Value, v.Value, v.Value)
			return
		}
		d.str(out)(n, path)
	}
}

func (d *decoder) stages(out *[]rollout.Stage) func(*yaml.Node, string) {
	return mappingList(d, out, "a list of stages like [{weight: 1, dwell: 15m}]", "a stage like {weight: 1, dwell: 15m}",
		func(s *rollout.Stage) []field {
			return []field{
				{"weight", d.integer(&s.Weight, "an integer percentage 0-100")},
				{"dwell", d.duration(&s.Dwell)},
			}
		}, "weight", "dwell")
}

// signals merges the file's signals over the defaults by name: an existing
// name overrides only the fields given, "enabled: false" removes it, and a
// new name adds a signal after the defaults, in file order.
func (d *decoder) signals(out *[]rollout.SignalSpec) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		items, ok := d.list(n, path, "a list of signals like [{name: api_p95, threshold: 0.25}]")
		if !ok {
			return
		}
		base := append([]rollout.SignalSpec(nil), *out...)
		baseNames := make([]string, len(base))
		for i, s := range base {
			baseNames[i] = s.Name
		}
		removed := make([]bool, len(base))
		var added []rollout.SignalSpec
		seen := map[string]*yaml.Node{}
		for i, it := range items {
			ip := fmt.Sprintf("%s[%d]", path, i)
			name, named := d.signalName(it, ip)
			if named {
				ip = path + "[" + name + "]"
				if first, dup := seen[name]; dup {
					d.errorf(it, ip, "signal %q is listed twice (first at line %d); merge the two entries", name, first.Line)
					continue
				}
				seen[name] = it
				d.pos[ip] = position{it.Line, it.Column}
			}
			idx := -1
			for j, bn := range baseNames {
				if named && bn == name {
					idx = j
				}
			}
			var s rollout.SignalSpec
			if idx >= 0 {
				s = base[idx]
			}
			enabled := true
			given, ok := d.mapping(it, ip, "a signal like {name: api_p95, threshold: 0.25}", []field{
				{"name", func(*yaml.Node, string) {}}, // signalName read it
				{"enabled", d.boolean(&enabled)},
				{"column", d.str(&s.Column)},
				{"title", d.str(&s.Title)},
				{"query", d.str(&s.Query)},
				{"baseline_query", d.str(&s.BaselineQuery)},
				{"op", enum(d, &s.Op, ops(), opHint)},
				{"threshold", d.number(&s.Threshold)},
				{"relative", d.boolean(&s.Relative)},
				{"floor", d.number(&s.Floor)},
				{"unit", enum(d, &s.Unit, units(), nil)},
			})
			if !ok || !named {
				continue
			}
			s.Name = name
			switch {
			case !enabled && idx >= 0:
				removed[idx] = true
			case !enabled:
				d.errorf(it, joinPath(ip, "enabled"), "there is no default signal %q to disable%s (defaults: %s)",
					name, didYouMean(name, baseNames), strings.Join(baseNames, ", "))
			case idx >= 0:
				base[idx] = s
			default:
				d.requireNewSignal(it, ip, name, given, baseNames)
				added = append(added, s)
			}
		}
		var merged []rollout.SignalSpec
		for i, s := range base {
			if !removed[i] {
				merged = append(merged, s)
			}
		}
		merged = append(merged, added...)
		// The war-room table needs a header for every signal.
		for i := range merged {
			if merged[i].Column == "" {
				merged[i].Column = merged[i].Name
			}
			if merged[i].Title == "" {
				merged[i].Title = merged[i].Name
			}
		}
		*out = merged
	}
}

// signalName finds the name of a signal entry, which is what the entry's
// path and the merge go by.
func (d *decoder) signalName(it *yaml.Node, path string) (string, bool) {
	v := deref(it)
	if v.Kind != yaml.MappingNode {
		return "", false // mapping() reports it
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		if k := deref(v.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "name" {
			val := deref(v.Content[i+1])
			if val.Kind != yaml.ScalarNode || isNull(val) || val.Value == "" || !utf8.ValidString(val.Value) {
				d.errorf(v.Content[i+1], joinPath(path, "name"), "expected a signal name like api_p95, got %s", describe(val))
				return "", false
			}
			return val.Value, true
		}
	}
	d.errorf(it, joinPath(path, "name"), "missing; every signal entry needs a name: one of the defaults to change or disable it, or a new one to add it")
	return "", false
}

func (d *decoder) requireNewSignal(n *yaml.Node, path, name string, given map[string]bool, defaults []string) {
	var missing []string
	for _, k := range []string{"query", "op", "threshold", "unit"} {
		if !given[k] {
			missing = append(missing, k)
			d.bad = append(d.bad, joinPath(path, k))
		}
	}
	if len(missing) == 0 {
		return
	}
	hint := ""
	if s := suggest(name, defaults); s != "" {
		hint = fmt.Sprintf(" (or did you mean the default signal %q?)", s)
	}
	d.errorf(n, path, "%q is not a default signal, so it is added and needs query, op, threshold and unit; missing: %s%s",
		name, strings.Join(missing, ", "), hint)
}

func (d *decoder) triggers(out *rollout.Triggers) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.mapping(n, path, "a mapping like {labels: {auto_rollback: \"true\"}}", []field{
			{"labels", d.labels(&out.Labels)},
		})
	}
}

// labels replaces the whole selector: merging would make the default
// auto_rollback label impossible to remove.
func (d *decoder) labels(out *map[string]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		keys := textKeys{
			want:      "a mapping of alert labels like {auto_rollback: \"true\"}",
			key:       "a label name like auto_rollback",
			valid:     func(k string) bool { return k != "" },
			firstLine: true,
		}
		textMap(d, n, path, out, keys, func(kn, val *yaml.Node, k, kp string) (string, bool) {
			if isNull(val) {
				d.errorf(val, kp, "expected a label value like \"true\", got nothing")
				return "", false
			}
			// Any scalar is taken as text: auto_rollback: true means the
			// label value "true", as Prometheus sees it.
			if !utf8.ValidString(k) {
				d.errorf(kn, kp, "expected a label name like auto_rollback, got invalid UTF-8")
				return "", false
			}
			return d.text(val, kp, "a label value like \"true\"")
		})
	}
}

func (d *decoder) trend(out *rollout.TrendRule) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.mapping(n, path, "a mapping like {min_points: 4, horizon: 15m, lookback: 15m}", []field{
			{"min_points", d.integer(&out.MinPoints, "a whole number like 4")},
			{"horizon", d.duration(&out.Horizon)},
			{"lookback", d.duration(&out.Lookback)},
		})
	}
}

func (d *decoder) timeline(out *[]rollout.Step) func(*yaml.Node, string) {
	return mappingList(d, out, "a list of steps like [{name: freeze, offset: -30m}]", "a step like {name: freeze, offset: -30m}",
		func(s *rollout.Step) []field {
			return []field{
				{"name", enum(d, &s.Name, stepNames(), nil)},
				{"offset", d.duration(&s.Offset)},
			}
		}, "name", "offset")
}

func (d *decoder) firstNight(out *rollout.FirstNight) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		d.mapping(n, path, "a mapping like {cadence: [{until: 2h, every: 15m}]}", []field{
			{"cadence", d.cadence(&out.Cadence)},
		})
	}
}

func (d *decoder) cadence(out *[]rollout.Cadence) func(*yaml.Node, string) {
	return mappingList(d, out, "a list like [{until: 2h, every: 15m}]", "an entry like {until: 2h, every: 15m}",
		func(c *rollout.Cadence) []field {
			return []field{
				{"until", d.duration(&c.Until)},
				{"every", d.duration(&c.Every)},
			}
		}, "until", "every")
}

// The allowed values of the enumerations, in the order messages list them.

func ops() []string { return []string{string(rollout.OpLE), string(rollout.OpLT)} }

func units() []string {
	return []string{
		string(rollout.UnitSeconds), string(rollout.UnitRatio), string(rollout.UnitPerMinute),
		string(rollout.UnitSecondsCoarse), string(rollout.UnitCount),
	}
}

// opHint answers the likely mistakes with op: spelling <= differently, or
// expecting a lower bound.
func opHint(s string) string {
	switch {
	case s == "=<" || s == "≤" || s == "le" || s == "lte":
		return `; did you mean "<="?`
	case s == "lt":
		return `; did you mean "<"?`
	case strings.ContainsAny(s, ">≥") || s == "ge" || s == "gt" || s == "gte":
		return "; a threshold is an upper bound (the reading must stay at or below it), so op is <= or <"
	}
	return ""
}

func breachPolicies() []string {
	return []string{string(rollout.BreachRollback), string(rollout.BreachAsk)}
}

func stepNames() []string {
	return []string{
		string(rollout.StepFreeze), string(rollout.StepWarRoom), string(rollout.StepPreflight),
		string(rollout.StepBlast), string(rollout.StepRedTeam), string(rollout.StepGreenButton),
		string(rollout.StepGoNoGo),
	}
}
