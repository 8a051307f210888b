package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sluice-agent/sluice/config"
)

// cmdTypes prints every component type with its options and defaults, from
// the same declarations config decodes and validates with.
func cmdTypes(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintf(stdout, "usage: agent types\n\nPrints every input and output type with its options, their types and\ndefaults. Every option of the file with its meaning: %s.\n", configReference)
		return 0
	}
	if len(args) > 0 {
		fmt.Fprintln(stderr, "agent types: takes no arguments")
		return 2
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Every input and output has id (required, unique per kind; it names its state directory) and type.")
	fmt.Fprintln(tw, "The keys of its type go inline, next to id and type.")
	fmt.Fprintln(tw, "\nEvery output also has a disk queue, buffer:")
	writeOptions(tw, "buffer.", config.Options(ptr(config.DefaultBuffer())))
	for _, t := range config.Types() {
		fmt.Fprintf(tw, "\n%s type %s: %s\n", t.Kind, t.Name, t.Doc)
		opts := t.Options()
		if len(opts) == 0 {
			fmt.Fprintln(tw, "  (no options)")
		}
		writeOptions(tw, "", opts)
	}
	fmt.Fprintf(tw, "\nThe meaning of every option, and the keys of routes and processors: %s.\n", configReference)
	if err := tw.Flush(); err != nil {
		fmt.Fprintln(stderr, "agent types:", err)
		return 1
	}
	return 0
}

func writeOptions(w io.Writer, prefix string, opts []config.Option) {
	for _, o := range opts {
		if o.Default == "" {
			fmt.Fprintf(w, "  %s%s\t%s\n", prefix, o.Key, o.Value)
			continue
		}
		fmt.Fprintf(w, "  %s%s\t%s\tdefault %s\n", prefix, o.Key, o.Value, o.Default)
	}
}

func ptr[T any](v T) *T { return &v }
