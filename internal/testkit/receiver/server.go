package receiver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Codec reads the Forward requests of one connection.
type Codec interface {
	// ServeConn reads requests from c until c fails or is closed. For each
	// request it adds the events to a Batch, commits it to t, and only then
	// writes {"ack": chunk} if the request carries a chunk option. It
	// returns nil on a clean EOF.
	ServeConn(c net.Conn, t *Tracker) error
}

// Server is a Forward protocol receiver on a fixed TCP address. The
// embedded Tracker holds everything received, across Stop/Start cycles.
//
// Start, Stop and Close may be called from any goroutine; Stop and Close
// return after every connection goroutine exited.
type Server struct {
	*Tracker
	codec Codec
	log   *slog.Logger

	mu       sync.Mutex
	addr     string
	ln       net.Listener
	conns    map[net.Conn]struct{}
	stopping bool
	accepted int
	errs     []error
	wg       sync.WaitGroup
}

// maxErrs bounds the connection errors a Server keeps for Errors.
const maxErrs = 16

// New returns a stopped Server that will listen on addr (host:port; port 0
// picks a free port at the first Start, kept for later Starts). A nil log
// discards.
func New(addr string, codec Codec, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{Tracker: NewTracker(), codec: codec, log: log, addr: addr, conns: make(map[net.Conn]struct{})}
}

// Listen is New followed by Start.
func Listen(addr string, codec Codec, log *slog.Logger) (*Server, error) {
	s := New(addr, codec, log)
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is the listening address (resolved after the first Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Start listens and serves connections. Starting a running Server is a
// no-op. A port still held by the previous listener is retried for up to
// 5 s.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("receiver: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	s.ln = ln
	s.stopping = false
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.accepted++
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	err := s.codec.ServeConn(c, s.Tracker)
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	stopping := s.stopping
	if err != nil && !stopping && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		if len(s.errs) < maxErrs {
			s.errs = append(s.errs, err)
		}
		s.log.Warn("receiver: connection failed", "addr", s.addr, "remote", c.RemoteAddr().String(), "err", err)
	}
	s.mu.Unlock()
}

// Stop closes the listener and every connection (like a crashed
// aggregator) and waits for the connection goroutines. The Tracker keeps
// its data; Start serves again on the same address.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.ln == nil {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	s.ln.Close()
	s.ln = nil
	for c := range s.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset, as a killed process would
		}
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Close is Stop; it exists so a Server can be deferred like a listener.
func (s *Server) Close() error {
	s.Stop()
	return nil
}

// Running reports whether the Server is listening.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln != nil
}

// Accepted is the number of connections accepted so far.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Errors returns the first connection errors (protocol errors, not the
// closes caused by Stop).
func (s *Server) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}
