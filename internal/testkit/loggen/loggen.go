// Package loggen writes Docker json-file logs into a fake Docker root, for
// end-to-end tests and the benchmark.
//
// Each Container is one directory <root>/<id>/ with config.v2.json (Name,
// Config.Labels) and <id>-json.log, written exactly as dockerd's json-file
// driver writes it (formats.md §3.2):
//
//	{"log":"{\"log_type\":\"app\",\"src\":\"c1\",\"seq\":7,\"pad\":\"abc…\"}\n","stream":"stdout","time":"2026-11-25T10:00:00.123456789Z"}
//
// The payload (the text of "log" without its newline) is a JSON object of
// exactly Options.Payload bytes (or the minimum its fields need) carrying the
// container's source id and a sequence number starting at 0, so a receiver
// can check that every line arrived (receiver.LogKey parses it).
//
// # Invariants
//
//   - Sequence numbers are dense: line k of a Container has seq k.
//   - Writes are buffered; every call that returns (Write, Run, Rotate,
//     CopyTruncate, Flush) has handed every line to the OS, so an agent
//     started afterwards sees them.
//   - Rotation follows dockerd: by rename (<log> → <log>.1 → <log>.2 …,
//     keeping MaxFiles files including the live one, the oldest deleted) or
//     by copytruncate (the live content is copied to <log>.1, then the live
//     file is truncated to 0 and written again from offset 0).
//
// # Known limitations
//
//   - Deleting the oldest rotated file loses its unread lines, as with
//     dockerd; tests must rotate slowly enough (or keep enough files) for
//     the agent to finish rotated files.
//   - No partial (16 KiB) lines, no compression of rotated files.
//   - A Container is not safe for concurrent use.
package loggen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Rotation is how a Container rotates its log file.
type Rotation int

const (
	// NoRotation never rotates automatically.
	NoRotation Rotation = iota
	// Rename renames the live file to .1 (shifting older ones) and starts
	// a new file, like dockerd's max-size/max-file.
	Rename
	// CopyTruncate copies the live file to .1 (shifting older ones) and
	// truncates the live file in place.
	CopyTruncate
)

func (r Rotation) String() string {
	switch r {
	case Rename:
		return "rename"
	case CopyTruncate:
		return "copytruncate"
	}
	return "none"
}

// Options configures a Container. Zero values take the documented defaults.
type Options struct {
	// Name is the container name (config.v2.json "Name" gets a leading "/").
	Name string
	// ID is the 64-hex container id. Default: sha256 of Name.
	ID string
	// Src is the "src" field of each payload. Default Name.
	Src string
	// LogType is the "log_type" field of each payload. Default "app".
	LogType string
	// Payload is the size in bytes of each line's payload JSON (without the
	// trailing newline). Default 200; payloads are never smaller than their
	// fields need (about 60 bytes).
	Payload int
	// Stream is "stdout" (default) or "stderr".
	Stream string
	// Labels go to config.v2.json Config.Labels.
	Labels map[string]string
	// Rotate and RotateEvery rotate automatically before the line that
	// would exceed RotateEvery lines in the live file (0: never).
	Rotate      Rotation
	RotateEvery int
	// MaxFiles is the number of files kept, the live one included (dockerd
	// max-file). Default 5.
	MaxFiles int
}

// Container writes one container's json-file log.
type Container struct {
	o      Options
	dir    string
	path   string
	f      *os.File
	buf    []byte
	pad    []byte
	seq    int64
	inFile int
	rot    int // rotations done

	lastUs   int64  // microsecond of lastTime
	lastTime []byte // formatted time of the previous line
}

// flushAt is the buffered size at which lines are written out.
const flushAt = 1 << 20

// New creates the container directory, its config.v2.json and an empty
// live log file (or appends to an existing one).
func New(root string, o Options) (*Container, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("loggen: empty container name")
	}
	if o.ID == "" {
		sum := sha256.Sum256([]byte(o.Name))
		o.ID = hex.EncodeToString(sum[:])
	}
	if o.Src == "" {
		o.Src = o.Name
	}
	if o.LogType == "" {
		o.LogType = "app"
	}
	if o.Payload <= 0 {
		o.Payload = 200
	}
	if o.Stream == "" {
		o.Stream = "stdout"
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = 5
	}
	c := &Container{o: o, dir: filepath.Join(root, o.ID)}
	c.path = filepath.Join(c.dir, o.ID+"-json.log")
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("loggen: %w", err)
	}
	meta := map[string]any{
		"ID":     o.ID,
		"Name":   "/" + o.Name,
		"Config": map[string]any{"Image": "loggen", "Labels": o.Labels},
		"State":  map[string]any{"Running": true},
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("loggen: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "config.v2.json"), js, 0o644); err != nil {
		return nil, fmt.Errorf("loggen: %w", err)
	}
	if err := c.open(); err != nil {
		return nil, err
	}
	c.pad = make([]byte, o.Payload)
	for i := range c.pad {
		c.pad[i] = 'a' + byte(i%26)
	}
	c.buf = make([]byte, 0, flushAt+4096)
	return c, nil
}

func (c *Container) open() error {
	f, err := os.OpenFile(c.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("loggen: %w", err)
	}
	c.f = f
	return nil
}

// ID is the container id; Dir its directory; Path its live log file.
func (c *Container) ID() string   { return c.o.ID }
func (c *Container) Dir() string  { return c.dir }
func (c *Container) Path() string { return c.path }

// Src is the source id in every payload.
func (c *Container) Src() string { return c.o.Src }

// LogType is the log_type in every payload.
func (c *Container) LogType() string { return c.o.LogType }

// Seq is the number of lines written so far (the next line's seq).
func (c *Container) Seq() int64 { return c.seq }

// Rotations is the number of rotations done so far.
func (c *Container) Rotations() int { return c.rot }

// PayloadBytes is the payload size of line seq (constant unless the
// configured size is below the fields' minimum).
func (c *Container) PayloadBytes(seq int64) int {
	return max(c.o.Payload, c.minPayload(seq))
}

// payload: {"log_type":"T","src":"S","seq":N,"pad":"P"}
func (c *Container) minPayload(seq int64) int {
	return len(`{"log_type":"","src":"","seq":,"pad":""}`) + len(c.o.LogType) + len(c.o.Src) + digits(seq)
}

func digits(n int64) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// appendLine appends one json-file line for seq at time t.
func (c *Container) appendLine(b []byte, seq int64, t time.Time) []byte {
	padLen := max(c.o.Payload-c.minPayload(seq), 0)
	b = append(b, `{"log":"{\"log_type\":\"`...)
	b = append(b, c.o.LogType...)
	b = append(b, `\",\"src\":\"`...)
	b = append(b, c.o.Src...)
	b = append(b, `\",\"seq\":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,\"pad\":\"`...)
	b = append(b, c.pad[:min(padLen, len(c.pad))]...)
	b = append(b, `\"}\n","stream":"`...)
	b = append(b, c.o.Stream...)
	b = append(b, `","time":"`...)
	if us := t.UnixMicro(); us != c.lastUs || c.lastTime == nil {
		// Formatting dominates the cost of a line; lines written in the
		// same microsecond share the text.
		c.lastUs = us
		c.lastTime = t.UTC().AppendFormat(c.lastTime[:0], time.RFC3339Nano)
	}
	b = append(b, c.lastTime...)
	b = append(b, "\"}\n"...)
	return b
}

// Write appends n lines as fast as possible, rotating as configured, and
// flushes them to the OS before returning.
func (c *Container) Write(n int) error {
	for range n {
		if err := c.writeOne(time.Now()); err != nil {
			return err
		}
	}
	return c.Flush()
}

func (c *Container) writeOne(t time.Time) error {
	if c.o.Rotate != NoRotation && c.o.RotateEvery > 0 && c.inFile >= c.o.RotateEvery {
		var err error
		if c.o.Rotate == Rename {
			err = c.Rotate()
		} else {
			err = c.CopyTruncate()
		}
		if err != nil {
			return err
		}
	}
	c.buf = c.appendLine(c.buf, c.seq, t)
	c.seq++
	c.inFile++
	if len(c.buf) >= flushAt {
		return c.Flush()
	}
	return nil
}

// Flush writes the buffered lines to the live file.
func (c *Container) Flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if _, err := c.f.Write(c.buf); err != nil {
		return fmt.Errorf("loggen: write %s: %w", c.path, err)
	}
	c.buf = c.buf[:0]
	return nil
}

// Run writes n lines at rate lines per second (spread in 10 ms steps, each
// flushed, so an agent sees a steady stream), until done or ctx is
// cancelled (then it flushes and returns ctx's error).
func (c *Container) Run(ctx context.Context, n int, rate float64) error {
	start := time.Now()
	written := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for written < n {
		due := min(int(time.Since(start).Seconds()*rate), n)
		for ; written < due; written++ {
			if err := c.writeOne(time.Now()); err != nil {
				return err
			}
		}
		if err := c.Flush(); err != nil {
			return err
		}
		if written >= n {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// shift deletes the oldest rotated file and renames .i-1 to .i, making room
// for a new .1.
func (c *Container) shift() error {
	if c.o.MaxFiles < 2 {
		return nil
	}
	if err := os.Remove(fmt.Sprintf("%s.%d", c.path, c.o.MaxFiles-1)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("loggen: rotate: %w", err)
	}
	for i := c.o.MaxFiles - 1; i >= 2; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", c.path, i-1), fmt.Sprintf("%s.%d", c.path, i))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("loggen: rotate: %w", err)
		}
	}
	return nil
}

// Rotate flushes, then rotates by rename now: <log> becomes <log>.1 and a
// new <log> is created (with MaxFiles 1 the live file is unlinked instead,
// as dockerd does).
func (c *Container) Rotate() error {
	if err := c.Flush(); err != nil {
		return err
	}
	if err := c.f.Close(); err != nil {
		return fmt.Errorf("loggen: rotate: %w", err)
	}
	if err := c.shift(); err != nil {
		return err
	}
	var err error
	if c.o.MaxFiles < 2 {
		err = os.Remove(c.path)
	} else {
		err = os.Rename(c.path, c.path+".1")
	}
	if err != nil {
		return fmt.Errorf("loggen: rotate: %w", err)
	}
	c.inFile = 0
	c.rot++
	return c.open()
}

// CopyTruncate flushes, copies the live file to <log>.1 (shifting older
// files) and truncates the live file to zero length.
func (c *Container) CopyTruncate() error {
	if err := c.Flush(); err != nil {
		return err
	}
	if err := c.shift(); err != nil {
		return err
	}
	src, err := os.Open(c.path)
	if err != nil {
		return fmt.Errorf("loggen: copytruncate: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(c.path+".1", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("loggen: copytruncate: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("loggen: copytruncate: %w", err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("loggen: copytruncate: %w", err)
	}
	if err := c.f.Truncate(0); err != nil {
		return fmt.Errorf("loggen: copytruncate: %w", err)
	}
	c.inFile = 0
	c.rot++
	return nil
}

// Close flushes and closes the live file.
func (c *Container) Close() error {
	err := c.Flush()
	if cerr := c.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("loggen: close: %w", cerr)
	}
	return err
}
