package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// The component types are the section fields of Input and Output, each
// tagged with its type name (the value of "type") and a one-line summary:
//
//	Docker *DockerInput `yaml:"-" type:"docker" doc:"tails Docker's json-file logs"`
//
// The field's struct is the type's configuration: its yaml keys are the
// type's options, its setDefaults method applies every default (through
// the type's Default* function), its check method validates it. Decoding,
// validation, marshalling, Types (the options printed by `agent types`)
// and the agent's wiring all start from these fields, so adding a type is:
// a file with its struct, Default* function, setDefaults and check; its
// field in Input or Output; its constructor in the agent's table.
//
// The table of constructors cannot live here, next to the struct: the
// plugins import config for their structs, so config (and its tests, and
// `agent validate`) must know every type's options without linking the
// plugins.

// spec is what the struct of every component type implements.
type spec interface {
	// setDefaults sets every field to its default.
	setDefaults()
	// check reports every problem of a decoded or hand-built value; path
	// is the section's path, e.g. inputs[0].docker.
	check(v *checker, path string)
}

// decodedHook is implemented by types whose defaults depend on which keys
// the file set (set reports it for a key of the section).
type decodedHook interface {
	decoded(set func(key string) bool)
}

// defaulter is implemented by list item types with defaults
// (ForwardServer).
type defaulter interface{ setDefaults() }

// kind is one component type: a section field of Input or Output.
type kind struct {
	name  string       // the value of "type"
	typ   reflect.Type // the section struct
	doc   string       // one-line summary
	field int          // index of the section field
	gonam string       // the field's Go name, for messages
}

var (
	inputKinds  = kindsOf(inputType)
	outputKinds = kindsOf(outputType)
)

// kindsOf returns the types declared by the section fields of the struct
// t (Input or Output), in field order. A malformed field is a programming
// error and panics at init.
func kindsOf(t reflect.Type) []kind {
	var ks []kind
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := f.Tag.Lookup("type")
		if !ok {
			continue
		}
		if f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct || !f.Type.Implements(reflect.TypeFor[spec]()) {
			panic(fmt.Sprintf("config: %s.%s: a type section must be a pointer to a struct with setDefaults and check", t.Name(), f.Name))
		}
		ks = append(ks, kind{name: name, typ: f.Type.Elem(), doc: f.Tag.Get("doc"), field: i, gonam: f.Name})
	}
	return ks
}

func findKind(ks []kind, name string) *kind {
	for i := range ks {
		if ks[i].name == name {
			return &ks[i]
		}
	}
	return nil
}

// fresh returns a new section of k with every default applied.
func (k *kind) fresh() reflect.Value {
	p := reflect.New(k.typ)
	p.Interface().(spec).setDefaults()
	return p
}

// section returns the section of k in the Input or Output v (a struct
// value), or nil. A nil section of a type without fields reads as an
// empty one.
func (k *kind) section(v reflect.Value) spec {
	f := v.Field(k.field)
	if f.IsNil() {
		if k.typ.NumField() == 0 {
			return k.fresh().Interface().(spec)
		}
		return nil
	}
	return f.Interface().(spec)
}

// wantTypes lists the type names for messages: "a, b or c".
func wantTypes(ks []kind) string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.name
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Spec returns the section of the input's type (such as *DockerInput), or
// nil if Type is unknown or its section is not set.
func (in *Input) Spec() any {
	if k := findKind(inputKinds, in.Type); k != nil {
		if s := k.section(reflect.ValueOf(in).Elem()); s != nil {
			return s
		}
	}
	return nil
}

// Spec returns the section of the output's type (such as *FileOutput), or
// nil if Type is unknown or its section is not set.
func (o *Output) Spec() any {
	if k := findKind(outputKinds, o.Type); k != nil {
		if s := k.section(reflect.ValueOf(o).Elem()); s != nil {
			return s
		}
	}
	return nil
}

// Type describes one component type, for documentation and for the
// agent's wiring.
type Type struct {
	Kind string // "input" or "output"
	Name string // the value of "type"
	Doc  string // one-line summary
	k    *kind
}

// Types returns every input type, then every output type, in declaration
// order.
func Types() []Type {
	var ts []Type
	for i := range inputKinds {
		ts = append(ts, Type{Kind: "input", Name: inputKinds[i].name, Doc: inputKinds[i].doc, k: &inputKinds[i]})
	}
	for i := range outputKinds {
		ts = append(ts, Type{Kind: "output", Name: outputKinds[i].name, Doc: outputKinds[i].doc, k: &outputKinds[i]})
	}
	return ts
}

// New returns a pointer to a new section of the type (such as
// *DockerInput) with every default applied.
func (t Type) New() any { return t.k.fresh().Interface() }

// Options lists the type's keys with their defaults.
func (t Type) Options() []Option { return Options(t.New()) }

// Option is one configuration key, for documentation.
type Option struct {
	// Key is the path below the component: "root", "tls.ca_file",
	// "servers[].weight".
	Key string
	// Value says what the key accepts: string, bool, integer, size,
	// duration, file mode, secret or a list of strings.
	Value string
	// Default is the default in the file's syntax; "" when there is none.
	Default string
}

// Options lists the keys of the config struct v points to, nested
// sections and list items included, with the defaults v holds (list items
// and absent sections show their own defaults).
func Options(v any) []Option {
	return appendOptions(nil, "", reflect.ValueOf(v).Elem())
}

func appendOptions(opts []Option, prefix string, v reflect.Value) []Option {
	for _, f := range fieldsOf(v.Type()) {
		key := prefix + f.key
		fv := v.Field(f.index)
		ft := fv.Type()
		switch {
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			sub := reflect.New(ft.Elem()).Elem()
			if !fv.IsNil() {
				sub = fv.Elem()
			}
			opts = appendOptions(opts, key+".", sub)
			continue
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			item := reflect.New(ft.Elem())
			if d, ok := item.Interface().(defaulter); ok {
				d.setDefaults()
			}
			opts = appendOptions(opts, key+"[].", item.Elem())
			continue
		case ft.Kind() == reflect.Struct && ft != durationType:
			opts = appendOptions(opts, key+".", fv)
			continue
		}
		opts = append(opts, option(key, f.key, fv))
	}
	return opts
}

// option describes one scalar (or list of strings) field.
func option(key, name string, v reflect.Value) Option {
	o := Option{Key: key}
	set := false // a pointer field with a default
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v = reflect.Zero(v.Type().Elem())
		} else {
			v, set = v.Elem(), true
		}
	}
	switch {
	case v.Type() == durationType:
		o.Value = "duration"
	case v.Type() == byteSizeType, v.Kind() == reflect.Int && strings.HasSuffix(name, "_bytes"):
		o.Value = "size"
	case v.Type() == reflect.TypeFor[Secret]():
		o.Value = "secret"
	case v.Kind() == reflect.Uint32:
		o.Value = "file mode"
	case v.Kind() == reflect.Bool:
		o.Value = "bool"
	case v.Kind() == reflect.Int:
		o.Value = "integer"
	case v.Kind() == reflect.Slice:
		o.Value = "list of strings"
	default:
		o.Value = "string"
	}
	o.Default = formatDefault(name, v, set)
	return o
}

// formatDefault renders a default in the file's syntax. A zero string,
// duration, size or list is no default (""), unless set (a pointer field
// with a default); booleans and integers always have one.
func formatDefault(name string, v reflect.Value, set bool) string {
	isInt := v.Kind() == reflect.Int && !strings.HasSuffix(name, "_bytes")
	if v.IsZero() && !set && v.Kind() != reflect.Bool && !isInt {
		return ""
	}
	switch {
	case v.Type() == durationType:
		return formatDuration(time.Duration(v.Int()))
	case v.Type() == byteSizeType, v.Kind() == reflect.Int && strings.HasSuffix(name, "_bytes"):
		return formatSize(ByteSize(v.Int()))
	case v.Kind() == reflect.Uint32:
		return fmt.Sprintf("0%o", v.Uint())
	case v.Kind() == reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case v.Kind() == reflect.Int:
		return strconv.FormatInt(v.Int(), 10)
	case v.Kind() == reflect.String:
		return v.String()
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration is d.String() without zero minutes and seconds: 1m, not
// 1m0s; 1h, not 1h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
