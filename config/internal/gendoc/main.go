// Command gendoc writes the config reference (docs/config.md) from package
// config's struct fields, their doc comments and its Default* functions.
// Run by go generate in the config directory:
//
//	go generate ./config
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/config/internal/docsrc"
)

func main() {
	out := flag.String("o", "../docs/config.md", "output file")
	src := flag.String("src", ".", "directory of package config's source")
	flag.Parse()
	d, err := docsrc.Load(*src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
	ref, err := config.Reference(config.ReferenceDocs{Package: d.Package, Types: d.Types, Fields: d.Fields})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, ref, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
