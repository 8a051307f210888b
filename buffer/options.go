package buffer

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Defaults and limits applied by Open.
const (
	DefaultMaxBytes      = 1 << 30
	DefaultSegmentBytes  = 8 << 20
	DefaultFsyncInterval = time.Second

	// MinSegmentBytes and MaxSegmentBytes bound Options.SegmentBytes. Open
	// reads one pending segment at a time into memory, so a segment must
	// stay reasonably small.
	MinSegmentBytes = 64
	MaxSegmentBytes = 1 << 30
)

// Overflow says what Append does when the queue is at MaxBytes.
type Overflow int

const (
	// DropOldest deletes the oldest whole segments, acked or not, to make
	// room. The drops are counted and logged. Append never waits.
	DropOldest Overflow = iota
	// Block makes Append wait (respecting its ctx) until acks free space.
	Block
)

// String returns the config spelling: "drop_oldest" or "block".
func (o Overflow) String() string {
	switch o {
	case DropOldest:
		return "drop_oldest"
	case Block:
		return "block"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// Options configures a Queue. The zero value of every field means its
// default.
type Options struct {
	// Name is the output id, used as the metrics label output="Name" and in
	// logs. Default: the base name of the queue directory.
	Name string
	// MaxBytes caps the sum of segment file sizes. It must be at least
	// twice SegmentBytes. Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size at which a segment is closed and a new one
	// started; no chunk may be larger. Default 8 MiB.
	SegmentBytes int64
	// Overflow is the policy at MaxBytes. Default DropOldest.
	Overflow Overflow
	// FsyncAlways makes Append return only after its chunk is fsynced
	// (concurrent appenders share one fsync). Otherwise Run fsyncs every
	// FsyncInterval when something changed.
	FsyncAlways bool
	// FsyncInterval is the period of Run's fsync loop. Default 1s.
	FsyncInterval time.Duration
	// Logger receives warnings about drops and corruption. Nil discards.
	Logger *slog.Logger
	// Metrics receives the sluice_buffer_* series. Nil means a private set.
	Metrics *metrics.Set
}

// withDefaults returns o with defaults applied, or an error naming the
// first invalid field.
func (o Options) withDefaults(dir string) (Options, error) {
	if o.Name == "" {
		o.Name = filepath.Base(dir)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	switch {
	case o.SegmentBytes < MinSegmentBytes || o.SegmentBytes > MaxSegmentBytes:
		return o, fmt.Errorf("segment bytes %d out of range [%d, %d]", o.SegmentBytes, MinSegmentBytes, MaxSegmentBytes)
	case o.MaxBytes < 2*o.SegmentBytes:
		return o, fmt.Errorf("max bytes %d must be at least twice segment bytes %d", o.MaxBytes, o.SegmentBytes)
	case o.Overflow != DropOldest && o.Overflow != Block:
		return o, fmt.Errorf("invalid overflow policy %d", int(o.Overflow))
	case o.FsyncInterval < 0:
		return o, fmt.Errorf("negative fsync interval %s", o.FsyncInterval)
	}
	return o, nil
}
