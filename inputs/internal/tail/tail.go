package tail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-agent/sluice/internal/multiline"
	"github.com/sluice-agent/sluice/pipeline"
)

// Tuning constants.
const (
	readBufSize       = 256 << 10 // fixed read buffer shared by all files
	turnBytes         = 256 << 10 // bytes read from one file per turn
	idleSleep         = 100 * time.Millisecond
	finalFlushTimeout = 5 * time.Second // bounds the last Flush at shutdown
	retryMin          = 100 * time.Millisecond
	retryMax          = 5 * time.Second
	keepBufCap        = 64 << 10 // larger per-file buffers are freed after use
	// watchedScanFactor stretches the full scan while every directory is
	// watched: events do the prompt work, the scan is only the fallback.
	watchedScanFactor = 10
)

// ErrRunTwice is returned by a second call to Run.
var ErrRunTwice = errors.New("tail: Run called twice")

// Config configures a Tail. Every field but Log and Metrics is required.
type Config struct {
	// ID is the input's id: the metrics label input="<ID>" and the state
	// directory <DataDir>/inputs/<ID>/.
	ID   string
	Root string
	// AllowedRoots are the directories a log file's symlink may lead into
	// (resolved with filepath.EvalSymlinks); nil means Root alone. A
	// symlink whose target lies elsewhere is refused (see the package doc).
	AllowedRoots []string
	DataDir      string
	// MaxLineBytes cuts longer (joined) lines.
	MaxLineBytes int
	// PollInterval is how often the whole tree is scanned (ten times less
	// often while every directory is watched), and so the longest a new or
	// rotated file waits when inotify misses it.
	PollInterval        time.Duration
	CheckpointInterval  time.Duration
	PartialFlushTimeout time.Duration
	// RotateWait is how long a rotated (renamed or deleted) file is still
	// read for new data while its source's newer file has none: the
	// runtime may write to the old descriptor until it reopens (see
	// "Rotation" in the package doc). 0 means DefaultRotateWait.
	RotateWait time.Duration
	// StartAtEnd: if there is no offsets file, files found by the first
	// scan are read from their end (read_from_head false).
	StartAtEnd bool
	// MaxOpenFiles caps the log files this input holds open; 0 means the
	// process-wide budget (the soft RLIMIT_NOFILE minus a reserve for the
	// rest of the agent, shared by every tail input), which also bounds a
	// larger value. At the cap, idle files are closed and reopened when
	// they change (see "Open files" in the package doc).
	MaxOpenFiles int
	// Multiline, if not nil, joins the lines of one message (a stack
	// trace) per file and stream, after partial joining (see "Multiline"
	// in the package doc). Its MaxBytes is at most MaxLineBytes; 0 means
	// min(multiline.DefaultMaxBytes, MaxLineBytes).
	Multiline *multiline.Config
	Format    Format
	Layout    Layout
	// Log may be nil (discard); Metrics may be nil (a private set).
	Log     *slog.Logger
	Metrics *metrics.Set
}

// Tail follows the log files of one input. Create it with New and call
// Run once; it is not reusable after Run returns. See the package doc for
// its guarantees.
type Tail struct {
	root       string
	rootSlash  string // root with a trailing separator: the prefix of event names
	depth      int
	maxLine    int
	poll       time.Duration
	ckptEvery  time.Duration
	partialTO  time.Duration
	rotateWait time.Duration
	ml         *multiline.Config // nil: no multiline joining
	startAtEnd bool              // no offsets file existed and Config.StartAtEnd
	format     Format
	layout     Layout
	filter     SourceFilter // the Layout's, or nil: every source
	r          *pipeline.Router
	log        *slog.Logger
	m          tailMetrics
	statePath  string
	started    atomic.Bool
	finalFlush time.Duration

	// Reader goroutine state.
	w              *pipeline.Writer
	sources        map[string]*source // writes guarded by mu
	order          []*source          // round-robin order
	rr             int
	seq            uint64
	scanned        bool                // the first full scan ran
	scanDone       atomic.Bool         // scanned, for Ready (status.go)
	fullScan       bool                // a full scan is due now (inotify overflow)
	rescan         bool                // pending holds scans to run before reading on
	pending        map[string]struct{} // directories (below the root) to scan
	orderStale     bool
	stalled        bool // the last Flush failed; retry before reading on
	touched        []*file
	commits        []committed
	activePartials int
	mlHeld         int // joiners holding lines (joiner.held)
	mlOut          []multiline.Event
	mlLine         Line
	bounds         []streamBound
	rotWaiting     int  // rotated files at their end, waiting to be sealed
	holding        bool // the last round left a held source (Holder) unread
	openFiles      int  // descriptors held on log files (tokens of fds)
	now            time.Time
	buf            []byte
	head           [fpSize]byte
	line           Line
	seen           map[*source]bool
	cands          []candidate
	names          []string
	logs           []Log
	nLines         uint64
	watch          watcher
	warnParse      limiter
	warnTrunc      limiter
	warnRead       limiter
	warnFlush      limiter
	allowed        []string           // Config.AllowedRoots, cleaned
	resolved       []string           // allowed with their symlinks resolved, per full scan
	refused        map[string]refusal // refused paths, logged and counted once
	refuseGen      uint64             // full scans made

	// The open files cap (fdcap.go).
	cfgMaxOpen   int           // Config.MaxOpenFiles
	maxOpen      int           // the cap: cfgMaxOpen bounded by the budget (0: not set yet)
	peakOpen     int           // the most descriptors held at once
	parked       int           // idle files closed, to be reopened when they change
	fdWake       chan struct{} // the pool wakes a starving or pressed reader
	fdGen        uint64        // bumped when a live file was read to its end (may be parkable)
	evictGen     uint64        // one per parkIdle search (file.evictSkip)
	noIdleAt     uint64        // fdGen+1 when a search found nothing parkable
	matching     *source       // the source match is matching: none of its files is parked
	starved      map[string]struct{}
	starves      uint64 // deferred opens
	starvedGen   uint64 // fdGen at the last deferred open
	starvedPool  uint64 // fds.gen at the last deferred open
	pressureSeen uint64
	shedWanted   bool
	shedTried    uint64
	warnFD       limiter
	warnCap      limiter

	// mu guards file.saved, the sources map and source.files against the
	// checkpoint goroutine; gen counts published changes.
	mu       sync.Mutex
	gen      uint64
	ckMu     sync.Mutex // serialises checkpoints
	savedGen uint64
	snap     []savedFile
	pos      positions // the position journal; see checkpoint.go
}

type tailMetrics struct {
	lines, bytes, parseErrors, truncated, joins, rotations, lost *metrics.Counter
	mlGroups, mlTruncated, mlTimeouts                            *metrics.Counter
	refusedOutside, refusedNotRegular                            *metrics.Counter
	closedIdle, reopened, deferred                               *metrics.Counter
	files, open, openLimit                                       *metrics.Gauge
}

// New returns a Tail and loads its offsets file. r is the router its
// events go to.
func New(cfg Config, r *pipeline.Router) (*Tail, error) {
	if err := cfg.check(r); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	set := cfg.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	t := &Tail{
		root: filepath.Clean(cfg.Root), depth: cfg.Layout.Depth(), maxLine: cfg.MaxLineBytes,
		poll: cfg.PollInterval, ckptEvery: cfg.CheckpointInterval, partialTO: cfg.PartialFlushTimeout,
		rotateWait: cfg.RotateWait,
		format:     cfg.Format, layout: cfg.Layout, r: r, log: log, m: newMetrics(set, cfg.ID),
		finalFlush: finalFlushTimeout,
		sources:    make(map[string]*source),
		pending:    make(map[string]struct{}),
		seen:       make(map[*source]bool),
		buf:        make([]byte, readBufSize),
		refused:    make(map[string]refusal),
		cfgMaxOpen: cfg.MaxOpenFiles,
		fdWake:     make(chan struct{}, 1),
	}
	if t.rotateWait <= 0 {
		t.rotateWait = DefaultRotateWait
	}
	if cfg.Multiline != nil {
		mc := *cfg.Multiline
		mc.Rules, mc.User = slices.Clone(mc.Rules), slices.Clone(mc.User)
		switch {
		case mc.MaxBytes == 0:
			mc.MaxBytes = min(multiline.DefaultMaxBytes, t.maxLine)
		case mc.MaxBytes > t.maxLine:
			mc.MaxBytes = t.maxLine
		}
		if _, err := multiline.New(mc); err != nil {
			return nil, err
		}
		t.ml = &mc
	}
	t.filter, _ = cfg.Layout.(SourceFilter)
	for _, r := range cfg.AllowedRoots {
		if r != "" {
			t.allowed = append(t.allowed, filepath.Clean(r))
		}
	}
	if len(t.allowed) == 0 {
		t.allowed = []string{t.root}
	}
	t.resolveRoots()
	t.rootSlash = t.root
	if !strings.HasSuffix(t.rootSlash, string(filepath.Separator)) {
		t.rootSlash += string(filepath.Separator)
	}
	dir := filepath.Join(cfg.DataDir, "inputs", cfg.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	t.statePath = filepath.Join(dir, stateName)
	existed, err := t.openState()
	if err != nil {
		return nil, err
	}
	t.startAtEnd = !existed && cfg.StartAtEnd
	return t, nil
}

func (cfg *Config) check(r *pipeline.Router) error {
	switch {
	case cfg.ID == "":
		return errors.New("tail: empty id")
	case r == nil:
		return errors.New("tail: nil router")
	case cfg.DataDir == "":
		return errors.New("tail: empty data dir")
	case cfg.Root == "":
		return errors.New("tail: empty root")
	case cfg.Format == nil || cfg.Layout == nil:
		return errors.New("tail: no format or layout")
	case cfg.Layout.Depth() < 1:
		return errors.New("tail: layout depth must be at least 1")
	case cfg.MaxLineBytes <= 0 || cfg.PollInterval <= 0 || cfg.CheckpointInterval <= 0 || cfg.PartialFlushTimeout <= 0:
		return errors.New("tail: max line bytes and intervals must be positive")
	case cfg.RotateWait < 0:
		return errors.New("tail: negative rotate wait")
	case cfg.MaxOpenFiles < 0:
		return errors.New("tail: negative max open files")
	}
	return nil
}

func newMetrics(set *metrics.Set, id string) tailMetrics {
	lbl := fmt.Sprintf(`{input=%q}`, id)
	return tailMetrics{
		lines:       set.GetOrCreateCounter("sluice_input_lines_total" + lbl),
		bytes:       set.GetOrCreateCounter("sluice_input_bytes_total" + lbl),
		parseErrors: set.GetOrCreateCounter("sluice_input_parse_errors_total" + lbl),
		truncated:   set.GetOrCreateCounter("sluice_input_truncated_lines_total" + lbl),
		joins:       set.GetOrCreateCounter("sluice_input_partial_joins_total" + lbl),
		mlGroups:    set.GetOrCreateCounter("sluice_input_multiline_groups_total" + lbl),
		mlTruncated: set.GetOrCreateCounter("sluice_input_multiline_truncated_total" + lbl),
		mlTimeouts:  set.GetOrCreateCounter("sluice_input_multiline_timeouts_total" + lbl),
		rotations:   set.GetOrCreateCounter("sluice_input_rotations_total" + lbl),
		lost:        set.GetOrCreateCounter("sluice_input_files_lost_bytes_total" + lbl),
		files:       set.GetOrCreateGauge("sluice_input_files_tracked"+lbl, nil),
		open:        set.GetOrCreateGauge("sluice_input_files_open"+lbl, nil),
		openLimit:   set.GetOrCreateGauge("sluice_input_files_open_limit"+lbl, nil),
		closedIdle:  set.GetOrCreateCounter("sluice_input_files_closed_idle_total" + lbl),
		reopened:    set.GetOrCreateCounter("sluice_input_files_reopened_total" + lbl),
		deferred:    set.GetOrCreateCounter("sluice_input_files_open_deferred_total" + lbl),
		refusedOutside: set.GetOrCreateCounter(
			fmt.Sprintf(`sluice_input_files_refused_total{input=%q,reason=%q}`, id, reasonOutside)),
		refusedNotRegular: set.GetOrCreateCounter(
			fmt.Sprintf(`sluice_input_files_refused_total{input=%q,reason=%q}`, id, reasonNotRegular)),
	}
}

// Run tails files until ctx is cancelled, then flushes what was read,
// syncs the queues, writes the final checkpoint and returns. It returns
// only after every goroutine it started has exited. The error is nil
// unless the final flush or checkpoint failed (the lines concerned are then
// read again at the next start).
func (t *Tail) Run(ctx context.Context) error {
	if !t.started.CompareAndSwap(false, true) {
		return ErrRunTwice
	}
	if t.w == nil {
		t.w = t.r.NewWriter()
	}
	budget := fds.register(t)
	defer fds.unregister(t)
	t.setCap(budget)
	t.pressureSeen = fds.pressure.Load() // only pressure from now on sheds
	t.log.Info("open log files cap", "max_open_files", t.maxOpen, "process_budget", budget)
	t.watch.start(t.log)
	t.openJournal()
	defer t.closeJournal()

	ckCtx, stopCk := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.checkpointLoop(ckCtx)
	}()

	t.readLoop(ctx)
	t.watch.close()

	// Hand off what was read; a pending partial or multiline group is not
	// emitted (its offset was not committed, so it is read again at the
	// next start, where what was handed off after it is skipped).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.finalFlush)
	flushErr := t.flush(fctx)
	cancel()
	if flushErr != nil {
		flushErr = fmt.Errorf("final flush: %w", flushErr)
	}
	stopCk()
	wg.Wait()
	ckErr := t.checkpoint()
	t.closeAll()
	if ckErr != nil {
		t.log.Error("final checkpoint failed", "err", ckErr)
	}
	return errors.Join(flushErr, ckErr)
}

// readLoop is the reader goroutine: it scans, handles inotify events,
// serves dirty sources round-robin, expires dangling partial lines and
// idle multiline groups, and sleeps when everything is idle, until an event, a poll or a scan is due.
func (t *Tail) readLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var nextScan, nextPoll time.Time
	backoff := retryMin
	for ctx.Err() == nil {
		now := time.Now()
		if t.fullScan || !now.Before(nextScan) {
			t.scan(now)
			nextScan = now.Add(t.scanInterval())
		}
		polling := t.markPolled(now, &nextPoll)
		t.drainEvents()
		t.fdHousekeeping(now)
		if t.rescan {
			t.scanPending(now)
		}
		if t.stalled {
			if err := t.flush(ctx); err != nil {
				t.flushFailed(err)
				pause(ctx, timer, backoff)
				backoff = min(2*backoff, retryMax)
				continue
			}
			backoff = retryMin
		}
		if t.rotWaiting > 0 {
			t.dueRotations(now)
		}
		t.holding = false
		more := t.round(ctx)
		if !t.stalled && (t.activePartials > 0 || t.mlHeld > 0) {
			if err := t.expirePartials(ctx); err != nil {
				t.flushFailed(err)
			}
		}
		if more || t.stalled || t.rescan || t.fullScan || ctx.Err() != nil {
			continue
		}
		wake := nextScan
		if polling || t.activePartials > 0 || t.mlHeld > 0 || t.rotWaiting > 0 || t.holding {
			wake = minTime(wake, now.Add(idleSleep))
		}
		if d := time.Until(wake); d > 0 {
			t.sleep(ctx, timer, d)
		}
	}
}

// scanInterval is the time to the next full scan.
func (t *Tail) scanInterval() time.Duration {
	if t.watch.degraded {
		return t.poll
	}
	return t.poll * watchedScanFactor
}

// markPolled makes every unwatched source with an open file dirty once per
// idleSleep. It reports whether any source is polled.
func (t *Tail) markPolled(now time.Time, next *time.Time) bool {
	due := !now.Before(*next)
	if due {
		*next = now.Add(idleSleep)
	}
	polling := false
	for _, s := range t.order {
		if !s.watched && s.active() != nil {
			polling = true
			if !due {
				break
			}
			s.dirty = true
		}
	}
	return polling
}

// sleep waits for d, an inotify event or ctx; an event is handled.
func (t *Tail) sleep(ctx context.Context, timer *time.Timer, d time.Duration) {
	timer.Reset(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	case <-t.fdWake: // descriptors came free, or another input is short of them
	case ev, ok := <-t.watch.events():
		if !ok {
			t.watchClosed()
			return
		}
		t.handleEvent(ev)
	case err, ok := <-t.watch.errors():
		if !ok {
			t.watchClosed()
			return
		}
		t.handleWatchError(err)
	}
}

// pause waits for d or ctx, and nothing else (events wait meanwhile).
func pause(ctx context.Context, timer *time.Timer, d time.Duration) {
	timer.Reset(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

func (t *Tail) flushFailed(err error) {
	t.stalled = true
	if errors.Is(err, context.Canceled) {
		return
	}
	if ok, n := t.warnFlush.allow(time.Now()); ok {
		t.log.Warn("handing events to the queues failed; retrying, offsets are held back", "err", err, "suppressed", n)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
