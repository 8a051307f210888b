// Command loggen is the log generator the Docker-engine tests run inside a
// FROM-scratch image. It writes numbered JSON lines of several log types to
// stdout and stderr:
//
//	{"log_type":"app","src":"web-app","seq":41,"pad":"abc..."}
//
// Each log type T has its own source id "<src>-T" and its own dense
// sequence 0..n-1, so a receiver that keys events by (src, seq) (package
// internal/testkit/receiver) can tell exactly which lines are missing per
// log type. Line i of the run (i = 0 .. n*types-1) has log type
// types[i%len(types)] and sequence i/len(types); every -stderr-every'th
// sequence goes to stderr, the rest to stdout.
//
// Every -long-every'th sequence is a long line, alternately 40,000 bytes
// and exactly 16,384 bytes (Docker's copier buffer, so the driver emits a
// full fragment followed by an empty last one). A long line puts "seq"
// after the padding and ends with its own length:
//
//	{"log_type":"app","src":"web-app","pad":"...","seq":41,"len":40000}
//
// so a fragment of it carries either "src" or "seq" but never both: only a
// correctly reassembled line yields a (src, seq) key, and "len" lets the
// test check nothing was cut or lost in the middle.
//
// With -rate the lines are spread evenly over time (lines per second, all
// types together); -progress names a file where the last sequence written
// is stored every 100 ms, so a test can see the generator block when
// Docker's driver stops reading the container's output.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loggen:", err)
		os.Exit(2)
	}
}

// longSizes are the lengths of long lines, used in turn.
var longSizes = [2]int{40000, 16384}

type options struct {
	src         string
	types       []string
	n           int
	rate        float64
	size        int
	longEvery   int
	stderrEvery int
	progress    string
	hold        time.Duration
}

func run(args []string) error {
	fs := flag.NewFlagSet("loggen", flag.ContinueOnError)
	var o options
	host, _ := os.Hostname()
	fs.StringVar(&o.src, "src", host, "source id prefix (default: the hostname, i.e. the container's short id)")
	types := fs.String("types", "app,access,audit", "comma-separated log types")
	fs.IntVar(&o.n, "n", 1000, "lines per log type")
	fs.Float64Var(&o.rate, "rate", 0, "lines per second over all types (0: as fast as possible)")
	fs.IntVar(&o.size, "size", 200, "length of a normal line in bytes (without the newline; at least the fixed fields)")
	fs.IntVar(&o.longEvery, "long-every", 0, "every Nth sequence is a long line (40000 or 16384 bytes); 0: none")
	fs.IntVar(&o.stderrEvery, "stderr-every", 3, "every Nth sequence goes to stderr; 0: none")
	fs.StringVar(&o.progress, "progress", "", "file to store the last sequence written every 100 ms")
	fs.DurationVar(&o.hold, "hold", 0, "sleep this long after the last line before exiting")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, t := range strings.Split(*types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.types = append(o.types, t)
		}
	}
	if len(o.types) == 0 || o.n < 0 || o.rate < 0 || o.longEvery < 0 || o.stderrEvery < 0 {
		return fmt.Errorf("invalid flags: types %q n %d rate %v long-every %d stderr-every %d",
			*types, o.n, o.rate, o.longEvery, o.stderrEvery)
	}
	return generate(o, os.Stdout, os.Stderr)
}

// generate writes every line; it returns the first write error.
func generate(o options, stdout, stderr *os.File) error {
	out := bufio.NewWriterSize(stdout, 64<<10)
	errw := bufio.NewWriterSize(stderr, 64<<10)
	var prog *progress
	if o.progress != "" {
		prog = newProgress(o.progress)
	}
	total := o.n * len(o.types)
	start := time.Now()
	var line []byte
	for i := range total {
		if o.rate > 0 {
			// Flush and sleep whenever ahead of schedule, so lines leave
			// the process at the requested rate in 10 ms bursts at most.
			due := start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if err := flush(out, errw); err != nil {
					return err
				}
				time.Sleep(max(d, 10*time.Millisecond))
			}
		}
		typ := o.types[i%len(o.types)]
		seq := i / len(o.types)
		line = appendLine(line[:0], o, typ, seq)
		w := out
		if o.stderrEvery > 0 && seq%o.stderrEvery == o.stderrEvery-1 {
			w = errw
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if prog != nil && i%len(o.types) == len(o.types)-1 {
			// The sequence counts as written once it was handed to the
			// kernel, so flush before publishing it when a test watches.
			if prog.due() {
				if err := flush(out, errw); err != nil {
					return err
				}
				prog.set(seq)
			}
		}
	}
	if err := flush(out, errw); err != nil {
		return err
	}
	if prog != nil {
		prog.set(o.n - 1)
	}
	time.Sleep(o.hold)
	return nil
}

func flush(ws ...*bufio.Writer) error {
	for _, w := range ws {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// padAlphabet fills the "pad" field; a varying pattern makes a lost or
// repeated fragment change the content, not only the length.
const padAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// appendLine appends one line, newline included, to dst.
func appendLine(dst []byte, o options, typ string, seq int) []byte {
	dst = append(dst, `{"log_type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","src":"`...)
	dst = append(dst, o.src...)
	dst = append(dst, '-')
	dst = append(dst, typ...)
	dst = append(dst, '"')
	if o.longEvery > 0 && seq%o.longEvery == o.longEvery-1 {
		size := longSizes[(seq/o.longEvery)%len(longSizes)]
		// {... ,"pad":"<pad>","seq":N,"len":SIZE}
		tail := len(`,"pad":""`) + len(`,"seq":`) + digits(seq) + len(`,"len":`) + digits(size) + len(`}`)
		padLen := size - len(dst) - tail
		dst = append(dst, `,"pad":"`...)
		dst = appendPad(dst, padLen)
		dst = append(dst, `","seq":`...)
		dst = strconv.AppendInt(dst, int64(seq), 10)
		dst = append(dst, `,"len":`...)
		dst = strconv.AppendInt(dst, int64(size), 10)
		dst = append(dst, '}', '\n')
		return dst
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, `,"pad":"`...)
	dst = appendPad(dst, o.size-len(dst)-len(`"}`))
	dst = append(dst, '"', '}', '\n')
	return dst
}

func appendPad(dst []byte, n int) []byte {
	for i := 0; i < n; i++ {
		dst = append(dst, padAlphabet[i%len(padAlphabet)])
	}
	return dst
}

func digits(v int) int {
	return len(strconv.Itoa(v))
}

// progress publishes the last sequence written to a file, at most every
// 100 ms, replacing it atomically (write a temp file, rename) so a reader
// never sees a torn value.
type progress struct {
	path string
	next time.Time
}

func newProgress(path string) *progress {
	p := &progress{path: path}
	p.set(-1)
	return p
}

func (p *progress) due() bool { return !time.Now().Before(p.next) }

func (p *progress) set(seq int) {
	p.next = time.Now().Add(100 * time.Millisecond)
	tmp := p.path + ".tmp"
	// Errors are ignored on purpose: progress is a diagnostic and must not
	// stop the generator; a test that needs it fails on a stale value.
	if os.WriteFile(tmp, []byte(strconv.Itoa(seq)), 0o644) == nil {
		_ = os.Rename(tmp, p.path)
	}
}
