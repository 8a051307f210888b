package main

// agent buffer ls|inspect|replay|drop: the disk queues of a stopped agent.
// See docs/operations.md ("agent buffer").

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"
	"golang.org/x/sys/unix"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/codec/jsonl"
	"github.com/sluice-agent/sluice/internal/wire"
)

// deadLetterKey is the record member a dead-lettered event carries
// (outputs/internal/delivery.DeadLetterKey).
const deadLetterKey = "_dead_letter"

// Where `agent buffer drop` reads its confirmation; tests replace them.
var (
	stdin           io.Reader = os.Stdin
	stdinIsTerminal           = func() bool {
		_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
		return err == nil
	}
)

const bufferUsage = `usage: agent buffer <command> [flags]

  ls      [--config FILE | --data-dir DIR] [--json]
          every output queue and dead-letter queue on disk
  inspect OUTPUT [--dead-letter] [--limit N] [--config FILE | --data-dir DIR]
          the pending events of a queue as JSON lines (tag, time, record)
  replay  OUTPUT --to OUTPUT2 --config FILE [--dead-letter] [--keep-dead-letter]
          move the pending events of a queue (or, with --dead-letter, of a
          dead-letter queue) into OUTPUT2's queue
  drop    OUTPUT [--dead-letter] [--yes] [--config FILE | --data-dir DIR]
          delete a queue (asks on a terminal without --yes)

The agent must be stopped: a queue a running agent holds is locked, and
these commands refuse it (ls lists it as "in use").
`

func cmdBuffer(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, bufferUsage)
		return 2
	}
	switch args[0] {
	case "ls":
		return bufferLs(args[1:], stdout, stderr)
	case "inspect":
		return bufferInspect(args[1:], stdout, stderr)
	case "replay":
		return bufferReplay(args[1:], stdout, stderr)
	case "drop":
		return bufferDrop(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, bufferUsage)
		return 0
	}
	fmt.Fprintf(stderr, "agent buffer: unknown command %q\n", args[0])
	fmt.Fprint(stderr, bufferUsage)
	return 2
}

// parseAll parses flags anywhere among the positional arguments (the flag
// package stops at the first one) and returns the positional ones.
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// flagErrCode is the exit code for a flag parsing error: 0 for --help
// (the usage was printed), 2 otherwise.
func flagErrCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// location is where the queues are: the data dir, and the config when one
// was loaded.
type location struct {
	dataDir string
	cfg     *config.Config
}

func locationFlags(fs *flag.FlagSet) (cfgPath, dataDir *string) {
	cfgPath = fs.String("config", "", "config file whose data_dir to use (default /etc/sluice/agent.yml unless --data-dir)")
	dataDir = fs.String("data-dir", "", "the agent's data_dir")
	return
}

func locate(name, cfgPath, dataDir string, stderr io.Writer) (location, bool) {
	if dataDir != "" && cfgPath == "" {
		return location{dataDir: dataDir}, true
	}
	if cfgPath == "" {
		cfgPath = "/etc/sluice/agent.yml"
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "agent buffer %s: ", name)
		printErrors(stderr, err)
		if dataDir == "" {
			fmt.Fprintf(stderr, "agent buffer %s: give --config FILE or --data-dir DIR\n", name)
		}
		return location{}, false
	}
	l := location{dataDir: cfg.DataDir, cfg: cfg}
	if dataDir != "" {
		l.dataDir = dataDir
	}
	return l, true
}

// queueRef names one queue: an output's buffer or its dead-letter queue.
type queueRef struct {
	output string
	dead   bool
}

func (r queueRef) kind() string {
	if r.dead {
		return "dead-letter"
	}
	return "buffer"
}

// String is the queue's path under the data dir: buffer/ID or deadletter/ID.
func (r queueRef) String() string {
	if r.dead {
		return "deadletter/" + r.output
	}
	return "buffer/" + r.output
}

func (r queueRef) dir(dataDir string) string {
	return filepath.Join(dataDir, filepath.FromSlash(r.String()))
}

func validOutputID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) {
		return fmt.Errorf("invalid output id %q", id)
	}
	return nil
}

// lsRow is one line of `agent buffer ls` (and one object of --json).
type lsRow struct {
	Output     string     `json:"output"`
	Kind       string     `json:"kind"` // buffer or dead-letter
	Dir        string     `json:"dir"`
	InUse      bool       `json:"in_use"` // locked by a running agent: not read
	Chunks     int64      `json:"chunks"`
	Events     int64      `json:"events"`
	Bytes      int64      `json:"bytes"`
	Segments   int        `json:"segments"`
	Oldest     *time.Time `json:"oldest_event_time,omitempty"`
	Newest     *time.Time `json:"newest_event_time,omitempty"`
	Acked      string     `json:"acked"` // segment:offset, "" when the ack file is missing or damaged
	InConfig   *bool      `json:"in_config,omitempty"`
	Corrupt    int        `json:"damaged_regions"`
	BadFiles   int        `json:"bad_segments"`
	ReadFailed string     `json:"error,omitempty"`
}

func bufferLs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("buffer ls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath, dataDir := locationFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	pos, err := parseAll(fs, args)
	if err != nil {
		return flagErrCode(err)
	}
	if len(pos) > 0 {
		fmt.Fprintln(stderr, "agent buffer ls: unexpected arguments:", pos)
		return 2
	}
	loc, ok := locate("ls", *cfgPath, *dataDir, stderr)
	if !ok {
		return 1
	}
	refs, err := listQueues(loc.dataDir)
	if err != nil {
		fmt.Fprintln(stderr, "agent buffer ls:", err)
		return 1
	}
	configured := map[string]bool{}
	if loc.cfg != nil {
		for _, o := range loc.cfg.Outputs {
			configured[o.ID] = true
		}
	}
	rows := []lsRow{}
	code := 0
	for _, r := range refs {
		row := lsRow{Output: r.output, Kind: r.kind(), Dir: r.String()}
		if loc.cfg != nil {
			in := configured[r.output]
			row.InConfig = &in
		}
		dir := r.dir(loc.dataDir)
		locked, err := buffer.Locked(dir)
		switch {
		case err != nil:
			row.ReadFailed = err.Error()
			code = 1
		case locked:
			row.InUse = true
		default:
			sum, err := buffer.Scan(dir, nil)
			if err != nil {
				row.ReadFailed = err.Error()
				code = 1
				break
			}
			row.Chunks, row.Events, row.Bytes, row.Segments = sum.Chunks, sum.Events, sum.Bytes, sum.Segments
			row.Corrupt, row.BadFiles = sum.Corrupt, sum.BadSegments
			if sum.AckValid {
				row.Acked = sum.Ack.String()
			}
			if !sum.Oldest.IsZero() {
				o, n := sum.Oldest.UTC(), sum.Newest.UTC()
				row.Oldest, row.Newest = &o, &n
			}
		}
		rows = append(rows, row)
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rows, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return code
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no queues under %s\n", loc.dataDir)
		return code
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tQUEUE\tCHUNKS\tEVENTS\tBYTES\tOLDEST\tNEWEST\tACKED\tNOTE")
	inUse := false
	for _, r := range rows {
		if r.InUse || r.ReadFailed != "" {
			note := "in use by a running agent: not read"
			if r.ReadFailed != "" {
				note = "error: " + r.ReadFailed
			} else {
				inUse = true
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n", r.Output, r.Kind, note)
			continue
		}
		var notes []string
		if r.InConfig != nil && !*r.InConfig {
			notes = append(notes, "not in config")
		}
		acked := r.Acked
		if acked == "" {
			acked = "none"
			if r.Segments > 0 {
				notes = append(notes, "no valid ack: a start replays everything")
			}
		}
		if r.Corrupt > 0 {
			notes = append(notes, fmt.Sprintf("%d damaged regions", r.Corrupt))
		}
		if r.BadFiles > 0 {
			notes = append(notes, fmt.Sprintf("%d .bad segments", r.BadFiles))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", r.Output, r.Kind, r.Chunks, r.Events, r.Bytes,
			fmtTime(r.Oldest), fmtTime(r.Newest), acked, strings.Join(notes, "; "))
	}
	tw.Flush()
	if inUse {
		fmt.Fprintln(stdout, "queues in use: see `agent top` or /status of the running agent")
	}
	return code
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// listQueues returns every queue directory under dataDir/buffer and
// dataDir/deadletter, ordered by output id, buffer first.
func listQueues(dataDir string) ([]queueRef, error) {
	var refs []queueRef
	for _, dead := range []bool{false, true} {
		parent := queueRef{dead: dead}.dir(dataDir)
		ents, err := os.ReadDir(parent)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				refs = append(refs, queueRef{output: e.Name(), dead: dead})
			}
		}
	}
	slices.SortFunc(refs, func(a, b queueRef) int {
		if c := strings.Compare(a.output, b.output); c != 0 {
			return c
		}
		if a.dead == b.dead {
			return 0
		}
		if a.dead {
			return 1
		}
		return -1
	})
	return refs, nil
}

// openForRead checks that the queue exists and is not locked.
func openForRead(name string, r queueRef, dataDir string, stderr io.Writer) (string, bool) {
	dir := r.dir(dataDir)
	if _, err := os.Stat(filepath.Join(dir)); err != nil {
		fmt.Fprintf(stderr, "agent buffer %s: no queue %s under %s\n", name, r, dataDir)
		return "", false
	}
	locked, err := buffer.Locked(dir)
	if err != nil {
		fmt.Fprintf(stderr, "agent buffer %s: %v\n", name, err)
		return "", false
	}
	if locked {
		fmt.Fprintf(stderr, "agent buffer %s: %s is %v; stop the agent first (or watch it live: agent tap %s)\n", name, r, buffer.ErrLocked, r.output)
		return "", false
	}
	return dir, true
}

func bufferInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("buffer inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath, dataDir := locationFlags(fs)
	dead := fs.Bool("dead-letter", false, "the output's dead-letter queue instead of its buffer")
	limit := fs.Int("limit", 0, "print at most this many events (0: all)")
	pos, err := parseAll(fs, args)
	if err != nil {
		return flagErrCode(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "agent buffer inspect: give one OUTPUT")
		return 2
	}
	if err := validOutputID(pos[0]); err != nil {
		fmt.Fprintln(stderr, "agent buffer inspect:", err)
		return 2
	}
	loc, ok := locate("inspect", *cfgPath, *dataDir, stderr)
	if !ok {
		return 1
	}
	ref := queueRef{output: pos[0], dead: *dead}
	dir, ok := openForRead("inspect", ref, loc.dataDir, stderr)
	if !ok {
		return 1
	}
	w := bufio.NewWriter(stdout)
	var line []byte
	var events, chunks, bad int
	errStop := errors.New("limit reached")
	_, err = buffer.Scan(dir, func(c buffer.Chunk) error {
		chunks++
		for rest := c.Entries; len(rest) > 0; {
			if *limit > 0 && events >= *limit {
				return errStop
			}
			ns, rec, _, n, err := wire.NextEntry(rest)
			if err != nil {
				fmt.Fprintf(stderr, "agent buffer inspect: chunk %s: %v\n", c.ID, err)
				bad++
				break
			}
			rest = rest[n:]
			line, err = jsonl.AppendLine(line[:0], c.Tag, ns, rec)
			if err != nil {
				fmt.Fprintf(stderr, "agent buffer inspect: chunk %s: %v\n", c.ID, err)
				bad++
				continue
			}
			w.Write(line)
			events++
		}
		return nil
	})
	w.Flush()
	if err != nil && !errors.Is(err, errStop) {
		fmt.Fprintln(stderr, "agent buffer inspect:", err)
		return 1
	}
	fmt.Fprintf(stderr, "agent buffer inspect: %s: %d events from %d chunks\n", ref, events, chunks)
	if bad > 0 {
		return 1
	}
	return 0
}

// openQueue opens a queue for writing as the agent would, refusing one a
// running agent holds.
func openQueue(name string, r queueRef, dir string, opts buffer.Options, stderr io.Writer) (*buffer.Queue, bool) {
	q, err := buffer.Open(dir, opts)
	if err != nil {
		if locked, _ := buffer.Locked(dir); locked {
			fmt.Fprintf(stderr, "agent buffer %s: %s is %v; stop the agent first\n", name, r, buffer.ErrLocked)
		} else {
			fmt.Fprintf(stderr, "agent buffer %s: %s: %v\n", name, r, err)
		}
		return nil, false
	}
	return q, true
}

func bufferReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("buffer replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the agent's config file (required: the target's buffer settings)")
	to := fs.String("to", "", "the output whose queue receives the events")
	dead := fs.Bool("dead-letter", false, "replay the output's dead-letter queue instead of its buffer")
	keep := fs.Bool("keep-dead-letter", false, "keep the _dead_letter member in the replayed records")
	pos, err := parseAll(fs, args)
	if err != nil {
		return flagErrCode(err)
	}
	if len(pos) != 1 || *to == "" || *cfgPath == "" {
		fmt.Fprintln(stderr, "agent buffer replay: give OUTPUT, --to OUTPUT2 and --config FILE")
		return 2
	}
	for _, id := range []string{pos[0], *to} {
		if err := validOutputID(id); err != nil {
			fmt.Fprintln(stderr, "agent buffer replay:", err)
			return 2
		}
	}
	src := queueRef{output: pos[0], dead: *dead}
	dst := queueRef{output: *to}
	if src == dst {
		fmt.Fprintf(stderr, "agent buffer replay: %s cannot be replayed into itself\n", src)
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	var out *config.Output
	for i := range cfg.Outputs {
		if cfg.Outputs[i].ID == dst.output {
			out = &cfg.Outputs[i]
		}
	}
	if out == nil {
		fmt.Fprintf(stderr, "agent buffer replay: %s has no output %q\n", *cfgPath, dst.output)
		return 1
	}
	srcDir, ok := openForRead("replay", src, cfg.DataDir, stderr)
	if !ok {
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dopts := replayOptions(out, log)
	dq, ok := openQueue("replay", dst, dst.dir(cfg.DataDir), dopts, stderr)
	if !ok {
		return 1
	}
	defer dq.Close()
	sq, ok := openQueue("replay", src, srcDir, buffer.Options{Name: src.String(), SegmentBytes: buffer.MaxSegmentBytes / 2, MaxBytes: buffer.MaxSegmentBytes, Logger: log, Metrics: metrics.NewSet()}, stderr)
	if !ok {
		return 1
	}
	defer sq.Close()

	ss, ds := sq.Stats(), dq.Stats()
	if ss.Pending == 0 {
		fmt.Fprintf(stdout, "nothing to replay: %s has no pending events\n", src)
		return 0
	}
	if free := dopts.MaxBytes - ds.Bytes; ss.Bytes > free {
		fmt.Fprintf(stderr, "agent buffer replay: %s holds %d bytes, %s has room for %d (max_bytes %d): raise its buffer.max_bytes or let it drain first\n",
			src, ss.Bytes, dst, free, dopts.MaxBytes)
		return 1
	}
	strip := src.dead && !*keep
	res, err := replayChunks(sq, dq, strip)
	if err != nil {
		fmt.Fprintf(stderr, "agent buffer replay: %v; nothing acked in %s: a rerun replays every chunk again\n", err, src)
		return 1
	}
	// The target is durable: only now do the source's chunks count as done.
	if err := dq.Sync(); err != nil {
		fmt.Fprintf(stderr, "agent buffer replay: sync %s: %v; nothing acked in %s\n", dst, err, src)
		return 1
	}
	for _, id := range res.ids {
		sq.Ack(id)
	}
	if err := sq.Sync(); err != nil {
		fmt.Fprintf(stderr, "agent buffer replay: events are in %s but acking them in %s failed (%v): a rerun would replay them again; drop %s instead\n", dst, src, err, src)
		return 1
	}
	fmt.Fprintf(stdout, "replayed %d events (%d chunks) from %s into %s", res.events, len(res.ids), src, dst)
	if strip {
		fmt.Fprintf(stdout, "; %s removed from %d records", deadLetterKey, res.stripped)
	}
	fmt.Fprintf(stdout, "\nthe replayed chunks are acked in %s: a rerun replays only what arrived since\n", src)
	if res.tooLarge > 0 {
		fmt.Fprintf(stdout, "%d events larger than a chunk of %s were not replayed and stay in %s\n", res.tooLarge, dst, src)
	}
	return 0
}

// replayOptions are the target queue's options as the agent opens it,
// with overflow Block: a replay must never drop from the target (Append
// with a cancelled context fails at once instead of waiting).
func replayOptions(o *config.Output, log *slog.Logger) buffer.Options {
	b := o.Buffer
	return buffer.Options{
		Name:          o.ID,
		MaxBytes:      int64(b.MaxBytes),
		SegmentBytes:  int64(b.SegmentBytes),
		Overflow:      buffer.Block,
		FsyncInterval: b.FsyncInterval,
		Logger:        log,
		Metrics:       metrics.NewSet(),
	}
}

type replayResult struct {
	ids                        []buffer.ID // source chunks fully replayed
	events, stripped, tooLarge int
}

// replayChunks appends every pending chunk of src to dst, re-cut to dst's
// chunk limit, with the dead-letter member removed when strip.
func replayChunks(src, dst *buffer.Queue, strip bool) (replayResult, error) {
	var res replayResult
	now, cancel := context.WithCancel(context.Background())
	cancel() // Next returns what is there, Append fails instead of waiting
	for {
		c, err := src.Next(now)
		if errors.Is(err, context.Canceled) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		limit := dst.MaxEntries(len(c.Tag))
		var entries []byte
		count, skipped := 0, 0
		flush := func() error {
			if count == 0 {
				return nil
			}
			if err := dst.Append(now, c.Tag, count, entries); err != nil {
				return fmt.Errorf("append to target: %w", err)
			}
			res.events += count
			entries, count = entries[:0], 0
			return nil
		}
		if !strip && len(c.Entries) <= limit {
			entries, count = c.Entries, c.Count
		} else {
			for rest := c.Entries; len(rest) > 0; {
				ns, rec, _, n, err := wire.NextEntry(rest)
				if err != nil {
					return res, fmt.Errorf("chunk %s: %w", c.ID, err)
				}
				entry := rest[:n]
				rest = rest[n:]
				if strip {
					if r, ok := withoutKey(rec, deadLetterKey); ok {
						entry = wire.AppendEntry(nil, ns, r)
						res.stripped++
					}
				}
				if len(entry) > limit {
					skipped++
					continue
				}
				if len(entries)+len(entry) > limit {
					if err := flush(); err != nil {
						return res, err
					}
				}
				entries = append(entries, entry...)
				count++
			}
		}
		if err := flush(); err != nil {
			return res, err
		}
		if skipped > 0 {
			res.tooLarge += skipped
			continue // not acked: it stays in the source
		}
		res.ids = append(res.ids, c.ID)
	}
}

// withoutKey returns the msgpack map record without its member key, and
// whether it had one.
func withoutKey(record []byte, key string) ([]byte, bool) {
	n, rest, ok := wire.ReadMapHeader(record)
	if !ok {
		return record, false
	}
	var kept [][]byte
	found := false
	for range n {
		k, after, ok := wire.ReadStrBin(rest)
		if !ok {
			return record, false
		}
		end, ok := wire.Skip(after)
		if !ok {
			return record, false
		}
		member := rest[:len(rest)-len(end)]
		if string(k) == key {
			found = true
		} else {
			kept = append(kept, member)
		}
		rest = end
	}
	if !found {
		return record, false
	}
	out := msgp.AppendMapHeader(make([]byte, 0, len(record)), uint32(len(kept)))
	for _, m := range kept {
		out = append(out, m...)
	}
	return out, true
}

func bufferDrop(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("buffer drop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath, dataDir := locationFlags(fs)
	dead := fs.Bool("dead-letter", false, "drop the output's dead-letter queue instead of its buffer")
	yes := fs.Bool("yes", false, "do not ask")
	pos, err := parseAll(fs, args)
	if err != nil {
		return flagErrCode(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "agent buffer drop: give one OUTPUT")
		return 2
	}
	if err := validOutputID(pos[0]); err != nil {
		fmt.Fprintln(stderr, "agent buffer drop:", err)
		return 2
	}
	loc, ok := locate("drop", *cfgPath, *dataDir, stderr)
	if !ok {
		return 1
	}
	ref := queueRef{output: pos[0], dead: *dead}
	dir := ref.dir(loc.dataDir)
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(stderr, "agent buffer drop: no queue %s under %s\n", ref, loc.dataDir)
		return 1
	}
	// Hold the queue's lock while deleting it: an agent starting meanwhile
	// fails to open it instead of appending into files being removed.
	unlock, err := lockQueue(dir)
	if err != nil {
		fmt.Fprintf(stderr, "agent buffer drop: %s: %v; stop the agent first\n", ref, err)
		return 1
	}
	defer unlock()
	sum, err := buffer.Scan(dir, nil)
	if err != nil {
		fmt.Fprintln(stderr, "agent buffer drop:", err)
		return 1
	}
	what := fmt.Sprintf("%s (%d events in %d chunks, %d bytes)", ref, sum.Events, sum.Chunks, sum.Bytes)
	if !*yes {
		if !stdinIsTerminal() {
			fmt.Fprintf(stderr, "agent buffer drop: not dropping %s: give --yes (stdin is not a terminal)\n", what)
			return 1
		}
		fmt.Fprintf(stderr, "drop %s? [y/N] ", what)
		answer, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(stderr, "not dropped")
			return 1
		}
	}
	// Rename first, so the queue disappears at once even if removing its
	// files is slow or fails half way.
	trash := filepath.Join(filepath.Dir(dir), fmt.Sprintf(".dropped-%s-%d", ref.output, os.Getpid()))
	if err := os.Rename(dir, trash); err != nil {
		fmt.Fprintln(stderr, "agent buffer drop:", err)
		return 1
	}
	if err := os.RemoveAll(trash); err != nil {
		fmt.Fprintf(stderr, "agent buffer drop: %s is dropped, but removing %s failed: %v\n", ref, trash, err)
		return 1
	}
	fmt.Fprintf(stdout, "dropped %s\n", what)
	if loc.cfg != nil && !ref.dead {
		for _, o := range loc.cfg.Outputs {
			if o.ID == ref.output {
				fmt.Fprintf(stdout, "output %s is still in %s: the agent starts it with an empty queue\n", o.ID, loc.cfg.File)
			}
		}
	}
	return 0
}

// lockQueue takes the queue's exclusive lock (the one a Queue holds while
// open) without creating anything; a queue without an ack file has no
// lock to take.
func lockQueue(dir string) (func(), error) {
	f, err := os.Open(filepath.Join(dir, "ack"))
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, buffer.ErrLocked
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
