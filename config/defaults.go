package config

import "time"

// Default values. The field comments in types.go document them; these
// functions are their single implementation. Each call returns fresh
// pointers, so callers may modify the result.

// DefaultConfig returns a Config with every top-level default applied and
// no components.
func DefaultConfig() Config {
	return Config{
		DataDir:       "/var/lib/sluice",
		LogLevel:      "info",
		ShutdownGrace: 30 * time.Second,
	}
}

// DefaultDockerInput returns a DockerInput with every default applied.
func DefaultDockerInput() DockerInput {
	return DockerInput{
		Root:                "/var/lib/docker/containers",
		Tag:                 "docker.{name}",
		MaxLineBytes:        1 << 20,
		IncludeLabels:       ptr(true),
		PollInterval:        time.Second,
		CheckpointInterval:  time.Second,
		ReadFromHead:        ptr(true),
		PartialFlushTimeout: 5 * time.Second,
	}
}

// DefaultListen is the forward input's TCP address when neither listen nor
// unix is configured.
const DefaultListen = "127.0.0.1:24224"

// DefaultForwardInput returns a ForwardInput with every default applied,
// including Listen (which Parse keeps only if neither listen nor unix is
// configured).
func DefaultForwardInput() ForwardInput {
	return ForwardInput{
		Listen:               DefaultListen,
		UnixMode:             ptr(uint32(0o666)),
		MaxMessageBytes:      16 << 20,
		MaxDecompressedBytes: 64 << 20,
		MaxConnections:       1024,
		PartialTimeout:       5 * time.Second,
		MaxPartialBytes:      1 << 20,
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

// DefaultForwardOutput returns a ForwardOutput with every default applied
// and no servers.
func DefaultForwardOutput() ForwardOutput {
	return ForwardOutput{
		Compress:          "none",
		CompressLevel:     1,
		RequireAck:        ptr(true),
		AckTimeout:        30 * time.Second,
		MaxInFlight:       8,
		ConnectTimeout:    5 * time.Second,
		HeartbeatInterval: time.Second,
		RetryInitial:      time.Second,
		RetryMax:          60 * time.Second,
	}
}

// DefaultForwardServer returns a ForwardServer with the default weight.
func DefaultForwardServer() ForwardServer {
	return ForwardServer{Weight: 60}
}

func ptr[T any](v T) *T { return &v }
