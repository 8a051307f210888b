package config

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-agent/sluice/config/internal/docsrc"
)

func loadReferenceDocs(t *testing.T) ReferenceDocs {
	t.Helper()
	d, err := docsrc.Load(".")
	if err != nil {
		t.Fatal(err)
	}
	return ReferenceDocs{Package: d.Package, Types: d.Types, Fields: d.Fields}
}

// TestConfigReferenceUpToDate: docs/config.md is what go generate writes
// from the code as it is.
func TestConfigReferenceUpToDate(t *testing.T) {
	want, err := Reference(loadReferenceDocs(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatalf("%v: run go generate ./config", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("docs/config.md is out of date: run go generate ./config\nline %d is\n  %s\nwant\n  %s", i+1, g, w)
			}
		}
	}
}

// codeSpanRE matches a Markdown code span.
var codeSpanRE = regexp.MustCompile("`[^`]*`")

// TestConfigReferenceMeanings: every key of the reference has a meaning,
// written for the reader of the file: no Go names of config's types and
// fields outside code spans.
func TestConfigReferenceMeanings(t *testing.T) {
	r := &refBuilder{docs: loadReferenceDocs(t)}
	secs := r.sections()
	if len(r.missing) > 0 {
		t.Errorf("no doc comment for %v", r.missing)
	}
	goNames := map[string]bool{}
	seen := map[reflect.Type]bool{}
	var collect func(reflect.Type)
	collect = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() != reflect.TypeFor[Config]().PkgPath() {
			return
		}
		seen[t] = true
		if strings.ToUpper(t.Name()) != t.Name() { // TLS is a word too
			goNames[t.Name()] = true
		}
		for _, f := range fieldsOf(t) {
			if sf := t.Field(f.index); camel(sf.Name) {
				goNames[sf.Name] = true
			}
			collect(t.Field(f.index).Type)
		}
	}
	collect(reflect.TypeFor[Config]())
	for _, k := range append(append([]kind{}, inputKinds...), outputKinds...) {
		collect(k.typ)
	}
	rows := 0
	for _, s := range secs {
		texts := append([]string{}, s.intro...)
		for _, row := range s.rows {
			rows++
			if strings.TrimSpace(row.meaning) == "" {
				t.Errorf("%s: %s has no meaning", s.title, row.key)
			}
			texts = append(texts, row.meaning)
		}
		for _, text := range texts {
			for _, w := range regexp.MustCompile(`[A-Za-z][A-Za-z0-9]*`).FindAllString(codeSpanRE.ReplaceAllString(text, ""), -1) {
				if goNames[w] {
					t.Errorf("%s: Go name %s in %q", s.title, w, text)
				}
			}
		}
	}
	if rows < 200 {
		t.Errorf("only %d keys", rows)
	}
	// Every option `agent types` lists is in its type's section.
	keys := map[string]bool{}
	for _, s := range secs {
		for _, row := range s.rows {
			keys[s.title+" "+row.key] = true
		}
	}
	for _, ty := range Types() {
		for _, o := range ty.Options() {
			if !keys[ty.Name+" "+ty.Kind+" "+o.Key] {
				t.Errorf("%s %s: %s is not in the reference", ty.Kind, ty.Name, o.Key)
			}
		}
	}
	for _, o := range Options(ptr(DefaultBuffer())) {
		if !keys["buffer "+o.Key] {
			t.Errorf("buffer: %s is not in the reference", o.Key)
		}
	}
}
