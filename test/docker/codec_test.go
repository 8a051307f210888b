package dockertest

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/sluice-agent/sluice/internal/testkit/receiver"
	"github.com/sluice-agent/sluice/internal/wire"
)

// checkCodec is a receiver.Codec that decodes like receiver.Wire (our wire
// codec; the agent under test is the only client) and also checks every
// keyed record against what loggen wrote:
//
//   - a long line carries "len":N at its end; the record's log must be
//     exactly N bytes (reassembled, nothing cut or lost in between),
//     otherwise the event is counted as Unkeyed, so it shows as missing;
//   - container_name must be the source minus its "-<type>" suffix
//     (Docker's "/name" normalised to "name"), and container_id 64 hex;
//   - stream must be stderr exactly for loggen's stderr sequences
//     (stderrEvery).
//
// Problems are counted and the first few kept for the failure message.
type checkCodec struct {
	stderrEvery int64 // loggen's -stderr-every (3 by default); 0 skips the check
	// stderrOverride maps a container name to its own -stderr-every.
	stderrOverride sync.Map

	longOK   atomic.Int64 // long lines received with the right length
	badLen   atomic.Int64
	badMeta  atomic.Int64
	unkeyedN atomic.Int64

	mu      sync.Mutex
	samples []string
}

const maxSamples = 8

func (c *checkCodec) sample(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) < maxSamples {
		c.samples = append(c.samples, fmt.Sprintf(format, a...))
	}
}

// problems describes what went wrong, "" if nothing.
func (c *checkCodec) problems() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.badLen.Load()+c.badMeta.Load()+c.unkeyedN.Load() == 0 {
		return ""
	}
	return fmt.Sprintf("bad length %d, bad metadata %d, unkeyed %d; first: %q",
		c.badLen.Load(), c.badMeta.Load(), c.unkeyedN.Load(), c.samples)
}

var (
	keyLog           = []byte("log")
	keyStream        = []byte("stream")
	keyContainerName = []byte("container_name")
	keyContainerID   = []byte("container_id")
	jsonLen          = []byte(`,"len":`)
)

// check validates one record and adds it to b.
func (c *checkCodec) check(b *receiver.Batch, ns int64, rec []byte) {
	src, seq, ok := receiver.RecordKey(rec)
	log, _ := wire.LookupString(rec, keyLog)
	if !ok {
		c.unkeyedN.Add(1)
		c.sample("unkeyed record, log %d bytes: %.120q", len(log), log)
		b.AddUnkeyed()
		return
	}
	if i := bytes.LastIndex(log, jsonLen); i >= 0 && bytes.HasSuffix(log, []byte("}")) {
		want, err := strconv.Atoi(string(log[i+len(jsonLen) : len(log)-1]))
		if err != nil || want != len(log) {
			c.badLen.Add(1)
			c.sample("%s seq %d: log of %d bytes announces %q", src, seq, len(log), log[i:])
			b.AddUnkeyed()
			return
		}
		c.longOK.Add(1)
	}
	name, _ := wire.LookupString(rec, keyContainerName)
	id, _ := wire.LookupString(rec, keyContainerID)
	stream, _ := wire.LookupString(rec, keyStream)
	wantName := src
	if j := bytes.LastIndexByte(src, '-'); j > 0 {
		wantName = src[:j]
	}
	every := c.stderrEvery
	if v, ok := c.stderrOverride.Load(string(wantName)); ok {
		every = v.(int64)
	}
	wantStream := "stdout"
	if every > 0 && seq%every == every-1 {
		wantStream = "stderr"
	}
	if !bytes.Equal(name, wantName) || len(id) != 64 || string(stream) != wantStream {
		c.badMeta.Add(1)
		c.sample("%s seq %d: container_name %q id %q stream %q (want %q)", src, seq, name, id, stream, wantStream)
	}
	b.Add(src, seq, ns)
}

// ServeConn implements receiver.Codec: receiver.Wire with check as the
// per-event hook.
func (c *checkCodec) ServeConn(conn net.Conn, t *receiver.Tracker) error {
	return receiver.Wire{OnEvent: c.check}.ServeConn(conn, t)
}
