package dags

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits bound what one DAG file may cost to load. Hostile or accidental
// input (alias bombs, deep nesting, huge files) is refused with a problem
// instead of exhausting the scheduler.
type Limits struct {
	MaxFileBytes int // files larger than this are refused
	MaxNodes     int // YAML nodes after alias expansion
	MaxDepth     int // nesting of mappings and sequences
}

// DefaultLimits are generous for real DAG files (the largest seen in the
// reference workload is a few KiB) and small enough to stay fast.
var DefaultLimits = Limits{MaxFileBytes: 1 << 20, MaxNodes: 200_000, MaxDepth: 64}

type kind int

const (
	kindNull kind = iota
	kindScalar
	kindMap
	kindSeq
)

// val is a YAML value with aliases and merge keys resolved, remembering
// where it was written (file, line, column) so problems can point at it even
// after defaults from other files have been merged in.
type val struct {
	file      string
	line, col int
	kind      kind
	tag       string // resolved YAML tag of scalars: !!str, !!int, !!bool, ...
	quoted    bool   // the scalar was written in quotes
	str       string // scalar text
	keys      []*val // mapping keys, in order
	vals      []*val // mapping values, parallel to keys
	items     []*val // sequence items
	dups      []*val // keys that were written twice (last one wins)
}

func (v *val) pos() (string, int, int) { return v.file, v.line, v.col }

// get returns the value for key in a mapping, or nil.
func (v *val) get(key string) *val {
	if v == nil || v.kind != kindMap {
		return nil
	}
	for i, k := range v.keys {
		if k.str == key {
			return v.vals[i]
		}
	}
	return nil
}

// keyNode returns the key node for key in a mapping, or nil.
func (v *val) keyNode(key string) *val {
	if v == nil || v.kind != kindMap {
		return nil
	}
	for _, k := range v.keys {
		if k.str == key {
			return k
		}
	}
	return nil
}

// set replaces or appends key in a mapping.
func (v *val) set(key *val, value *val) {
	for i, k := range v.keys {
		if k.str == key.str {
			v.vals[i] = value
			return
		}
	}
	v.keys = append(v.keys, key)
	v.vals = append(v.vals, value)
}

// del removes key from a mapping.
func (v *val) del(key string) {
	for i, k := range v.keys {
		if k.str == key {
			v.keys = append(v.keys[:i:i], v.keys[i+1:]...)
			v.vals = append(v.vals[:i:i], v.vals[i+1:]...)
			return
		}
	}
}

func (v *val) keysOrNil() []*val {
	if v == nil {
		return nil
	}
	return v.keys
}

func (v *val) isNull() bool { return v == nil || v.kind == kindNull }

// describe names the value's YAML type for error messages.
func (v *val) describe() string {
	switch {
	case v == nil || v.kind == kindNull:
		return "null"
	case v.kind == kindMap:
		return "a mapping"
	case v.kind == kindSeq:
		return "a list"
	}
	s := v.str
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// clone copies a value tree so merges never alias between DAGs.
func (v *val) clone() *val {
	if v == nil {
		return nil
	}
	c := *v
	c.keys = cloneAll(v.keys)
	c.vals = cloneAll(v.vals)
	c.items = cloneAll(v.items)
	c.dups = nil
	return &c
}

func cloneAll(vs []*val) []*val {
	if vs == nil {
		return nil
	}
	out := make([]*val, len(vs))
	for i, v := range vs {
		out[i] = v.clone()
	}
	return out
}

// mergeInto merges defaults under v, dag-factory style: keys missing from v
// are taken from defaults, and where both hold mappings the merge recurses.
// v wins everywhere else. Neither tree is modified; the result shares the
// subtrees that did not need merging, so val trees are treated as
// immutable once parsed (copy before changing one).
func mergeInto(v, defaults *val) *val {
	if v == nil {
		return defaults
	}
	if defaults == nil || v.kind != kindMap || defaults.kind != kindMap {
		return v
	}
	out := &val{file: v.file, line: v.line, col: v.col, kind: kindMap,
		keys: append(make([]*val, 0, len(defaults.keys)+len(v.keys)), defaults.keys...),
		vals: append(make([]*val, 0, len(defaults.vals)+len(v.vals)), defaults.vals...)}
	for i, k := range v.keys {
		out.set(k, mergeInto(v.vals[i], defaults.get(k.str)))
	}
	return out
}

// shallow copies a mapping's key and value lists so one key can be changed
// without touching the original.
func (v *val) shallow() *val {
	c := *v
	c.keys = append([]*val(nil), v.keys...)
	c.vals = append([]*val(nil), v.vals...)
	c.dups = nil
	return &c
}

// parseYAML parses one DAG file into a val tree, enforcing limits. It fails
// with a positioned problem on syntax errors, non-UTF-8 input, several
// documents, or input over the limits.
func parseYAML(file string, data []byte, lim Limits) (*val, *Problem) {
	fail := func(line, col int, format string, args ...any) (*val, *Problem) {
		return nil, &Problem{File: file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
	}
	if lim.MaxFileBytes > 0 && len(data) > lim.MaxFileBytes {
		return fail(0, 0, "file is %d bytes, over the %d byte limit for DAG files", len(data), lim.MaxFileBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		line, col := invalidUTF8At(data)
		return fail(line, col, "file is not valid UTF-8")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &val{file: file, line: 1, col: 1, kind: kindNull}, nil
		}
		line, col, msg := syntaxErrorAt(data, err)
		return fail(line, col, "YAML syntax error: %s", msg)
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		return fail(second.Line, second.Column, "a DAG file holds one YAML document; found another one here")
	} else if !errors.Is(err, io.EOF) {
		line, col, msg := syntaxErrorAt(data, err)
		return fail(line, col, "YAML syntax error: %s", msg)
	}
	c := converter{file: file, lim: lim}
	root := c.convert(&doc, 0)
	if c.err != nil {
		return nil, c.err
	}
	return root, nil
}

// syntaxErrorAt locates a yaml.v3 syntax error. yaml.v3 reports only a
// line, and for "mapping values are not allowed" the line after the real
// mistake (a plain value followed by an indented mapping), so that case
// points at the line above, with a hint.
func syntaxErrorAt(data []byte, err error) (int, int, string) {
	line, msg := yamlErrorLine(err)
	lines := strings.Split(string(data), "\n")
	colOf := func(n int) int {
		if n < 1 || n > len(lines) {
			return 0
		}
		return len(lines[n-1]) - len(strings.TrimLeft(lines[n-1], " \t")) + 1
	}
	if strings.Contains(msg, "mapping values are not allowed") && line > 1 {
		prev := line - 1
		for prev > 1 && strings.TrimSpace(lines[prev-1]) == "" {
			prev--
		}
		text := strings.TrimSpace(lines[prev-1])
		if text != "" && !strings.Contains(text, ":") && !strings.HasPrefix(text, "#") {
			return prev, colOf(prev), fmt.Sprintf("%q is a plain value but line %d below it starts a mapping: a missing ':' after it, or a missing '- ' list marker?", text, line)
		}
	}
	if line >= 1 && line <= len(lines) {
		if k, v, ok := strings.Cut(lines[line-1], ": "); ok {
			value := strings.TrimSpace(v)
			for _, lead := range []string{"*", "@", "{{", "%", "`"} {
				if strings.HasPrefix(value, lead) {
					return line, len(k) + 3 + len(v) - len(strings.TrimLeft(v, " ")), fmt.Sprintf(
						"%s (a value starting with %s must be quoted: %s: \"%s\")", msg, lead, strings.TrimSpace(k), value)
				}
			}
		}
	}
	return line, colOf(line), msg
}

// yamlErrorLine extracts "line N: msg" from a yaml.v3 error.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		if i := strings.Index(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
	}
	return line, msg
}

func invalidUTF8At(data []byte) (int, int) {
	line, col := 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		data = data[size:]
	}
	return line, col
}

type converter struct {
	file  string
	lim   Limits
	nodes int
	err   *Problem
}

func (c *converter) fail(n *yaml.Node, format string, args ...any) *val {
	if c.err == nil {
		c.err = &Problem{File: c.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
	}
	return &val{file: c.file, line: n.Line, col: n.Column, kind: kindNull}
}

func (c *converter) convert(n *yaml.Node, depth int) *val {
	if c.err != nil {
		return &val{kind: kindNull}
	}
	c.nodes++
	if c.lim.MaxNodes > 0 && c.nodes > c.lim.MaxNodes {
		return c.fail(n, "file expands to more than %d YAML nodes (alias bomb?)", c.lim.MaxNodes)
	}
	if c.lim.MaxDepth > 0 && depth > c.lim.MaxDepth {
		return c.fail(n, "nesting deeper than %d levels", c.lim.MaxDepth)
	}
	v := &val{file: c.file, line: n.Line, col: n.Column}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			v.kind = kindNull
			return v
		}
		return c.convert(n.Content[0], depth)
	case yaml.AliasNode:
		if n.Alias == nil {
			return c.fail(n, "unknown alias")
		}
		a := c.convert(n.Alias, depth+1)
		cp := *a
		cp.line, cp.col = n.Line, n.Column
		return &cp
	case yaml.ScalarNode:
		v.tag = n.ShortTag()
		v.str = n.Value
		v.quoted = n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
		if v.tag == "!!null" {
			v.kind = kindNull
		} else {
			v.kind = kindScalar
		}
	case yaml.SequenceNode:
		v.kind = kindSeq
		v.items = make([]*val, 0, len(n.Content))
		for _, item := range n.Content {
			v.items = append(v.items, c.convert(item, depth+1))
		}
	case yaml.MappingNode:
		v.kind = kindMap
		var merges []*val
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Kind == yaml.ScalarNode && kn.ShortTag() == "!!merge" {
				merges = append(merges, c.convert(vn, depth+1))
				continue
			}
			k := c.convert(kn, depth+1)
			if k.kind == kindMap || k.kind == kindSeq {
				return c.fail(kn, "mapping keys must be plain values, not %s", k.describe())
			}
			value := c.convert(vn, depth+1)
			if existing := v.keyNode(k.str); existing != nil {
				v.dups = append(v.dups, k)
			}
			v.set(k, value)
		}
		// Merge keys (<<): explicit keys win, earlier merge sources win.
		for _, m := range merges {
			srcs := []*val{m}
			if m.kind == kindSeq {
				srcs = m.items
			}
			for _, src := range srcs {
				if src.kind != kindMap {
					return c.fail(n, "merge key << needs a mapping or a list of mappings")
				}
				for i, k := range src.keys {
					if v.keyNode(k.str) == nil {
						v.keys = append(v.keys, k)
						v.vals = append(v.vals, src.vals[i])
					}
				}
			}
		}
		// dag-factory's __join__: a list of strings concatenated.
		if j := v.get("__join__"); j != nil && len(v.keys) == 1 {
			if j.kind != kindSeq {
				return c.fail(n, "__join__ needs a list of values")
			}
			var b strings.Builder
			for _, item := range j.items {
				if item.kind != kindScalar {
					return c.fail(n, "__join__ items must be plain values, not %s", item.describe())
				}
				b.WriteString(item.str)
			}
			return &val{file: c.file, line: n.Line, col: n.Column, kind: kindScalar, tag: "!!str", str: b.String()}
		}
	default:
		return c.fail(n, "unsupported YAML node")
	}
	return v
}
