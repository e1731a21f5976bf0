package dnstap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ServerConfig configures a Server. Zero values take the defaults in brackets.
type ServerConfig struct {
	// Network is "unix" (Address is a socket path; a stale socket file there is removed
	// first, as the reference does) or "tcp" (Address is HOST:PORT).
	Network string
	Address string
	// MaxFrameSize bounds data frames [DefaultMaxFrameSize].
	MaxFrameSize int
	// MaxConnections bounds concurrent senders; more are closed at once and counted [256].
	MaxConnections int
	// HandshakeTimeout bounds READY..START; a sender that never finishes is closed [5s].
	HandshakeTimeout time.Duration
	// BatchFrames and BatchBytes bound one batch [256 frames, 256 KiB]. A frame larger than
	// BatchBytes gets a batch of its own, grown to fit (at most MaxFrameSize).
	BatchFrames int
	BatchBytes  int
	// Batches is the number of batches in the pool, and so the bound of the queue: when none
	// is free, frames are dropped and counted [64].
	Batches int
	// FlushInterval delivers a partly filled batch after this much idle time [100ms].
	FlushInterval time.Duration
}

// Batch holds frames copied from one connection. Frames alias Batch-owned memory, valid
// until the batch is given back with Server.Release.
type Batch struct {
	Frames [][]byte
	buf    []byte
}

func (b *Batch) reset() {
	clear(b.Frames) // drop references into buf before reuse
	b.Frames = b.Frames[:0]
	b.buf = b.buf[:0]
}

// Stats are the server's counters (monotonic except ActiveConnections).
type Stats struct {
	Connections       uint64 // accepted
	ActiveConnections int64
	Rejected          uint64 // closed at once: over MaxConnections
	ConnErrors        uint64 // closed on a protocol error, a timeout or a truncated frame
	Frames            uint64 // data frames delivered in batches
	Bytes             uint64 // payload bytes of delivered frames
	Dropped           uint64 // data frames dropped: no free batch (slow consumer)
	AcceptErrors      uint64
}

// Server receives dnstap over Frame Streams (bidirectional handshake) from many senders and
// hands frames to one consumer in batches through a bounded channel.
type Server struct {
	cfg     ServerConfig
	ln      net.Listener
	out     chan *Batch
	free    chan *Batch
	nAlloc  atomic.Int64
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex // guards conns (per connection, never per frame)
	conns   map[net.Conn]struct{}
	closeMu sync.Once

	connections, rejected, connErrors, frames, bytes, dropped, acceptErrors atomic.Uint64
	active                                                                  atomic.Int64

	lastErr atomic.Pointer[error] // latest error that closed a connection
}

// Listen binds the socket and starts accepting. Consume Batches until it is closed, giving
// each batch back with Release. Cancelling ctx is the same as Close.
func Listen(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 256
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.BatchFrames <= 0 {
		cfg.BatchFrames = 256
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 256 << 10
	}
	if cfg.Batches <= 0 {
		cfg.Batches = 64
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	var ln net.Listener
	var err error
	switch cfg.Network {
	case "unix":
		if err := removeStaleSocket(cfg.Address); err != nil {
			return nil, err
		}
		ln, err = net.Listen("unix", cfg.Address)
	case "tcp":
		ln, err = net.Listen("tcp", cfg.Address)
	default:
		return nil, fmt.Errorf("dnstap: unsupported network %q (want unix or tcp)", cfg.Network)
	}
	if err != nil {
		return nil, fmt.Errorf("dnstap: listen: %w", err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	s := &Server{
		cfg:   cfg,
		ln:    ln,
		out:   make(chan *Batch, cfg.Batches), // holds every batch: a send never blocks
		free:  make(chan *Batch, cfg.Batches),
		conns: make(map[net.Conn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(2)
	go s.acceptLoop()
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		_ = s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
	}()
	return s, nil
}

// removeStaleSocket removes a socket file left by a previous run; any other kind of file is
// an error rather than something to delete.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dnstap: socket path: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("dnstap: %s exists and is not a socket", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("dnstap: removing stale socket: %w", err)
	}
	return nil
}

// Addr is the bound address (useful with "127.0.0.1:0").
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Batches delivers filled batches; it is closed after Close, once every connection ended.
func (s *Server) Batches() <-chan *Batch { return s.out }

// Release gives a batch back to the pool.
func (s *Server) Release(b *Batch) {
	b.reset()
	s.free <- b // never blocks: the channel can hold every batch ever allocated
}

// Close stops accepting, closes every connection, waits for their goroutines and then closes
// the Batches channel. Batches still queued can be drained after Close.
func (s *Server) Close() error {
	s.closeMu.Do(func() {
		s.cancel()
		s.wg.Wait()
		close(s.out)
	})
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:       s.connections.Load(),
		ActiveConnections: s.active.Load(),
		Rejected:          s.rejected.Load(),
		ConnErrors:        s.connErrors.Load(),
		Frames:            s.frames.Load(),
		Bytes:             s.bytes.Load(),
		Dropped:           s.dropped.Load(),
		AcceptErrors:      s.acceptErrors.Load(),
	}
}

// LastError returns the latest error that closed a connection, or nil.
func (s *Server) LastError() error {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.acceptErrors.Add(1)
			// Temporary failures (EMFILE): back off instead of spinning.
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		s.connections.Add(1)
		s.mu.Lock()
		if len(s.conns) >= s.cfg.MaxConnections || s.ctx.Err() != nil {
			s.mu.Unlock()
			s.rejected.Add(1)
			_ = c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.active.Add(1)
		s.wg.Add(1)
		go s.serve(c)
	}
}

// getBatch takes a free batch, allocating while the pool is below its size; nil when every
// batch is in use (the consumer is behind).
func (s *Server) getBatch() *Batch {
	select {
	case b := <-s.free:
		return b
	default:
	}
	if s.nAlloc.Add(1) <= int64(s.cfg.Batches) {
		return &Batch{Frames: make([][]byte, 0, s.cfg.BatchFrames), buf: make([]byte, 0, s.cfg.BatchBytes)}
	}
	s.nAlloc.Add(-1)
	return nil
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
		s.active.Add(-1)
	}()
	rd := NewReader(c, c, ReaderOptions{MaxFrameSize: s.cfg.MaxFrameSize, Bidirectional: true})
	_ = c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	handshaking := true
	deadline := false // a flush deadline is armed
	var cur *Batch
	// Counted per connection and published per batch: no shared atomics per frame.
	var nFrames, nBytes, nDropped uint64
	publish := func() {
		s.frames.Add(nFrames)
		s.bytes.Add(nBytes)
		s.dropped.Add(nDropped)
		nFrames, nBytes, nDropped = 0, 0, 0
	}
	flush := func() {
		if cur != nil && len(cur.Frames) > 0 {
			s.out <- cur // never blocks: out can hold every batch (see Listen)
			cur = nil
		}
		publish()
	}
	defer flush()
	for {
		f, err := rd.Next()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && !handshaking && s.ctx.Err() == nil {
				// Idle with a partial batch: hand it over, then wait without a deadline.
				flush()
				_ = c.SetReadDeadline(time.Time{})
				deadline = false
				continue
			}
			if err != io.EOF && s.ctx.Err() == nil {
				s.connErrors.Add(1)
				e := fmt.Errorf("dnstap: connection from %v: %w", c.RemoteAddr(), err)
				s.lastErr.Store(&e)
			}
			return
		}
		if handshaking {
			handshaking = false
			_ = c.SetDeadline(time.Time{})
		}
		if cur != nil && (len(cur.Frames) == cap(cur.Frames) || len(cur.buf)+len(f) > cap(cur.buf)) {
			flush()
		}
		if cur == nil {
			if cur = s.getBatch(); cur == nil {
				nDropped++
				continue
			}
		}
		off := len(cur.buf)
		cur.buf = append(cur.buf, f...) // grows only for a frame larger than BatchBytes
		cur.Frames = append(cur.Frames, cur.buf[off:len(cur.buf):len(cur.buf)])
		nFrames++
		nBytes += uint64(len(f))
		if !deadline {
			// A partial batch must not wait for the next frame forever.
			_ = c.SetReadDeadline(time.Now().Add(s.cfg.FlushInterval))
			deadline = true
		}
	}
}
