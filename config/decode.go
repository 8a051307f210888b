package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder turns a YAML node tree into a Config, reporting every problem
// with its line and field path instead of stopping at the first.
type decoder struct {
	file   string
	lookup func(string) (string, bool)
	errs   Errors
	// lines maps the path of every non-null value decoded to its line, so
	// validation can place its messages and tell a key that was set from
	// one left to its default.
	lines map[string]int
	// failed holds the paths whose value could not be decoded; validation
	// problems at or under them would only repeat the same mistake.
	failed map[string]bool
	// raw maps the path of every value changed by ${VAR} expansion to its
	// text as written, which messages show instead of the expanded value
	// (an environment value may be a secret, even in a plain field).
	raw map[string]string
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	inputType    = reflect.TypeFor[Input]()
	outputType   = reflect.TypeFor[Output]()
	bufferType   = reflect.TypeFor[Buffer]()
)

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// fail reports a value that could not be decoded.
func (d *decoder) fail(line int, path, format string, args ...any) {
	d.failed[path] = true
	d.errorf(line, path, format, args...)
}

func (d *decoder) config(n *yaml.Node, c *Config) {
	d.value(n, "", reflect.ValueOf(c).Elem(), "")
}

// value decodes n into v. key is the YAML key v was found under ("" for
// list items); it selects size parsing for int fields named *_bytes.
func (d *decoder) value(n *yaml.Node, path string, v reflect.Value, key string) {
	n = resolve(n)
	if isNull(n) {
		return // a null value leaves the default in place
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	switch v.Type() {
	case inputType:
		d.input(n, path, v.Addr().Interface().(*Input))
		return
	case outputType:
		d.output(n, path, v.Addr().Interface().(*Output))
		return
	case durationType:
		if s, ok := d.scalar(n, path, "a duration such as 5s"); ok {
			t, err := time.ParseDuration(s)
			if err != nil {
				d.fail(n.Line, path, "invalid duration %s (want a number with a unit, e.g. 500ms, 5s, 1m)", d.show(path, s))
				return
			}
			v.SetInt(int64(t))
		}
		return
	case byteSizeType:
		if s, ok := d.scalar(n, path, "a size such as 64MiB"); ok {
			b, err := ParseByteSize(s)
			if err != nil {
				d.sizeError(n.Line, path, s, err)
				return
			}
			v.SetInt(int64(b))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, path, v.Elem(), key)
	case reflect.Struct:
		d.mapping(n, path, v)
	case reflect.Slice:
		d.sequence(n, path, v)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path, "true or false"); ok {
			switch strings.ToLower(s) {
			case "true", "yes", "on":
				v.SetBool(true)
			case "false", "no", "off":
				v.SetBool(false)
			default:
				d.fail(n.Line, path, "invalid boolean %s (want true or false)", d.show(path, s))
			}
		}
	case reflect.Int, reflect.Int64:
		d.integer(n, path, v, key)
	case reflect.Uint32:
		// The only uint32 field is a file mode: always octal.
		if s, ok := d.scalar(n, path, "an octal file mode such as 0660"); ok {
			t := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
			m, err := strconv.ParseUint(t, 8, 32)
			if err != nil || m > 0o777 {
				d.fail(n.Line, path, "invalid file mode %s (want octal, e.g. 0660)", d.show(path, s))
				return
			}
			v.SetUint(m)
		}
	default:
		d.fail(n.Line, path, "internal error: no decoder for Go type %s", v.Type())
	}
}

func (d *decoder) integer(n *yaml.Node, path string, v reflect.Value, key string) {
	if strings.HasSuffix(key, "_bytes") {
		s, ok := d.scalar(n, path, "a size such as 1MiB")
		if !ok {
			return
		}
		b, err := ParseByteSize(s)
		if err != nil {
			d.sizeError(n.Line, path, s, err)
			return
		}
		if v.OverflowInt(int64(b)) {
			d.fail(n.Line, path, "size %s is too large", d.show(path, s))
			return
		}
		v.SetInt(int64(b))
		return
	}
	s, ok := d.scalar(n, path, "an integer")
	if !ok {
		return
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v.OverflowInt(i) {
		d.fail(n.Line, path, "invalid integer %s", d.show(path, s))
		return
	}
	v.SetInt(i)
}

// show quotes a value for a message: as written in the file if it came
// from the environment, else as decoded.
func (d *decoder) show(path, s string) string {
	if r, ok := d.raw[path]; ok {
		return strconv.Quote(r)
	}
	return strconv.Quote(s)
}

func (d *decoder) sizeError(line int, path, s string, err error) {
	if _, ok := d.raw[path]; ok {
		d.fail(line, path, "invalid size %s", d.show(path, s))
		return
	}
	d.fail(line, path, "%v", err)
}

// scalar returns n's value with ${VAR} expanded. want describes the
// expected value for the type error.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, path, "expected %s, got %s", want, describe(n))
		return "", false
	}
	s, err := expand(n.Value, d.lookup)
	if err != nil {
		d.fail(n.Line, path, "%v", err)
		return "", false
	}
	if s != n.Value {
		d.raw[path] = n.Value
	}
	return s, true
}

// mapping decodes a mapping into the struct v, rejecting unknown keys.
func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "expected a mapping, got %s", describe(n))
		return
	}
	setLine(v, n.Line)
	fields := fieldsOf(v.Type())
	for _, p := range d.pairs(n, path) {
		if path == "" && strings.HasPrefix(p.key, "x-") {
			continue // top-level extension keys only hold anchors
		}
		if i := fieldIndex(fields, p.key); i >= 0 {
			d.value(p.v, join(path, p.key), v.Field(i), p.key)
			continue
		}
		d.unknown(p, join(path, p.key), names(fields), "")
	}
}

// sequence decodes a list into the slice v.
func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n.Line, path, "expected a list, got %s", describe(n))
		return
	}
	if len(n.Content) == 0 {
		v.SetZero() // an empty list is nil, as if absent
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		if c = resolve(c); isNull(c) {
			d.fail(c.Line, p, "empty list item")
			continue
		}
		e := s.Index(i)
		if def, ok := e.Addr().Interface().(defaulter); ok {
			def.setDefaults() // list items with defaults: ForwardServer
		}
		d.value(c, p, e, "")
	}
	v.Set(s)
}

// input decodes one input: id and type, plus the keys of its type inline.
func (d *decoder) input(n *yaml.Node, path string, in *Input) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "expected a mapping with id and type, got %s", describe(n))
		return
	}
	in.Line = n.Line
	ps := d.pairs(n, path)
	d.componentType(ps, path, &in.Type)
	d.component(n, ps, path, reflect.ValueOf(in).Elem(), in.Type, inputKinds)
}

// output decodes one output: id, type and buffer, plus the keys of its
// type inline.
func (d *decoder) output(n *yaml.Node, path string, out *Output) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "expected a mapping with id and type, got %s", describe(n))
		return
	}
	out.Line = n.Line
	out.Buffer = DefaultBuffer()
	out.Delivery = DefaultDelivery()
	ps := d.pairs(n, path)
	d.componentType(ps, path, &out.Type)
	d.component(n, ps, path, reflect.ValueOf(out).Elem(), out.Type, outputKinds)
}

func (d *decoder) componentType(ps []pair, path string, typ *string) {
	for _, p := range ps {
		if p.key == "type" {
			d.value(p.v, path+".type", reflect.ValueOf(typ).Elem(), "type")
		}
	}
}

// component decodes the keys of a component mapping: the common ones
// (common's fields) and the ones of its type, into a new section with the
// type's defaults (reported under path.typ). With an unknown or missing
// type only the common keys are decoded; validation reports the type.
func (d *decoder) component(n *yaml.Node, ps []pair, path string, common reflect.Value, typ string, kinds []kind) {
	cf := fieldsOf(common.Type())
	var sf []field
	var spec reflect.Value
	specPath := path + "." + typ
	k := findKind(kinds, typ)
	if k != nil {
		sec := k.fresh()
		common.Field(k.field).Set(sec)
		spec = sec.Elem()
		sf = fieldsOf(k.typ)
		d.lines[specPath] = n.Line
		if h, ok := sec.Interface().(decodedHook); ok {
			defer h.decoded(func(key string) bool { return d.set(specPath + "." + key) })
		}
	}
	for _, p := range ps {
		if p.key == "type" {
			continue
		}
		if i := fieldIndex(cf, p.key); i >= 0 {
			d.value(p.v, join(path, p.key), common.Field(i), p.key)
			continue
		}
		if !spec.IsValid() {
			continue
		}
		if i := fieldIndex(sf, p.key); i >= 0 {
			d.value(p.v, specPath+"."+p.key, spec.Field(i), p.key)
			continue
		}
		var hint string
		for _, k := range kinds {
			switch {
			case p.key == k.name:
				hint = fmt.Sprintf(" (the keys of type %s go inline, next to id and type)", k.name)
			case k.name != typ && fieldIndex(fieldsOf(k.typ), p.key) >= 0:
				hint = fmt.Sprintf(" (it belongs to type %s, not %s)", k.name, typ)
			default:
				continue
			}
			break
		}
		if hint == "" && fieldIndex(cf, "buffer") >= 0 && fieldIndex(fieldsOf(bufferType), p.key) >= 0 {
			hint = " (it belongs under buffer)"
		}
		d.unknown(p, specPath+"."+p.key, append(names(cf), names(sf)...), hint)
	}
}

func (d *decoder) unknown(p pair, path string, valid []string, hint string) {
	if hint == "" {
		if s := suggest(p.key, valid); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
	}
	d.errorf(p.k.Line, path, "unknown field %q%s", p.key, hint)
}

// underFailed reports whether path or one of its ancestors failed to decode.
func (d *decoder) underFailed(path string) bool {
	if len(d.failed) == 0 {
		return false
	}
	for p := path; ; {
		if d.failed[p] {
			return true
		}
		if p == "" {
			return false
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			i = 0
		}
		p = p[:i]
	}
}

// set reports whether the value at path was given a non-null value.
func (d *decoder) set(path string) bool {
	_, ok := d.lines[path]
	return ok
}

// pair is one key of a mapping, merge keys resolved.
type pair struct {
	key  string
	k, v *yaml.Node
}

// pairs returns the keys of the mapping n, reporting non-string and
// duplicate keys. Keys from merge keys (<<) come after the explicit ones
// and never override them.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	seen := make(map[string]int, len(n.Content)/2)
	out := make([]pair, 0, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k = resolve(k); k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, path, "expected a string key, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, join(path, k.Value), "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k.Value, k, v})
	}
	if len(merges) > 0 {
		// visited stops alias cycles and repeated expansion of one anchor.
		visited := map[*yaml.Node]bool{n: true}
		for _, m := range merges {
			out = d.merge(m, path, seen, visited, out, true)
		}
	}
	return out
}

// merge appends the keys of a merge key's value (a mapping, or a list of
// mappings when top) that are not in seen yet.
func (d *decoder) merge(m *yaml.Node, path string, seen map[string]int, visited map[*yaml.Node]bool, out []pair, top bool) []pair {
	m = resolve(m)
	switch {
	case m.Kind == yaml.SequenceNode && top:
		for _, e := range m.Content {
			out = d.merge(e, path, seen, visited, out, false)
		}
		return out
	case m.Kind != yaml.MappingNode:
		d.errorf(m.Line, path, "merge key << needs a mapping or a list of mappings, got %s", describe(m))
		return out
	case visited[m]:
		return out
	}
	visited[m] = true
	var sub []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			sub = append(sub, v)
			continue
		}
		k = resolve(k)
		if k.Kind != yaml.ScalarNode {
			continue // reported where the anchored mapping itself is decoded, if it is
		}
		if _, dup := seen[k.Value]; dup {
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k.Value, k, v})
	}
	for _, s := range sub {
		out = d.merge(s, path, seen, visited, out, true)
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "expected X, got Y" messages. A
// scalar shows its text as written in the file (before ${VAR} expansion).
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported YAML node"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// field is one YAML-visible struct field.
type field struct {
	key   string
	index int
}

func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fs = append(fs, field{name, i})
	}
	return fs
}

func fieldIndex(fs []field, key string) int {
	for _, f := range fs {
		if f.key == key {
			return f.index
		}
	}
	return -1
}

func names(fs []field) []string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.key
	}
	return s
}

// setLine stores line in a struct's `Line int yaml:"-"` field, if it has one.
func setLine(v reflect.Value, line int) {
	if f, ok := v.Type().FieldByName("Line"); ok && f.Type.Kind() == reflect.Int && f.Tag.Get("yaml") == "-" {
		v.FieldByIndex(f.Index).SetInt(int64(line))
	}
}

// suggest returns the candidate closest to s if it is close enough to be a
// likely typo, or "".
func suggest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+1
	if bestD > 3 {
		bestD = 3
	}
	for _, c := range candidates {
		if d := editDistance(s, c); d <= bestD && (best == "" || d < editDistance(s, best)) {
			best = c
		}
	}
	if best != "" {
		return best
	}
	// A shortened name ("cert" for "cert_file") if only one fits.
	for _, c := range candidates {
		if strings.HasPrefix(c, s+"_") {
			if best != "" {
				return ""
			}
			best = c
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance between a and b.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
