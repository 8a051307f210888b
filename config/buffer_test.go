package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestScaledBufferDefaults: a max_bytes too small for the default
// segment_bytes scales the default segment (and chunk) down instead of
// being refused, never below a segment that holds the inputs' longest line
// (docker's default max_line_bytes, 1MiB, plus 64KiB: 1088KiB, so the
// smallest max_bytes is 2176KiB); an explicit segment_bytes is kept and
// validated as before.
func TestScaledBufferDefaults(t *testing.T) {
	const docker = "inputs:\n  - {id: a, type: docker}\n"
	for name, tc := range map[string]struct {
		inputs, buffer string
		seg, chunk     ByteSize // want, when err is ""
		err            string
	}{
		"default max_bytes":      {docker, "{}", 8 << 20, 1 << 20, ""},
		"32MiB keeps 8MiB":       {docker, "{max_bytes: 32MiB}", 8 << 20, 1 << 20, ""},
		"20MiB: a quarter":       {docker, "{max_bytes: 20MiB}", 5 << 20, 1 << 20, ""},
		"10MiB: a quarter":       {docker, "{max_bytes: 10MiB}", 2560 << 10, 640 << 10, ""},
		"rounded down to a KiB":  {docker, "{max_bytes: 10000001}", 2441 << 10, 610 << 10, ""},
		"4MiB: the line floor":   {docker, "{max_bytes: 4MiB}", 1088 << 10, 272 << 10, ""},
		"smallest max_bytes":     {docker, "{max_bytes: 2176KiB}", 1088 << 10, 272 << 10, ""},
		"below the smallest":     {docker, "{max_bytes: 2175KiB}", 0, 0, "outputs[0].buffer.max_bytes: 2175KiB is too small: a queue holds at least two segments, and each must hold the longest line an input accepts (inputs[0].docker.max_line_bytes: 1MiB) plus 64KiB for the rest of its event; set max_bytes to at least 2176KiB (or lower max_line_bytes, or set segment_bytes)"},
		"explicit chunk_bytes":   {docker, "{max_bytes: 10MiB, chunk_bytes: 2MiB}", 2560 << 10, 2 << 20, ""},
		"chunk raises segment":   {docker, "{max_bytes: 10MiB, chunk_bytes: 4MiB}", 4 << 20, 4 << 20, ""},
		"chunk too large":        {docker, "{max_bytes: 10MiB, chunk_bytes: 6MiB}", 0, 0, "outputs[0].buffer.chunk_bytes: 6MiB is larger than segment_bytes (5MiB)"},
		"explicit too large":     {docker, "{max_bytes: 10MiB, segment_bytes: 8MiB}", 0, 0, "outputs[0].buffer.segment_bytes: 8MiB is more than half of max_bytes (10MiB)"},
		"explicit below floor":   {docker, "{max_bytes: 1MiB, segment_bytes: 256KiB}", 256 << 10, 64 << 10, ""},
		"explicit small segment": {docker, "{segment_bytes: 2MiB}", 2 << 20, 512 << 10, ""},
		"longer lines":           {"inputs:\n  - {id: a, type: docker, max_line_bytes: 4MiB}\n", "{max_bytes: 12MiB}", 4160 << 10, 1 << 20, ""},
		"longest line wins": {"inputs:\n  - {id: a, type: docker, max_line_bytes: 64KiB}\n  - {id: b, type: cri, max_line_bytes: 2MiB}\n",
			"{max_bytes: 4MiB}", 0, 0, "outputs[0].buffer.max_bytes: 4MiB is too small: a queue holds at least two segments, and each must hold the longest line an input accepts (inputs[1].cri.max_line_bytes: 2MiB) plus 64KiB for the rest of its event; set max_bytes to at least 4224KiB (or lower max_line_bytes, or set segment_bytes)"},
		"short lines": {"inputs:\n  - {id: a, type: docker, max_line_bytes: 16KiB}\n",
			"{max_bytes: 256KiB}", 80 << 10, 20 << 10, ""},
		"forward: max_partial_bytes": {"inputs:\n  - {id: f, type: forward, max_partial_bytes: 256KiB}\n",
			"{max_bytes: 1MiB}", 320 << 10, 80 << 10, ""},
		"forward below": {"inputs:\n  - {id: f, type: forward}\n",
			"{max_bytes: 1MiB}", 0, 0, "outputs[0].buffer.max_bytes: 1MiB is too small: a queue holds at least two segments, and each must hold the longest line an input accepts (inputs[0].forward.max_partial_bytes: 1MiB) plus 64KiB for the rest of its event; set max_bytes to at least 2176KiB (or lower max_partial_bytes, or set segment_bytes)"},
	} {
		t.Run(name, func(t *testing.T) {
			file := tc.inputs + "outputs:\n  - {id: o, type: stdout, buffer: " + tc.buffer + "}\n"
			c, err := ParseWithEnv([]byte(file), "f.yml", nil)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("no error, want %q; buffer %+v", tc.err, c.Outputs[0].Buffer)
				}
				if want := fmt.Sprintf("f.yml:%d: %s", strings.Count(tc.inputs, "\n")+2, tc.err); err.Error() != want {
					t.Errorf("error\n  %v\nwant\n  %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b := c.Outputs[0].Buffer
			if b.SegmentBytes != tc.seg || b.ChunkBytes != tc.chunk {
				t.Errorf("segment_bytes %s, chunk_bytes %s; want %s, %s", formatSize(b.SegmentBytes), formatSize(b.ChunkBytes), formatSize(tc.seg), formatSize(tc.chunk))
			}
			// What Parse decided stays valid when checked again (Validate
			// knows nothing of which keys the file set).
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestScaledSegmentBytes: the scaled default never exceeds the fixed one.
func TestScaledSegmentBytes(t *testing.T) {
	for _, tc := range []struct{ max, floor, want ByteSize }{
		{1 << 30, 1 << 20, 8 << 20},
		{1 << 30, 64 << 20, 8 << 20}, // lines longer than 8MiB: as with an explicit segment, refused
		{8 << 20, 1 << 20, 2 << 20},
		{8 << 20, 3 << 20, 3 << 20},
		{1 << 20, 64 << 10, 256 << 10},
	} {
		if got := scaledSegmentBytes(tc.max, tc.floor); got != tc.want {
			t.Errorf("scaledSegmentBytes(%s, %s) = %s, want %s", formatSize(tc.max), formatSize(tc.floor), formatSize(got), formatSize(tc.want))
		}
	}
	if got := scaledChunkBytes(64 << 10); got != 16<<10 {
		t.Errorf("scaledChunkBytes(64KiB) = %s", formatSize(got))
	}
	if s := minSegmentBytes(&Config{}); s != 64<<10 {
		t.Errorf("minSegmentBytes without inputs: %s", formatSize(s))
	}
}
