package stream

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// tapChan is a live dnstap source: frames arrive on a channel; without one for a while it
// reports ErrIdle, and it ends when the channel closes.
type tapChan struct {
	ch  chan []byte
	buf []byte
}

func (c *tapChan) Next() ([]byte, error) {
	select {
	case f, ok := <-c.ch:
		if !ok {
			return nil, io.EOF
		}
		c.buf = append(c.buf[:0], f...)
		return c.buf, nil
	case <-time.After(2 * time.Millisecond):
		return nil, ErrIdle
	}
}

func TestDnstapLiveTime(t *testing.T) {
	const now = int64(1_800_000_000) * 1e9
	past := uint64(1_700_000_000)
	for _, tc := range []struct {
		name string
		msg  []byte
		want int64
	}{
		{"client query: its query time", tapMessage(dnstap.ClientQuery, 1, 1, past), int64(past) * 1e9},
		{"client response: its response time", tapMessage(dnstap.ClientResponse, 1, 1, past), int64(past) * 1e9},
		{"auth query", tapMessage(dnstap.AuthQuery, 1, 1, past), int64(past) * 1e9},
		{"resolver response", tapMessage(dnstap.ResolverResponse, 1, 1, past), int64(past) * 1e9},
		{"stub query: wall clock", tapMessage(dnstap.StubQuery, 1, 1, past), now},
		{"forwarder response: wall clock", tapMessage(dnstap.ForwarderResponse, 1, 1, past), now},
		{"tool query: wall clock", tapMessage(dnstap.ToolQuery, 1, 1, past), now},
		{"client query ahead of now: now", tapMessage(dnstap.ClientQuery, 1, 1, 1_900_000_000), now},
	} {
		var d dnstap.Dnstap
		if err := d.Unmarshal(tc.msg); err != nil {
			t.Fatal(err)
		}
		if got := dnstapLiveTime(&d, now); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// A live dnstap stream ticks on wall time and serves control requests while no frame comes,
// and counts every message sent.
func TestDnstapLive(t *testing.T) {
	for _, workers := range []int{1, 3} {
		src := &tapChan{ch: make(chan []byte)}
		s := New(Config{Workers: workers, Live: true}, defaultSpecs(t, 5))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		start := time.Now().UnixNano()
		go func() { done <- s.RunDnstap(ctx, src) }()

		// Idle: Stats goes through Do, which only the running dispatcher can serve.
		var st Stats
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if st = s.Stats(); st.FirstTS != 0 && st.LastTS > st.FirstTS+int64(20*time.Millisecond) {
				break
			}
		}
		if st.FirstTS < start || st.LastTS <= st.FirstTS+int64(20*time.Millisecond) {
			t.Errorf("workers %d: idle clock first %d last %d (started %d): no tick", workers, st.FirstTS, st.LastTS, start)
		}
		const n = 500
		sec := uint64(time.Now().Unix())
		for i := range n {
			src.ch <- tapMessage(dnstap.ClientQuery, uint32(2000+i), uint16(i), sec)
			src.ch <- tapMessage(dnstap.StubQuery, uint32(2000+i), uint16(i), sec)
		}
		time.Sleep(10 * time.Millisecond)
		if st := s.Stats(); st.Frames != 2*n {
			t.Errorf("workers %d: %d frames while running, want %d", workers, st.Frames, 2*n)
		}
		cancel()
		if err := <-done; err != context.Canceled {
			t.Fatalf("workers %d: %v, want context.Canceled", workers, err)
		}
		sink := metrics.NewJSON()
		if _, err := s.Render(1, metrics.Selection{}, sink, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		wire, _ := sink.Root["wire_packets"].(map[string]any)
		if got := wire["total"]; got != uint64(2*n) {
			t.Errorf("workers %d: dns wire_packets.total %v, want %d (%v)", workers, got, 2*n, sink.Root)
		}
	}
}

// TestDnstapLiveAllocs: the live path (wall-clock timestamps) allocates nothing per message.
func TestDnstapLiveAllocs(t *testing.T) {
	s := New(Config{Workers: 1, Live: true}, defaultSpecs(t, 1))
	s.begin(time.Now().UnixNano())
	src := &frameList{frames: tapFrames(20000)}
	for range 40000 {
		f, _ := src.Next()
		s.dnstapFrame(f)
	}
	if a := testing.AllocsPerRun(20000, func() {
		f, _ := src.Next()
		s.dnstapFrame(f)
	}); a != 0 {
		t.Errorf("%v allocs per live dnstap message, want 0", a)
	}
}
