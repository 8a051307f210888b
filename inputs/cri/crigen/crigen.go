// Package crigen writes Kubernetes CRI container logs into a fake
// /var/log/pods tree the way containerd and the kubelet do, for the cri
// input's tests, the end-to-end tests and the benchmark.
//
// Each Container is one directory <root>/<namespace>_<pod>_<uid>/<name>/
// holding <restart>.log, written as containerd's CRI logger writes it
// (formats.md §4.1):
//
//	2026-11-25T10:00:00.123456789Z stdout F {"log_type":"app","src":"c1","seq":7,"pad":"abc…"}
//
// The payload is a JSON object of exactly Options.Payload bytes (or the
// minimum its fields need) carrying the container's source id and a
// sequence number starting at 0, so a receiver can check that every line
// arrived (receiver.LogKey parses it, also from a joined line).
//
// # Invariants
//
//   - Sequence numbers are dense: line k of a Container has seq k.
//   - A payload longer than Options.SplitAt (containerd's
//     max_container_log_line_size, 16 KiB by default) is split into
//     chunks: every one but the last tagged P, the last F, each with its
//     own timestamp. With Stream "both", lines alternate stdout and
//     stderr, and the chunks of two consecutive lines are interleaved (as
//     containerd's two stream copiers write them), so a reader must join
//     per stream.
//   - Writes are buffered; every call that returns (Write, Run, Rotate,
//     Restart, Flush) has handed every line to the OS.
//   - Rotate follows the kubelet's container log manager (formats.md §4.3):
//     remove *.tmp and rotations that already have a .gz twin, delete the
//     oldest so that at most MaxFiles-2 rotations remain, gzip every
//     remaining uncompressed rotation (<f>.tmp, renamed to <f>.gz, then <f>
//     removed), rename the live <n>.log to <n>.log.<YYYYMMDD-hhmmss>, write
//     Options.LateLines more lines through the old descriptor (the runtime
//     has not reopened yet), then reopen a new <n>.log. Rotation
//     timestamps are strictly increasing even when rotations come faster
//     than one a second.
//
// # Known limitations
//
//   - Like the kubelet, Rotate gzips (and so hides from a reader) every
//     rotation but the newest: a reader must have finished a rotated file
//     before the next rotation, or its unread lines are gone.
//   - A Container is not safe for concurrent use.
package crigen

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options configures a Container. Zero values take the documented defaults.
type Options struct {
	// Namespace, Pod and Name (the container's name) make the directory
	// <Namespace>_<Pod>_<UID>/<Name>. Defaults "default", "pod", "app".
	Namespace, Pod, Name string
	// UID is the pod's uid. Default: a UUID-shaped hash of namespace and pod.
	UID string
	// Src is the "src" field of each payload. Default <Namespace>/<Pod>/<Name>.
	Src string
	// LogType is the "log_type" field of each payload. Default "app".
	LogType string
	// Payload is the size in bytes of each line's payload JSON. Default
	// 200; payloads are never smaller than their fields need (about 60
	// bytes).
	Payload int
	// Stream is "stdout" (default), "stderr" or "both" (alternating, with
	// the chunks of split lines interleaved).
	Stream string
	// SplitAt is the longest content of one physical line; longer payloads
	// are split into P chunks and a final F. Default 16384 (containerd's).
	SplitAt int
	// Zone is the zone of the timestamps (containerd writes the node's
	// local zone). Default UTC.
	Zone *time.Location
	// RotateEvery rotates automatically before the line that would exceed
	// RotateEvery lines in the live file (0: never).
	RotateEvery int
	// MaxFiles is the kubelet's containerLogMaxFiles, the live file
	// included. Default 5; at least 2.
	MaxFiles int
	// LateLines is the number of lines Rotate writes through the old
	// descriptor after the rename, before reopening.
	LateLines int
	// Restart is the restart count of the first file. Default 0.
	Restart int
}

// Container writes one container's CRI log.
type Container struct {
	o       Options
	dir     string
	restart int
	f       *os.File
	buf     []byte
	pad     []byte
	seq     int64
	inFile  int
	rot     int
	lastRot time.Time

	lastUs   int64
	lastTime []byte
	scratch  [2][]byte   // payloads of the lines being written
	parts    [2][][]byte // their chunks
}

// flushAt is the buffered size at which lines are written out.
const flushAt = 1 << 20

// New creates the container directory and its live log file (or appends
// to an existing one).
func New(root string, o Options) (*Container, error) {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&o.Namespace, "default")
	def(&o.Pod, "pod")
	def(&o.Name, "app")
	if o.UID == "" {
		sum := sha256.Sum256([]byte(o.Namespace + "/" + o.Pod))
		h := fmt.Sprintf("%x", sum[:16])
		o.UID = h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	def(&o.Src, o.Namespace+"/"+o.Pod+"/"+o.Name)
	def(&o.LogType, "app")
	def(&o.Stream, "stdout")
	if o.Payload <= 0 {
		o.Payload = 200
	}
	if o.SplitAt <= 0 {
		o.SplitAt = 16384
	}
	if o.Zone == nil {
		o.Zone = time.UTC
	}
	if o.MaxFiles < 2 {
		o.MaxFiles = 5
	}
	switch o.Stream {
	case "stdout", "stderr", "both":
	default:
		return nil, fmt.Errorf("crigen: stream %q (want stdout, stderr or both)", o.Stream)
	}
	c := &Container{o: o, restart: o.Restart}
	c.dir = filepath.Join(root, o.Namespace+"_"+o.Pod+"_"+o.UID, o.Name)
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("crigen: %w", err)
	}
	if err := c.open(); err != nil {
		return nil, err
	}
	c.pad = make([]byte, o.Payload)
	for i := range c.pad {
		c.pad[i] = 'a' + byte(i%26)
	}
	c.buf = make([]byte, 0, flushAt+2*o.Payload+4096)
	return c, nil
}

func (c *Container) open() error {
	f, err := os.OpenFile(c.Path(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("crigen: %w", err)
	}
	c.f = f
	return nil
}

// Dir is the container's log directory; Path its live log file.
func (c *Container) Dir() string  { return c.dir }
func (c *Container) Path() string { return filepath.Join(c.dir, strconv.Itoa(c.restart)+".log") }

// Namespace, Pod, UID and Name are the parts of the directory.
func (c *Container) Namespace() string { return c.o.Namespace }
func (c *Container) Pod() string       { return c.o.Pod }
func (c *Container) UID() string       { return c.o.UID }
func (c *Container) Name() string      { return c.o.Name }

// Src is the source id in every payload.
func (c *Container) Src() string { return c.o.Src }

// Seq is the number of lines written so far (the next line's seq).
func (c *Container) Seq() int64 { return c.seq }

// SetRotateEvery changes Options.RotateEvery (0: no automatic rotation),
// e.g. to rotate only by hand while a test's agent is stopped.
func (c *Container) SetRotateEvery(n int) { c.o.RotateEvery = n }

// Rotations is the number of rotations done so far.
func (c *Container) Rotations() int { return c.rot }

// PayloadBytes is the payload size of line seq.
func (c *Container) PayloadBytes(seq int64) int { return max(c.o.Payload, c.minPayload(seq)) }

// Payload returns the payload of line seq.
func (c *Container) Payload(seq int64) string { return string(c.appendPayload(nil, seq)) }

// StreamOf is the stream line seq is written to.
func (c *Container) StreamOf(seq int64) string {
	if c.o.Stream == "both" {
		if seq%2 == 0 {
			return "stdout"
		}
		return "stderr"
	}
	return c.o.Stream
}

// payload: {"log_type":"T","src":"S","seq":N,"pad":"P"}
func (c *Container) minPayload(seq int64) int {
	return len(`{"log_type":"","src":"","seq":,"pad":""}`) + len(c.o.LogType) + len(c.o.Src) + len(strconv.FormatInt(seq, 10))
}

func (c *Container) appendPayload(b []byte, seq int64) []byte {
	padLen := max(c.o.Payload-c.minPayload(seq), 0)
	b = append(b, `{"log_type":"`...)
	b = append(b, c.o.LogType...)
	b = append(b, `","src":"`...)
	b = append(b, c.o.Src...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"pad":"`...)
	for padLen > 0 {
		n := min(padLen, len(c.pad))
		b = append(b, c.pad[:n]...)
		padLen -= n
	}
	return append(b, `"}`...)
}

// appendPhysical appends one physical CRI line.
func (c *Container) appendPhysical(b []byte, stream, tag string, content []byte) []byte {
	t := time.Now()
	if us := t.UnixMicro(); us != c.lastUs || c.lastTime == nil {
		c.lastUs = us
		c.lastTime = t.In(c.o.Zone).AppendFormat(c.lastTime[:0], time.RFC3339Nano)
	}
	b = append(b, c.lastTime...)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	b = append(b, content...)
	return append(b, '\n')
}

// chunks appends the pieces of payload p to out, split as containerd does.
func (c *Container) chunks(out [][]byte, p []byte) [][]byte {
	for len(p) > c.o.SplitAt {
		out = append(out, p[:c.o.SplitAt])
		p = p[c.o.SplitAt:]
	}
	return append(out, p)
}

// Write appends n lines as fast as possible, rotating as configured, and
// flushes them to the OS before returning.
func (c *Container) Write(n int) error {
	for n > 0 {
		k, err := c.writeSome(n)
		if err != nil {
			return err
		}
		n -= k
	}
	return c.Flush()
}

// writeSome writes one line, or two with Stream "both" (their chunks
// interleaved), and returns how many.
func (c *Container) writeSome(n int) (int, error) {
	if c.o.RotateEvery > 0 && c.inFile >= c.o.RotateEvery {
		if err := c.Rotate(); err != nil {
			return 0, err
		}
	}
	k := 1
	if c.o.Stream == "both" && n >= 2 && c.seq%2 == 0 {
		k = 2
	}
	parts := &c.parts
	for i := range k {
		c.scratch[i] = c.appendPayload(c.scratch[i][:0], c.seq+int64(i))
		parts[i] = c.chunks(parts[i][:0], c.scratch[i])
	}
	if k == 1 {
		parts[1] = parts[1][:0]
	}
	for j := 0; j < max(len(parts[0]), len(parts[1])); j++ {
		for i := range k {
			if j < len(parts[i]) {
				tag := "P"
				if j == len(parts[i])-1 {
					tag = "F"
				}
				c.buf = c.appendPhysical(c.buf, c.StreamOf(c.seq+int64(i)), tag, parts[i][j])
			}
		}
	}
	c.seq += int64(k)
	c.inFile += k
	if len(c.buf) >= flushAt {
		return k, c.Flush()
	}
	return k, nil
}

// Flush writes the buffered lines to the live file.
func (c *Container) Flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if _, err := c.f.Write(c.buf); err != nil {
		return fmt.Errorf("crigen: write %s: %w", c.f.Name(), err)
	}
	c.buf = c.buf[:0]
	return nil
}

// Run writes n lines at rate lines per second (spread in 10 ms steps,
// each flushed), until done or ctx is cancelled (then it flushes and
// returns ctx's error).
func (c *Container) Run(ctx context.Context, n int, rate float64) error {
	start := time.Now()
	written := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for written < n {
		due := min(int(time.Since(start).Seconds()*rate), n)
		for written < due {
			k, err := c.writeSome(due - written)
			if err != nil {
				return err
			}
			written += k
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

// rotationName returns the next rotation's name: <live>.<timestamp>, the
// timestamp strictly after the previous one's.
func (c *Container) rotationName() string {
	now := time.Now().Truncate(time.Second)
	if !now.After(c.lastRot) {
		now = c.lastRot.Add(time.Second)
	}
	c.lastRot = now
	return c.Path() + "." + now.In(c.o.Zone).Format("20060102-150405")
}

// Rotate flushes, then rotates as the kubelet does (see the package doc).
func (c *Container) Rotate() error {
	if err := c.Flush(); err != nil {
		return err
	}
	live := c.Path()
	if err := c.cleanRotations(live); err != nil {
		return err
	}
	if err := os.Rename(live, c.rotationName()); err != nil {
		return fmt.Errorf("crigen: rotate: %w", err)
	}
	// The runtime still writes to the renamed file until it reopens.
	late := c.o.LateLines
	for late > 0 {
		k, err := c.writeSomeNoRotate(late)
		if err != nil {
			return err
		}
		late -= k
	}
	if err := c.Flush(); err != nil {
		return err
	}
	if err := c.f.Close(); err != nil {
		return fmt.Errorf("crigen: rotate: %w", err)
	}
	c.inFile = 0
	c.rot++
	return c.open()
}

func (c *Container) writeSomeNoRotate(n int) (int, error) {
	every := c.o.RotateEvery
	c.o.RotateEvery = 0
	defer c.SetRotateEvery(every)
	return c.writeSome(n)
}

// cleanRotations is the kubelet's cleanup before a rotation: steps 1 to 3
// of formats.md §4.3.
func (c *Container) cleanRotations(live string) error {
	matches, err := filepath.Glob(live + ".*")
	if err != nil {
		return err
	}
	var plain, gz []string
	for _, m := range matches {
		switch {
		case strings.HasSuffix(m, ".tmp"):
			if err := os.Remove(m); err != nil {
				return fmt.Errorf("crigen: %w", err)
			}
		case strings.HasSuffix(m, ".gz"):
			gz = append(gz, m)
		default:
			plain = append(plain, m)
		}
	}
	var kept []string
	for _, p := range plain {
		if slices.Contains(gz, p+".gz") {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("crigen: %w", err)
			}
			continue
		}
		kept = append(kept, p)
	}
	all := append(append([]string{}, kept...), gz...)
	slices.Sort(all)
	for len(all) > c.o.MaxFiles-2 {
		if err := os.Remove(all[0]); err != nil {
			return fmt.Errorf("crigen: %w", err)
		}
		kept = slices.DeleteFunc(kept, func(s string) bool { return s == all[0] })
		all = all[1:]
	}
	for _, p := range kept {
		if err := gzipFile(p); err != nil {
			return err
		}
	}
	return nil
}

// gzipFile compresses p as the kubelet does: <p>.tmp, renamed to <p>.gz,
// then p removed.
func gzipFile(p string) error {
	src, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("crigen: %w", err)
	}
	defer src.Close()
	tmp := p + ".tmp"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("crigen: %w", err)
	}
	zw := gzip.NewWriter(dst)
	_, err = io.Copy(zw, src)
	if err == nil {
		err = zw.Close()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p+".gz")
	}
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil {
		return fmt.Errorf("crigen: gzip %s: %w", p, err)
	}
	return nil
}

// Restart flushes and starts the next restart's file, <restart+1>.log, as
// the runtime does for a restarted container; the old file stays.
func (c *Container) Restart() error {
	if err := c.Flush(); err != nil {
		return err
	}
	if err := c.f.Close(); err != nil {
		return fmt.Errorf("crigen: restart: %w", err)
	}
	c.restart++
	c.inFile = 0
	return c.open()
}

// Close flushes and closes the live file.
func (c *Container) Close() error {
	err := c.Flush()
	if cerr := c.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("crigen: close: %w", cerr)
	}
	return err
}
