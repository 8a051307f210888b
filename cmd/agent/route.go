package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	jsonrec "github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/pipeline"
)

// cmdRoute is the offline dry run of a config's processors and routes:
//
//	agent route --config FILE --tag TAG [--record JSON | --log TEXT]
//
// It prints the event after each processor that applied to it, then the
// routes it matched and the outputs it would be stored in. Without
// --record or --log, each line of standard input is one event's log.
// Nothing is read from or written to data_dir; throttles start full.
func cmdRoute(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/sluice/agent.yml", "config file")
	tag := fs.String("tag", "", "the event's tag, as its input would make it (required)")
	js := fs.String("record", "", `the event's record as a JSON object, e.g. '{"log":"GET / type=access","stream":"stdout"}'`)
	logText := fs.String("log", "", `shorthand for --record '{"log":TEXT,"stream":"stdout"}'`)
	if err := fs.Parse(args); err != nil {
		return flagErrCode(err)
	}
	if *tag == "" {
		fmt.Fprintln(stderr, "agent route: --tag is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	r, err := dryRouter(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "agent route: %v\n", err)
		return 1
	}
	var events [][]byte
	switch {
	case *js != "" && *logText != "":
		fmt.Fprintln(stderr, "agent route: set either --record or --log")
		return 2
	case *js != "":
		rec, err := jsonRecord([]byte(*js))
		if err != nil {
			fmt.Fprintf(stderr, "agent route: --record: %v\n", err)
			return 2
		}
		events = append(events, rec)
	case *logText != "":
		events = append(events, logRecord(*logText))
	default:
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			events = append(events, logRecord(sc.Text()))
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(stderr, "agent route: read stdin: %v\n", err)
			return 1
		}
	}
	for i, rec := range events {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printOutcome(stdout, cfg, []byte(*tag), rec, r.DryRun([]byte(*tag), rec))
	}
	return 0
}

// dryRouter builds the config's Router over queues that store nothing.
func dryRouter(cfg *config.Config) (*pipeline.Router, error) {
	var oq []pipeline.OutputQueue
	for _, o := range cfg.Outputs {
		oq = append(oq, pipeline.OutputQueue{ID: o.ID, Queue: nullQueue{}})
	}
	return pipeline.NewRouter(cfg.Routes, cfg.DefaultOutput, oq, nil, nil, pipeline.WithProcessors(cfg.ProcessorSpecs()))
}

type nullQueue struct{}

func (nullQueue) Append(context.Context, []byte, int, []byte) error { return nil }
func (nullQueue) Sync() error                                       { return nil }
func (nullQueue) Mark() uint64                                      { return 0 }
func (nullQueue) SyncTo(uint64) error                               { return nil }

func jsonRecord(js []byte) ([]byte, error) {
	var f jsonrec.Fields
	if !f.Parse(js, nil) {
		return nil, fmt.Errorf("not a JSON object: %s", js)
	}
	return append(msgp.AppendMapHeader(nil, uint32(f.Len())), f.Pairs()...), nil
}

func logRecord(line string) []byte {
	b := msgp.AppendMapHeader(nil, 2)
	b = msgp.AppendString(b, "log")
	b = msgp.AppendString(b, line)
	b = msgp.AppendString(b, "stream")
	return msgp.AppendString(b, "stdout")
}

func printOutcome(w io.Writer, cfg *config.Config, tag, rec []byte, o pipeline.Outcome) {
	fmt.Fprintf(w, "event             %s %s\n", tag, asJSON(rec))
	for _, s := range o.Steps {
		if s.Dropped {
			fmt.Fprintf(w, "dropped by %s\n", s.Processor)
			continue
		}
		fmt.Fprintf(w, "%-17s %s %s\n", "after "+s.Processor, s.Tag, asJSON(s.Record))
	}
	if o.Dropped {
		fmt.Fprintln(w, "not routed (dropped; counted in sluice_processor_dropped_total)")
		return
	}
	for _, i := range o.Routes {
		rt := cfg.Routes[i]
		fmt.Fprintf(w, "route %d (line %d: match %q) -> %s\n", i+1, rt.Line, rt.Match, strings.Join(rt.Outputs, ", "))
	}
	switch {
	case o.Default && len(o.Outputs) > 0:
		fmt.Fprintf(w, "no route matched -> default_output %s\n", o.Outputs[0])
	case o.Default:
		fmt.Fprintln(w, "no route matched and no default_output: unrouted (counted in sluice_events_unrouted_total)")
	default:
		fmt.Fprintf(w, "outputs           %s\n", strings.Join(o.Outputs, ", "))
	}
}

func asJSON(rec []byte) string {
	var b bytes.Buffer
	if _, err := msgp.UnmarshalAsJSON(&b, rec); err != nil {
		return fmt.Sprintf("<record %x: %v>", rec, err)
	}
	return b.String()
}
