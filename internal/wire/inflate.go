package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow caps the window a zstd frame may ask for (also capped by the
// output limit), so a hostile frame header cannot make the decoder allocate
// a huge history buffer before the output cap applies. Fluentd's zstd output
// (level 3) uses windows of 2 MiB at most.
const maxZstdWindow = 8 << 20

// inflater holds reusable decompressors; pooled so steady-state decoding of
// compressed requests does not allocate.
type inflater struct {
	src bytes.Reader // not a bytes.Buffer: zstd would decode that in one go, uncapped
	gz  gzip.Reader
	zd  *zstd.Decoder
}

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

// inflate appends to dst the decompression of src ("gzip": one or more
// concatenated members; "zstd": one or more frames). It fails with
// ErrTooLarge as soon as the output exceeds limit bytes, so memory stays
// bounded by limit whatever the compression ratio. dst is returned even on
// error so the caller keeps its buffer.
func inflate(dst, src []byte, algo string, limit int) ([]byte, error) {
	if len(src) == 0 {
		return dst, nil
	}
	f := inflaters.Get().(*inflater)
	defer inflaters.Put(f)
	f.src.Reset(src)
	defer f.src.Reset(nil)
	var r io.Reader
	switch algo {
	case "gzip":
		if err := f.gz.Reset(&f.src); err != nil {
			return dst, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		f.gz.Multistream(true)
		r = &f.gz
	case "zstd":
		if f.zd == nil {
			zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(maxZstdWindow))
			if err != nil {
				return dst, fmt.Errorf("zstd decoder: %w", err)
			}
			f.zd = zd
		}
		// The window may not exceed the output cap either: a frame cannot
		// need more history than it may produce.
		if err := f.zd.ResetWithOptions(&f.src, zstd.WithDecoderMaxMemory(uint64(min(limit, maxZstdWindow)))); err != nil {
			return dst, fmt.Errorf("%w: zstd: %v", ErrMalformed, err)
		}
		defer f.zd.Reset(nil) // release src
		r = f.zd
	default:
		return dst, fmt.Errorf("%w: unsupported compression %q", ErrMalformed, algo)
	}
	for {
		if len(dst) == cap(dst) {
			if len(dst) > limit {
				break
			}
			grown := make([]byte, len(dst), min(max(2*cap(dst), 64<<10), limit+1))
			copy(grown, dst)
			dst = grown
		}
		m, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+m]
		if len(dst) > limit {
			break
		}
		if err == io.EOF {
			return dst, nil
		}
		if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return dst, fmt.Errorf("%w: zstd window exceeds %d bytes", ErrTooLarge, min(limit, maxZstdWindow))
		}
		if err != nil {
			return dst, fmt.Errorf("%w: %s: %v", ErrMalformed, algo, err)
		}
	}
	return dst, fmt.Errorf("%w: decompressed entries exceed %d bytes", ErrTooLarge, limit)
}
