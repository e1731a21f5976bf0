package dnstap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	fs "github.com/farsightsec/golang-framestream"
)

// theirSender sends n frames (sender id, sequence) with golang-framestream's bidirectional
// writer, as a resolver would.
func theirSender(network, addr string, id, n int) error {
	c, err := net.Dial(network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	w, err := fs.NewWriter(c, &fs.WriterOptions{ContentTypes: [][]byte{[]byte(ContentType)}, Bidirectional: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	var f [64]byte
	for i := range n {
		binary.BigEndian.PutUint32(f[:], uint32(id))
		binary.BigEndian.PutUint32(f[4:], uint32(i))
		if _, err := w.WriteFrame(f[:8+i%50]); err != nil {
			return err
		}
	}
	return w.Close()
}

// collect drains the server's batches, counting frames per sender and checking order.
type collector struct {
	mu    sync.Mutex
	next  map[uint32]uint32
	total int
	bad   error
	done  chan struct{}
}

func collect(s *Server) *collector {
	col := &collector{next: map[uint32]uint32{}, done: make(chan struct{})}
	go func() {
		defer close(col.done)
		for b := range s.Batches() {
			col.mu.Lock()
			for _, f := range b.Frames {
				if len(f) < 8 {
					continue
				}
				id, seq := binary.BigEndian.Uint32(f), binary.BigEndian.Uint32(f[4:])
				if seq != col.next[id] && col.bad == nil {
					col.bad = fmt.Errorf("sender %d: frame %d, want %d", id, seq, col.next[id])
				}
				if len(f) != 8+int(seq)%50 && col.bad == nil {
					col.bad = fmt.Errorf("sender %d frame %d: %d bytes", id, seq, len(f))
				}
				col.next[id] = seq + 1
				col.total++
			}
			col.mu.Unlock()
			s.Release(b)
		}
	}()
	return col
}

func listenTest(t *testing.T, network string, cfg ServerConfig) *Server {
	t.Helper()
	cfg.Network = network
	switch network {
	case "unix":
		cfg.Address = filepath.Join(t.TempDir(), "dnstap.sock")
	case "tcp":
		cfg.Address = "127.0.0.1:0"
	}
	s, err := Listen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkNoLeak(t *testing.T, before int) {
	t.Helper()
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestServerConcurrentSenders(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			before := runtime.NumGoroutine()
			s := listenTest(t, network, ServerConfig{Batches: 1024})
			col := collect(s)
			const senders, frames = 8, 5000
			var wg sync.WaitGroup
			errs := make(chan error, senders)
			for id := range senders {
				wg.Go(func() { errs <- theirSender(network, s.Addr().String(), id, frames) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "connections to end", func() bool { return s.Stats().ActiveConnections == 0 })
			s.Close()
			<-col.done
			st := s.Stats()
			if col.bad != nil {
				t.Fatal(col.bad)
			}
			if col.total != senders*frames || st.Frames != senders*frames || st.Dropped != 0 ||
				st.ConnErrors != 0 || st.Connections != senders {
				t.Fatalf("received %d, stats %+v, last error %v", col.total, st, s.LastError())
			}
			if network == "unix" {
				if _, err := os.Stat(s.cfg.Address); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("socket file left behind: %v", err)
				}
			}
			checkNoLeak(t, before)
		})
	}
}

// Misbehaving senders are closed and counted while good ones carry on.
func TestServerBadSenders(t *testing.T) {
	before := runtime.NumGoroutine()
	s := listenTest(t, "unix", ServerConfig{HandshakeTimeout: 300 * time.Millisecond})
	col := collect(s)
	addr := s.Addr().String()
	raw := func(parts ...[]byte) func() error {
		return func() error {
			c, err := net.Dial("unix", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			for _, p := range parts {
				if _, err := c.Write(p); err != nil {
					return err
				}
			}
			// Wait for the server to hang up (or the handshake timeout).
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			var b [256]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					return nil
				}
			}
		}
	}
	ready, start := ctrl(controlReady, ContentType), ctrl(controlStart, ContentType)
	bad := []func() error{
		raw(ready, start, dataFrame(make([]byte, 100))[:50]),             // disconnects mid frame
		raw([]byte("\x16\x03\x01 this is not frame streams at all....")), // garbage
		raw(ctrl(controlReady, "protobuf:other")),                        // wrong content type
		raw(ready), // never sends START
		raw(ready, start, dataFrame(make([]byte, DefaultMaxFrameSize+1))[:4]), // oversize
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for _, f := range bad {
		wg.Go(func() { errs <- f() })
	}
	for id := range 3 {
		wg.Go(func() { errs <- theirSender("unix", addr, id, 2000) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "connections to end", func() bool { return s.Stats().ActiveConnections == 0 })
	s.Close()
	<-col.done
	st := s.Stats()
	if col.bad != nil {
		t.Fatal(col.bad)
	}
	if st.ConnErrors != uint64(len(bad)) || col.total != 3*2000 || st.Connections != uint64(len(bad)+3) {
		t.Fatalf("received %d, stats %+v", col.total, st)
	}
	checkNoLeak(t, before)
}

// A consumer that does not keep up: frames beyond the pool are dropped and counted, none
// queued without bound.
func TestServerSlowConsumer(t *testing.T) {
	s := listenTest(t, "tcp", ServerConfig{Batches: 2, BatchFrames: 10})
	const n = 1000
	if err := theirSender("tcp", s.Addr().String(), 1, n); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "connection to end", func() bool { return s.Stats().ActiveConnections == 0 })
	st := s.Stats()
	if st.Frames != 20 || st.Dropped != n-20 || len(s.Batches()) != 2 {
		t.Fatalf("stats %+v, %d queued", st, len(s.Batches()))
	}
	// Released batches are reused: the next sender gets through again.
	for range 2 {
		s.Release(<-s.Batches())
	}
	if err := theirSender("tcp", s.Addr().String(), 2, 5); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "frames", func() bool { return s.Stats().Frames == 25 })
	s.Close()
}

// A partial batch is delivered after FlushInterval even though the sender stays connected.
func TestServerFlushInterval(t *testing.T) {
	s := listenTest(t, "unix", ServerConfig{FlushInterval: 20 * time.Millisecond})
	defer s.Close()
	c, err := net.Dial("unix", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := NewBidirectionalWriter(c, "")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := w.WriteFrame([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-s.Batches():
		if len(b.Frames) != 3 || string(b.Frames[2]) != "hello" {
			t.Fatalf("batch %q", b.Frames)
		}
		s.Release(b)
	case <-time.After(3 * time.Second):
		t.Fatal("partial batch not flushed")
	}
	// The connection is still usable after the idle timeout.
	if err := w.WriteFrame([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := <-s.Batches()
	if len(b.Frames) != 1 || string(b.Frames[0]) != "again" {
		t.Fatalf("batch %q", b.Frames)
	}
	if st := s.Stats(); st.ConnErrors != 0 {
		t.Fatalf("stats %+v %v", st, s.LastError())
	}
}

func TestServerMaxConnections(t *testing.T) {
	s := listenTest(t, "tcp", ServerConfig{MaxConnections: 1})
	defer s.Close()
	c1, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	waitFor(t, "first connection", func() bool { return s.Stats().ActiveConnections == 1 })
	c2, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection not closed")
	}
	if st := s.Stats(); st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerSocketPath(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves the socket file, as a crashed agent would
	s, err := Listen(context.Background(), ServerConfig{Network: "unix", Address: stale})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s.Close()

	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(context.Background(), ServerConfig{Network: "unix", Address: regular}); err == nil {
		t.Fatal("listened over a regular file")
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep me" {
		t.Fatal("regular file removed")
	}
	if _, err := Listen(context.Background(), ServerConfig{Network: "udp", Address: "x"}); err == nil {
		t.Fatal("udp accepted")
	}
}

// Cancelling the context stops everything, including idle and mid-handshake connections.
func TestServerContextCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Listen(ctx, ServerConfig{Network: "tcp", Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "connection", func() bool { return s.Stats().ActiveConnections == 1 })
	cancel()
	s.Close()
	if _, ok := <-s.Batches(); ok {
		t.Fatal("batches channel not closed")
	}
	if st := s.Stats(); st.ConnErrors != 0 || st.ActiveConnections != 0 {
		t.Fatalf("stats %+v", st)
	}
	c.Close()
	checkNoLeak(t, before)
}

// BenchmarkServerUnix: one sender over a unix socket, the consumer decoding every frame; one
// op is one message end to end.
func BenchmarkServerUnix(b *testing.B) {
	s, err := Listen(context.Background(), ServerConfig{Network: "unix", Address: filepath.Join(b.TempDir(), "b.sock"), Batches: 256})
	if err != nil {
		b.Fatal(err)
	}
	frame := mustMarshal(b, oracleMessage(6))
	got := make(chan int)
	go func() {
		var d Dnstap
		n := 0
		for bt := range s.Batches() {
			for _, f := range bt.Frames {
				if d.Unmarshal(f) == nil {
					n++
				}
			}
			s.Release(bt)
		}
		got <- n
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	c, err := net.Dial("unix", s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewBidirectionalWriter(c, "")
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		if err := w.WriteFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	c.Close()
	for s.Stats().ActiveConnections != 0 {
		time.Sleep(time.Millisecond)
	}
	s.Close()
	n := <-got
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Dropped), "dropped")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e6, "Mmsg/s")
}
