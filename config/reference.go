package config

//go:generate go run ./internal/gendoc -o ../docs/config.md

import (
	"bytes"
	"fmt"
	"go/doc/comment"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/sluice-agent/sluice/internal/multiline"
	"github.com/sluice-agent/sluice/processors"
)

// The config reference (docs/config.md) is generated from the code: the
// keys, types and defaults from the structs (their yaml tags, the Default*
// functions, as for Options and `agent types`), the meaning of each key
// from its field's doc comment, read from the source by
// config/internal/docsrc. `go generate ./config` writes it;
// TestConfigReferenceUpToDate fails when it differs from what the code
// says, and Reference fails when a key has no doc comment.

// ReferenceDocs is the documentation Reference renders, as read from
// package config's source (config/internal/docsrc): the package's doc
// comment, each struct type's ("Buffer") and each field's ("Buffer.MaxBytes").
type ReferenceDocs struct {
	Package string
	Types   map[string]string
	Fields  map[string]string
}

// Reference returns the config reference in Markdown: every key of the
// file with its type, default and meaning, one section per component
// type. It fails, naming them, if some keys have no meaning.
func Reference(docs ReferenceDocs) ([]byte, error) {
	r := &refBuilder{docs: docs}
	secs := r.sections()
	if len(r.missing) > 0 {
		return nil, fmt.Errorf("config reference: no doc comment for %s", strings.Join(r.missing, ", "))
	}
	return renderReference(secs, r.valueSyntax()), nil
}

// refSection is one section of the reference: a heading, paragraphs of
// Markdown and a table of keys.
type refSection struct {
	level int
	title string
	intro []string
	rows  []refRow
}

// refRow is one key.
type refRow struct {
	key, value, def, meaning string
	field                    string // "Type.Field", for messages
}

type refBuilder struct {
	docs    ReferenceDocs
	missing []string
}

// Sections with a table of their own; a key of such a type links there.
var (
	routeType     = reflect.TypeFor[Route]()
	conditionType = reflect.TypeFor[Condition]()
	processorType = reflect.TypeFor[Processor]()
	deliveryType  = reflect.TypeFor[Delivery]()
)

// refLinks names the section of the types that have one.
var refLinks = map[reflect.Type]string{
	inputType:     "Inputs",
	outputType:    "Outputs",
	bufferType:    "buffer",
	deliveryType:  "delivery",
	routeType:     "routes",
	conditionType: "Conditions (when)",
	processorType: "processors",
}

// sectionDefaults are the defaults of optional sections whose zero fields
// are given their defaults by the package that uses them.
var sectionDefaults = map[reflect.Type]func() any{
	reflect.TypeFor[CRIKubernetes](): func() any { return DefaultCRIKubernetes() },
	reflect.TypeFor[ForwardDiscovery](): func() any {
		return ForwardDiscovery{Interval: DefaultDiscoveryInterval, MaxServers: DefaultDiscoveryMaxServers}
	},
	reflect.TypeFor[Multiline](): func() any {
		return Multiline{FlushTimeout: multiline.DefaultFlushTimeout, MaxBytes: multiline.DefaultMaxBytes}
	},
}

func (r *refBuilder) sections() []refSection {
	var secs []refSection
	top := DefaultConfig()
	secs = append(secs, refSection{level: 2, title: "Top level",
		intro: []string{"The file is one YAML mapping with these keys. Top-level keys that start with `x-` are ignored, so that they can hold anchors for the rest of the file."},
		rows:  r.rows(reflect.ValueOf(&top).Elem(), "")})

	for _, kinds := range []struct {
		title, what string
		common      reflect.Type
		kinds       []kind
	}{{"Inputs", "input", inputType, inputKinds}, {"Outputs", "output", outputType, outputKinds}} {
		var list strings.Builder
		for _, k := range kinds.kinds {
			fmt.Fprintf(&list, "\n- [%s](#%s): %s", k.name, slug(k.name+" "+kinds.what), mdText(k.doc, nil))
		}
		intro := []string{fmt.Sprintf("Every %s has an `id` and a `type`; the keys of its type go inline, next to them. The %s types:\n%s",
			kinds.what, kinds.what, list.String())}
		if kinds.common == outputType {
			intro = append(intro, "Every output also has a disk queue, [`buffer`](#buffer), and all but stdout the batching, retry and dead-letter settings of [`delivery`](#delivery).")
		}
		common := reflect.New(kinds.common).Elem()
		if kinds.common == outputType {
			common.FieldByName("Buffer").Set(reflect.ValueOf(DefaultBuffer()))
		}
		rows := r.rows(common, "")
		for i := range rows {
			if rows[i].key == "type" {
				rows[i].meaning += " One of: " + strings.Join(kindNames(kinds.kinds), ", ") + "."
			}
		}
		secs = append(secs, refSection{level: 2, title: kinds.title, intro: intro, rows: rows})
		for _, k := range kinds.kinds {
			intro := r.typeDoc(k.typ, "The `"+k.name+"` "+kinds.what)
			if len(intro) == 0 {
				intro = []string{"The `" + k.name + "` " + kinds.what + ": " + mdText(k.doc, nil) + "."}
			}
			rows := r.rows(k.fresh().Elem(), "")
			if len(rows) == 0 {
				intro = append(intro, "It has no keys of its own.")
			}
			secs = append(secs, refSection{level: 3, title: k.name + " " + kinds.what, intro: intro, rows: rows})
		}
	}

	buf := DefaultBuffer()
	del := DefaultDelivery()
	for _, s := range []struct {
		typ reflect.Type
		v   reflect.Value
	}{
		{bufferType, reflect.ValueOf(&buf).Elem()},
		{deliveryType, reflect.ValueOf(&del).Elem()},
		{routeType, reflect.New(routeType).Elem()},
		{conditionType, reflect.New(conditionType).Elem()},
		{processorType, reflect.New(processorType).Elem()},
	} {
		title := refLinks[s.typ]
		self := "`" + title + "`"
		switch s.typ {
		case routeType:
			self = "A route"
		case conditionType:
			self = "A condition"
		case processorType:
			self = "A processor"
		}
		intro := r.typeDoc(s.typ, self)
		if s.typ == routeType {
			intro = append([]string{"`routes` is a list; each event goes to the outputs of the first route that takes it (and of later ones while `continue` is set), else to `default_output`."}, intro...)
		}
		rows := r.rows(s.v, "")
		if s.typ == processorType {
			processorUses(rows)
		}
		secs = append(secs, refSection{level: 2, title: title, intro: intro, rows: rows})
	}
	return secs
}

// processorUses adds to each type-specific key of a processor which types
// take it (package processors' own table), and to type the list of types.
func processorUses(rows []refRow) {
	types := make([]string, 0, len(processors.Types))
	for t := range processors.Types {
		types = append(types, t)
	}
	sort.Strings(types)
	for i := range rows {
		root, _, _ := strings.Cut(rows[i].key, ".")
		root, _, _ = strings.Cut(root, "[")
		if rows[i].key == "type" {
			rows[i].meaning += " One of: " + strings.Join(types, ", ") + "."
			continue
		}
		var by []string
		for _, t := range types {
			if slices.Contains(processors.Types[t], root) {
				by = append(by, t)
			}
		}
		if len(by) > 0 && root == rows[i].key {
			rows[i].meaning += " Used by: " + strings.Join(by, ", ") + "."
		}
	}
}

func kindNames(ks []kind) []string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = k.name
	}
	return s
}

// rows lists the keys of the struct v (holding its defaults), nested
// sections and list items included, under prefix.
func (r *refBuilder) rows(v reflect.Value, prefix string) []refRow {
	t := v.Type()
	var out []refRow
	for _, f := range fieldsOf(t) {
		sf := t.Field(f.index)
		fv := v.Field(f.index)
		key := prefix + f.key
		row := refRow{key: key, field: t.Name() + "." + sf.Name}
		row.meaning = r.fieldDoc(t, sf, f.key)
		elem, list := sf.Type, false
		if elem.Kind() == reflect.Slice {
			elem, list = elem.Elem(), true
		}
		if elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		if sect, ok := refLinks[elem]; ok {
			row.value = "mapping"
			switch {
			case elem == conditionType && list:
				row.value = "list of conditions"
			case elem == conditionType:
				row.value = "condition"
			case list:
				row.value = "list"
			}
			row.meaning = strings.TrimSpace(row.meaning + fmt.Sprintf(" See [%s](#%s).", sect, slug(sect)))
			out = append(out, row)
			continue
		}
		if elem.Kind() == reflect.Struct && elem != durationType {
			sub := reflect.New(elem).Elem()
			switch {
			case list:
				row.value = "list of mappings"
				if d, ok := sub.Addr().Interface().(defaulter); ok {
					d.setDefaults()
				}
			case sf.Type.Kind() == reflect.Pointer && !fv.IsNil():
				row.value = "mapping"
				sub = fv.Elem()
			case sf.Type.Kind() == reflect.Pointer:
				row.value = "mapping"
				if def, ok := sectionDefaults[elem]; ok {
					sub = reflect.ValueOf(def())
				}
			default:
				row.value = "mapping"
				sub = fv
			}
			out = append(out, row)
			sep := "."
			if list {
				sep = "[]."
			}
			out = append(out, r.rows(sub, key+sep)...)
			continue
		}
		o := option(key, f.key, fv)
		row.value, row.def = o.Value, o.Default
		switch {
		case fv.Kind() == reflect.Pointer && fv.IsNil():
			row.def = "" // unset: what that means is in the meaning
		case row.def == "0" && fv.Kind() == reflect.Int && !strings.Contains(row.meaning, "0"):
			row.def = ""
		}
		out = append(out, row)
	}
	return out
}

// fieldDoc returns the meaning of field sf of struct t in Markdown: its
// doc comment, or for a section its type's, Go names replaced by keys.
func (r *refBuilder) fieldDoc(t reflect.Type, sf reflect.StructField, key string) string {
	doc := r.docs.Fields[t.Name()+"."+sf.Name]
	self := sf.Name
	if doc == "" {
		e := sf.Type
		for e.Kind() == reflect.Pointer || e.Kind() == reflect.Slice {
			e = e.Elem()
		}
		if e.Kind() == reflect.Struct && e.PkgPath() == t.PkgPath() {
			doc, self = r.docs.Types[e.Name()], e.Name()
		}
	}
	if doc == "" {
		r.missing = append(r.missing, t.Name()+"."+sf.Name)
		return ""
	}
	return blocksText(doc, fieldNames(t), lead{self, "`" + key + "`"})
}

// typeDoc returns the paragraphs of the doc comment of type t, its name
// at the start replaced by self.
func (r *refBuilder) typeDoc(t reflect.Type, self string) []string {
	doc := r.docs.Types[t.Name()]
	if doc == "" {
		return nil
	}
	return blocks(doc, fieldNames(t), lead{t.Name(), self})
}

// fieldNames maps the Go names the doc comments of t and its fields use
// to what the reference says: the names of t's fields and of the types of
// its sections, but acronyms such as TLS and properNouns, to their keys as
// code. (A capitalized word that is a field's name is that field: the
// comments of config spell keys in lowercase otherwise.)
func fieldNames(t reflect.Type) map[string]string {
	m := map[string]string{}
	for _, f := range fieldsOf(t) {
		sf := t.Field(f.index)
		if strings.ToUpper(sf.Name) != sf.Name && !properNouns[sf.Name] {
			m[sf.Name] = code(f.key)
		}
		e := sf.Type
		for e.Kind() == reflect.Pointer || e.Kind() == reflect.Slice {
			e = e.Elem()
		}
		if e.Kind() == reflect.Struct && e.PkgPath() == t.PkgPath() && strings.ToUpper(e.Name()) != e.Name() {
			m[e.Name()] = code(f.key)
		}
	}
	return m
}

// properNouns are field names that the comments also use as names of
// things: "the Kubernetes API", "OpenSearch Service".
var properNouns = map[string]bool{"Kubernetes": true, "Service": true}

// qualified renders a Go name Type.Field of a component type's field as
// "the docker input's `tag`", or returns "".
func qualified(tok string) string {
	typ, name, ok := strings.Cut(tok, ".")
	if !ok {
		return ""
	}
	for _, ks := range []struct {
		what  string
		kinds []kind
	}{{"input", inputKinds}, {"output", outputKinds}} {
		for _, k := range ks.kinds {
			if k.typ.Name() != typ {
				continue
			}
			if f, ok := k.typ.FieldByName(name); ok {
				key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				return fmt.Sprintf("the %s %s's %s", k.name, ks.what, code(key))
			}
		}
	}
	return ""
}

// camel reports whether s is an identifier with a capital after its first
// letter and a lowercase letter: MaxBytes, CAFile, ParseJSON, not TLS.
func camel(s string) bool {
	var upper, lower bool
	for i, c := range s {
		switch {
		case unicode.IsUpper(c) && i > 0:
			upper = true
		case unicode.IsLower(c):
			lower = true
		}
	}
	return upper && lower
}

// valueSyntax returns the "Value syntax" section of the package doc.
func (r *refBuilder) valueSyntax() []string {
	d := docParser.Parse(r.docs.Package)
	var out []string
	in := false
	for _, b := range d.Content {
		if h, ok := b.(*comment.Heading); ok {
			in = inlineText(h.Text) == "Value syntax"
			continue
		}
		if in {
			out = append(out, renderBlock(b, nil, lead{}))
		}
	}
	return out
}

// docParser parses doc comments with no doc links to symbols (the
// comments have none; [REDACTED] is text).
var docParser = &comment.Parser{LookupSym: func(string, string) bool { return false }}

// lead is a Go name that may start a doc comment (the documented field or
// type), and what replaces it there.
type lead struct{ name, repl string }

// blocks renders a doc comment as Markdown blocks.
func blocks(doc string, names map[string]string, l lead) []string {
	d := docParser.Parse(doc)
	out := make([]string, 0, len(d.Content))
	for i, b := range d.Content {
		if i > 0 {
			l = lead{}
		}
		out = append(out, renderBlock(b, names, l))
	}
	return out
}

// blocksText renders a doc comment as one line of Markdown (a table cell).
func blocksText(doc string, names map[string]string, l lead) string {
	d := docParser.Parse(doc)
	var parts []string
	for i, b := range d.Content {
		if i > 0 {
			l = lead{}
		}
		switch b := b.(type) {
		case *comment.Code:
			parts = append(parts, "`"+strings.ReplaceAll(strings.Join(strings.Fields(b.Text), " "), "`", "'")+"`")
		default:
			parts = append(parts, strings.ReplaceAll(renderBlock(b, names, l), "\n", " "))
		}
	}
	return strings.Join(parts, " ")
}

// renderBlock renders one block of a doc comment, l.name at its start
// replaced by l.repl.
func renderBlock(b comment.Block, names map[string]string, l lead) string {
	switch b := b.(type) {
	case *comment.Paragraph:
		return mdLead(inlineText(b.Text), names, l)
	case *comment.Code:
		return "```\n" + b.Text + "```"
	case *comment.List:
		var s []string
		for _, it := range b.Items {
			var parts []string
			for _, c := range it.Content {
				parts = append(parts, renderBlock(c, names, lead{}))
			}
			s = append(s, "- "+strings.Join(parts, " "))
		}
		return strings.Join(s, "\n")
	case *comment.Heading:
		return "**" + mdText(inlineText(b.Text), nil) + "**"
	}
	return ""
}

func inlineText(ts []comment.Text) string {
	var b strings.Builder
	for _, t := range ts {
		switch t := t.(type) {
		case comment.Plain:
			b.WriteString(string(t))
		case comment.Italic:
			b.WriteString(string(t))
		case *comment.Link:
			b.WriteString(inlineText(t.Text))
		case *comment.DocLink:
			// Only a standard library package, as in "default [log]":
			// docParser knows no symbols. It is text.
			b.WriteString("[" + inlineText(t.Text) + "]")
		}
	}
	return b.String()
}

// mdLead is mdText with l.name, at the start of s, replaced by l.repl.
func mdLead(s string, names map[string]string, l lead) string {
	if l.name != "" {
		if rest, ok := strings.CutPrefix(s, l.name); ok && (rest == "" || !isIdentChar(rest[0])) {
			if rest != "" && rest[0] != ' ' && rest[0] != '\n' {
				return l.repl + mdText(rest, names) // "Name," or "Name:"
			}
			return strings.TrimSpace(l.repl + " " + mdText(rest, names))
		}
	}
	return mdText(s, names)
}

func isIdentChar(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// mdTokenRE finds what mdText renders specially: a double-quoted string
// and a (possibly qualified) identifier.
var mdTokenRE = regexp.MustCompile(`"[^"\n]+"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Z][A-Za-z0-9]*)?`)

// mdText renders plain text as Markdown: "quoted" strings become code,
// the Go names in names their replacement, and the rest is escaped where
// Markdown would read it otherwise.
func mdText(s string, names map[string]string) string {
	var b strings.Builder
	last := 0
	for _, m := range mdTokenRE.FindAllStringIndex(s, -1) {
		tok := s[m[0]:m[1]]
		var repl string
		switch {
		case tok[0] == '"':
			repl = code(tok[1 : len(tok)-1])
		case names[tok] != "":
			repl = names[tok]
		case qualified(tok) != "":
			repl = qualified(tok)
		default:
			continue
		}
		b.WriteString(mdEscape(s[last:m[0]]))
		b.WriteString(repl)
		last = m[1]
	}
	b.WriteString(mdEscape(s[last:]))
	return strings.Join(strings.Fields(b.String()), " ")
}

// code renders s as a code span.
func code(s string) string {
	if strings.Contains(s, "`") {
		return "``" + s + "``"
	}
	return "`" + s + "`"
}

// mdEscape escapes what Markdown (GitHub's) would not show as written:
// emphasis, HTML, table cell ends, and a _ at the edge of a word.
func mdEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '`', '*', '<', '|':
			b.WriteByte('\\')
		case '_':
			if i == 0 || i == len(s)-1 || !isIdentChar(s[i-1]) || !isIdentChar(s[i+1]) {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// slug is the anchor GitHub gives a heading.
func slug(title string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(title) {
		switch {
		case c == ' ':
			b.WriteByte('-')
		case c == '-' || c == '_' || unicode.IsLetter(c) || unicode.IsDigit(c):
			b.WriteRune(c)
		}
	}
	return b.String()
}

func renderReference(secs []refSection, syntax []string) []byte {
	var b bytes.Buffer
	b.WriteString("<!-- Code generated by go generate ./config (config/internal/gendoc); DO NOT EDIT. -->\n\n")
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Every key of the agent's config file (`agent run --config FILE`), with its type, default and meaning. ")
	b.WriteString("This file is generated from the code: the keys, types and defaults from package config's structs and `Default*` functions, the meanings from the fields' doc comments. ")
	b.WriteString("`go generate ./config` writes it, and a test fails when it is out of date. ")
	b.WriteString("`agent validate FILE` checks a file against the same declarations; `agent types` lists the keys of every input and output type in the terminal.\n\n")
	b.WriteString("Types: string, bool, integer, size (`512KiB`, `8MiB`, `1GiB`), duration (`500ms`, `5s`, `1m30s`), file mode (octal, `0660`), secret (a string never printed), list of strings, mapping, list of mappings. ")
	b.WriteString("A key below a list is written `list[].key`. ")
	b.WriteString("An empty default means none: the key is optional (or required, as its meaning says), or its default depends on other keys. ")
	b.WriteString("Any value may come from the environment, `${VAR}` (see [Value syntax](#value-syntax)).\n\n")
	b.WriteString("Contents:\n\n")
	for _, s := range secs {
		if s.level == 2 {
			fmt.Fprintf(&b, "- [%s](#%s)", s.title, slug(s.title))
			var subs []string
			for _, t := range secs {
				if t.level == 3 && strings.HasSuffix(t.title, " "+strings.TrimSuffix(strings.ToLower(s.title), "s")) {
					subs = append(subs, fmt.Sprintf("[%s](#%s)", strings.Fields(t.title)[0], slug(t.title)))
				}
			}
			if len(subs) > 0 {
				b.WriteString(": " + strings.Join(subs, ", "))
			}
			b.WriteByte('\n')
		}
	}
	b.WriteString("- [Value syntax](#value-syntax)\n")
	for _, s := range secs {
		fmt.Fprintf(&b, "\n%s %s\n", strings.Repeat("#", s.level), s.title)
		for _, p := range s.intro {
			b.WriteString("\n" + p + "\n")
		}
		if len(s.rows) == 0 {
			continue
		}
		b.WriteString("\n| Key | Type | Default | Meaning |\n| --- | --- | --- | --- |\n")
		for _, row := range s.rows {
			def := ""
			if row.def != "" {
				def = code(strings.ReplaceAll(row.def, "|", `\|`))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", code(row.key), row.value, def, row.meaning)
		}
	}
	b.WriteString("\n## Value syntax\n")
	for _, p := range syntax {
		b.WriteString("\n" + p + "\n")
	}
	return b.Bytes()
}
