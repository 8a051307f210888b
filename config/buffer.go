package config

import (
	"fmt"
	"strings"
)

// Scaled buffer defaults. A queue holds at least two segments (package
// buffer refuses less), so with the fixed default segment_bytes (8MiB) a
// max_bytes below 16MiB would be refused. When the file leaves
// segment_bytes out, its default is a quarter of max_bytes instead if that
// is smaller (drop_oldest then drops a quarter of the queue at a time, not
// half), but not less than a segment that holds the longest line an input
// accepts plus segmentSlack: the forward input refuses, before its ack, an
// event no queue can store (pipeline.Router.MaxEventBytes is derived from
// the segment size), and the pipeline refuses such a line from a file
// input as too large. A max_bytes below two such segments is an error that
// says so. The default chunk_bytes is at most a quarter of segment_bytes.
// An explicit segment_bytes is kept as it is, and validated as before.

// segmentSlack is what a segment holds besides the longest line: the
// event's other record fields (labels, metadata), its time and tag, and
// the chunk's frame.
const segmentSlack = 64 << 10

// segmentFloor is the smallest scaled default segment.
const segmentFloor = 64 << 10

// lineLimiter is implemented by input types that bound the line an event
// carries: key is the option that sets the bound (max_line_bytes).
type lineLimiter interface {
	maxLine() (key string, n int)
}

func (d *DockerInput) maxLine() (string, int)  { return "max_line_bytes", d.MaxLineBytes }
func (c *CRIInput) maxLine() (string, int)     { return "max_line_bytes", c.MaxLineBytes }
func (f *ForwardInput) maxLine() (string, int) { return "max_partial_bytes", f.MaxPartialBytes }

// longestLine returns the longest line any input of c accepts, with the
// path of the option that sets it ("" and 0 without one).
func longestLine(c *Config) (path string, n int) {
	for i := range c.Inputs {
		in := &c.Inputs[i]
		l, ok := in.Spec().(lineLimiter)
		if !ok {
			continue
		}
		if key, m := l.maxLine(); m > n {
			path, n = fmt.Sprintf("inputs[%d].%s.%s", i, in.Type, key), m
		}
	}
	return path, n
}

// minSegmentBytes is the smallest segment the scaled default allows for
// c's inputs: the longest line they accept plus room for the rest of its
// event, at least 64KiB.
func minSegmentBytes(c *Config) ByteSize {
	_, n := longestLine(c)
	return max(ByteSize(n)+segmentSlack, segmentFloor)
}

// scaledSegmentBytes is the default segment_bytes of a queue of maxBytes
// whose inputs need segments of at least floor (minSegmentBytes): the
// default (8MiB), or a quarter of maxBytes (rounded down to a KiB) when
// that is smaller, but not less than floor. It is never more than the
// default: a larger floor only means that lines longer than the default
// segment holds are refused, as with an explicit segment_bytes.
func scaledSegmentBytes(maxBytes, floor ByteSize) ByteSize {
	return min(DefaultBuffer().SegmentBytes, max(maxBytes/4&^(1<<10-1), floor))
}

// scaledChunkBytes is the default chunk_bytes of a queue whose segments
// are segmentBytes: the default (1MiB), or a quarter of segmentBytes
// (rounded down to a KiB, at least 1KiB) when that is smaller.
func scaledChunkBytes(segmentBytes ByteSize) ByteSize {
	return max(min(DefaultBuffer().ChunkBytes, segmentBytes/4&^(1<<10-1)), 1<<10)
}

// bufferDefaults applies the scaled defaults to the buffer of every output
// whose file left segment_bytes (or chunk_bytes) out, and reports a
// max_bytes too small for two segments that hold the inputs' longest line.
// A chunk_bytes the file sets raises the scaled segment to hold it.
func (d *decoder) bufferDefaults(c *Config) {
	linePath, line := longestLine(c)
	floor := minSegmentBytes(c)
	for i := range c.Outputs {
		b := &c.Outputs[i].Buffer
		p := fmt.Sprintf("outputs[%d].buffer", i)
		chunkSet := d.set(p + ".chunk_bytes")
		if !d.set(p+".segment_bytes") && b.MaxBytes > 0 && !d.underFailed(p+".max_bytes") {
			switch seg := scaledSegmentBytes(b.MaxBytes, floor); {
			case seg > b.MaxBytes/2:
				d.fail(d.lineOf(p+".max_bytes"), p+".max_bytes", "%s", tooSmallForSegments(b.MaxBytes, floor, linePath, line))
				b.SegmentBytes = b.MaxBytes / 2 // reported above, not again as more than half
			case chunkSet && b.ChunkBytes > seg:
				// As large as the chunk if max_bytes allows it; if not,
				// validation reports the chunk larger than the segment.
				b.SegmentBytes = max(seg, min(b.ChunkBytes, DefaultBuffer().SegmentBytes, b.MaxBytes/2))
			default:
				b.SegmentBytes = seg
			}
		}
		if !chunkSet && b.SegmentBytes > 0 {
			b.ChunkBytes = scaledChunkBytes(b.SegmentBytes)
		}
	}
}

// tooSmallForSegments explains why maxBytes cannot hold two segments of
// floor bytes.
func tooSmallForSegments(maxBytes, floor ByteSize, linePath string, line int) string {
	if line == 0 {
		return fmt.Sprintf("%s is too small: a queue holds at least two segments of at least %s; set max_bytes to at least %s (or set segment_bytes)",
			formatSize(maxBytes), formatSize(floor), formatSize(2*floor))
	}
	key := linePath[strings.LastIndexByte(linePath, '.')+1:]
	return fmt.Sprintf("%s is too small: a queue holds at least two segments, and each must hold the longest line an input accepts (%s: %s) plus %s for the rest of its event; set max_bytes to at least %s (or lower %s, or set segment_bytes)",
		formatSize(maxBytes), linePath, formatSize(ByteSize(line)), formatSize(segmentSlack), formatSize(2*floor), key)
}

// lineOf returns the line of path or of its closest ancestor that has one.
func (d *decoder) lineOf(path string) int {
	return (&checker{lines: d.lines}).line(path)
}
