package config

import "time"

// Default values. The field comments document them; the Default*
// functions, here and next to each component type's struct, are their
// single implementation. Each call returns fresh pointers, so callers may
// modify the result.

// DefaultConfig returns a Config with every top-level default applied and
// no components.
func DefaultConfig() Config {
	return Config{
		DataDir:       "/var/lib/sluice",
		LogLevel:      "info",
		ShutdownGrace: 30 * time.Second,
	}
}

// DefaultBuffer returns a Buffer with every default applied. Every output
// type, stdout included, gets it.
func DefaultBuffer() Buffer {
	return Buffer{
		MaxBytes:      1 << 30,
		SegmentBytes:  8 << 20,
		Overflow:      "drop_oldest",
		Fsync:         "interval",
		FsyncInterval: time.Second,
		ChunkBytes:    1 << 20,
	}
}

func ptr[T any](v T) *T { return &v }
