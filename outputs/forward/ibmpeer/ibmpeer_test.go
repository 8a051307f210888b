package ibmpeer_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/fluent-forward-go/fluent/protocol"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/sluice-agent/sluice/buffer"
	"github.com/sluice-agent/sluice/config"
	"github.com/sluice-agent/sluice/internal/wire"
	"github.com/sluice-agent/sluice/outputs/forward"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// source hands out a fixed list of chunks and records acks.
type source struct {
	mu     sync.Mutex
	chunks []buffer.Chunk
	next   int
	acked  map[buffer.ID]bool
}

func newSource(n, per int) *source {
	s := &source{acked: make(map[buffer.ID]bool)}
	for i := range n {
		var e []byte
		for j := range per {
			rec := msgp.AppendMapHeader(nil, 2)
			rec = msgp.AppendString(rec, "seq")
			rec = msgp.AppendString(rec, strconv.Itoa(i*per+j))
			rec = msgp.AppendString(rec, "msg")
			rec = msgp.AppendString(rec, "hello from sluice")
			e = wire.AppendEntry(e, time.Now().UnixNano(), rec)
		}
		s.chunks = append(s.chunks, buffer.Chunk{ID: buffer.ID{Segment: 7, Offset: int64(i) * 4096}, Tag: []byte("ibm.test"), Count: per, Entries: e})
	}
	return s
}

func (s *source) Next(ctx context.Context) (buffer.Chunk, error) {
	s.mu.Lock()
	if s.next < len(s.chunks) {
		c := s.chunks[s.next]
		s.next++
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	<-ctx.Done()
	return buffer.Chunk{}, ctx.Err()
}

func (s *source) Ack(id buffer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked[id] = true
}

// Discard is never expected: these tests do not set max_retries.
func (s *source) Discard(id buffer.ID, reason string) {
	panic(fmt.Sprintf("chunk %v discarded (%s)", id, reason))
}

func (s *source) Settle(id buffer.ID, st buffer.Settlement) {
	if st.DeadLettered == 0 && st.Dropped == 0 {
		s.Ack(id)
		return
	}
	s.Discard(id, st.Reason)
}

func (s *source) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = 0
	for s.next < len(s.chunks) && s.acked[s.chunks[s.next].ID] {
		s.next++
	}
}

func (s *source) allAcked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked) == len(s.chunks)
}

// ibmServer decodes requests with fluent-forward-go's protocol package and
// acks them with its AckMessage.
type ibmServer struct {
	ln        net.Listener
	sharedKey string
	mu        sync.Mutex
	seqs      map[int]int
	errs      []error
	modes     map[string]int
	wg        sync.WaitGroup
}

func startIBM(t *testing.T, sharedKey string) *ibmServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &ibmServer{ln: ln, sharedKey: sharedKey, seqs: make(map[int]int), modes: make(map[string]int)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if err := s.serve(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					s.fail(err)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *ibmServer) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

func (s *ibmServer) serve(c net.Conn) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := msgp.NewReader(c)
	w := msgp.NewWriter(c)
	if s.sharedKey != "" {
		if err := s.handshake(r, w); err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
	}
	for {
		var m protocol.PackedForwardMessage
		if err := m.DecodeMsg(r); err != nil {
			if errors.Is(msgp.Cause(err), io.EOF) {
				return io.EOF
			}
			return fmt.Errorf("decode PackedForward: %w", err)
		}
		if m.Options == nil || m.Options.Chunk == "" || m.Options.Size == nil {
			return errors.New("request without chunk or size option")
		}
		stream := m.EventStream
		mode := "PackedForward"
		if m.Options.Compressed == "gzip" {
			mode = "CompressedPackedForward"
			zr, err := gzip.NewReader(bytes.NewReader(stream))
			if err != nil {
				return fmt.Errorf("gunzip: %w", err)
			}
			if stream, err = io.ReadAll(zr); err != nil {
				return fmt.Errorf("gunzip: %w", err)
			}
		}
		var entries protocol.EntryList
		if rest, err := entries.UnmarshalPacked(stream); err != nil || len(rest) != 0 {
			return fmt.Errorf("unmarshal entries: %v (%d bytes left)", err, len(rest))
		}
		if len(entries) != *m.Options.Size || m.Tag != "ibm.test" {
			return fmt.Errorf("tag %q, %d entries, option size %d", m.Tag, len(entries), *m.Options.Size)
		}
		s.mu.Lock()
		s.modes[mode]++
		for _, e := range entries {
			rec, ok := e.Record.(map[string]interface{})
			if !ok {
				s.mu.Unlock()
				return fmt.Errorf("record is a %T", e.Record)
			}
			if e.Timestamp.IsZero() || time.Since(e.Timestamp.Time) > time.Hour {
				s.mu.Unlock()
				return fmt.Errorf("bad event time %v", e.Timestamp.Time)
			}
			k, err := strconv.Atoi(fmt.Sprint(rec["seq"]))
			if err != nil {
				s.mu.Unlock()
				return fmt.Errorf("record seq: %w", err)
			}
			s.seqs[k]++
		}
		s.mu.Unlock()
		ack := protocol.AckMessage{Ack: m.Options.Chunk}
		if err := ack.EncodeMsg(w); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// handshake: IBM's Helo and Pong, and its digest check of our PING. The
// PING is decoded generically because Fluentd-style clients (ours too)
// send the salt as a str, which protocol.Ping's generated decoder reads
// only as bin.
func (s *ibmServer) handshake(r *msgp.Reader, w *msgp.Writer) error {
	nonce, auth := make([]byte, 16), make([]byte, 16)
	rand.Read(nonce)
	rand.Read(auth)
	helo := protocol.NewHelo(&protocol.HeloOpts{Nonce: nonce, Auth: auth, Keepalive: true})
	if err := helo.EncodeMsg(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	v, err := r.ReadIntf()
	if err != nil {
		return err
	}
	arr, ok := v.([]interface{})
	if !ok || len(arr) != 6 || arr[0] != "PING" {
		return fmt.Errorf("bad PING %v", v)
	}
	ping := &protocol.Ping{MessageType: "PING", ClientHostname: fmt.Sprint(arr[1]), SharedKeySalt: []byte(fmt.Sprint(arr[2])),
		SharedKeyHexDigest: fmt.Sprint(arr[3]), Username: fmt.Sprint(arr[4]), Password: fmt.Sprint(arr[5])}
	ok = protocol.ValidatePingDigest(ping, []byte(s.sharedKey), nonce) == nil
	reason := ""
	if !ok {
		reason = "shared_key mismatch"
	}
	pong, err := protocol.NewPong(ok, reason, "ibm-server", []byte(s.sharedKey), helo, ping)
	if err != nil {
		return err
	}
	if err := pong.EncodeMsg(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !ok {
		return errors.New("client digest rejected")
	}
	return nil
}

func TestIBMPeerDecodesEverySeq(t *testing.T) {
	tests := map[string]struct {
		compress, key, mode string
	}{
		"packed":           {mode: "PackedForward"},
		"gzip":             {compress: "gzip", mode: "CompressedPackedForward"},
		"gzip shared key":  {compress: "gzip", key: "s3cret", mode: "CompressedPackedForward"},
		"packed sharedkey": {key: "s3cret", mode: "PackedForward"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := startIBM(t, tc.key)
			const chunks, per = 30, 40
			src := newSource(chunks, per)
			cfg := config.ForwardOutput{
				Servers:           []config.ForwardServer{{Address: srv.ln.Addr().String()}},
				Compress:          tc.compress,
				HeartbeatInterval: 50 * time.Millisecond,
				RetryInitial:      10 * time.Millisecond,
				RetryMax:          50 * time.Millisecond,
			}
			if tc.key != "" {
				cfg.Security = &config.Security{SelfHostname: "sluice", SharedKey: config.Secret(tc.key)}
			}
			o, err := forward.New("ibm", cfg, config.Delivery{}, "", src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- o.Run(ctx) }()
			deadline := time.Now().Add(10 * time.Second)
			for !src.allAcked() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.errs) > 0 {
				t.Fatalf("IBM server: %v", srv.errs)
			}
			if !src.allAcked() {
				t.Fatalf("%d of %d chunks acked", len(src.acked), chunks)
			}
			for k := range chunks * per {
				if srv.seqs[k] != 1 {
					t.Fatalf("seq %d decoded %d times, want 1", k, srv.seqs[k])
				}
			}
			if srv.modes[tc.mode] != chunks {
				t.Fatalf("modes %v, want %d %s", srv.modes, chunks, tc.mode)
			}
		})
	}
}
