package agentproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the agent configuration the tests need: one docker input over
// a fake Docker root, routed by tag to forward outputs. Zero values are
// left out of the YAML (the agent's defaults apply) unless noted.
type Config struct {
	DataDir       string
	DockerRoot    string
	MetricsAddr   string
	LogLevel      string        // default "info"
	ShutdownGrace time.Duration // default 10s

	// Tag is the docker input's tag template. Default
	// "{field:log_type}.{name}" (the payload's log_type picks the route).
	Tag string
	// RawLog turns parse_json off: records keep the payload only in "log"
	// (the tag's {field:log_type} still reads it). Default: parse_json on.
	RawLog             bool
	PollInterval       time.Duration // default 200ms
	CheckpointInterval time.Duration // default 500ms

	Outputs []Output
}

// Output is one forward output with its route.
type Output struct {
	ID      string
	Address string // the receiver's host:port
	// Match is the route pattern. Default "<ID>.**".
	Match string

	Compress       string // "gzip" or "" (none)
	MaxInFlight    int
	AckTimeout     time.Duration
	ConnectTimeout time.Duration // default 1s
	// Heartbeat and retry back-off; defaults 200ms, 100ms and 1s so a
	// restarted receiver is found quickly.
	HeartbeatInterval time.Duration
	RetryInitial      time.Duration
	RetryMax          time.Duration

	Buffer Buffer
}

// Buffer is an output's disk queue; sizes use the config syntax ("2MiB").
type Buffer struct {
	MaxBytes      string
	SegmentBytes  string
	ChunkBytes    string
	Overflow      string // drop_oldest, block
	Fsync         string // always, interval
	FsyncInterval time.Duration
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func dur(d time.Duration) string { return strconv.Quote(d.String()) }

// YAML renders the config file.
func (c Config) YAML() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("data_dir: %q", c.DataDir)
	p("log_level: %s", or(c.LogLevel, "info"))
	if c.MetricsAddr != "" {
		p("metrics_addr: %q", c.MetricsAddr)
	}
	p("shutdown_grace: %s", dur(or(c.ShutdownGrace, 10*time.Second)))
	p("inputs:")
	p("  - id: containers")
	p("    type: docker")
	p("    root: %q", c.DockerRoot)
	p("    parse_json: %v", !c.RawLog)
	p("    tag: %q", or(c.Tag, "{field:log_type}.{name}"))
	p("    poll_interval: %s", dur(or(c.PollInterval, 200*time.Millisecond)))
	p("    checkpoint_interval: %s", dur(or(c.CheckpointInterval, 500*time.Millisecond)))
	p("outputs:")
	for _, o := range c.Outputs {
		p("  - id: %s", o.ID)
		p("    type: forward")
		p("    servers:")
		p("      - address: %q", o.Address)
		if o.Compress != "" {
			p("    compress: %s", o.Compress)
		}
		if o.MaxInFlight > 0 {
			p("    max_in_flight: %d", o.MaxInFlight)
		}
		if o.AckTimeout > 0 {
			p("    ack_timeout: %s", dur(o.AckTimeout))
		}
		p("    connect_timeout: %s", dur(or(o.ConnectTimeout, time.Second)))
		p("    heartbeat_interval: %s", dur(or(o.HeartbeatInterval, 200*time.Millisecond)))
		p("    retry_initial: %s", dur(or(o.RetryInitial, 100*time.Millisecond)))
		p("    retry_max: %s", dur(or(o.RetryMax, time.Second)))
		bf := o.Buffer
		if bf != (Buffer{}) {
			p("    buffer:")
			if bf.MaxBytes != "" {
				p("      max_bytes: %s", bf.MaxBytes)
			}
			if bf.SegmentBytes != "" {
				p("      segment_bytes: %s", bf.SegmentBytes)
			}
			if bf.ChunkBytes != "" {
				p("      chunk_bytes: %s", bf.ChunkBytes)
			}
			if bf.Overflow != "" {
				p("      overflow: %s", bf.Overflow)
			}
			if bf.Fsync != "" {
				p("      fsync: %s", bf.Fsync)
			}
			if bf.FsyncInterval > 0 {
				p("      fsync_interval: %s", dur(bf.FsyncInterval))
			}
		}
	}
	p("routes:")
	for _, o := range c.Outputs {
		p("  - match: %q", or(o.Match, o.ID+".**"))
		p("    outputs: [%s]", o.ID)
	}
	return b.String()
}

// Write writes the YAML to path.
func (c Config) Write(path string) error {
	if err := os.WriteFile(path, []byte(c.YAML()), 0o644); err != nil {
		return fmt.Errorf("agentproc: write config: %w", err)
	}
	return nil
}
