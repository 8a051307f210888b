package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/record"
	"github.com/sluice-agent/sluice/pipeline"
)

// Defaults for zero config values (the config loader applies the same).
const (
	DefaultRoot                = "/var/lib/docker/containers"
	DefaultTag                 = "docker.{name}"
	DefaultMaxLineBytes        = 1 << 20
	DefaultPollInterval        = time.Second
	DefaultCheckpointInterval  = time.Second
	DefaultPartialFlushTimeout = 5 * time.Second
)

// Tuning constants.
const (
	readBufSize       = 256 << 10 // fixed read buffer shared by all files
	turnBytes         = 256 << 10 // bytes read from one file per turn
	idleSleep         = 100 * time.Millisecond
	forgetAfter       = time.Hour       // state of files gone this long is dropped
	finalFlushTimeout = 5 * time.Second // bounds the last Flush at shutdown
	retryMin          = 100 * time.Millisecond
	retryMax          = 5 * time.Second
	keepBufCap        = 64 << 10 // larger per-file buffers are freed after use
	logEvery          = 10 * time.Second
)

// ErrRunTwice is returned by a second call to Run.
var ErrRunTwice = errors.New("docker input: Run called twice")

var (
	keyLog    = msgp.AppendString(nil, "log")
	keyStream = msgp.AppendString(nil, "stream")
)

// Input tails Docker json-file logs. Create it with New and call Run once;
// it is not reusable after Run returns.
type Input struct {
	id        string
	root      string
	parseJSON bool
	labels    bool
	maxLine   int
	poll      time.Duration
	ckptEvery time.Duration
	partialTO time.Duration
	tpl       *record.Template
	statePath string
	r         *pipeline.Router
	log       *slog.Logger
	m         inputMetrics

	// skipExisting: no offsets file existed and read_from_head is false,
	// so files found by the first scan start at their end.
	skipExisting bool
	started      atomic.Bool
	finalFlush   time.Duration

	// Reader goroutine state.
	w              *pipeline.Writer
	containers     map[string]*container // writes guarded by mu
	order          []*container          // round-robin order
	rr             int
	seq            uint64
	scanned        bool
	rescan         bool // a turn suspects a truncation: scan now
	stalled        bool // the last Flush failed; retry before reading on
	touched        []*file
	activePartials int
	openFiles      int
	now            time.Time
	buf            []byte
	head           [fpSize]byte
	parser         parser
	fields         record.Fields // the payload's, for parse_json and {field:KEY}
	tv             tagValues
	rec, tagBuf    []byte
	ev             pipeline.Event
	nLines         uint64
	warnParse      limiter
	warnTrunc      limiter
	warnRead       limiter
	warnFlush      limiter

	// mu guards file.saved, the containers map and container.files
	// against the checkpoint goroutine; gen counts published changes.
	mu       sync.Mutex
	gen      uint64
	ckMu     sync.Mutex // serialises checkpoints
	savedGen uint64
	snap     []savedFile
}

type inputMetrics struct {
	lines, bytes, parseErrors, truncated, joins, rotations, lost *metrics.Counter
	files                                                        *metrics.Gauge
}

// New returns a docker input. State lives in <dataDir>/inputs/<id>/. Zero
// values in cfg mean the documented defaults. log may be nil (discard), set
// may be nil (a private set).
func New(id string, cfg config.DockerInput, dataDir string, r *pipeline.Router, log *slog.Logger, set *metrics.Set) (*Input, error) {
	if id == "" {
		return nil, errors.New("docker input: empty id")
	}
	if r == nil {
		return nil, errors.New("docker input: nil router")
	}
	if dataDir == "" {
		return nil, errors.New("docker input: empty data dir")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	in := &Input{
		id:         id,
		root:       cfg.Root,
		parseJSON:  cfg.ParseJSON,
		labels:     cfg.IncludeLabels == nil || *cfg.IncludeLabels,
		maxLine:    cfg.MaxLineBytes,
		poll:       cfg.PollInterval,
		ckptEvery:  cfg.CheckpointInterval,
		partialTO:  cfg.PartialFlushTimeout,
		r:          r,
		log:        log.With("input", id),
		containers: make(map[string]*container),
		buf:        make([]byte, readBufSize),
		finalFlush: finalFlushTimeout,
	}
	if in.root == "" {
		in.root = DefaultRoot
	}
	if in.maxLine <= 0 {
		in.maxLine = DefaultMaxLineBytes
	}
	if in.poll <= 0 {
		in.poll = DefaultPollInterval
	}
	if in.ckptEvery <= 0 {
		in.ckptEvery = DefaultCheckpointInterval
	}
	if in.partialTO <= 0 {
		in.partialTO = DefaultPartialFlushTimeout
	}
	tag := cfg.Tag
	if tag == "" {
		tag = DefaultTag
	}
	var err error
	if in.tpl, err = record.Compile(tag, 0); err != nil {
		return nil, fmt.Errorf("docker input %s: %w", id, err)
	}
	lbl := fmt.Sprintf(`{input=%q}`, id)
	in.m = inputMetrics{
		lines:       set.GetOrCreateCounter("sluice_input_lines_total" + lbl),
		bytes:       set.GetOrCreateCounter("sluice_input_bytes_total" + lbl),
		parseErrors: set.GetOrCreateCounter("sluice_input_parse_errors_total" + lbl),
		truncated:   set.GetOrCreateCounter("sluice_input_truncated_lines_total" + lbl),
		joins:       set.GetOrCreateCounter("sluice_input_partial_joins_total" + lbl),
		rotations:   set.GetOrCreateCounter("sluice_input_rotations_total" + lbl),
		lost:        set.GetOrCreateCounter("sluice_input_files_lost_bytes_total" + lbl),
		files:       set.GetOrCreateGauge("sluice_input_files_tracked"+lbl, nil),
	}

	dir := filepath.Join(dataDir, "inputs", id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("docker input %s: create state dir: %w", id, err)
	}
	in.statePath = filepath.Join(dir, stateName)
	saved, existed, err := loadState(in.statePath)
	if errors.Is(err, errCorruptState) {
		// Keep the evidence and start over from the head of every file:
		// duplicates, but nothing lost.
		bad := in.statePath + ".bad"
		if rerr := os.Rename(in.statePath, bad); rerr != nil {
			return nil, fmt.Errorf("docker input %s: %w (and moving it aside: %v)", id, err, rerr)
		}
		in.log.Error("offsets file unusable, moved aside; files will be read from the start", "err", err, "moved_to", bad)
		saved, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("docker input %s: %w", id, err)
	}
	in.skipExisting = !existed && cfg.ReadFromHead != nil && !*cfg.ReadFromHead
	in.restore(saved)
	return in, nil
}

// restore turns saved entries into closed files.
func (in *Input) restore(saved []savedFile) {
	for _, s := range saved {
		fp, err := parseFingerprint(s.Fingerprint, s.FingerprintLen)
		if err != nil || s.ContainerID == "" || s.Offset < 0 {
			in.log.Warn("ignoring invalid offsets entry", "path", s.Path, "err", err)
			continue
		}
		c := in.containers[s.ContainerID]
		if c == nil {
			c = newContainer(in.root, s.ContainerID, in.labels)
			in.containers[s.ContainerID] = c
			in.order = append(in.order, c)
		}
		in.seq++
		f := &file{
			c: c, seq: in.seq, path: s.Path, rank: maxRank, gone: true,
			dev: s.Dev, ino: s.Ino, size: s.Size, fp: fp,
			readOff: s.Offset, commit: s.Offset,
			lastSeen: time.Unix(s.LastSeen, 0), saved: s, pubFP: fp,
		}
		c.files = append(c.files, f)
	}
}

// Run tails files until ctx is cancelled, then flushes what was read,
// syncs the queues, writes the final checkpoint and returns. It returns
// only after every goroutine it started has exited. The error is nil
// unless the final flush or checkpoint failed (the lines concerned are then
// read again at the next start).
func (in *Input) Run(ctx context.Context) error {
	if !in.started.CompareAndSwap(false, true) {
		return ErrRunTwice
	}
	in.w = in.r.NewWriter()

	ckCtx, stopCk := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in.checkpointLoop(ckCtx)
	}()

	in.readLoop(ctx)

	// Hand off what was read; a pending partial group is not emitted (its
	// offset was not committed, so it is read again at the next start).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.finalFlush)
	flushErr := in.flush(fctx)
	cancel()
	if flushErr != nil {
		flushErr = fmt.Errorf("final flush: %w", flushErr)
	}
	stopCk()
	wg.Wait()
	ckErr := in.checkpoint()
	in.closeAll()
	if ckErr != nil {
		in.log.Error("final checkpoint failed", "err", ckErr)
	}
	return errors.Join(flushErr, ckErr)
}

func (in *Input) closeAll() {
	for _, c := range in.containers {
		for _, f := range c.files {
			if f.f != nil {
				_ = f.f.Close()
				f.f = nil
			}
		}
	}
	in.openFiles = 0
	in.m.files.Set(0)
}

// readLoop is the reader: it scans, serves containers round-robin, expires
// dangling partial lines and sleeps when everything is idle.
func (in *Input) readLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sleep := func(d time.Duration) {
		timer.Reset(d)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
	}
	var nextScan time.Time
	backoff := retryMin
	for ctx.Err() == nil {
		now := time.Now()
		if in.rescan || !now.Before(nextScan) {
			in.rescan = false
			in.scan(now)
			nextScan = now.Add(in.poll)
		}
		if in.stalled {
			if err := in.flush(ctx); err != nil {
				in.flushFailed(err)
				sleep(backoff)
				backoff = min(2*backoff, retryMax)
				continue
			}
			backoff = retryMin
		}
		busy := false
		n := len(in.order)
		for k := 0; k < n && ctx.Err() == nil && !in.stalled && !in.rescan; k++ {
			c := in.order[(in.rr+k)%n]
			f := c.active()
			if f == nil {
				continue
			}
			progressed, err := in.turn(ctx, f)
			busy = busy || progressed
			if err != nil {
				in.flushFailed(err)
			}
		}
		in.rr++
		if !in.stalled && in.activePartials > 0 {
			if err := in.expirePartials(ctx); err != nil {
				in.flushFailed(err)
			}
		}
		if !busy && !in.stalled && !in.rescan && ctx.Err() == nil {
			d := min(idleSleep, time.Until(nextScan))
			if d > 0 {
				sleep(d)
			}
		}
	}
}

func (in *Input) flushFailed(err error) {
	in.stalled = true
	if errors.Is(err, context.Canceled) {
		return
	}
	if ok, n := in.warnFlush.allow(time.Now()); ok {
		in.log.Warn("handing events to the queues failed; retrying, offsets are held back", "err", err, "suppressed", n)
	}
}

// active returns the file of c to read now: the oldest open one, so that a
// rotated file is finished before its successor is read.
func (c *container) active() *file {
	var best *file
	for _, f := range c.files {
		if f.f == nil {
			continue
		}
		if best == nil || f.rank > best.rank || (f.rank == best.rank && f.seq < best.seq) {
			best = f
		}
	}
	return best
}

// turn reads up to turnBytes of f, hands the events to the writer and
// flushes. It reports whether it consumed anything; an error means the
// writer holds events that still need a successful Flush.
func (in *Input) turn(ctx context.Context, f *file) (bool, error) {
	in.now = time.Now()
	start := f.readOff
	lines := in.nLines
	budget := turnBytes
	eof, headChecked := false, false
	var err error
read:
	for budget > 0 {
		n, rerr := f.f.ReadAt(in.buf, f.readOff)
		if rerr != nil && rerr != io.EOF {
			if ok, k := in.warnRead.allow(in.now); ok {
				in.log.Warn("read failed", "path", f.path, "err", rerr, "suppressed", k)
			}
			break
		}
		if n == 0 {
			eof = true
			break
		}
		if f.live && !headChecked && f.readOff > 0 {
			// Read first, then check that the file still starts with its
			// fingerprint: if it does, what was read belongs to it.
			headChecked = true
			if !in.headMatches(f) {
				f.mod = time.Time{} // make the scan re-check the head
				in.rescan = true
				break
			}
		}
		data := in.buf[:n]
		short := n < len(in.buf)
		pos := 0
		for pos < n {
			if f.inLong {
				k, done := f.long.feed(data[pos:])
				pos += k
				f.readOff += int64(k)
				if done {
					in.nLines++
					if err = in.finishLong(ctx, f); err != nil {
						break read
					}
				}
				continue
			}
			i := bytes.IndexByte(data[pos:], '\n')
			if i < 0 {
				if pos == 0 && !short {
					// No newline in a full buffer: parse the line as a
					// stream, never holding all of it.
					f.inLong = true
					f.long.reset(f.readOff, in.maxLine)
					continue
				}
				if short && !f.live {
					// The last line of a finished file lacks its "\n".
					ls := f.readOff
					f.readOff += int64(n - pos)
					in.nLines++
					if err = in.handleLine(ctx, f, data[pos:n], ls); err != nil {
						break read
					}
					pos = n
				}
				break
			}
			ls := f.readOff
			f.readOff += int64(i + 1)
			b := data[pos : pos+i]
			pos += i + 1
			in.nLines++
			if err = in.handleLine(ctx, f, b, ls); err != nil {
				break read
			}
		}
		budget -= pos
		if short {
			eof = true
			break
		}
	}
	finishing := false
	if err == nil && eof && !f.live {
		// Renamed away or deleted: nothing more will be written. Emit what
		// is pending so the file can be closed.
		if f.inLong {
			in.nLines++
			err = in.finishLong(ctx, f)
		}
		for i := range f.partials {
			if err == nil && f.partials[i].active {
				err = in.emitPartial(ctx, f, &f.partials[i])
			}
		}
		finishing = err == nil
	}
	consumed := f.readOff - start
	in.m.bytes.Add(int(consumed))
	in.m.lines.Add(int(in.nLines - lines))
	if consumed > 0 || finishing {
		in.touch(f)
	}
	if err == nil {
		err = in.flush(ctx)
	}
	if err != nil {
		return consumed > 0, err
	}
	if finishing {
		in.closeFile(f)
	}
	return consumed > 0, nil
}

// headMatches reports whether the file behind f's fd still starts with its
// fingerprint (a copytruncate replaces the content behind the same inode).
func (in *Input) headMatches(f *file) bool {
	head, err := readHead(f.f, &in.head)
	if err != nil {
		return true // a read error is handled by the read path
	}
	return f.fp.matches(head)
}

// handleLine processes one physical line (without "\n") that started at
// file offset start.
func (in *Input) handleLine(ctx context.Context, f *file, b []byte, start int64) error {
	if record.SkipWS(b, 0) == len(b) {
		return nil // blank line: nothing to keep
	}
	l, err := in.parser.parse(b)
	if err != nil {
		return in.malformed(ctx, f, b, int64(len(b)), start, err)
	}
	return in.logical(ctx, f, l, false, start)
}

// finishLong completes the long line of f.
func (in *Input) finishLong(ctx context.Context, f *file) error {
	ll := &f.long
	f.inLong = false
	var err error
	if l, ok := ll.result(); ok {
		if ll.logTruncated() {
			// The cut value lost its "\n"; use the full value's last byte.
			err = in.logicalTrunc(ctx, f, l, ll.logLast == '\n', ll.start)
		} else {
			err = in.logical(ctx, f, l, false, ll.start)
		}
	} else {
		perr := ll.err
		if perr == nil {
			perr = errSyntax
		}
		err = in.malformed(ctx, f, ll.raw, ll.rawLen, ll.start, perr)
	}
	if cap(ll.raw) > keepBufCap || cap(ll.log) > keepBufCap {
		f.long = longLine{}
	}
	return err
}

// malformed emits an unparsable line as is (cut to MaxLineBytes) in "log",
// with an empty stream and the read time.
func (in *Input) malformed(ctx context.Context, f *file, raw []byte, rawLen, start int64, perr error) error {
	in.m.parseErrors.Inc()
	if ok, n := in.warnParse.allow(in.now); ok {
		in.log.Warn("malformed json-file line, emitted raw", "path", f.path, "offset", start, "err", perr, "suppressed", n)
	}
	return in.emit(ctx, f, raw, nil, in.now.UnixNano(), rawLen > int64(len(raw)), start)
}

// logical handles one parsed physical line: partial join per stream, then
// emit. truncated says l.log was already cut.
func (in *Input) logical(ctx context.Context, f *file, l line, truncated bool, start int64) error {
	complete := len(l.log) > 0 && l.log[len(l.log)-1] == '\n'
	content := l.log
	if complete {
		content = content[:len(content)-1]
	}
	return in.join(ctx, f, content, complete, truncated, l, start)
}

// logicalTrunc is logical for a line whose log value was cut while
// streaming; complete tells whether the full value ended in "\n".
func (in *Input) logicalTrunc(ctx context.Context, f *file, l line, complete bool, start int64) error {
	return in.join(ctx, f, l.log, complete, true, l, start)
}

func (in *Input) join(ctx context.Context, f *file, content []byte, complete, truncated bool, l line, start int64) error {
	t := l.time
	if !l.hasTime {
		t = in.now.UnixNano()
	}
	p := f.partialFor(l.stream)
	if p == nil {
		if complete {
			return in.emit(ctx, f, content, l.stream, t, truncated, start)
		}
		if p = f.newPartial(l.stream); p == nil {
			// Too many concurrent groups: emit the piece as a line.
			return in.emit(ctx, f, content, l.stream, t, truncated, start)
		}
		p.active, p.truncated = true, truncated
		p.start, p.time = start, t
		p.buf = p.buf[:0]
		in.activePartials++
	}
	if room := in.maxLine - len(p.buf); len(content) > room {
		p.buf = append(p.buf, content[:max(room, 0)]...)
		p.truncated = true
	} else {
		p.buf = append(p.buf, content...)
	}
	if truncated {
		p.truncated = true
	}
	if !complete {
		p.deadline = in.now.Add(in.partialTO)
		return nil
	}
	in.m.joins.Inc()
	return in.emitPartial(ctx, f, p)
}

// emitPartial emits and clears a partial group.
func (in *Input) emitPartial(ctx context.Context, f *file, p *partial) error {
	p.active = false
	in.activePartials--
	err := in.emit(ctx, f, p.buf, p.stream, p.time, p.truncated, p.start)
	if cap(p.buf) > keepBufCap {
		p.buf = nil
	}
	return err
}

// expirePartials emits partial groups that saw no continuation for
// PartialFlushTimeout, then flushes.
func (in *Input) expirePartials(ctx context.Context) error {
	in.now = time.Now()
	for _, c := range in.order {
		for _, f := range c.files {
			for i := range f.partials {
				p := &f.partials[i]
				if p.active && in.now.After(p.deadline) {
					in.touch(f)
					if err := in.emitPartial(ctx, f, p); err != nil {
						return err
					}
				}
			}
		}
	}
	return in.flush(ctx)
}

// emit builds the record and adds the event to the writer.
func (in *Input) emit(ctx context.Context, f *file, msg, stream []byte, t int64, truncated bool, start int64) error {
	if len(msg) > in.maxLine {
		msg = msg[:in.maxLine]
		truncated = true
	}
	if truncated {
		msg = trimPartialRune(msg)
		in.m.truncated.Inc()
		if ok, n := in.warnTrunc.allow(in.now); ok {
			in.log.Warn("line longer than max_line_bytes truncated", "path", f.path, "offset", start, "max_line_bytes", in.maxLine, "suppressed", n)
		}
	}
	c := f.c
	// The payload's fields: all of them with parse_json, else only those
	// the tag's {field:KEY} read (the others are checked, not converted).
	var fields *record.Fields
	switch {
	case in.parseJSON:
		if in.fields.Parse(msg, reservedKeys) {
			fields = &in.fields
		}
	case in.tpl.Uses(record.Field):
		if in.fields.Find(msg, in.tpl.FieldKeys(), reservedKeys) {
			fields = &in.fields
		}
	}
	nFields := 0
	if in.parseJSON && fields != nil {
		nFields = fields.Len()
	}
	rec := msgp.AppendMapHeader(in.rec[:0], uint32(2+c.nFixed+nFields))
	rec = append(rec, keyLog...)
	rec = msgp.AppendStringFromBytes(rec, msg)
	rec = append(rec, keyStream...)
	rec = msgp.AppendStringFromBytes(rec, stream)
	rec = append(rec, c.fixed...)
	if nFields > 0 {
		rec = append(rec, fields.Pairs()...)
	}
	in.rec = rec
	in.ev = pipeline.Event{Tag: in.tagFor(c, stream, fields), Time: t, Record: rec}
	in.w.Add(&in.ev)
	return nil
}

// trimPartialRune drops an incomplete UTF-8 sequence left at the end of b
// by a byte-count cut.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// tagFor renders the event tag, from the per-container cache when the
// template does not depend on the payload.
func (in *Input) tagFor(c *container, stream []byte, fields *record.Fields) []byte {
	si := -1
	if !in.tpl.Uses(record.Field) {
		switch {
		case !in.tpl.Uses(record.Stream) || string(stream) == "stdout":
			si = 0
		case string(stream) == "stderr":
			si = 1
		}
	}
	if si < 0 {
		in.tv = tagValues{c: c, stream: stream, fields: fields}
		in.tagBuf = in.tpl.Render(in.tagBuf[:0], &in.tv)
		return in.tagBuf
	}
	if !c.tagOK[si] {
		in.tv = tagValues{c: c, stream: stream}
		c.tagCache[si] = in.tpl.Render(c.tagCache[si][:0], &in.tv)
		c.tagOK[si] = true
	}
	return c.tagCache[si]
}

func (in *Input) touch(f *file) {
	if !f.touched {
		f.touched = true
		in.touched = append(in.touched, f)
	}
}

// flush hands every added event to the queues; only then are the touched
// files' handed-off offsets advanced and published for the checkpoint.
func (in *Input) flush(ctx context.Context) error {
	if err := in.w.Flush(ctx); err != nil {
		in.stalled = true
		return err
	}
	in.stalled = false
	if len(in.touched) == 0 {
		return nil
	}
	in.mu.Lock()
	for _, f := range in.touched {
		f.touched = false
		f.commit = f.handoff()
		f.saved.Offset = f.commit
		f.saved.Size = max(f.size, f.readOff)
	}
	in.gen++
	in.mu.Unlock()
	clear(in.touched)
	in.touched = in.touched[:0]
	return nil
}

// closeFile closes a finished file; its entry stays for fingerprint
// matching until it has been gone for forgetAfter.
func (in *Input) closeFile(f *file) {
	if f.f == nil {
		return
	}
	if err := f.f.Close(); err != nil {
		in.log.Debug("close", "path", f.path, "err", err)
	}
	f.f = nil
	f.size = max(f.size, f.readOff)
	in.openFiles--
	in.m.files.Set(float64(in.openFiles))
	in.log.Debug("file finished", "path", f.path, "offset", f.readOff)
}

// checkpointLoop writes the offsets file every CheckpointInterval.
func (in *Input) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(in.ckptEvery)
	defer t.Stop()
	var warn limiter
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := in.checkpoint(); err != nil {
				if ok, n := warn.allow(time.Now()); ok {
					in.log.Error("checkpoint failed; will retry", "err", err, "suppressed", n)
				}
			}
		}
	}
}

// checkpoint snapshots the published offsets, makes the queues durable
// (Router.Sync) and only then writes the offsets file. Offsets in the
// snapshot were all published after a successful Flush, so everything
// before them is in the queues before Sync starts.
func (in *Input) checkpoint() error {
	in.ckMu.Lock()
	defer in.ckMu.Unlock()
	in.mu.Lock()
	if in.gen == in.savedGen {
		in.mu.Unlock()
		return nil
	}
	gen := in.gen
	in.snap = in.snap[:0]
	for _, c := range in.containers {
		for _, f := range c.files {
			in.snap = append(in.snap, f.saved)
		}
	}
	in.mu.Unlock()
	if err := in.r.Sync(); err != nil {
		return fmt.Errorf("sync queues: %w", err)
	}
	if err := writeState(in.statePath, in.snap); err != nil {
		return err
	}
	in.savedGen = gen
	return nil
}

// limiter rate-limits one kind of log message.
type limiter struct {
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many messages were suppressed
// since the last one.
func (l *limiter) allow(now time.Time) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
