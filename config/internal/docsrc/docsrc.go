// Package docsrc reads the doc comments of a Go package's struct types
// and their fields from its source, for the generated config reference
// (package config's Reference). It does not import package config, so
// that config's own tests can use it.
package docsrc

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
)

// Docs is the documentation of one package, as go/ast reads it: comment
// text without the comment markers, lines separated by newlines.
type Docs struct {
	// Package is the package's doc comment.
	Package string
	// Types maps a type's name to its doc comment.
	Types map[string]string
	// Fields maps "Type.Field" to the field's doc comment, or to its line
	// comment when it has no doc comment.
	Fields map[string]string
}

// Load reads the non-test .go files of the package in dir.
func Load(dir string) (*Docs, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	d := &Docs{Types: map[string]string{}, Fields: map[string]string{}}
	for _, e := range entries { // in name order
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if f.Doc != nil {
			d.Package += f.Doc.Text()
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, s := range g.Specs {
				ts := s.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(g.Specs) == 1 {
					doc = g.Doc
				}
				if doc != nil {
					d.Types[ts.Name.Name] = doc.Text()
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fl := range st.Fields.List {
					c := fl.Doc
					if c == nil {
						c = fl.Comment
					}
					if c == nil {
						continue
					}
					for _, n := range fl.Names {
						d.Fields[ts.Name.Name+"."+n.Name] = c.Text()
					}
				}
			}
		}
	}
	return d, nil
}
